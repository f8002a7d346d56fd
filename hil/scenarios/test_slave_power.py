"""One slave powered off: the other racks keep their rate, its status shows it, it recovers.

Rack 2 (slave 12) stops answering. After comsrv backs it off, racks 1 and 3 must still be read
at least at 60 % of their rate before; ``comsrv:2002:status`` must list slave 12 in
``offline_slaves`` and its points must be marked stale. After power returns, slave 12's values
update again and it leaves ``offline_slaves``.
"""


def test_dead_slave_does_not_stall_the_bus(bench, figure):
    before = {s: bench.update_rate(2002, pt, 3.0) for s, pt in ((11, 1), (13, 5))}

    bench.sim.slave(12, on=False)
    try:
        bench.wait_until(lambda: "12" in bench.channel_status(2002).get("offline_slaves", "").split(","),
                         15, "slave 12 in comsrv:2002:status offline_slaves")
        quality = bench.redis.client().hgetall("comsrv:2002:T:quality")
        assert quality.get("3") == "stale" and quality.get("4") == "stale", quality
        assert "1" not in quality and "5" not in quality, f"healthy racks marked: {quality}"
        during = {s: bench.update_rate(2002, pt, 4.0) for s, pt in ((11, 1), (13, 5))}
    finally:
        bench.sim.slave(12, on=True)

    for s in before:
        assert during[s] >= 0.6 * before[s], f"slave {s}: {before[s]:.2f}/s before, {during[s]:.2f}/s with 12 dead"

    ts_off = bench.timestamp(2002, 3)
    bench.sim.set(12, "hr", 0, 444)
    bench.wait_until(lambda: bench.value(2002, 3) == 44.4 and bench.timestamp(2002, 3) != ts_off,
                     15, "slave 12's new value after power on")
    bench.wait_until(lambda: bench.channel_status(2002).get("offline_slaves", "") == "",
                     10, "offline_slaves to empty")
    figure("reads/s of 11 and 13 before -> with 12 dead: "
           + ", ".join(f"{s}: {before[s]:.1f} -> {during[s]:.1f}" for s in before))
