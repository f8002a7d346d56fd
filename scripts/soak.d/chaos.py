"""Chaos run of the whole daemon (scripts/chaos): faults at random moments, invariants after each.

Faults (one at a time, at a random moment, each undone after a random outage):
  kill     SIGKILL of the daemon, restarted after the outage
  redis    redis-server stopped and started again on the same port, empty (no persistence)
  walfull  influxd stopped until the history log has filled its disk budget and evicted records
           hissrv had not delivered (the ledger writes wide readings meanwhile), then started
  noise    bits flipped and garbage injected on the RS-485 line (a relay between two pty pairs)
  silent   some Modbus TCP units stop answering while their connections stay open
  devices  the Modbus TCP simulator stopped (every slave silent) and started on the same ports
  link     every device link black-holed by the proxy in front of the devices (connections stay
           open, bytes vanish: a pulled cable, not a refused port), then let through again
  influx   influxd stopped and started (hissrv's sink must keep everything in its log)
  mqtt     mosquitto stopped and started (netsrv's sink)

Invariants, checked after every fault once it is undone:
  - no panic in the daemon's log;
  - every Modbus channel (TCP and the RS-485 bus) has polled successfully again within the
    recovery bound (its backoff maximum plus two poll intervals, plus slack);
  - no reconnect storm: connection attempts per channel per device outage stay under a bound derived
    from the backoff (doubling from 500 ms);
  - after line noise, the bus's CRC errors were counted (comsrv:line:rs485-1:stats);
  - alarms: every threshold rule whose condition holds has exactly one unresolved alarm, no
    other rule has one, and no rule ever had two alarms open at the same time;
and at the end:
  - the alarms again;
  - every sample the daemon logged while it ran is in InfluxDB, once, with its own timestamp
    and value, except exactly as many as hissrv reports lost (evicted from the full log before
    delivery, all of them written during a walfull fault), and InfluxDB holds no sample that
    was never taken. The samples come from a ledger channel the harness writes itself (unique
    timestamps), so it knows exactly which readings hissrv took: a reading counts as taken when
    the history log grew after it;
  - netsrv is connected to the broker again.
"""

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import signal
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
import soak  # noqa: E402
from soak import (Procs, alive_and, free_port, http, influx_query, log, port_open,  # noqa: E402
                  redis_cmd, show_log_tail, start_influxd, start_mosquitto, start_pty_pair,
                  start_redis, wait, write)

soak.PROG = "chaos"

LEDGER = 7000
BUS = 9000
BUS_PORT = "rs485-1"
BUS_SLAVES = (11, 12)
BACKOFF_MAX_MS = 5000
# Backoff doubling from 500 ms to BACKOFF_MAX_MS over an outage of at most 8 s plus recovery:
# about 5 connection attempts per channel; a storm (an attempt per poll or faster) is well above 12.
STORM_BOUND = 12
# The history log's budget: the smallest hissrv accepts, so the walfull fault fills it in seconds.
WAL_BUDGET = 1 << 20
# Points of a wide ledger reading (written during the walfull fault: ~5,000 records/s).
WIDE = 400
# Values of a threshold alarm's register: over `high` (101), and back below high - deadband.
HOT, COLD = 103, 100
# How long after a fault's recovery the alarms may take to match the conditions.
ALARM_SETTLE_S = 15
KINDS = ["kill", "redis", "walfull", "noise", "silent", "devices", "link", "influx", "mqtt"]


class RedisError(Exception):
    pass


