"""A misbehaving protocol plugin (a test double): each BatchRead misbehaves in the next way of
the list, round robin, while one point (telemetry 2, address "good") always comes back right
when an answer comes back at all:

0. garbage: NaN for telemetry 1, a value for a point that was not asked for, a duplicate, an
   unknown point type, an unspecified quality
1. oversized: a 2 MB error text
2. late: answers after twice the deadline comsrv sends
3. error status: INTERNAL "device exploded"

python3 bad_plugin.py PROTO_DIR   (prints "listening on http://127.0.0.1:PORT")
"""
import itertools
import sys
import tempfile
import threading
import time
from concurrent import futures

import grpc
from grpc_tools import protoc

out = tempfile.mkdtemp()
if protoc.main(["protoc", f"-I{sys.argv[1]}", f"--python_out={out}",
                f"--grpc_python_out={out}", "voltage/plugin/v1/plugin.proto"]) != 0:
    sys.exit("cannot compile the plugin contract")
sys.path.insert(0, out)
from voltage.plugin.v1 import plugin_pb2 as pb, plugin_pb2_grpc as rpc  # noqa: E402

calls = itertools.count()
lock = threading.Lock()


class Bad(rpc.ProtocolPluginServicer):
    def GetInfo(self, request, context):
        return pb.PluginInfo(name="bad", version="0", contract="voltage.plugin.v1")

    def BatchRead(self, request, context):
        with lock:
            n = next(calls) % 4
        good = [pb.PointValue(point_id=p.point_id, point_type=p.point_type, value=7.0,
                              quality=pb.GOOD)
                for p in request.points if p.address == "good"]
        if n == 0:
            t = pb.TELEMETRY
            return pb.BatchReadResponse(values=good + [
                pb.PointValue(point_id=1, point_type=t, value=float("nan"), quality=pb.GOOD),
                pb.PointValue(point_id=999, point_type=t, value=1.0, quality=pb.GOOD),
                pb.PointValue(point_id=2, point_type=t, value=8.0, quality=pb.GOOD),
                pb.PointValue(point_id=2, point_type=9, value=1.0, quality=pb.GOOD),
                pb.PointValue(point_id=3, point_type=t, value=1.0),
            ])
        if n == 1:
            return pb.BatchReadResponse(values=[
                pb.PointValue(point_id=2, point_type=pb.TELEMETRY, value=7.0, quality=pb.GOOD,
                              error="x" * 2_000_000)])
        if n == 2:
            time.sleep(2 * (context.time_remaining() or 1.0))
            return pb.BatchReadResponse(values=good)
        context.abort(grpc.StatusCode.INTERNAL, "device exploded")


server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
rpc.add_ProtocolPluginServicer_to_server(Bad(), server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(f"listening on http://127.0.0.1:{port}", flush=True)
server.wait_for_termination()
