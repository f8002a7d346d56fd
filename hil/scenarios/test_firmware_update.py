"""Firmware update and rollback (A/B), on a bench whose DUT boots through U-Boot with A/B root
partitions and RAUC (the layer's voltage-image; yocto-layer/meta-voltage/README.md).

1. Update: the bench's bundle is installed with ``rauc install``; RAUC's post-install handler
   opens the trial of the other slot (``/data/voltage/ab-trial``: the slot and the channels
   polling). After the reboot the DUT runs from that slot, the health gate marked it good and
   closed the trial, and data flows.
2. Rollback: the same bundle is installed again (into the slot the DUT came from), and before
   the reboot the PCS cable is pulled, so channel 2001, which polled when the trial opened,
   stays silent in the new slot: the gate marks it bad within its deadline and reboots, and
   U-Boot boots the slot of step 1 again. The cable is plugged back in and data flows.

The gate's deadline is shortened for the run through ``/data/voltage/health-gate.env`` (the
unit's EnvironmentFile), and the file is removed at the end.

A bench file that cannot do this says why in its strategy's ``firmware_update``, and one
without ``update_bundle`` (a RAUC bundle on the bench PC built for the DUT's compatible) says
nothing can be installed; the scenario is then skipped with that reason, so the report lists
it instead of hiding it.
"""

import time

import pytest

GATE_DEADLINE = 60  # seconds the trial slot gets to be healthy during this scenario
BUNDLE = "/data/voltage-update.raucb"


def booted_slot(ssh):
    out = ssh.run_check("rauc status --output-format=shell")
    for line in out:
        if line.startswith("RAUC_SYSTEM_BOOTED_BOOTNAME="):
            return line.split("=", 1)[1].strip("'\"")
    raise AssertionError(f"rauc status names no booted slot: {out}")


def booted_slot_is_good(ssh):
    out = "\n".join(ssh.run_check("rauc status --detailed --output-format=shell"))
    state = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    for key, value in state.items():
        if key.startswith("RAUC_SLOT_STATE_") and value.strip("'\"") == "booted":
            n = key.removeprefix("RAUC_SLOT_STATE_")
            return state.get(f"RAUC_SLOT_BOOT_STATUS_{n}", "").strip("'\"") == "good"
    return False


def reconnect(bench, ssh, timeout):
    """Waits for the DUT to go away and come back on SSH after a reboot it started itself."""
    bench.wait_until(lambda: bench.http("GET", "/health")[0] == 0, 60, "the DUT going down")
    bench.target.deactivate(ssh)

    def up():
        bench.target.activate(ssh)
        return True

    bench.wait_until(up, timeout, "SSH to the DUT after the reboot", interval=2)


def test_firmware_update_and_rollback(bench, figure):
    if bench.firmware_update:
        pytest.skip(bench.firmware_update)
    if not bench.update_bundle:
        pytest.skip("the bench file names no update_bundle (a RAUC bundle for the DUT)")
    if bench.cable is None:
        pytest.skip("the rollback step needs a pullable cable to channel 2001")
    ssh = bench.target.get_driver("SSHDriver")
    bench.wait_until(lambda: bench.channel_status(2001).get("connected") == "1", 30, "2001 connected")
    start = booted_slot(ssh)
    ssh.run_check(f"echo VOLTAGE_HEALTH_DEADLINE={GATE_DEADLINE} >/data/voltage/health-gate.env")
    try:
        # 1. The update: a trial of the other slot that passes.
        ssh.put(bench.update_bundle, BUNDLE)
        ssh.run_check(f"rauc install {BUNDLE}")
        trial = "\n".join(ssh.run_check("cat /data/voltage/ab-trial"))
        other = trial.split("# slot=", 1)[1].split()[0]
        assert other != start, f"the trial is of the booted slot {start}: {trial}"
        assert "2001" in trial.split(), f"channel 2001 is not in the trial's baseline: {trial}"
        t0 = time.monotonic()
        ssh.run("systemctl reboot")
        reconnect(bench, ssh, bench.boot_timeout)
        assert booted_slot(ssh) == other, "U-Boot did not boot the updated slot"
        bench.wait_until(lambda: booted_slot_is_good(ssh), GATE_DEADLINE + 30,
                         f"slot {other} marked good by the health gate")
        bench.wait_until(lambda: bench.value(2001, 1) is not None, 30, "data from the updated slot")
        updated = time.monotonic() - t0
        _, _, code = ssh.run("test -e /data/voltage/ab-trial")
        assert code != 0, "the trial file is still there after the trial passed"

        # 2. The rollback: a trial that fails because a channel that polled before is silent.
        ssh.run_check(f"rauc install {BUNDLE}")
        bench.cable.unplug()
        t1 = time.monotonic()
        try:
            ssh.run("systemctl reboot")
            reconnect(bench, ssh, bench.boot_timeout)  # the trial boot of the slot we came from
            # The gate gives up after its deadline and reboots; then the slot of step 1 boots.
            bench.wait_until(lambda: bench.http("GET", "/health")[0] == 0,
                             GATE_DEADLINE + 60, "the failed trial rebooting the DUT")
            reconnect(bench, ssh, bench.boot_timeout)
            assert booted_slot(ssh) == other, "the DUT did not fall back to the slot of step 1"
        finally:
            bench.cable.plug()
        bench.wait_until(lambda: booted_slot_is_good(ssh), GATE_DEADLINE + 30,
                         f"slot {other} confirmed good after the fallback")
        bench.wait_until(lambda: bench.channel_status(2001).get("connected") == "1", 60,
                         "2001 polling again after the fallback")
        rolled_back = time.monotonic() - t1
    finally:
        ssh.run(f"rm -f {BUNDLE} /data/voltage/health-gate.env")
    figure(f"update {start}->{other} in {updated:.0f} s; failed trial rolled back in {rolled_back:.0f} s")
