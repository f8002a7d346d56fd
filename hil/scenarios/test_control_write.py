"""Control write with read-back: an adjustment reaches the device and is verified.

The PCS's active power setpoint (channel 2001 adjustment point 1, holding register 20, i16 kW,
-100..100) is written through comsrv's API. The answer must say "verified" with the read-back,
and the simulated device must hold the value; an out-of-range value is refused (422) and never
reaches the device.
"""

import random


def test_setpoint_write_is_read_back(bench, figure):
    value = random.choice([v for v in range(-90, 91, 7) if v != 0])
    code, body = bench.http("POST", "/channels/2001/adjustment",
                            {"point_id": 1, "value": value, "requested_by": "hil"})
    assert code == 200, (code, body)
    assert body["status"] == "verified", body
    assert float(body["read_back"]) == value, body
    assert bench.sim.get(1, "hr", 20) == value & 0xFFFF, "the device holds the setpoint (i16)"

    code, body = bench.http("POST", "/channels/2001/adjustment", {"point_id": 1, "value": 420})
    assert code == 422, (code, body)
    assert bench.sim.get(1, "hr", 20) == value & 0xFFFF, "a refused write never reaches the device"

    audit = bench.redis.client().lrange("comsrv:2001:audit", 0, 0)
    assert audit and "hil" in audit[0], audit
    figure(f"setpoint {value} kW verified by read-back; 420 refused with 422")
