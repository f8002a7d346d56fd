#!/usr/bin/env python3
"""Helper of scripts/bench (comsrv throughput benchmark). Standard library only.

  comsrv.py gen DIR CHANNELS POINTS SIM_OUT HTTP_PORT REDIS_URL
      writes the configuration directory for CHANNELS modbus_tcp channels, one per simulator
      listener named in SIM_OUT (`listening ADDR` lines), POINTS u16 telemetry points each.
  comsrv.py plan CHANNELS          (stdin: `voltage plan DIR`)
      prints "REQUESTS POINTS" per poll summed over all channels and checks every channel.
  comsrv.py measure --redis-port P --db D --channels N --points M --requests R
                    --voltage PID --redis PID --sim PID --warmup W --seconds S
                    --log FILE --out JSON
      waits until every channel has polled, warms up, measures over S seconds, verifies the
      values in Redis, writes the results as JSON.
  comsrv.py row JSON HSET_PER_S    prints the markdown table row.

Register r (0-based) of unit 1 holds r + 1 (scripts/bench presets it), so telemetry point p
(mapped to register p - 1) must read p.
"""

import argparse
import json
import os
import re
import socket
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def die(msg):
    print(f"bench: {msg}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------- configuration

def gen(d, n, m, sim_out, http_port, redis_url):
    addrs = re.findall(r"^listening (\S+)$", open(sim_out).read(), re.M)
    if len(addrs) < n:
        die(f"the simulator announced {len(addrs)} listeners, {n} needed")
    os.makedirs(os.path.join(d, "comsrv"), exist_ok=True)
    with open(os.path.join(d, "voltage.yaml"), "w") as f:
        f.write(f"redis:\n  url: {redis_url}\nservices:\n  comsrv: {{port: {http_port}}}\n")
    telemetry = "point_id,signal_name\n" + "".join(f"{p},p{p}\n" for p in range(1, m + 1))
    mapping = ("point_id,slave_id,function_code,register_address,data_type,byte_order,bit_position\n"
               + "".join(f"{p},1,3,{p - 1},u16,ABCD,\n" for p in range(1, m + 1)))
    lines = ["channels:"]
    for i in range(1, n + 1):
        host, port = addrs[i - 1].rsplit(":", 1)
        lines.append(f"  - {{id: {i}, name: dev{i}, protocol: modbus_tcp, parameters: "
                     f"{{host: {host}, port: {port}, poll_interval_ms: 1000, timeout_ms: 1000}}}}")
        os.makedirs(os.path.join(d, "comsrv", str(i), "mapping"), exist_ok=True)
        with open(os.path.join(d, "comsrv", str(i), "telemetry.csv"), "w") as f:
            f.write(telemetry)
        with open(os.path.join(d, "comsrv", str(i), "mapping", "telemetry_mapping.csv"), "w") as f:
            f.write(mapping)
    with open(os.path.join(d, "comsrv", "comsrv.yaml"), "w") as f:
        f.write("\n".join(lines) + "\n")


def plan(n):
    totals = re.findall(r"^\s*total: (\d+) requests for (\d+) points per poll", sys.stdin.read(), re.M)
    if len(totals) != n:
        die(f"voltage plan printed {len(totals)} channel totals, {n} expected")
    print(sum(int(r) for r, _ in totals), sum(int(p) for _, p in totals))


# ---------------------------------------------------------------- a minimal Redis client

class Redis:
    def __init__(self, port, db, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.f = self.sock.makefile("rb", buffering=1 << 16)
        if db:
            self.run([["SELECT", db]])

    @staticmethod
    def _enc(cmd):
        out = [b"*%d\r\n" % len(cmd)]
        for a in cmd:
            a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def _read(self):
        line = self.f.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError("redis: " + rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            k = int(rest)
            if k < 0:
                return None
            data = self.f.read(k + 2)
            return data[:-2].decode()
        if t == b"*":
            k = int(rest)
            return None if k < 0 else [self._read() for _ in range(k)]
        raise RuntimeError(f"redis: unexpected reply {line!r}")

    def run(self, cmds):
        """Pipelines cmds; returns their replies."""
        self.sock.sendall(b"".join(self._enc(c) for c in cmds))
        return [self._read() for _ in cmds]

    def atomic(self, cmds):
        """Runs cmds in one MULTI/EXEC (a consistent snapshot); returns their replies."""
        return self.run([["MULTI"]] + cmds + [["EXEC"]])[-1]


STATS = ["total_reads", "total_errors", "timeouts", "connection_errors", "reconnect_count",
         "exceptions", "last_poll_ms"]
STATUS = ["last_success_at", "connected", "error_count", "last_error"]


def snapshot(r, n):
    cmds = []
    for i in range(1, n + 1):
        cmds.append(["HMGET", f"comsrv:{i}:stats"] + STATS)
        cmds.append(["HMGET", f"comsrv:{i}:status"] + STATUS)
    rep = r.atomic(cmds)
    out = []
    for i in range(n):
        st = dict(zip(STATS, rep[2 * i]))
        su = dict(zip(STATUS, rep[2 * i + 1]))
        num = lambda v: int(v) if v not in (None, "") else 0
        out.append({**{k: num(st[k]) for k in STATS},
                    "last_success_at": num(su["last_success_at"]),
                    "connected": su["connected"],
                    "error_count": num(su["error_count"]),
                    "last_error": su["last_error"] or ""})
    return out


# ---------------------------------------------------------------- processes

def cpu_ticks(pid):
    s = open(f"/proc/{pid}/stat").read()
    rest = s[s.rindex(")") + 2:].split()
    return int(rest[11]) + int(rest[12])  # utime + stime (fields 14, 15), all threads


def status_kib(pid, field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def threads(pid):
    return status_kib(pid, "Threads")


def fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def alive(pid):
    try:
        s = open(f"/proc/{pid}/stat").read()
        return s[s.rindex(")") + 2] != "Z"
    except OSError:
        return False


def log_problems(path, start_offset=0):
    """WARN/ERROR lines of the daemon's log after start_offset."""
    try:
        with open(path, errors="replace") as f:
            f.seek(start_offset)
            lines = f.readlines()
    except OSError:
        return []
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", l).rstrip() for l in lines]
    return [l for l in lines if re.search(r"\b(WARN|ERROR)\b", l)]


def measure(a):
    procs = {"voltage": a.voltage, "redis": a.redis, "sim": a.sim}

    def check_alive():
        for name, pid in procs.items():
            if not alive(pid):
                die(f"{name} (pid {pid}) exited during the benchmark"
                    + (f"; its log: {a.log}" if name == "voltage" else ""))

    r = Redis(a.redis_port, a.db)
    n, m = a.channels, a.points

    # 1. every channel polled at least once (the daemon is up and connected everywhere)
    deadline = time.monotonic() + a.start_timeout
    t_start = time.monotonic()
    while True:
        check_alive()
        snap = snapshot(r, n)
        polled = sum(1 for c in snap if c["total_reads"] > 0)
        if polled == n:
            break
        if time.monotonic() > deadline:
            bad = [i + 1 for i, c in enumerate(snap) if c["total_reads"] == 0][:10]
            die(f"after {a.start_timeout:.0f} s only {polled}/{n} channels have polled "
                f"(e.g. channels {bad}); daemon log: {a.log}")
        time.sleep(0.2)
    ready_s = time.monotonic() - t_start
    if a.spawned_ns:  # from the daemon's start, not from this script's first look
        ready_s = (time.time_ns() - a.spawned_ns) / 1e9
    print(f"bench:   all {n} channels have polled (waited {ready_s:.1f} s); warm-up {a.warmup} s",
          file=sys.stderr)
    time.sleep(a.warmup)
    check_alive()
    log_offset = os.path.getsize(a.log) if os.path.exists(a.log) else 0

    # 2. the window: counters, then CPU at the start; CPU, then counters at the end, so that
    #    our own snapshots stay out of Redis's CPU figure
    s0 = snapshot(r, n)
    w0 = time.monotonic()
    c0 = {k: cpu_ticks(p) for k, p in procs.items()}
    rss_max = status_kib(a.voltage, "VmRSS")
    rss_samples = [rss_max]
    for k in range(1, a.seconds + 1):
        time.sleep(max(0.0, w0 + k - time.monotonic()))
        check_alive()
        v = status_kib(a.voltage, "VmRSS")
        rss_samples.append(v)
        rss_max = max(rss_max, v)
    c1 = {k: cpu_ticks(p) for k, p in procs.items()}
    w1 = time.monotonic()
    s1 = snapshot(r, n)
    wall = w1 - w0
    hwm = status_kib(a.voltage, "VmHWM")
    nthreads = threads(a.voltage)
    nfds = fds(a.voltage)

    # 3. rates. Channels poll in phase, so a plain counter delta over the wall window is off by
    #    up to one poll per channel; each channel's own span between the completion times of its
    #    last poll before and its last poll inside the window (last_success_at, written in the
    #    same atomic pipeline as total_reads) makes the rate exact.
    pts_per_read = m * n / a.requests if a.requests else m  # from voltage plan
    reads = [b["total_reads"] - x["total_reads"] for x, b in zip(s0, s1)]
    errors = sum(b["total_errors"] - x["total_errors"] for x, b in zip(s0, s1))
    deltas = {k: sum(b[k] - x[k] for x, b in zip(s0, s1))
              for k in ("timeouts", "connection_errors", "reconnect_count", "exceptions")}
    req_rate = 0.0
    spans = []
    for x, b, d in zip(s0, s1, reads):
        span = (b["last_success_at"] - x["last_success_at"]) / 1000.0
        if span > 0:
            req_rate += d / span
            spans.append(span)
    naive_req_rate = sum(reads) / wall
    points_rate = req_rate * pts_per_read
    offered = float(n * m)  # N x M points every poll_interval_ms = 1000
    stalled = [i + 1 for i, d in enumerate(reads) if d == 0]
    cpu = {k: 100.0 * (c1[k] - c0[k]) / HZ / wall for k in procs}
    # Poll phases: channels started together poll together. The spread is the shortest arc of
    # the 1000 ms cycle holding every channel's last completion (small = one burst per second).
    phases = sorted(c["last_success_at"] % 1000 for c in s1 if c["last_success_at"])
    gaps = [b - x for x, b in zip(phases, phases[1:])] + [phases[0] + 1000 - phases[-1]] if phases else [1000]
    phase_spread = 1000 - max(gaps)
    poll_ms = [c["last_poll_ms"] for c in s1]
    problems = log_problems(a.log, log_offset)

    # 4. the values themselves: every point present, right, and fresh
    now_ms = int(time.time() * 1000)
    cmds = []
    for i in range(1, n + 1):
        cmds.append(["HGETALL", f"comsrv:{i}:T"])
        cmds.append(["HGETALL", f"comsrv:{i}:T:ts"])
    rep = r.run(cmds)
    missing = wrong = 0
    max_age = 0
    for i in range(n):
        vals = dict(zip(rep[2 * i][::2], rep[2 * i][1::2]))
        ts = dict(zip(rep[2 * i + 1][::2], rep[2 * i + 1][1::2]))
        for p in range(1, m + 1):
            v = vals.get(str(p))
            if v is None or str(p) not in ts:
                missing += 1
                continue
            if abs(float(v) - p) > 1e-9:
                wrong += 1
            max_age = max(max_age, now_ms - int(ts[str(p)]))

    res = {
        "config": f"{n}x{m}", "channels": n, "points": m, "requests_per_poll": a.requests,
        "window_s": wall, "offered": offered, "achieved": points_rate,
        "requests_per_s": req_rate, "naive_requests_per_s": naive_req_rate,
        "reads_per_channel_min": min(reads), "reads_per_channel_max": max(reads),
        "errors": errors, **deltas, "stalled_channels": stalled[:20], "stalled": len(stalled),
        "voltage_cpu": cpu["voltage"], "redis_cpu": cpu["redis"], "sim_cpu": cpu["sim"],
        "rss_max_mib": rss_max / 1024.0, "rss_first_mib": rss_samples[0] / 1024.0,
        "hwm_mib": hwm / 1024.0, "threads": nthreads, "fds": nfds,
        "poll_ms_max": max(poll_ms), "poll_ms_avg": sum(poll_ms) / len(poll_ms),
        "missing_values": missing, "wrong_values": wrong, "max_value_age_ms": max_age,
        "log_problems": len(problems), "log_problem_examples": problems[:5],
        "ready_s": ready_s, "phase_spread_ms": phase_spread,
    }
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print(f"bench:   window {wall:.2f} s: {sum(reads)} reads, per channel {min(reads)}..{max(reads)}; "
          f"requests/s {req_rate:.1f} (naive window delta {naive_req_rate:.1f}); errors {errors} "
          f"{deltas}; last_poll_ms avg {res['poll_ms_avg']:.1f} max {res['poll_ms_max']}",
          file=sys.stderr)
    print(f"bench:   voltage: RSS {rss_samples[0] / 1024:.1f} -> max {rss_max / 1024:.1f} MiB "
          f"(VmHWM {hwm / 1024:.1f}), {nthreads} threads, {nfds} fds; values: {missing} missing, "
          f"{wrong} wrong, oldest {max_age} ms; {len(problems)} WARN/ERROR log lines in the window",
          file=sys.stderr)
    for p in problems[:5]:
        print(f"bench:     log: {p}", file=sys.stderr)
    if stalled:
        print(f"bench:   WARNING: {len(stalled)} channels did not poll in the window, e.g. "
              f"{stalled[:10]}", file=sys.stderr)


def row(path, hset):
    d = json.load(open(path))
    hset = float(hset)
    flags = []
    if d["missing_values"] or d["wrong_values"]:
        flags.append(f"{d['missing_values']} missing/{d['wrong_values']} wrong values")
    if d["stalled"]:
        flags.append(f"{d['stalled']} stalled channels")
    note = f" ({'; '.join(flags)})" if flags else ""
    print(f"| {d['channels']} x {d['points']}{note} | {d['ready_s']:.1f} | {d['offered']:.0f} | {d['achieved']:.0f} "
          f"| {100 * d['achieved'] / d['offered']:.1f} % | {d['requests_per_s']:.1f} | {d['errors']} "
          f"| {d['voltage_cpu']:.1f} | {d['rss_max_mib']:.1f} | {d['redis_cpu']:.1f} "
          f"| {d['sim_cpu']:.1f} | {hset:.0f} | {d['achieved'] / hset:.4f} |")


def detail(path, stop_ms, sim_requests, reads):
    d = json.load(open(path))
    print(f"{d['channels']} x {d['points']}: {d['requests_per_poll'] // d['channels']} request(s) "
          f"per channel and poll; window {d['window_s']:.1f} s, reads per channel "
          f"{d['reads_per_channel_min']}..{d['reads_per_channel_max']} (naive window-delta rate "
          f"{d['naive_requests_per_s']:.1f} requests/s); timeouts {d['timeouts']}, connection errors "
          f"{d['connection_errors']}, reconnects {d['reconnect_count']}, exceptions {d['exceptions']}; "
          f"poll duration (last_poll_ms) avg {d['poll_ms_avg']:.1f} max {d['poll_ms_max']} ms; "
          f"mean poll period {1000.0 * d['requests_per_poll'] / d['requests_per_s'] if d['requests_per_s'] else 0:.1f} ms "
          f"(configured 1000); all channels' polls complete within {d['phase_spread_ms']} ms of each cycle; "
          f"RSS {d['rss_first_mib']:.1f} -> {d['rss_max_mib']:.1f} MiB, {d['threads']} threads, "
          f"{d['fds']} fds; values {d['missing_values']} missing, {d['wrong_values']} wrong, oldest "
          f"{d['max_value_age_ms']} ms; {d['log_problems']} WARN/ERROR log lines in the window; "
          f"SIGTERM to exit {stop_ms} ms; simulator "
          f"served {sim_requests} requests, daemon counted {reads} reads")


def main():
    if len(sys.argv) < 2:
        die(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "gen":
        d, n, m, sim_out, http_port, url = args
        gen(d, int(n), int(m), sim_out, int(http_port), url)
    elif cmd == "plan":
        plan(int(args[0]))
    elif cmd == "measure":
        p = argparse.ArgumentParser(prog="comsrv.py measure")
        for k in ("redis-port", "db", "channels", "points", "requests", "voltage", "redis", "sim",
                  "warmup", "seconds"):
            p.add_argument("--" + k, type=int, required=True)
        p.add_argument("--start-timeout", type=float, default=60.0)
        p.add_argument("--spawned-ns", type=int, default=0,
                       help="time.time_ns() when the daemon was started (for 'first sample')")
        p.add_argument("--log", required=True)
        p.add_argument("--out", required=True)
        measure(p.parse_args(args))
    elif cmd == "row":
        row(*args)
    elif cmd == "detail":
        detail(*args)
    else:
        die(f"unknown subcommand {cmd}")


if __name__ == "__main__":
    main()
