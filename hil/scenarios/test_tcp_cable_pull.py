"""Cable pull on a TCP device: the PCS's link goes down and comes back.

The bench's cable (a proxy between the DUT and the PCS) is pulled: comsrv must report channel
2001 disconnected, keep the last values (marked stale), and after the cable is plugged in again
reconnect by itself and deliver new values.
"""

import time

import pytest


def test_tcp_device_cable_pull_and_replug(bench, figure):
    if bench.cable is None:
        pytest.skip("this bench has no pullable cable")
    bench.wait_until(lambda: bench.channel_status(2001).get("connected") == "1", 15, "2001 connected")

    bench.cable.unplug()
    pulled = time.monotonic()
    try:
        bench.wait_until(lambda: bench.channel_status(2001).get("connected") == "0", 15,
                         "comsrv:2001:status connected = 0 after the cable pull")
        detect = time.monotonic() - pulled
        assert bench.value(2001, 1) is not None, "the last value is kept"
        quality = bench.redis.client().hget("comsrv:2001:T:quality", "1")
        assert quality == "stale", f"point 1 quality while unplugged: {quality}"
        bench.sim.set(1, "hr", 0, 7000)
        time.sleep(1.5)
        assert bench.value(2001, 1) != 700.0, "no new value can arrive without the cable"
    finally:
        bench.cable.plug()

    plugged = time.monotonic()
    bench.wait_until(lambda: bench.value(2001, 1) == 700.0, 20, "the new value after replug")
    recover = time.monotonic() - plugged
    assert bench.channel_status(2001).get("connected") == "1"
    assert int(bench.channel_stats(2001).get("reconnect_count", "0")) >= 1
    bench.sim.set(1, "hr", 0, 7523)
    figure(f"disconnect seen after {detect:.1f} s, data again {recover:.1f} s after replug")
