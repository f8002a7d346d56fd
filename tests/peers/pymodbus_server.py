#!/usr/bin/env python3
"""A Modbus TCP slave from pymodbus (a peer the firmware did not write), for conformance tests.

Usage: pymodbus_server.py SPEC_JSON
With "serial": {"port": "/dev/pts/N", "baudrate": 9600} it is an RTU slave on that serial
device instead, and prints "SERIAL READY".
SPEC_JSON: {"units": {"1": {"hr": {"0": [1, 2]}, "ir": {...}, "co": {"0": [1, 0]}, "di": {...}}},
            "sparse": false}
Keys of each table are start addresses (wire addresses, 0-based); values are lists of registers
(or 0/1 bits). With "sparse": true only the listed addresses exist and anything else answers
exception 02 (illegal data address). "port": N listens there (the Rust harness passes a port
below the ephemeral range); without it, a kernel-chosen one. Prints "PORT <n>" once the server
accepts connections.
"""
import asyncio
import json
import socket
import sys

import pymodbus
from pymodbus.datastore import ModbusSequentialDataBlock, ModbusServerContext, ModbusSparseDataBlock
from pymodbus.server import StartAsyncSerialServer, StartAsyncTcpServer

from pymodbus.datastore import ModbusSlaveContext

# The suite pins this version (scripts/test): the 3.x datastore API changed in 3.10.
PINNED = "3.8.6"


def block(table, sparse):
    values = {}
    for start, vals in table.items():
        for i, v in enumerate(vals):
            values[int(start) + i] = int(v)
    # ModbusSlaveContext adds 1 to the wire address ("register 1" is wire address 0).
    if sparse:
        return ModbusSparseDataBlock({a + 1: v for a, v in values.items()} or {1: 0})
    data = [0] * (max(values.keys(), default=0) + 2)
    for a, v in values.items():
        data[a + 1] = v
    return ModbusSequentialDataBlock(0, data)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def announce(port):
    for _ in range(200):
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            print(f"PORT {port}", flush=True)
            return
        except OSError:
            await asyncio.sleep(0.05)
    print("server did not start", file=sys.stderr, flush=True)
    sys.exit(1)


async def main():
    spec = json.loads(sys.argv[1])
    sparse = bool(spec.get("sparse", False))
    devices = {}
    for unit, tables in spec["units"].items():
        kw = {t: block(tables.get(t, {}), sparse) for t in ("di", "co", "hr", "ir")}
        devices[int(unit)] = ModbusSlaveContext(**kw)
    context = ModbusServerContext(slaves=devices, single=False)
    serial = spec.get("serial")
    if serial:
        from pymodbus import FramerType

        async def ready():
            await asyncio.sleep(0.5)
            print("SERIAL READY", flush=True)

        asyncio.get_running_loop().create_task(ready())
        await StartAsyncSerialServer(context=context, framer=FramerType.RTU, port=serial["port"],
                                     baudrate=int(serial.get("baudrate", 9600)), bytesize=8, parity="N", stopbits=1)
        return
    port = int(spec.get("port") or free_port())
    asyncio.get_running_loop().create_task(announce(port))
    await StartAsyncTcpServer(context=context, address=("127.0.0.1", port))


if __name__ == "__main__":
    if pymodbus.__version__ != PINNED:
        sys.exit(f"pymodbus {PINNED} required, found {pymodbus.__version__} (pip install pymodbus=={PINNED})")
    asyncio.run(main())
