"""The simulated field devices: voltage-sim with its runtime fault control, and the pty pair
that stands in for an RS-485 line on the virtual bench.

On the virtual bench the driver starts voltage-sim itself; on a hardware bench the simulator
runs on the bench PC behind a USB RS-485 adapter (started by the bench PC's service manager or
by this driver with a local ``binary``) and the driver only needs its control address.
"""

import os
import socket
import time

import attr
from labgrid.driver.common import Driver
from labgrid.factory import target_factory

from . import process


@target_factory.reg_driver
@attr.s(eq=False)
class PtyPairDriver(Driver):
    """A socat pty pair: ``dut`` is the end the DUT's UART uses, ``bench`` the simulator's."""

    dut = attr.ib(validator=attr.validators.instance_of(str))
    bench = attr.ib(validator=attr.validators.instance_of(str))

    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        self._proc = None

    def on_activate(self):
        for p in (self.dut, self.bench):
            if os.path.lexists(p):
                os.unlink(p)
        self._proc = process.start(
            ["socat", f"pty,raw,echo=0,link={self.bench}", f"pty,raw,echo=0,link={self.dut}"],
            os.path.join(process.run_dir(), "socat.log"),
        )
        for _ in range(100):
            if os.path.exists(self.dut) and os.path.exists(self.bench):
                return
            if self._proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"socat did not create the pty pair {self.dut} / {self.bench}")

    def on_deactivate(self):
        process.stop(self._proc)
        self._proc = None


class SimulatorError(Exception):
    """The simulator refused a control command."""


@target_factory.reg_driver
@attr.s(eq=False)
class VoltageSimDriver(Driver):
    """voltage-sim: Modbus TCP/RTU slaves whose units can be switched off and on at runtime.

    Args:
        control (str): HOST:PORT of the simulator's ``--control`` socket
        binary (str): optional; start this voltage-sim with ``args`` (plus ``--control``)
        args (list): the simulator's arguments (listen address, --rtu device, presets)
    """

    bindings = {"line": {"PtyPairDriver", None}}

    control = attr.ib(validator=attr.validators.instance_of(str))
    binary = attr.ib(default=None, validator=attr.validators.optional(attr.validators.instance_of(str)))
    args = attr.ib(default=attr.Factory(list), validator=attr.validators.instance_of(list))

    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        self._proc = None
        host, _, port = self.control.rpartition(":")
        self._addr = (host, int(port))

    def on_activate(self):
        if self.binary:
            self._proc = process.start(
                [self.binary, *[str(a) for a in self.args], "--control", self.control],
                os.path.join(process.run_dir(), "sim.log"),
            )
        process.wait_tcp(*self._addr)
        self._send("clear")

    def on_deactivate(self):
        process.stop(self._proc)
        self._proc = None

    @Driver.check_active
    def command(self, line):
        """Sends one control line and returns the answer after ``ok`` (``''`` for plain ok)."""
        return self._send(line)

    def _send(self, line):
        with socket.create_connection(self._addr, timeout=5) as s:
            s.sendall(line.encode() + b"\n")
            answer = s.makefile("r").readline().strip()
        if answer == "ok":
            return ""
        if answer.startswith("ok "):
            return answer[3:]
        raise SimulatorError(f"simulator refused {line!r}: {answer or 'connection closed'}")

    def slave(self, unit, on):
        """Powers simulated slave ``unit`` on or off (off: it never answers)."""
        self.command(f"slave {unit} {'on' if on else 'off'}")

    def set(self, unit, table, addr, value):
        """Sets one register or bit (table: hr, ir, co, di); negative values as i16."""
        self.command(f"set {unit}:{table}:{addr}={value}")

    def get(self, unit, table, addr):
        """Reads one register or bit as the simulator holds it."""
        return int(self.command(f"get {unit}:{table}:{addr}"))
