"""A TCP device's cable that a scenario can pull: a proxy between the DUT and the device.

Pulling the cable closes every connection through the proxy and refuses new ones, which is
what the DUT sees when the Ethernet cable of a Modbus TCP device is unplugged and its switch
port goes down (connection errors, reconnect attempts that fail); plugging it back in accepts
connections again. On a hardware bench the same proxy runs on the bench PC, with the DUT's
channel pointed at it.
"""

import socket
import threading

import attr
from labgrid.driver.common import Driver
from labgrid.factory import target_factory


@target_factory.reg_driver
@attr.s(eq=False)
class TcpCableDriver(Driver):
    """Args:
    listen (str): HOST:PORT the DUT connects to
    device (str): HOST:PORT of the real or simulated device
    """

    listen = attr.ib(validator=attr.validators.instance_of(str))
    device = attr.ib(validator=attr.validators.instance_of(str))

    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        self._lock = threading.Lock()
        self._server = None
        self._conns = set()
        self.connections = 0

    @staticmethod
    def _split(addr):
        host, _, port = addr.rpartition(":")
        return host, int(port)

    def on_activate(self):
        self.plug()

    def on_deactivate(self):
        self.unplug()

    def plug(self):
        """Plugs the cable in: the DUT can connect to the device again."""
        with self._lock:
            if self._server is not None:
                return
            srv = socket.socket()
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind(self._split(self.listen))
            srv.listen(8)
            self._server = srv
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()

    def unplug(self):
        """Pulls the cable: open connections die, new ones are refused."""
        with self._lock:
            srv, self._server = self._server, None
            conns, self._conns = self._conns, set()
        if srv is not None:
            srv.close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    @property
    def plugged(self):
        return self._server is not None

    def _accept(self, srv):
        while True:
            try:
                dut, _ = srv.accept()
            except OSError:
                return  # unplugged
            try:
                dev = socket.create_connection(self._split(self.device), timeout=5)
            except OSError:
                dut.close()
                continue
            with self._lock:
                if self._server is not srv:
                    dut.close()
                    dev.close()
                    return
                self._conns.update((dut, dev))
                self.connections += 1
            for a, b in ((dut, dev), (dev, dut)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self._lock:
            self._conns.discard(src)
        src.close()