class Redis:
    """One connection to redis-server for the ledger's writes (a redis-cli per reading is too slow
    to fill the history log's budget in a fault's time); reconnects after a restart."""

    def __init__(self, port):
        self.port, self.sock, self.buf = port, None, b""

    def close(self):
        if self.sock:
            self.sock.close()
        self.sock, self.buf = None, b""

    def call(self, *args):
        try:
            if self.sock is None:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            parts = [str(a).encode() for a in args]
            self.sock.sendall(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
            return self._reply()
        except (OSError, RedisError):
            self.close()
            raise

    def _fill(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill(len(self.buf) + 1)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            self._fill(n + 2)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data.decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise ConnectionError(f"redis: unexpected reply {line[:40]!r}")


def control(port, *lines):
    """Commands to a simulator's control socket (voltage-sim --control); its answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        f = s.makefile("rw")
        out = []
        for line in lines:
            f.write(line + "\n")
            f.flush()
            answer = f.readline().strip()
            if not answer.startswith("ok"):
                raise OSError(f"simulator control: {line!r} answered {answer!r}")
            out.append(answer)
        return out


def reconnects(rig, channels):
    """Connection attempts of `channels`: failed ones (connection_errors) and successful
    reconnects (reconnect_count)."""
    n = 0
    for ch in channels:
        st = rig.channel(ch, "stats")
        n += int(st.get("reconnect_count", 0) or 0) + int(st.get("connection_errors", 0) or 0)
    return n


def configure(cfg, ports, addrs, data_dir, link):
    svc = ", ".join(f"{s}: {{port: {p}}}" for s, p in ports.items() if s not in ("redis", "influx", "mqtt"))
    write(f"{cfg}/voltage.yaml", f"schema_version: 2\ndata_dir: {data_dir}\nredis:\n  url: redis://127.0.0.1:{ports['redis']}\n"
          f"board: {cfg}/board.toml\nservices: {{{svc}}}\n")
    write(f"{cfg}/board.toml", f'schema_version = 1\nboard = "chaos"\ndescription = "chaos host"\n\n'
          f'[ports.{BUS_PORT}]\ndevice = "{link}"\n')
    lines = ["file_watch: false", "channels:", f"  - {{id: {LEDGER}, name: ledger, protocol: virtual}}"]
    # Channel i asks unit i, so one unit can fall silent while the others answer on the same
    # simulator; its register 0 is the value of threshold rule hot{i}.
    for i, addr in enumerate(addrs, start=1):
        host, port = addr.rsplit(":", 1)
        lines.append(f"  - {{id: {i}, name: dev{i}, protocol: modbus_tcp, parameters: {{host: {host}, port: {port}, "
                     f"poll_interval_ms: 1000, timeout_ms: 500, reconnect_initial_ms: 500, reconnect_max_ms: {BACKOFF_MAX_MS}, "
                     f"slave_backoff_max_ms: {BACKOFF_MAX_MS}}}}}")
        write(f"{cfg}/comsrv/{i}/telemetry.csv", "point_id,signal_name\n1,p1\n2,p2\n")
        write(f"{cfg}/comsrv/{i}/mapping/telemetry_mapping.csv",
              f"point_id,slave_id,function_code,register_address,data_type\n1,{i},3,0,u16\n2,{i},3,1,u16\n")
    lines.append(f"  - {{id: {BUS}, name: bus, protocol: modbus_rtu, parameters: {{device: {BUS_PORT}, baud_rate: 115200, "
                 f"poll_interval_ms: 1000, timeout_ms: 300, slave_backoff_max_ms: {BACKOFF_MAX_MS}}}}}")
    rows = [(n * 2 + r + 1, s, r) for n, s in enumerate(BUS_SLAVES) for r in (0, 1)]
    write(f"{cfg}/comsrv/{BUS}/telemetry.csv", "point_id,signal_name\n" + "".join(f"{p},b{p}\n" for p, _, _ in rows))
    write(f"{cfg}/comsrv/{BUS}/mapping/telemetry_mapping.csv", "point_id,slave_id,function_code,register_address,data_type\n"
          + "".join(f"{p},{s},3,{r},u16\n" for p, s, r in rows))
    write(f"{cfg}/comsrv/comsrv.yaml", "\n".join(lines) + "\n")
    write(f"{cfg}/alarmsrv/rules.yaml", "rules:\n" + "".join(
        f"  - {{id: hot{i}, point: \"comsrv:{i}:T:1\", title: \"dev{i} high\", level: Warning, high: 101.0, deadband: 0.5}}\n"
        for i in range(1, len(addrs) + 1)))
    write(f"{cfg}/hissrv/hissrv.yaml",
          f"influxdb: {{url: \"http://127.0.0.1:{ports['influx']}\", api: v1, database: chaos, batch_size: 500, "
          f"flush_interval_ms: 500, timeout_ms: 3000}}\n"
          f"sources:\n  - {{channel: {LEDGER}, types: [T], interval_ms: 20}}\n"
          f"wal: {{dir: wal, max_bytes: {WAL_BUDGET}, fsync: always}}\n")
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
        self.control_port = free_port()
        # Even channels reach their device through the proxy (scripts/soak.d/proxy.py), odd
        # ones directly: a stopped device refuses the odd ones' connections, while the proxy
        # accepts and then closes (counted twice: a reconnect and a connection error), so each
        # fault's connection attempts are counted on the channels it is about.
        self.direct = [ch for ch in range(1, a.channels + 1) if ch % 2 == 1]
        self.proxied = [ch for ch in range(1, a.channels + 1) if ch % 2 == 0]
        self.link_ports = {ch: free_port() for ch in self.proxied}
        self.modbus = list(range(1, a.channels + 1)) + [BUS]
        # Whether each threshold rule's condition holds (the harness sets the registers).
        self.hot = {ch: False for ch in range(1, a.channels + 1)}
        self.devices_up = False
        self.bus_link = f"{work}/{BUS_PORT}"
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
        argv = [f"{self.a.bin}/voltage-sim", "--control", f"127.0.0.1:{self.control_port}"]
        for port in self.dev_ports:
            argv += ["--listen", f"127.0.0.1:{port}"]
        for ch, hot in self.hot.items():
            argv += ["--set", f"{ch}:hr:0={HOT if hot else COLD}", "--set", f"{ch}:hr:1=7"]
        self.p["devices"] = self.procs.start("devices", argv)
        wait("the devices", lambda: all(port_open(p) for p in self.dev_ports + [self.control_port]))
        self.devices_up = True

    def stop_devices(self):
        self.devices_up = False
        self.stop("devices")

    def set_hot(self, ch, hot):
        """Moves rule hot{ch}'s register over its limit or back (a stopped simulator takes the
        value when it starts again)."""
        self.hot[ch] = hot
        if self.devices_up:
            control(self.control_port, f"set {ch}:hr:0={HOT if hot else COLD}")

    def silence(self, units, silent):
        control(self.control_port, *(f"slave {u} {'off' if silent else 'on'}" for u in units))

    def start_links(self):
        argv = [sys.executable, os.path.join(os.path.dirname(__file__), "proxy.py")]
        for ch, lp in self.link_ports.items():
            argv += ["--map", f"{lp}:{self.dev_ports[ch - 1]}"]
        self.p["links"] = self.procs.start("links", argv)
        wait("the links", lambda: all(port_open(p) for p in self.link_ports.values()))

    def start_bus(self, seed):
        """The RS-485 bus: the daemon on one pty pair, the slaves (a second simulator) on another,
        and the noise relay (scripts/soak.d/noise.py) copying between them."""
        line = f"{self.work}/{BUS_PORT}-line"
        start_pty_pair(self.procs, "socat-bus", self.bus_link)
        start_pty_pair(self.procs, "socat-line", line)
        self.p["noise"] = self.procs.start("noise", [sys.executable, os.path.join(os.path.dirname(__file__), "noise.py"),
                                                     f"{self.bus_link}-device", line, "--seed", str(seed)])
        wait("the noise relay", lambda: "relaying" in open(f"{self.work}/noise.log").read())
        sets = [arg for s in BUS_SLAVES for r in (0, 1) for arg in ("--set", f"{s}:hr:{r}={200 + r}")]
        self.p["bus"] = self.procs.start("bus", [f"{self.a.bin}/voltage-sim", "--rtu", f"{line}-device",
                                                 "--baud", "115200", *sets])
        wait("the bus simulator", lambda: "serial " in open(f"{self.work}/bus.log").read())

    def noise(self, on):
        self.p["noise"].send_signal(signal.SIGUSR1 if on else signal.SIGUSR2)

    def addrs(self):
        return [f"127.0.0.1:{self.link_ports.get(ch, self.dev_ports[ch - 1])}" for ch in range(1, self.a.channels + 1)]

    def block_links(self, blocked):
        self.p["links"].send_signal(signal.SIGUSR1 if blocked else signal.SIGUSR2)

    def start_daemon(self):
        self.daemon_starts += 1
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        self.p["daemon"] = self.procs.start(f"voltage-{self.daemon_starts}", [f"{self.a.bin}/voltage", "run", "--config", f"{self.work}/config"], env=env)
        wait("hissrv", alive_and(self.p["daemon"], "the daemon", lambda: port_open(self.ports["hissrv"])), 60)

    def stop(self, name, sig="TERM"):
        p = self.p[name]
        if p.poll() is None:
            p.kill() if sig == "KILL" else p.terminate()
            p.wait(20)

    # --- what the daemon reports ------------------------------------------------------------
    def hissrv_status(self):
        try:
            _, b = http(f"http://127.0.0.1:{self.ports['hissrv']}/status", timeout=2)
            return json.loads(b)["log"]
        except (OSError, ValueError, KeyError):
            return None

    def logged(self):
        s = self.hissrv_status()
        return s["next_seq"] if s else None

    def influx_sink(self):
        """The history log's figures for the InfluxDB sink: evicted (every sink), lost, backlog."""
        s = self.hissrv_status()
        if s is None:
            return None
        sink = next((x for x in s["sinks"] if x["sink"] == "influxdb"), {})
        return {"evicted": s["evicted_records"], "lost": sink.get("lost_records", 0), "backlog": sink.get("records", 0)}

    def channel(self, ch, what):
        out = redis_cmd(self.ports["redis"], "HGETALL", f"comsrv:{ch}:{what}").split("\n")
        return dict(zip(out[::2], out[1::2]))

    def line_stats(self):
        out = redis_cmd(self.ports["redis"], "HGETALL", f"comsrv:line:{BUS_PORT}:stats").split("\n")
        d = dict(zip(out[::2], out[1::2]))
        return {k: int(d.get(k, 0) or 0) for k in ("requests", "crc_errors", "frame_errors", "timeouts")}

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
    p.add_argument("--channels", type=int, default=20, help="Modbus TCP channels (1-200), plus the RS-485 bus")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--bin", required=True)
    p.add_argument("--report")
    p.add_argument("--keep", action="store_true")
    a = p.parse_args()
    if not 1 <= a.channels <= 200:
        p.error("--channels must be 1-200 (channel i asks Modbus unit i)")
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    rnd = random.Random(seed)
    work = tempfile.mkdtemp(prefix="voltage-chaos.")
    rig = Rig(a, work)
    # About half the alarm conditions hold from the start, so every fault meets open alarms.
    rig.hot = {ch: rnd.random() < 0.5 for ch in rig.hot}
    try:
        return run(a, rig, rnd, seed)
    except SystemExit as e:
        if e.code not in (None, 0):
            show_log_tail(work, f"voltage-{rig.daemon_starts}")
        raise
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
    rig.start_bus(seed)
    configure(f"{rig.work}/config", rig.ports, rig.addrs(), f"{rig.work}/data", rig.bus_link)
    rig.start_daemon()
    log(f"seed {seed}: {a.minutes:g} min of faults on {a.channels} Modbus TCP channels, an RS-485 bus of "
        f"{len(BUS_SLAVES)} slaves, a ledger channel into history")
    db = Redis(rig.ports["redis"])

    # The ledger: readings of comsrv:LEDGER:T with unique timestamps, written by the harness;
    # keys (point, ts in ns). A reading is point 1 alone, or points 1..WIDE while `wide`.
    taken, untaken, during_walfull = {}, {}, set()
    t0_ms = int(time.time() * 1000) - 3_600_000   # an hour back: unique, increasing, never "now"
    k = 0
    wide = False

    def write_reading():
        nonlocal k
        k += 1
        ts = t0_ms + k
        values = {(p, ts * 1_000_000): float(k * 1000 + p) for p in range(1, (WIDE if wide else 1) + 1)}
        if wide:
            during_walfull.update(values)
        before = rig.logged()
        # Values and timestamps in one step, as comsrv writes them: a sampler must never see
        # a new value with the old timestamp.
        args = [a for (p, _), v in values.items() for a in (p, f"{v:.6f}")]
        try:
            db.call("EVAL", "for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]); "
                    "redis.call('HSET', KEYS[2], ARGV[i], ARGV[1]) end", 2,
                    f"comsrv:{LEDGER}:T", f"comsrv:{LEDGER}:T:ts", ts, *args)
        except (OSError, RedisError):
            untaken.update(values)
            time.sleep(0.05)
            return
        end = time.time() + 2
        while time.time() < end:
            n = rig.logged()
            if before is not None and n is not None and n > before:
                taken.update(values)
                return
            time.sleep(0.01)
        untaken.update(values)

    # The threshold alarms' conditions: one rule's register flips now and then, during outages too
    # (a condition that clears while the daemon or Redis is down is the interesting case).
    next_flip = time.time() + rnd.uniform(0.5, 3)
    flips = 0

    def maybe_flip():
        nonlocal next_flip, flips
        if time.time() < next_flip:
            return
        ch = rnd.randint(1, a.channels)
        rig.set_hot(ch, not rig.hot[ch])
        flips += 1
        next_flip = time.time() + rnd.uniform(0.5, 3)

    faults, failures, outages, worst = [], [], 0, 0.0
    evicted_total = 0
    end = time.time() + a.minutes * 60
    next_fault = time.time() + rnd.uniform(5, 15)
    while time.time() < end:
        write_reading()
        maybe_flip()
        if time.time() < next_fault:
            continue
        kind = KINDS[len(faults) % len(KINDS)] if len(faults) < len(KINDS) else rnd.choice(KINDS)
        down = rnd.uniform(2, 8)
        if kind == "noise":
            down = max(down, 4)   # a few damaged answers at least, whatever the slaves' backoff
        t_f = time.time()
        log(f"fault {len(faults) + 1}: {kind} for {down:.1f} s")
        units = sorted(rnd.sample(range(1, a.channels + 1), max(1, a.channels // 4))) if kind == "silent" else []
        counted = {"devices": rig.direct, "link": rig.proxied, "silent": units}.get(kind)
        if counted:
            r0 = reconnects(rig, counted)
        line0 = rig.line_stats() if kind == "noise" else None
        sink0 = rig.influx_sink() if kind == "walfull" else None
        extra = ""
        if kind == "kill":
            rig.stop("daemon", "KILL")
        elif kind == "link":
            rig.block_links(True)
        elif kind == "noise":
            rig.noise(True)
        elif kind == "silent":
            rig.silence(units, True)
        elif kind == "devices":
            rig.stop_devices()
        elif kind == "walfull":
            rig.stop("influx")
        else:
            rig.stop(kind)
        # Readings keep coming during the outage (the daemon cannot take them while it is down).
        if kind == "walfull":
            # Wide readings until the full log evicted records hissrv had not delivered, then
            # `down` seconds more (it keeps evicting).
            wide = True
            cap = time.time() + 120
            while time.time() < cap:
                write_reading()
                maybe_flip()
                s = rig.influx_sink()
                if s and s["lost"] > sink0["lost"]:
                    break
            else:
                extra = "; the log never evicted an undelivered record within 120 s"
        until = time.time() + down
        while time.time() < until:
            write_reading()
            maybe_flip()
        wide = False
        t_undo = time.time()
        {"kill": rig.start_daemon, "redis": rig.start_redis, "influx": rig.start_influx, "walfull": rig.start_influx,
         "mqtt": rig.start_mqtt, "devices": rig.start_devices, "link": lambda: rig.block_links(False),
         "noise": lambda: rig.noise(False), "silent": lambda: rig.silence(units, False)}[kind]()
        outage = t_undo - t_f
        ok, why = recovered(rig, t_undo)
        if extra:
            ok, why = False, why + extra
        if counted:
            # Connection attempts of this outage (counted in Redis, read before and after it: a Redis
            # restart elsewhere empties the counters, so only this window is compared).
            outages += 1
            per = (reconnects(rig, counted) - r0) / len(counted)
            worst = max(worst, per)
            who = f" of units {','.join(map(str, units))}" if kind == "silent" else ""
            if per > STORM_BOUND:
                ok = False
                why += f"; reconnect storm{who}: {per:.1f} connection attempts per channel (bound {STORM_BOUND})"
            else:
                why += f"; {per:.1f} connection attempts per channel{who}"
        if line0 is not None:
            time.sleep(1.2)   # the line's counters are published every second
            d = {key: v - line0[key] for key, v in rig.line_stats().items()}
            if d["crc_errors"] <= 0:
                ok = False
                why += f"; no CRC error counted on {BUS_PORT} during the noise ({d})"
            else:
                why += f"; {BUS_PORT}: {d['crc_errors']} CRC errors, {d['frame_errors']} frame errors, {d['timeouts']} timeouts"
        if sink0 is not None:
            s = rig.influx_sink() or sink0
            ev, lost = s["evicted"] - sink0["evicted"], s["lost"] - sink0["lost"]
            evicted_total += ev
            why += f"; log full: {ev} records evicted, {lost} of them undelivered"
        a_ok, a_why = alarms_settled(rig)
        ok = ok and a_ok
        why += f"; {a_why}"
        faults.append((kind, round(outage, 1), ok, why))
        if not ok:
            failures.append(f"after {kind}: {why}")
        next_fault = time.time() + rnd.uniform(3, 12)

    # Final invariants: the alarms, then the history.
    a_ok, a_why = alarms_settled(rig)
    if not a_ok:
        failures.append(f"at the end: {a_why}")
    wait("hissrv", lambda: rig.logged() is not None, 30)
    q = urllib.parse.urlencode({"db": "chaos", "q": f"SELECT value, point_id FROM telemetry WHERE channel_id = '{LEDGER}'",
                                "epoch": "ns"})
    got, sink = {}, None
    deadline = time.time() + 120
    while time.time() < deadline:
        sink = rig.influx_sink()
        _, body = http(f"http://127.0.0.1:{rig.ports['influx']}/query?{q}", timeout=60)
        series = json.loads(body)["results"][0].get("series") or [{"values": []}]
        got = {(int(pid), int(t)): v for t, v, pid in series[0]["values"]}
        # Done once the sink has nothing left to deliver (then what is missing stays missing).
        if sink is not None and sink["backlog"] == 0:
            break
        time.sleep(1)
    lost = [key for key in taken if key not in got]
    wrong = [key for key in taken if key in got and got[key] != taken[key]]
    invented = [key for key in got if key not in taken and key not in untaken]
    reported = sink["lost"] if sink else None
    if sink is None or sink["backlog"] > 0:
        failures.append(f"hissrv still had {sink and sink['backlog']} records to deliver to InfluxDB 120 s after the last fault")
    if len(lost) != reported:
        failures.append(f"{len(lost)} logged samples missing from InfluxDB, but hissrv reports {reported} lost "
                        f"(evicted before delivery){' (first ts ' + str(min(t for _, t in lost)) + ')' if lost else ''}")
    outside = [key for key in lost if key not in during_walfull]
    if outside:
        failures.append(f"{len(outside)} missing samples were written outside a walfull fault (first ts {min(t for _, t in outside)})")
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
    lines = [f"Chaos: {a.minutes:g} min, seed {seed}, {a.channels} Modbus TCP channels and an RS-485 bus of "
             f"{len(BUS_SLAVES)} slaves, every service on.", "",
             "| # | fault | outage s | invariants | |", "|---:|---|---:|---|---|"]
    for i, (kind, down, ok, why) in enumerate(faults, 1):
        lines.append(f"| {i} | {kind} | {down} | {'ok' if ok else 'FAILED'} | {why} |")
    lines += ["", f"Ledger samples written {len(taken) + len(untaken)} ({k} readings): taken by hissrv {len(taken)}, "
              f"not taken (daemon or Redis down) {len(untaken)}; in InfluxDB {len(got)}: missing {len(lost)}, "
              f"reported lost by hissrv (evicted undelivered) {reported}, evicted in all {evicted_total}; "
              f"wrong value {len(wrong)}, never written {len(invented)}.",
              f"Alarms at the end: {a_why}; condition flips {flips}.",
              f"Connection attempts per channel and device outage at most {worst:.1f} over {outages} outages (bound {STORM_BOUND}); panics {len(panics)}; "
              f"daemon starts {rig.daemon_starts}; {time.time() - t_start:.0f} s in all."]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.report:
        write(os.path.abspath(a.report), text)
    if failures:
        log("FAIL: " + "; ".join(failures))
        return 1
    log("OK: every fault recovered, alarms once per live condition, nothing lost but what hissrv reported")
    return 0


def alarm_audit(rig):
    """The threshold alarms against the conditions: rules with more than one unresolved alarm
    (duplicated), live conditions without one (missing), cleared conditions with one (stale),
    and pairs of one rule's alarms that were open at the same time (overlapping)."""
    _, body = http(f"http://127.0.0.1:{rig.ports['alarmsrv']}/alarms?limit=10000", timeout=5)
    by_rule = {}
    for al in json.loads(body):
        rule = (al.get("metadata") or {}).get("rule") or al.get("dedup_key", "")
        by_rule.setdefault(rule, []).append(al)
    found = {"duplicated": [], "missing": [], "stale": [], "overlapping": []}
    for ch, hot in rig.hot.items():
        rule = f"hot{ch}"
        mine = sorted(by_rule.get(rule, []), key=lambda al: (al["created_at"], int(al["id"])))
        unresolved = [al for al in mine if al["status"] != "Resolved"]
        if len(unresolved) > 1:
            found["duplicated"].append(f"{rule} x{len(unresolved)}")
        if hot and not unresolved:
            found["missing"].append(rule)
        if not hot and unresolved:
            found["stale"].append(rule)
        for x, y in zip(mine, mine[1:]):
            if x["status"] != "Resolved" or y["created_at"] < x.get("resolved_at", ""):
                found["overlapping"].append(f"{rule} #{x['id']}/#{y['id']}")
    return found, sum(len(v) for v in by_rule.values())


def alarms_settled(rig):
    """Waits (up to ALARM_SETTLE_S) for the alarms to match the conditions; a duplicate fails at once."""
    deadline = time.time() + ALARM_SETTLE_S
    live = sum(rig.hot.values())
    while True:
        try:
            found, total = alarm_audit(rig)
        except (OSError, ValueError, KeyError) as e:
            found, total = None, f"alarmsrv: {e}"
        if found is not None:
            bad = {k: v for k, v in found.items() if v}
            if not bad:
                return True, f"alarms: {live} live conditions, one unresolved alarm each ({total} alarms in all)"
            counts = ", ".join(f"{len(v)} {k} ({' '.join(v[:4])})" for k, v in bad.items())
            if found["duplicated"] or found["overlapping"] or time.time() > deadline:
                return False, f"ALARMS WRONG: {counts}; {live} live conditions, {total} alarms in all"
        elif time.time() > deadline:
            return False, f"ALARMS UNKNOWN: {total}"
        time.sleep(0.5)


def recovered(rig, since):
    """Every Modbus channel connected and polled successfully after `since`, within the bound."""
    bound = BACKOFF_MAX_MS / 1000 + 2 * 1.0 + 10   # backoff max, two polls, start-up slack
    deadline = time.time() + bound
    pending = set(rig.modbus)
    while time.time() < deadline and pending:
        for ch in list(pending):
            st = rig.channel(ch, "status")
            if st.get("connected") in ("1", "true") and int(st.get("last_success_at", 0) or 0) > since * 1000:
                pending.discard(ch)
        time.sleep(0.3)
    if pending:
        return False, f"{len(pending)} channel(s) not polling {bound:.0f} s later (e.g. {sorted(pending)[:5]})"
    return True, f"all {len(rig.modbus)} Modbus channels polling {time.time() - since:.1f} s after the fault ended"


if __name__ == "__main__":
    sys.exit(main())
