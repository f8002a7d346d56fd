"""VoltageStrategy: brings a bench's DUT from "off" to "running" (delivering data) and back.

"running" means more than "powered": the bench's services are up (simulator, Redis, InfluxDB,
cable), the DUT was powered on, its comsrv API answers and the first sample of the bench's
reference channel arrived. The time from power-on to that first sample is kept
(``boot_seconds``): the cold-boot scenario reports it.

The strategy is also the one object scenarios talk to: the API and Redis helpers below read what
a test engineer would look at (channel points with their timestamps, ``comsrv:{ch}:status``),
and ``power_cut()`` is a hard power-off (QEMU: quit at once; a hardware bench: the power switch).
"""

import enum
import json
import os
import threading
import time
import urllib.error
import urllib.request

import attr
from labgrid.factory import target_factory
from labgrid.step import step
from labgrid.strategy.common import Strategy, StrategyError, never_retry

from . import process


class Status(enum.Enum):
    unknown = 0
    off = 1
    running = 2


class Timeout(AssertionError):
    """A condition a scenario waited for did not happen in time."""


@target_factory.reg_driver
@attr.s(eq=False)
class VoltageStrategy(Strategy):
    """Args:
    api (str): comsrv's base URL as the bench reaches it (http://HOST:6000)
    history_api (str): hissrv's base URL (http://HOST:6004), optional
    reference_channel (int): the channel whose first sample means "running"
    boot_timeout (float): seconds from power-on to that sample
    firmware_update (str): why the bench cannot update firmware, or "" when it can
    update_bundle (str): a RAUC bundle on the bench PC for the DUT (the firmware update scenario)
    """

    bindings = {
        "power": "PowerProtocol",
        "console": {"ConsoleProtocol", None},
        "redis": "BenchRedis",
        "sim": "VoltageSimDriver",
        "cable": {"TcpCableDriver", None},
        "influx": {"BenchInflux", None},
    }

    api = attr.ib(validator=attr.validators.instance_of(str))
    history_api = attr.ib(default=None)
    reference_channel = attr.ib(default=2001, converter=int)
    boot_timeout = attr.ib(default=120.0, converter=float)
    firmware_update = attr.ib(default="", validator=attr.validators.instance_of(str))
    update_bundle = attr.ib(default="", validator=attr.validators.instance_of(str))
    status = attr.ib(default=Status.unknown)

    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        self.boot_seconds = None
        self.boots = 0
        self._drain = None
        self._drain_stop = threading.Event()

    # --- states -----------------------------------------------------------------------------
    @never_retry
    @step(args=["status"])
    def transition(self, status, *, step):  # pylint: disable=redefined-outer-name
        if not isinstance(status, Status):
            status = Status[status]
        if status == self.status:
            step.skip("nothing to do")
            return
        if status == Status.off:
            self._power_off()
        elif status == Status.running:
            self._power_off()
            self._bench_up()
            self._power_on()
        else:
            raise StrategyError(f"no transition to {status}")
        self.status = status

    def _bench_up(self):
        for d in (self.sim, self.cable, self.influx):
            if d is not None:
                self.target.activate(d)
        if not getattr(self.redis, "on_dut", False):
            self.target.activate(self.redis)

    def _power_off(self):
        self.target.activate(self.power)
        self.power.off()
        self._stop_drain()
        if getattr(self.redis, "on_dut", False):
            self.target.deactivate(self.redis)

    def _power_on(self):
        if not getattr(self.redis, "on_dut", False):
            # Keys of an earlier boot would look like a first sample.
            r = self.redis.client()
            for k in r.scan_iter("comsrv:*"):
                r.delete(k)
        t0 = time.monotonic()
        self.power.on()
        self.boots += 1
        self._start_drain()
        if getattr(self.redis, "on_dut", False):
            self.wait_until(lambda: self._try_activate_redis(), self.boot_timeout, "the DUT's Redis")
        self.wait_until(
            lambda: self.points(self.reference_channel).get("T"),
            self.boot_timeout - (time.monotonic() - t0),
            f"the first sample of channel {self.reference_channel} after power-on",
        )
        self.boot_seconds = time.monotonic() - t0

    def _try_activate_redis(self):
        try:
            self.target.activate(self.redis)
            return True
        except Exception:  # pylint: disable=broad-except
            return False

    def power_cut(self):
        """Cuts the DUT's power at once (no shutdown); the strategy is "off" afterwards."""
        self.transition(Status.off)

    # --- the console log ------------------------------------------------------------------------
    # The console must be read continuously (a full QEMU console socket stalls the guest). The
    # reader below works under labgrid's step layer (`_read`): steps are not thread-safe.
    def console_log(self):
        return os.path.join(process.run_dir(), f"console-{self.target.name}.log")

    def _start_drain(self):
        if self.console is None:
            return
        self.target.activate(self.console)
        self._drain_stop.clear()
        boot = self.boots

        def drain():
            with open(self.console_log(), "ab") as log:
                log.write(f"\n--- power on #{boot} ---\n".encode())
                while not self._drain_stop.is_set():
                    try:
                        data = self.console._read(size=4096, timeout=0.2)  # pylint: disable=protected-access
                    except Exception as e:  # pylint: disable=broad-except
                        if type(e).__name__ == "TIMEOUT":
                            continue
                        return
                    if not data:
                        return  # the console closed (power off)
                    log.write(data)
                    log.flush()

        self._drain = threading.Thread(target=drain, daemon=True)
        self._drain.start()

    def _stop_drain(self):
        self._drain_stop.set()
        if self._drain is not None:
            self._drain.join(timeout=2)
        self._drain = None

    # --- what scenarios read ----------------------------------------------------------------------
    def http(self, method, path, body=None, base=None):
        """(status, parsed JSON body) of an API call; status 0 when the API is unreachable."""
        url = (base or self.api).rstrip("/") + path
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            try:
                return e.code, json.loads(e.read() or b"null")
            except ValueError:
                return e.code, None
        except (OSError, ValueError):
            return 0, None

    def points(self, channel):
        """``{"T": {"1": {"value": "752.300000", "ts": ms}, ...}, ...}``, {} while not available."""
        code, body = self.http("GET", f"/channels/{channel}/points")
        return body if code == 200 and isinstance(body, dict) else {}

    def value(self, channel, point, kind="T"):
        """One point's value as a float, or None."""
        p = self.points(channel).get(kind, {}).get(str(point))
        return float(p["value"]) if p else None

    def timestamp(self, channel, point, kind="T"):
        """Epoch ms of a point's last good read, or None."""
        p = self.points(channel).get(kind, {}).get(str(point))
        return int(p["ts"]) if p and p.get("ts") is not None else None

    def channel_status(self, channel):
        """The ``comsrv:{ch}:status`` hash (connected, offline_slaves, last_error, ...)."""
        return self.redis.client().hgetall(f"comsrv:{channel}:status")

    def channel_stats(self, channel):
        return self.redis.client().hgetall(f"comsrv:{channel}:stats")

    @staticmethod
    def wait_until(cond, timeout, what, interval=0.25):
        """Polls cond() until it returns something truthy (returned), else raises Timeout."""
        deadline = time.monotonic() + max(timeout, 0)
        error = None
        while True:
            try:
                v = cond()
            except Exception as e:  # pylint: disable=broad-except
                v, error = None, e
            if v:
                return v
            if time.monotonic() > deadline:
                last = f" (last error: {error!r})" if error is not None else ""
                raise Timeout(f"waited {timeout:.0f} s for {what}{last}")
            time.sleep(interval)

    def update_rate(self, channel, point, seconds):
        """Good reads per second of one point over ``seconds`` (from its timestamp changes)."""
        seen = set()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ts = self.timestamp(channel, point)
            if ts is not None:
                seen.add(ts)
            time.sleep(0.1)
        return max(len(seen) - 1, 0) / seconds
