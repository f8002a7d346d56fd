"""Soak run of the whole daemon (scripts/soak): every service on, against real neighbours, while
its resources are sampled; fails when one of them keeps growing.

Why a slope and not a limit: a daemon that leaks 100 KiB an hour passes any limit a short test
can set, and fails after weeks in the field. So each resource is sampled every --every seconds,
a least-squares line is fitted through the samples after the warm-up, and the run fails when a
slope is above its bound (allocators and caches settle in the warm-up; the fit ignores it).

Neighbours: a private redis-server, influxd (hissrv's InfluxDB v1 sink), mosquitto (netsrv's
MQTT sink), one voltage-sim process serving --channels Modbus TCP devices (registers random
walking, so values change, alarms raise and clear, history has samples), and a second
voltage-sim on a pty pair (socat) as an RS-485 bus with --rtu-slaves slaves. A threshold alarm
per animated point, a periodic rule writing an adjustment, history of every telemetry point.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


PROG = "soak"


def log(msg):
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


# Ports for the servers the run starts: the shared rule (below the ephemeral range, checked free).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from freeports import free_port  # noqa: E402,F401  (chaos.py imports it from here)


def wait(what, fn, seconds=60):
    end = time.time() + seconds
    while time.time() < end:
        try:
            if fn():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{PROG}: FAIL: {what} not ready within {seconds} s")


def show_log_tail(work, name, lines=40):
    """The end of a process's log, printed when a run fails (the work dir is removed after)."""
    path = os.path.join(work, f"{name}.log")
    if os.path.exists(path):
        with open(path, errors="replace") as f:
            tail = f.read().splitlines()[-lines:]
        log(f"last {len(tail)} lines of {name}.log:")
        for line in tail:
            print(f"  | {line}", file=sys.stderr, flush=True)


def alive_and(proc, what, fn):
    """`fn` for `wait`, failing at once (with the exit status) when `proc` has exited."""
    def check():
        rc = proc.poll()
        if rc is not None:
            raise SystemExit(f"{PROG}: FAIL: {what} exited with status {rc} before it was ready")
        return fn()
    return check


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def http(url, data=None, timeout=5, ctype="application/json"):
    req = urllib.request.Request(url, data=data.encode() if data else None,
                                 headers={"Content-Type": ctype})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read().decode()


class Procs:
    """Processes this run started, stopped in reverse order at the end."""

    def __init__(self, work):
        self.work = work
        self.items = []

    def start(self, name, argv, **kw):
        out = open(os.path.join(self.work, f"{name}.log"), "w")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kw)
        self.items.append((name, p))
        return p

    def stop_all(self):
        for name, p in reversed(self.items):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def slope_per_min(samples):
    """Least-squares slope of (t seconds, v) pairs, per minute."""
    n = len(samples)
    if n < 3:
        return 0.0
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    den = sum((t - mt) ** 2 for t, _ in samples)
    if den == 0:
        return 0.0
    return sum((t - mt) * (v - mv) for t, v in samples) / den * 60.0


def proc_status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def redis_cmd(port, *args):
    out = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=10)
    return out.stdout


def dir_bytes(path):
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(d, f))
            except OSError:
                pass
    return total


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def start_redis(procs, work, port):
    """A private redis-server without persistence, answering PING."""
    p = procs.start("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", work])
    wait("redis", lambda: redis_cmd(port, "PING").strip() == "PONG")
    return p


def start_influxd(procs, work, port, rpc_port):
    """A private influxd 1.x on `port` (its RPC on `rpc_port`), answering /ping."""
    write(f"{work}/influx/influxdb.conf",
          f"reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc_port}\"\n[meta]\n  dir = \"{work}/influx/meta\"\n"
          f"[data]\n  dir = \"{work}/influx/data\"\n  wal-dir = \"{work}/influx/wal\"\n  query-log-enabled = false\n"
          f"[monitor]\n  store-enabled = false\n[http]\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n"
          f"  max-row-limit = 0\n")
    p = procs.start("influxd", ["influxd", "-config", f"{work}/influx/influxdb.conf"])
    wait("influxd", lambda: port_open(port))
    wait("influxd answering", lambda: http(f"http://127.0.0.1:{port}/ping")[0] == 204)
    return p


