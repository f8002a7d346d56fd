"""RTU polling: three BMS racks (slaves 11, 12, 13) on one RS-485 line deliver correct values.

New register values are put into the simulated racks; each must arrive in Redis decoded and
scaled (0.1 per count), and every rack must keep being polled.
"""

import random

RACKS = {11: (1, 2), 12: (3, 4), 13: (5, 6)}  # slave -> (SOC point, voltage point) of channel 2002


def test_rtu_slaves_deliver_correct_values(bench, figure):
    want = {}
    for slave, (soc_pt, volt_pt) in RACKS.items():
        soc, volt = random.randint(100, 999), random.randint(7000, 7999)
        bench.sim.set(slave, "hr", 0, soc)
        bench.sim.set(slave, "hr", 1, volt)
        want[soc_pt], want[volt_pt] = soc / 10, volt / 10

    def all_arrived():
        t = bench.points(2002).get("T", {})
        return all(abs(float(t.get(str(p), {}).get("value", "nan")) - v) < 1e-6 for p, v in want.items())

    bench.wait_until(all_arrived, 15, f"channel 2002 to show {want}")

    rates = {slave: bench.update_rate(2002, soc_pt, 3.0) for slave, (soc_pt, _) in RACKS.items()}
    for slave, rate in rates.items():
        assert rate > 0.5, f"slave {slave} is polled {rate:.2f}/s (poll interval 500 ms)"
    assert bench.channel_status(2002).get("connected") == "1"
    figure(f"{len(RACKS)} slaves, {len(want)} points correct; reads/s "
           + " ".join(f"{s}:{r:.1f}" for s, r in rates.items()))
