"""labgrid drivers and the strategy of the VoltageEMS HIL benches.

labgrid brings the environment files, the pytest plugin (``--lg-env``), the QEMU, serial, SSH
and power drivers. What a firmware bench needs beyond that is here, as ordinary labgrid
drivers: the Modbus device simulator with runtime fault control, a TCP "cable" that can be
pulled, the Redis and InfluxDB the DUT talks to, and a strategy that powers the DUT up until it
delivers data. A bench file imports this package (``imports:``) and wires the drivers; the
scenarios only ever talk to the strategy.
"""

from .bench import BenchInflux, BenchRedis, DutRedisDriver, HostInfluxDriver, HostRedisDriver
from .cable import TcpCableDriver
from .simulator import PtyPairDriver, VoltageSimDriver
from .strategy import VoltageStrategy

__all__ = [
    "BenchInflux",
    "BenchRedis",
    "DutRedisDriver",
    "HostInfluxDriver",
    "HostRedisDriver",
    "PtyPairDriver",
    "TcpCableDriver",
    "VoltageSimDriver",
    "VoltageStrategy",
]
