"""Helpers for the host processes a bench driver owns (simulator, socat, redis-server, influxd)."""

import os
import socket
import subprocess
import sys
import time

# Ports for the host servers a bench starts: the repository's shared rule (below the ephemeral
# range, checked free), stdlib only so it loads in labgrid's venv.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "lib"))
from freeports import free_port  # noqa: E402,F401  pylint: disable=wrong-import-position


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
