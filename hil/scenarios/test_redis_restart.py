"""Redis restart on the DUT side: the daemon reconnects and writes current data again.

Redis is stopped and started (its data is gone, like a Redis on tmpfs after a crash). comsrv
must notice, reconnect by itself, and fill the keys again with fresh reads of both the TCP
device and the RTU line; its /health must be healthy again.
"""

import time


def test_redis_restart_is_survived(bench, figure):
    before = bench.timestamp(2001, 1)
    assert before is not None

    bench.redis.restart()
    restarted = time.monotonic()
    assert not bench.redis.client().exists("comsrv:2001:T"), "Redis came back empty"

    bench.wait_until(lambda: (bench.timestamp(2001, 1) or 0) > before, 30,
                     "fresh PCS values in the restarted Redis")
    back = time.monotonic() - restarted
    bench.wait_until(lambda: bench.value(2002, 1) is not None, 15, "fresh rack values")
    code, health = bench.http("GET", "/health")
    assert code == 200 and health["status"] == "healthy", health
    status = bench.channel_status(2001)
    assert status.get("connected") == "1", status
    figure(f"data in Redis again {back:.1f} s after the restart")
