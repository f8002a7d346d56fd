"""A serial line with switchable noise, for scripts/chaos: it copies bytes both ways between two
pty ends (the master's side of one socat pair and the slaves' side of another) and, while the
noise is on, damages what passes, as interference on an RS-485 pair does.

  python3 noise.py MASTER_SIDE SLAVE_SIDE [--seed S]

SIGUSR1 turns the noise on, SIGUSR2 off. While it is on, every chunk of bytes (a frame, or the
part of it the pty delivered at once) gets one bit flipped in a random byte, and now and then a
burst of garbage bytes follows it. Answers are damaged more often than requests, so the master
sees bad CRCs rather than only silence (a slave drops a request with a bad CRC unanswered).
On SIGTERM it prints what it damaged and exits.
"""

import argparse
import os
import random
import select
import signal
import sys
import tty

noisy = False
running = True


def main():
    p = argparse.ArgumentParser(prog="noise")
    p.add_argument("master_side")
    p.add_argument("slave_side")
    p.add_argument("--seed", type=int, default=None)
    a = p.parse_args()
    rnd = random.Random(a.seed)

    def on(*_):
        global noisy
        noisy = True

    def off(*_):
        global noisy
        noisy = False

    def stop(*_):
        global running
        running = False

    signal.signal(signal.SIGUSR1, on)
    signal.signal(signal.SIGUSR2, off)
    signal.signal(signal.SIGTERM, stop)
    fds = {}
    for name in (a.master_side, a.slave_side):
        fd = os.open(name, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd)
        fds[name] = fd
    m, s = fds[a.master_side], fds[a.slave_side]
    # Where bytes from each end go, and how often a chunk in that direction is damaged.
    route = {m: (s, 0.3), s: (m, 0.9)}
    damaged = {m: 0, s: 0}
    print("relaying", flush=True)
    while running:
        try:
            ready, _, _ = select.select([m, s], [], [], 0.5)
        except InterruptedError:
            continue
        for fd in ready:
            try:
                data = bytearray(os.read(fd, 4096))
            except OSError:
                continue
            to, p_damage = route[fd]
            if noisy and data and rnd.random() < p_damage:
                data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
                if rnd.random() < 0.2:
                    data += bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 8)))
                damaged[fd] += 1
            try:
                os.write(to, data)
            except OSError:
                pass
    print(f"damaged requests {damaged[m]}, answers {damaged[s]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
