"""Chaos run of the whole daemon (scripts/chaos): faults at random moments, invariants after each.

Faults (one at a time, at a random moment, each undone after a random outage):
  kill     SIGKILL of the daemon, restarted after the outage
  redis    redis-server stopped and started again on the same port, empty (no persistence)
  influx   influxd stopped and started (hissrv's sink must keep everything in its log)
  mqtt     mosquitto stopped and started (netsrv's sink)
  devices  the Modbus TCP simulator stopped (every slave silent) and started on the same ports
  link     every device link black-holed by the proxy in front of the devices (connections stay
           open, bytes vanish: a pulled cable, not a refused port), then let through again

Invariants, checked after every fault once it is undone:
  - no panic in the daemon's log;
  - every Modbus channel is connected again and has polled successfully within the recovery
    bound (its reconnect backoff maximum plus two poll intervals);
  - no reconnect storm: connection attempts per channel per device outage stay under a bound derived
    from the backoff (doubling from 500 ms);
and at the end:
  - every sample the daemon logged while it ran is in InfluxDB, once, with its own timestamp
    and value, and InfluxDB holds no sample that was never taken. The samples come from a
    ledger channel the harness writes itself (unique timestamps), so it knows exactly which
    readings hissrv took: a reading counts as taken when the history log grew after it;
  - netsrv is connected to the broker again and its backlog drains.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import signal
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
import soak  # noqa: E402
from soak import (Procs, free_port, http, influx_query, log, port_open, redis_cmd,  # noqa: E402
                  start_influxd, start_mosquitto, start_redis, wait, write)

soak.PROG = "chaos"

LEDGER = 7000
BACKOFF_MAX_MS = 5000
# Backoff doubling from 500 ms to BACKOFF_MAX_MS over an outage of at most 8 s plus recovery:
# about 5 connection attempts per channel; a storm (an attempt per poll or faster) is well above 12.
STORM_BOUND = 12


def reconnects(rig, channels):
    """Connection attempts of `channels`: failed ones (connection_errors) and successful
    reconnects (reconnect_count)."""
    n = 0
    for ch in channels:
        st = rig.channel(ch, "stats")
        n += int(st.get("reconnect_count", 0) or 0) + int(st.get("connection_errors", 0) or 0)
    return n


def configure(cfg, ports, addrs, data_dir):
    svc = ", ".join(f"{s}: {{port: {p}}}" for s, p in ports.items() if s not in ("redis", "influx", "mqtt"))
    write(f"{cfg}/voltage.yaml", f"schema_version: 2\ndata_dir: {data_dir}\nredis:\n  url: redis://127.0.0.1:{ports['redis']}\n"
          f"services: {{{svc}}}\n")
    lines = ["file_watch: false", "channels:", f"  - {{id: {LEDGER}, name: ledger, protocol: virtual}}"]
    for i, addr in enumerate(addrs, start=1):
        host, port = addr.rsplit(":", 1)
        lines.append(f"  - {{id: {i}, name: dev{i}, protocol: modbus_tcp, parameters: {{host: {host}, port: {port}, "
                     f"poll_interval_ms: 1000, timeout_ms: 500, reconnect_initial_ms: 500, reconnect_max_ms: {BACKOFF_MAX_MS}}}}}")
        write(f"{cfg}/comsrv/{i}/telemetry.csv", "point_id,signal_name\n1,p1\n2,p2\n")
        write(f"{cfg}/comsrv/{i}/mapping/telemetry_mapping.csv",
              "point_id,slave_id,function_code,register_address,data_type\n1,1,3,0,u16\n2,1,3,1,u16\n")
    write(f"{cfg}/comsrv/comsrv.yaml", "\n".join(lines) + "\n")
    write(f"{cfg}/alarmsrv/rules.yaml", "rules:\n" + "".join(
        f"  - {{id: hot{i}, point: \"comsrv:{i}:T:1\", title: \"dev{i} high\", level: Warning, high: 101.0, deadband: 0.5}}\n"
        for i in range(1, len(addrs) + 1)))
    write(f"{cfg}/hissrv/hissrv.yaml",
          f"influxdb: {{url: \"http://127.0.0.1:{ports['influx']}\", api: v1, database: chaos, batch_size: 500, "
          f"flush_interval_ms: 500, timeout_ms: 3000}}\n"
          f"sources:\n  - {{channel: {LEDGER}, types: [T], interval_ms: 50}}\n"
          f"wal: {{dir: wal, max_bytes: 67108864, fsync: always}}\n")
    write(f"{cfg}/netsrv/netsrv.yaml",
          f"device_id: chaos\nmqtt: {{host: 127.0.0.1, port: {ports['mqtt']}, batch_size: 100, keep_alive_s: 5}}\n")


class Rig:
    def __init__(self, a, work):
        self.a, self.work = a, work
        self.procs = Procs(work)
        self.ports = {s: free_port() for s in ("redis", "influx", "mqtt", "comsrv", "modsrv", "alarmsrv",
                                                "rulesrv", "hissrv", "gateway", "netsrv")}
        self.influx_rpc = free_port()
        self.dev_ports = [free_port() for _ in range(a.channels)]
        # Even channels reach their device through the proxy (scripts/soak.d/proxy.py), odd
        # ones directly: a stopped device refuses the odd ones' connections, while the proxy
        # accepts and then closes (counted twice: a reconnect and a connection error), so each
        # fault's connection attempts are counted on the channels it is about.
        self.direct = [ch for ch in range(1, a.channels + 1) if ch % 2 == 1]
        self.proxied = [ch for ch in range(1, a.channels + 1) if ch % 2 == 0]
        self.link_ports = {ch: free_port() for ch in self.proxied}
        self.p = {}
        self.daemon_starts = 0

    # --- the neighbours -------------------------------------------------------------------
    def start_redis(self):
        self.p["redis"] = start_redis(self.procs, self.work, self.ports["redis"])

    def start_influx(self):
        self.p["influx"] = start_influxd(self.procs, self.work, self.ports["influx"], self.influx_rpc)

    def start_mqtt(self):
        self.p["mqtt"] = start_mosquitto(self.procs, self.work, self.ports["mqtt"])

    def start_devices(self):
        argv = [f"{self.a.bin}/voltage-sim"]
        for port in self.dev_ports:
            argv += ["--listen", f"127.0.0.1:{port}"]
        argv += ["--set", "1:hr:0=100", "--set", "1:hr:1=7", "--animate"]
        self.p["devices"] = self.procs.start("devices", argv)
        wait("the devices", lambda: all(port_open(p) for p in self.dev_ports))

    def start_links(self):
        argv = [sys.executable, os.path.join(os.path.dirname(__file__), "proxy.py")]
        for ch, lp in self.link_ports.items():
            argv += ["--map", f"{lp}:{self.dev_ports[ch - 1]}"]
        self.p["links"] = self.procs.start("links", argv)
        wait("the links", lambda: all(port_open(p) for p in self.link_ports.values()))

    def addrs(self):
        return [f"127.0.0.1:{self.link_ports.get(ch, self.dev_ports[ch - 1])}" for ch in range(1, self.a.channels + 1)]

    def block_links(self, blocked):
        self.p["links"].send_signal(signal.SIGUSR1 if blocked else signal.SIGUSR2)

    def start_daemon(self):
        self.daemon_starts += 1
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        self.p["daemon"] = self.procs.start(f"voltage-{self.daemon_starts}", [f"{self.a.bin}/voltage", "run", "--config", f"{self.work}/config"], env=env)
        wait("hissrv", lambda: port_open(self.ports["hissrv"]), 60)

    def stop(self, name, sig="TERM"):
        p = self.p[name]
        if p.poll() is None:
            p.kill() if sig == "KILL" else p.terminate()
            p.wait(20)

    # --- what the daemon reports ------------------------------------------------------------
    def logged(self):
        try:
            _, b = http(f"http://127.0.0.1:{self.ports['hissrv']}/status", timeout=2)
            return json.loads(b)["log"]["next_seq"]
        except (OSError, ValueError, KeyError):
            return None

    def channel(self, ch, what):
        out = redis_cmd(self.ports["redis"], "HGETALL", f"comsrv:{ch}:{what}").split("\n")
        return dict(zip(out[::2], out[1::2]))

    def panics(self):
        n = []
        for i in range(1, self.daemon_starts + 1):
            n += [l.strip() for l in open(f"{self.work}/voltage-{i}.log", errors="replace") if "panicked" in l]
        return n


def main():
    # SIGTERM (a CI timeout, `timeout`) unwinds like Ctrl-C, so the finally below stops every child.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    p = argparse.ArgumentParser(prog="chaos")
    p.add_argument("--minutes", type=float, default=3)
    p.add_argument("--channels", type=int, default=20)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--bin", required=True)
    p.add_argument("--report")
    p.add_argument("--keep", action="store_true")
    a = p.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    rnd = random.Random(seed)
    work = tempfile.mkdtemp(prefix="voltage-chaos.")
    rig = Rig(a, work)
    try:
        return run(a, rig, rnd, seed)
    finally:
        rig.procs.stop_all()
        if a.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(a, rig, rnd, seed):
    t_start = time.time()
    rig.start_redis()
    rig.start_influx()
    influx_query(rig.ports["influx"], "CREATE DATABASE chaos")
    rig.start_mqtt()
    rig.start_devices()
    rig.start_links()
    configure(f"{rig.work}/config", rig.ports, rig.addrs(), f"{rig.work}/data")
    rig.start_daemon()
    log(f"seed {seed}: {a.minutes:g} min of faults on {a.channels} Modbus TCP channels, a ledger channel into history")

    # The ledger: readings of comsrv:LEDGER:T:1 with unique timestamps, written by the harness.
    taken, untaken = {}, {}
    t0_ms = int(time.time() * 1000) - 3_600_000   # an hour back: unique, increasing, never "now"
    k = 0

    def write_reading():
        nonlocal k
        k += 1
        ts, v = t0_ms + k, float(k)
        before = rig.logged()
        # Value and timestamp in one step, as comsrv writes them: a sampler must never see
        # the new value with the old timestamp.
        try:
            redis_cmd(rig.ports["redis"], "EVAL",
                      "redis.call('HSET', KEYS[1], '1', ARGV[1]); redis.call('HSET', KEYS[2], '1', ARGV[2])",
                      "2", f"comsrv:{LEDGER}:T", f"comsrv:{LEDGER}:T:ts", f"{v:.6f}", str(ts))
        except subprocess.SubprocessError:
            untaken[ts * 1_000_000] = v
            return
        end = time.time() + 2
        while time.time() < end:
            n = rig.logged()
            if before is not None and n is not None and n > before:
                taken[ts * 1_000_000] = v
                return
            time.sleep(0.05)
        untaken[ts * 1_000_000] = v

    faults, failures, outages, worst = [], [], 0, 0.0
    kinds = ["kill", "redis", "influx", "mqtt", "devices", "link"]
    end = time.time() + a.minutes * 60
    next_fault = time.time() + rnd.uniform(5, 15)
    while time.time() < end:
        write_reading()
        if time.time() < next_fault:
            continue
        kind = kinds[len(faults) % len(kinds)] if len(faults) < len(kinds) else rnd.choice(kinds)
        down = rnd.uniform(2, 8)
        t_f = time.time()
        log(f"fault {len(faults) + 1}: {kind} for {down:.1f} s")
        counted = {"devices": rig.direct, "link": rig.proxied}.get(kind)
        if counted:
            r0 = reconnects(rig, counted)
        if kind == "kill":
            rig.stop("daemon", "KILL")
        elif kind == "link":
            rig.block_links(True)
        else:
            rig.stop(kind)
        # Readings keep coming during the outage (the daemon cannot take them while it is down).
        until = time.time() + down
        while time.time() < until:
            write_reading()
        {"kill": rig.start_daemon, "redis": rig.start_redis, "influx": rig.start_influx,
         "mqtt": rig.start_mqtt, "devices": rig.start_devices, "link": lambda: rig.block_links(False)}[kind]()
        ok, why = recovered(rig, a, t_f + down)
        if counted:
            # Connection attempts of this outage (counted in Redis, read before and after it: a Redis
            # restart elsewhere empties the counters, so only this window is compared).
            outages += 1
            per = (reconnects(rig, counted) - r0) / len(counted)
            worst = max(worst, per)
            if per > STORM_BOUND:
                ok = False
                why += f"; reconnect storm: {per:.1f} connection attempts per channel (bound {STORM_BOUND})"
            else:
                why += f"; {per:.1f} connection attempts per channel"
        faults.append((kind, round(down, 1), ok, why))
        if not ok:
            failures.append(f"after {kind}: {why}")
        next_fault = time.time() + rnd.uniform(3, 12)

    # Final invariants: the history.
    wait("hissrv", lambda: rig.logged() is not None, 30)
    q = urllib.parse.urlencode({"db": "chaos", "q": f"SELECT value FROM telemetry WHERE channel_id = '{LEDGER}' AND point_id = '1'",
                                "epoch": "ns"})
    got = {}
    deadline = time.time() + 60
    while time.time() < deadline:
        _, body = http(f"http://127.0.0.1:{rig.ports['influx']}/query?{q}", timeout=30)
        series = json.loads(body)["results"][0].get("series") or [{"values": []}]
        got = {int(t): v for t, v in series[0]["values"]}
        if all(t in got for t in taken):
            break
        time.sleep(1)
    lost = [t for t in taken if t not in got]
    wrong = [t for t in taken if t in got and got[t] != taken[t]]
    invented = [t for t in got if t not in taken and t not in untaken]
    if lost:
        failures.append(f"{len(lost)} logged samples missing from InfluxDB (first ts {min(lost)})")
    if wrong:
        failures.append(f"{len(wrong)} samples with another value in InfluxDB")
    if invented:
        failures.append(f"{len(invented)} samples in InfluxDB that were never written")
    panics = rig.panics()
    if panics:
        failures.append(f"{len(panics)} panic(s): {panics[0]}")
    _, ns = http(f"http://127.0.0.1:{rig.ports['netsrv']}/status")
    mqtt = json.loads(ns).get("mqtt", {})
    if not mqtt.get("connected"):
        failures.append(f"netsrv not connected to the broker at the end: {mqtt}")
    lines = [f"Chaos: {a.minutes:g} min, seed {seed}, {a.channels} Modbus TCP channels, every service on.", "",
             "| # | fault | outage s | recovered | |", "|---:|---|---:|---|---|"]
    for i, (kind, down, ok, why) in enumerate(faults, 1):
        lines.append(f"| {i} | {kind} | {down} | {'yes' if ok else 'NO'} | {why} |")
    lines += ["", f"Ledger readings written {k}: taken by hissrv {len(taken)}, not taken (daemon or Redis down) {len(untaken)}; "
              f"in InfluxDB {len(got)}: lost {len(lost)}, wrong value {len(wrong)}, never written {len(invented)}.",
              f"Connection attempts per channel and device outage at most {worst:.1f} over {outages} outages (bound {STORM_BOUND}); panics {len(panics)}; "
              f"daemon starts {rig.daemon_starts}; {time.time() - t_start:.0f} s in all."]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.report:
        write(os.path.abspath(a.report), text)
    if failures:
        log("FAIL: " + "; ".join(failures))
        return 1
    log("OK: every fault recovered, nothing lost")
    return 0


def recovered(rig, a, since):
    """Every channel connected and polled successfully after `since`, within the bound."""
    bound = BACKOFF_MAX_MS / 1000 + 2 * 1.0 + 10   # backoff max, two polls, start-up slack
    deadline = time.time() + bound
    pending = set(range(1, a.channels + 1))
    while time.time() < deadline and pending:
        for ch in list(pending):
            st = rig.channel(ch, "status")
            if st.get("connected") in ("1", "true") and int(st.get("last_success_at", 0) or 0) > since * 1000:
                pending.discard(ch)
        time.sleep(0.3)
    if pending:
        return False, f"{len(pending)} channel(s) not polling {bound:.0f} s later (e.g. {sorted(pending)[:5]})"
    return True, f"all {a.channels} channels polling {time.time() - since:.1f} s after the fault ended"


if __name__ == "__main__":
    sys.exit(main())