def start_pty_pair(procs, name, link):
    """A socat pty pair, as a serial cable: `link` and `link-device` name its two ends."""
    p = procs.start(name, ["socat", f"pty,raw,echo=0,link={link}", f"pty,raw,echo=0,link={link}-device"])
    wait(f"the pty pair {link}", lambda: os.path.exists(link) and os.path.exists(f"{link}-device"))
    return p


def start_mosquitto(procs, work, port):
    """A private mosquitto without persistence, anonymous, on `port`."""
    write(f"{work}/mosquitto.conf", f"allow_anonymous true\npersistence false\nlog_dest none\nlistener {port} 127.0.0.1\n")
    p = procs.start("mosquitto", [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", f"{work}/mosquitto.conf"])
    wait("mosquitto", lambda: port_open(port))
    return p


def configure(cfg, a, addrs, rtu_link, ports):
    """The daemon's configuration directory: every service on, ports from `ports`."""
    animated = min(a.points, 10)
    svc = ", ".join(f"{s}: {{port: {p}}}" for s, p in ports.items() if s not in ("redis", "influx", "mqtt"))
    write(f"{cfg}/voltage.yaml",
          f"schema_version: 2\ndata_dir: {cfg}/../data\nredis:\n  url: redis://127.0.0.1:{ports['redis']}\n"
          f"board: {cfg}/board.toml\nservices: {{{svc}}}\n")
    write(f"{cfg}/board.toml",
          f'schema_version = 1\nboard = "soak"\ndescription = "soak host"\n\n[ports.rs485-1]\ndevice = "{rtu_link}"\n')
    telemetry = "point_id,signal_name,unit\n" + "".join(f"{p},p{p},kW\n" for p in range(1, a.points + 1))
    mapping = ("point_id,slave_id,function_code,register_address,data_type\n"
               + "".join(f"{p},1,3,{p - 1},u16\n" for p in range(1, a.points + 1)))
    lines = ["file_watch: false", "channels:"]
    for i in range(1, a.channels + 1):
        host, port = addrs[i - 1].rsplit(":", 1)
        lines.append(f"  - {{id: {i}, name: dev{i}, protocol: modbus_tcp, parameters: "
                     f"{{host: {host}, port: {port}, poll_interval_ms: 1000, timeout_ms: 1000}}}}")
        write(f"{cfg}/comsrv/{i}/telemetry.csv", telemetry)
        write(f"{cfg}/comsrv/{i}/mapping/telemetry_mapping.csv", mapping)
    # The RS-485 bus: --rtu-slaves slaves (ids 11..), two registers each, plus one adjustment.
    rtu = 9000
    lines.append(f"  - {{id: {rtu}, name: bus, protocol: modbus_rtu, parameters: "
                 f"{{device: rs485-1, baud_rate: 115200, poll_interval_ms: 1000, timeout_ms: 300}}}}")
    rows = [(s * 2 - 1 + k, 10 + s, k) for s in range(1, a.rtu_slaves + 1) for k in (0, 1)]
    write(f"{cfg}/comsrv/{rtu}/telemetry.csv",
          "point_id,signal_name,unit\n" + "".join(f"{p},r{p},V\n" for p, _, _ in rows))
    write(f"{cfg}/comsrv/{rtu}/mapping/telemetry_mapping.csv",
          "point_id,slave_id,function_code,register_address,data_type\n"
          + "".join(f"{p},{s},3,{r},u16\n" for p, s, r in rows))
    write(f"{cfg}/comsrv/{rtu}/adjustment.csv", "point_id,signal_name,unit,min_value,max_value\n1,setpoint,V,0,1000\n")
    write(f"{cfg}/comsrv/{rtu}/mapping/adjustment_mapping.csv",
          "point_id,slave_id,function_code,register_address,data_type\n1,11,6,20,u16\n")
    write(f"{cfg}/comsrv/comsrv.yaml", "\n".join(lines) + "\n")
    # Alarms: one threshold per animated register of the first channels; the random walk
    # around 100 crosses 101 often, so alarms raise and clear all the time.
    rules = ["rules:"]
    for ch in range(1, min(a.channels, 20) + 1):
        for p in range(1, animated + 1):
            rules.append(f"  - {{id: t{ch}_{p}, point: \"comsrv:{ch}:T:{p}\", title: \"dev{ch} p{p} high\", "
                         f"level: Warning, high: 101.0, deadband: 0.5, on_delay_ms: 0, off_delay_ms: 0}}")
    write(f"{cfg}/alarmsrv/rules.yaml", "\n".join(rules) + "\n")
    src = "".join(f"  - {{channel: {ch}, types: [T], interval_ms: 1000}}\n" for ch in range(1, a.channels + 1))
    src += f"  - {{channel: {rtu}, types: [T], interval_ms: 1000}}\n"
    write(f"{cfg}/hissrv/hissrv.yaml",
          f"influxdb: {{url: \"http://127.0.0.1:{ports['influx']}\", api: v1, database: soak, "
          f"batch_size: 5000, flush_interval_ms: 1000, timeout_ms: 5000}}\n"
          f"sources:\n{src}wal: {{dir: wal, max_bytes: {a.wal_mib * 1048576}, fsync: interval}}\n")
    write(f"{cfg}/netsrv/netsrv.yaml",
          f"device_id: soak\nmqtt: {{host: 127.0.0.1, port: {ports['mqtt']}, batch_size: 500, keep_alive_s: 30}}\n")
    return rtu, animated


def main():
    # SIGTERM (a CI timeout, `timeout`) unwinds like Ctrl-C, so the finally below stops every child.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    p = argparse.ArgumentParser(prog="soak")
    p.add_argument("--minutes", type=float, default=5)
    p.add_argument("--channels", type=int, default=1000)
    p.add_argument("--points", type=int, default=100)
    p.add_argument("--rtu-slaves", type=int, default=4)
    p.add_argument("--every", type=float, default=10, help="seconds between samples")
    p.add_argument("--warmup", type=float, default=None, help="seconds left out of the fit (default: a third of the run, at most 10 min)")
    p.add_argument("--wal-mib", type=int, default=64)
    p.add_argument("--bin", required=True, help="directory with voltage and voltage-sim")
    p.add_argument("--report", help="also write the markdown report to this file")
    p.add_argument("--keep", action="store_true")
    # Bounds on the fitted slopes (per minute, after the warm-up).
    p.add_argument("--max-rss-kib-min", type=float, default=64.0)
    p.add_argument("--max-fds-min", type=float, default=0.5)
    p.add_argument("--max-threads-min", type=float, default=0.2)
    p.add_argument("--max-redis-kib-min", type=float, default=64.0)
    a = p.parse_args()
    warmup = a.warmup if a.warmup is not None else min(a.minutes * 60 / 3, 600)

    work = tempfile.mkdtemp(prefix="voltage-soak.")
    procs = Procs(work)
    t_run = time.time()
    try:
        return run(a, work, procs, warmup, t_run)
    except SystemExit as e:
        if e.code not in (None, 0):
            show_log_tail(work, "voltage")
        raise
    finally:
        procs.stop_all()
        if a.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(a, work, procs, warmup, t_run):
    ports = {s: free_port() for s in ("redis", "influx", "mqtt", "comsrv", "modsrv", "alarmsrv",
                                       "rulesrv", "hissrv", "gateway", "netsrv")}
    influx_rpc = free_port()
    start_redis(procs, work, ports["redis"])
    start_influxd(procs, work, ports["influx"], influx_rpc)
    start_mosquitto(procs, work, ports["mqtt"])
    # The TCP devices: one simulator, --channels listeners sharing one register bank.
    animated = min(a.points, 10)
    sets = [arg for r in range(animated) for arg in ("--set", f"1:hr:{r}=100")]
    sim = procs.start("sim-tcp", [f"{a.bin}/voltage-sim", "--ports", "127.0.0.1:0", "--count", str(a.channels),
                                  *sets, "--animate"])
    sim_log = f"{work}/sim-tcp.log"
    wait("voltage-sim's listeners", lambda: len(re.findall(r"^listening ", open(sim_log).read(), re.M)) >= a.channels)
    addrs = re.findall(r"^listening (\S+)$", open(sim_log).read(), re.M)
    # The RS-485 bus: a pty pair, the daemon on one end, a simulator with the slaves on the other.
    link = f"{work}/rs485-1"
    start_pty_pair(procs, "socat", link)
    rtu_sets = [arg for s in range(1, a.rtu_slaves + 1) for r in (0, 1) for arg in ("--set", f"{10 + s}:hr:{r}={200 + r}")]
    procs.start("sim-rtu", [f"{a.bin}/voltage-sim", "--listen", "127.0.0.1:0", "--rtu", f"{link}-device",
                            "--baud", "115200", *rtu_sets, "--animate"])
    influx_query(ports["influx"], "CREATE DATABASE soak")

    cfg = f"{work}/config"
    rtu, _ = configure(cfg, a, addrs, link, ports)
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
    daemon = procs.start("voltage", [f"{a.bin}/voltage", "run", "--config", cfg], env=env)
    t0 = time.time()
    wait("the gateway", alive_and(daemon, "the daemon", lambda: port_open(ports["gateway"])), 120)
    rule = json.dumps({"id": "soak_setpoint", "name": "setpoint follows rack 1",
                       "condition": {"expression": f"comsrv:{rtu}:T:1 > 0"},
                       "actions": [{"action_type": "write_point",
                                    "parameters": {"channel_id": rtu, "point_type": "A", "point_id": 1, "value": 230}}],
                       "enabled": True, "interval_ms": 5000})
    wait("rulesrv", lambda: port_open(ports["rulesrv"]))
    code, body = http(f"http://127.0.0.1:{ports['rulesrv']}/rules", rule)
    if code != 201:
        raise SystemExit(f"soak: FAIL: POST /rules answered {code}: {body}")
    log(f"running {a.minutes} min: {a.channels} TCP channels x {a.points} points, RS-485 bus with "
        f"{a.rtu_slaves} slaves, every service on; a sample every {a.every:g} s, fit after {warmup:.0f} s")

    wal_dir = f"{work}/data/wal"
    redis_pid = procs.items[0][1].pid
    rows = []
    end = t0 + a.minutes * 60
    while time.time() < end:
        if daemon.poll() is not None:
            raise SystemExit(f"soak: FAIL: the daemon exited with {daemon.returncode} (log: {work}/voltage.log)")
        t = time.time() - t0
        mem = redis_cmd(ports["redis"], "INFO", "memory")
        used = int(re.search(r"used_memory:(\d+)", mem).group(1))
        rows.append({
            "t": t,
            "rss_kib": proc_status(daemon.pid, "VmRSS"),
            "fds": len(os.listdir(f"/proc/{daemon.pid}/fd")),
            "threads": proc_status(daemon.pid, "Threads"),
            "redis_kib": used / 1024,
            "wal_kib": dir_bytes(wal_dir) / 1024,
            "cpu_s": cpu_seconds(daemon.pid),
            "redis_cpu_s": cpu_seconds(redis_pid),
        })
        r = rows[-1]
        log(f"t={t:6.0f}s rss={r['rss_kib'] / 1024:7.1f} MiB fds={r['fds']:5d} threads={r['threads']:3d} "
            f"redis={r['redis_kib'] / 1024:7.1f} MiB wal={r['wal_kib'] / 1024:7.1f} MiB")
        time.sleep(max(0.0, min(a.every, end - time.time())))

    return report(a, work, rows, warmup, ports, rtu, t_run)


def influx_query(port, q):
    """A statement that changes InfluxDB (POST, form-encoded, as its /query wants)."""
    return http(f"http://127.0.0.1:{port}/query", urllib.parse.urlencode({"q": q}),
                ctype="application/x-www-form-urlencoded")


def influx_count(port):
    q = urllib.parse.urlencode({"db": "soak", "q": "SELECT count(value) FROM telemetry"})
    _, body = http(f"http://127.0.0.1:{port}/query?{q}", timeout=30)
    series = json.loads(body)["results"][0].get("series") or [{"values": [[0, 0]]}]
    return int(series[0]["values"][0][1])


def report(a, work, rows, warmup, ports, rtu, t_run):
    fit = [r for r in rows if r["t"] >= warmup]
    checks = [("daemon RSS", "rss_kib", "KiB/min", a.max_rss_kib_min),
              ("open file descriptors", "fds", "/min", a.max_fds_min),
              ("threads", "threads", "/min", a.max_threads_min),
              ("Redis used memory", "redis_kib", "KiB/min", a.max_redis_kib_min),
              ("history log on disk", "wal_kib", "KiB/min", None)]
    lines = [f"Soak: {a.minutes:g} min, {a.channels} Modbus TCP channels x {a.points} points at 1 s, "
             f"RS-485 bus of {a.rtu_slaves} slaves on a pty pair, alarms, a rule, hissrv -> influxd, netsrv -> mosquitto.",
             f"Samples every {a.every:g} s: {len(rows)}; fitted after the {warmup:.0f} s warm-up: {len(fit)}.", "",
             "| resource | first | last | min | max | slope after warm-up | bound | |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    failed = []
    if len(fit) < 3:
        failed.append(f"only {len(fit)} samples after the warm-up: run longer or sample more often")
    for name, key, unit, bound in checks:
        vals = [r[key] for r in rows]
        s = slope_per_min([(r["t"], r[key]) for r in fit])
        ok = True
        if key == "wal_kib":
            ok = max(vals) <= a.wal_mib * 1024 * 1.05
            bound_s = f"<= {a.wal_mib} MiB budget"
        else:
            ok = s <= bound
            bound_s = f"{bound:g} {unit}"
        if not ok:
            failed.append(name)
        lines.append(f"| {name} | {vals[0]:.0f} | {vals[-1]:.0f} | {min(vals):.0f} | {max(vals):.0f} | "
                     f"{s:+.2f} {unit} | {bound_s} | {'ok' if ok else 'GROWS'} |")
    dur = rows[-1]["t"] - rows[0]["t"] if len(rows) > 1 else 1
    cpu = (rows[-1]["cpu_s"] - rows[0]["cpu_s"]) / dur * 100 if len(rows) > 1 else 0
    rcpu = (rows[-1]["redis_cpu_s"] - rows[0]["redis_cpu_s"]) / dur * 100 if len(rows) > 1 else 0
    # What flowed: requests and errors of every channel, samples in InfluxDB, alarms.
    reqs = errs = 0
    for ch in list(range(1, a.channels + 1)) + [rtu]:
        st = redis_cmd(ports["redis"], "HGETALL", f"comsrv:{ch}:stats").split()
        d = dict(zip(st[::2], st[1::2]))
        reqs += int(d.get("total_reads", 0) or 0)
        errs += int(d.get("total_errors", 0) or 0)
    try:
        samples = influx_count(ports["influx"])
    except (OSError, ValueError, KeyError) as e:
        samples = f"unknown ({e})"
    _, hs = http(f"http://127.0.0.1:{ports['hissrv']}/status")
    lines += ["", f"Daemon CPU {cpu:.1f} % of one core, redis-server {rcpu:.1f} %; Modbus requests {reqs}, "
              f"errors {errs}; samples in InfluxDB {samples}; hissrv status: {hs.strip()[:400]}"]
    panics = [l for l in open(f"{work}/voltage.log", errors="replace") if "panicked" in l]
    if panics:
        failed.append(f"{len(panics)} panic(s) in the daemon's log: {panics[0].strip()}")
    if errs > reqs * 0.001 + 10:
        failed.append(f"{errs} Modbus errors of {reqs} requests")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.report:
        write(os.path.abspath(a.report), text)
    log(f"{time.time() - t_run:.0f} s in all")
    if failed:
        log("FAIL: " + "; ".join(failed))
        return 1
    log("OK: nothing grows without bound")
    return 0


if __name__ == "__main__":
    sys.exit(main())
