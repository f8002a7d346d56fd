"""The services around the DUT: the Redis its daemon meets in, and the InfluxDB its history goes to.

Scenarios restart Redis and take InfluxDB away, so both are drivers with ``restart()`` /
``stop()`` / ``start()``. On the virtual bench Redis runs on the host (the guest reaches it as
10.0.2.2) and is started here; on a hardware bench it runs on the DUT and is restarted over SSH,
with its port forwarded to the bench PC. InfluxDB is on the bench PC in both cases.
"""

import json
import os
import shutil
import tempfile
import time
import urllib.parse
import urllib.request

import attr
import redis
from labgrid.driver.common import Driver
from labgrid.factory import target_factory

from . import process


class BenchRedis(Driver):
    """What scenarios use of the DUT's Redis: ``client()`` and ``restart()``."""

    def client(self):
        raise NotImplementedError

    def restart(self):
        raise NotImplementedError


@target_factory.reg_driver
@attr.s(eq=False)
class HostRedisDriver(BenchRedis):
    """A redis-server on the bench host (virtual bench: the guest's Redis is the host's)."""

    port = attr.ib(converter=int)

    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        self._proc = None

    def on_activate(self):
        self._start()

    def on_deactivate(self):
        process.stop(self._proc)
        self._proc = None

    def _start(self):
        self._proc = process.start(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", process.run_dir()],
            os.path.join(process.run_dir(), "redis.log"),
        )
        process.wait_tcp("127.0.0.1", self.port)

    def client(self):
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=5)

    @Driver.check_active
    def restart(self):
        """Stops redis-server (its data goes: no persistence, like a tmpfs Redis) and starts it."""
        process.stop(self._proc)
        self._start()


@target_factory.reg_driver
@attr.s(eq=False)
class DutRedisDriver(BenchRedis):
    """Redis on the DUT, reached through an SSH forward and restarted with systemctl.

    Args:
        service (str): its systemd unit
        socket (str): its unix socket on the DUT (the board's redis_url), or
        port (int): its TCP port on the DUT's loopback
    """

    bindings = {"ssh": "SSHDriver"}
    on_dut = True  # reachable only while the DUT runs
    service = attr.ib(default="redis-server", validator=attr.validators.instance_of(str))
    socket = attr.ib(default=None, validator=attr.validators.optional(attr.validators.instance_of(str)))
    port = attr.ib(default=6379, converter=int)

    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        self._forward = None
        self._local = None

    def on_activate(self):
        if self.socket:
            self._forward = self.ssh.forward_unix_socket(self.socket)
        else:
            self._forward = self.ssh.forward_local_port(self.port)
        self._local = self._forward.__enter__()  # pylint: disable=unnecessary-dunder-call

    def on_deactivate(self):
        if self._forward is not None:
            self._forward.__exit__(None, None, None)
        self._forward = None

    def client(self):
        return redis.Redis(port=self._local, decode_responses=True, socket_timeout=5)

    @Driver.check_active
    def restart(self):
        self.ssh.run_check(f"systemctl restart {self.service}")


class BenchInflux(Driver):
    """What scenarios use of the bench's InfluxDB 1.x: ``stop()``, ``start()``, ``query()``."""


@target_factory.reg_driver
@attr.s(eq=False)
class HostInfluxDriver(BenchInflux):
    """influxd (1.x) on the bench host, with the database the DUT's hissrv writes to.

    Args:
        port (int): its HTTP port
        bind (str): the address it listens on (a hardware bench: the bench PC's DUT-side address)
        database (str): created when the driver starts
    """

    port = attr.ib(converter=int)
    bind = attr.ib(default="127.0.0.1", validator=attr.validators.instance_of(str))
    database = attr.ib(default="voltage", validator=attr.validators.instance_of(str))

    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        self._proc = None
        self._dir = None

    def on_activate(self):
        self._dir = tempfile.mkdtemp(prefix="hil-influx-", dir=process.run_dir())
        self._rpc_port = process.free_port()
        self.start()
        self.query(f"CREATE DATABASE {self.database}", method="POST")

    def on_deactivate(self):
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def start(self):
        """Starts influxd on its data directory (kept across stop/start)."""
        if self._proc is not None:
            return
        d = self._dir
        conf = os.path.join(d, "influxdb.conf")
        with open(conf, "w", encoding="utf-8") as f:
            f.write(
                f'reporting-disabled = true\nbind-address = "127.0.0.1:{self._rpc_port}"\n'
                f'[meta]\n  dir = "{d}/meta"\n[data]\n  dir = "{d}/data"\n  wal-dir = "{d}/wal"\n'
                '  query-log-enabled = false\n[monitor]\n  store-enabled = false\n'
                f'[http]\n  bind-address = "{self.bind}:{self.port}"\n  log-enabled = false\n'
            )
        self._proc = process.start(["influxd", "-config", conf], os.path.join(d, "influxd.log"))
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://{self._host()}:{self.port}/ping", timeout=2):
                    return
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"influxd did not start (log: {d}/influxd.log)") from None
                time.sleep(0.1)

    def _host(self):
        return "127.0.0.1" if self.bind == "0.0.0.0" else self.bind

    def stop(self):
        """Takes InfluxDB away (the DUT's writes fail with connection refused)."""
        process.stop(self._proc)
        self._proc = None

    def query(self, q, method="GET"):
        """Runs an InfluxQL query; returns the parsed JSON answer."""
        params = urllib.parse.urlencode({"db": self.database, "q": q, "epoch": "ms"})
        req = urllib.request.Request(f"http://{self._host()}:{self.port}/query?{params}", method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    def values(self, q):
        """The [time, value] rows of the first series of an InfluxQL query."""
        series = self.query(q)["results"][0].get("series") or [{}]
        return series[0].get("values", [])


__all__ = ["BenchRedis", "DutRedisDriver", "BenchInflux", "HostInfluxDriver", "HostRedisDriver"]
