"""DUT power cut during an InfluxDB outage: no history is lost after the reboot.

InfluxDB goes away; the PCS's DC voltage then takes a series of new values, each seen by the
DUT (its history log on the data partition holds them, InfluxDB cannot). Power is cut without
a shutdown; InfluxDB comes back; the DUT boots again and must deliver every one of those values
to InfluxDB with its original timestamp, and the history sink's backlog must drain to zero.
"""

import time

import pytest


def test_power_cut_during_influx_outage_loses_no_history(bench, figure):
    if bench.influx is None or bench.history_api is None:
        pytest.skip("this bench has no InfluxDB / history API")

    # hissrv delivers normally first.
    bench.wait_until(lambda: bench.influx.values(
        "SELECT value FROM telemetry WHERE channel_id='2001' AND point_id='1' LIMIT 1"), 30,
        "the first PCS sample in InfluxDB")

    bench.influx.stop()
    outage = [7101 + i for i in range(6)]
    try:
        for raw in outage:
            bench.sim.set(1, "hr", 0, raw)
            bench.wait_until(lambda r=raw: bench.value(2001, 1) == r / 10, 10, f"DUT to read {raw / 10} V")
        time.sleep(1.0)  # the sampler looks every 250 ms; the log syncs every record
        code, st = bench.http("GET", "/status", base=bench.history_api)
        backlog = max((s["records"] for s in st["log"]["sinks"]), default=0) if code == 200 else 0
        assert backlog > 0, f"records waiting for InfluxDB before the power cut: {st}"
        bench.power_cut()
    finally:
        bench.influx.start()
    bench.sim.set(1, "hr", 0, 7523)

    bench.transition("running")
    want = {r / 10 for r in outage}

    def delivered():
        rows = bench.influx.values(
            "SELECT value FROM telemetry WHERE channel_id='2001' AND point_id='1'")
        return want <= {round(v, 6) for _, v in rows} and rows

    rows = bench.wait_until(delivered, 60, f"every outage value {sorted(want)} in InfluxDB")
    bench.wait_until(lambda: all(s["records"] == 0 for s in
                                 bench.http("GET", "/status", base=bench.history_api)[1]["log"]["sinks"]),
                     30, "the history sink backlog to drain")
    figure(f"{backlog} records pending at the power cut; all {len(want)} outage values in InfluxDB "
           f"after reboot ({len(rows)} rows)")
