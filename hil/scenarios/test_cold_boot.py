"""Cold boot: from power-on to the first sample of the PCS in Redis.

The DUT is switched off, then on; the strategy waits until comsrv's API returns the first
values of the reference channel. The figure is that time (it includes the kernel's boot and,
on the virtual bench, the emulation overhead of an arm64 CPU on the host).
"""


def test_cold_boot_to_first_sample(strategy, figure):
    strategy.transition("off")
    strategy.transition("running")

    assert strategy.boot_seconds is not None
    assert strategy.value(2001, 1) == 752.3, "first sample of the PCS DC voltage"
    figure(f"power-on to first sample: {strategy.boot_seconds:.1f} s")
    assert strategy.boot_seconds < strategy.boot_timeout
