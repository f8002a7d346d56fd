"""Ports for the servers a script starts: one rule for every script and harness in Python, shell
and Node (the Rust suites' `tests/common/ports.rs` follows the same rule).

A port the kernel picked and the script released can be taken before the server it is meant
for binds it: by an outgoing connection (the daemon's to every simulated device, Redis
clients'), which draws from the same ephemeral range. So ports come from below that range
(Linux: 32768-60999), from one counter per process starting at a random offset (no port handed
out twice by one process, different processes spread apart), each checked free when handed out.

Stdlib only: it is imported by `scripts/soak.d` (system Python) and `hil/voltagehil` (labgrid's
venv), and run as a command by shell and Node scripts:

    python3 scripts/lib/freeports.py N     # N distinct ports on one line
"""
import random
import socket
import sys

FIRST, LAST = 10000, 32000
_next = FIRST + random.randrange(LAST - FIRST)


def free_port():
    """A loopback TCP port below the ephemeral range, free right now, not handed out before."""
    global _next
    for _ in range(LAST - FIRST):
        port = _next
        _next = port + 1 if port + 1 < LAST else FIRST
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in {FIRST}..{LAST}")


def free_ports(n):
    """`n` distinct ports (see `free_port`)."""
    return [free_port() for _ in range(n)]


if __name__ == "__main__":
    print(" ".join(map(str, free_ports(int(sys.argv[1]) if len(sys.argv) > 1 else 1))))
