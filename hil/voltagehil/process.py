"""Helpers for the host processes a bench driver owns (simulator, socat, redis-server, influxd)."""

import os
import random
import socket
import subprocess
import time


def wait_tcp(host, port, timeout=20.0):
    """Waits until host:port accepts a connection; raises TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f} s")
            time.sleep(0.05)


def start(cmd, log_path):
    """Starts cmd with stdout and stderr appended to log_path."""
    log = open(log_path, "ab")  # pylint: disable=consider-using-with
    try:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    finally:
        log.close()


def stop(proc, timeout=5.0):
    """Terminates proc (SIGTERM, then SIGKILL) and reaps it."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_dir():
    """The bench's run directory (logs, ptys, images): $LG_HIL_RUN, else the working directory."""
    return os.environ.get("LG_HIL_RUN", os.getcwd())


def free_port():
    """A TCP port on loopback, free right now, from below the kernel's ephemeral range
    (Linux: 32768-60999): a port the kernel picked and released could be taken by an outgoing
    connection before the server it is meant for binds it."""
    for port in random.sample(range(10000, 32000), 22000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 10000..32000")
