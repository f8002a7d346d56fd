#!/usr/bin/env python3
"""Writes the seed corpus fuzz/corpus/<target>/ from the example configuration and from frames
built the way the firmware builds them (run from the repository root; the output is committed).
Layouts of each target's input are documented in firmware/fuzzing/src/<module>.rs."""
import os, struct, zlib, glob

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def rtu(slave, pdu):
    f = bytes([slave]) + pdu
    return f + struct.pack("<H", crc16(f))


def regs_pdu(fc, values):
    return bytes([fc, 2 * len(values)]) + b"".join(struct.pack(">H", v) for v in values)


def read(path):
    with open(os.path.join(ROOT, path), "rb") as f:
        return f.read()


# modbus_rtu / modbus_tcp raw mode: [even, slave, function, count, answer...]
put("modbus_rtu", "holding-2", bytes([0, 1, 3, 2]) + rtu(1, regs_pdu(3, [0x1234, 0x5678])))
put("modbus_rtu", "coils-3", bytes([0, 1, 1, 3]) + rtu(1, bytes([1, 1, 0b101])))
put("modbus_rtu", "exception-2", bytes([0, 2, 3, 1]) + rtu(2, bytes([0x83, 2])))
put("modbus_rtu", "crc-bad", bytes([0, 1, 4, 1]) + rtu(1, regs_pdu(4, [7]))[:-1] + b"\x00")
put("modbus_rtu", "structured", bytes([1, 1, 2, 0, 0, 4, 1, 0, 2, 0, 3, 0, 0]))
mbap = lambda tid, unit, pdu: struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu
put("modbus_tcp", "holding-2", bytes([0, 1, 2, 2]) + mbap(0, 1, regs_pdu(3, [1, 2])))
put("modbus_tcp", "input-1", bytes([0, 1, 3, 1]) + mbap(0, 1, regs_pdu(4, [0xFFFF])))
put("modbus_tcp", "exception", bytes([0, 1, 2, 1]) + mbap(0, 1, bytes([0x83, 4])))
put("modbus_tcp", "wrong-unit", bytes([0, 1, 2, 1]) + mbap(0, 9, regs_pdu(3, [5])))
put("modbus_tcp", "structured", bytes([1, 1, 2, 0, 0, 4, 1, 0, 2, 0, 3, 0, 0]))

# register_codec: any bytes are a case; a few shapes.
put("register_codec", "zeros", bytes(32))
put("register_codec", "ones", b"\xff" * 48)
put("register_codec", "f32-cdab", bytes([7, 3, 2, 0, 0x44, 0x3f, 0x80, 0x00]) + bytes(40))

# csv_tables: [selector = kind + 4 * parser, text]; kinds T, S, C, A.
kinds = {"telemetry": 0, "signal": 1, "control": 2, "adjustment": 3}
for path in sorted(glob.glob(os.path.join(ROOT, "config/comsrv/*/*.csv"))):
    k = os.path.basename(path)[:-4]
    ch = os.path.basename(os.path.dirname(path))
    put("csv_tables", f"{ch}-{k}", bytes([kinds[k]]) + read(path))
for path in sorted(glob.glob(os.path.join(ROOT, "config/comsrv/*/mapping/*_mapping.csv"))):
    k = os.path.basename(path)[: -len("_mapping.csv")]
    ch = os.path.basename(os.path.dirname(os.path.dirname(path)))
    parser = 2 if ch == "1002" else 1  # 1002 is the virtual channel
    put("csv_tables", f"{ch}-{k}-mapping", bytes([kinds[k] + 4 * parser]) + read(path))
put("csv_tables", "plugin-mapping", bytes([12]) + b"point_id,address,description\n1,ir/0,voltage\n2,ir/2,\n")

# yaml_configs: [selector, text]
yamls = [
    (0, "config/voltage.yaml"),
    (1, "config/comsrv/comsrv.yaml"),
    (2, "config/hissrv/hissrv.yaml"),
    (5, "board-configs/imx8mm-edge.toml"),
    (6, "config/alarmsrv/rules.yaml"),
    (7, "config/modsrv/templates/battery_template.yaml"),
]
for sel, path in yamls:
    put("yaml_configs", os.path.basename(path), bytes([sel]) + read(path))
put("yaml_configs", "netsrv.yaml", bytes([3]) + b"mqtt:\n  url: mqtt://127.0.0.1:1883\n")
put("yaml_configs", "gateway.yaml", bytes([4]) + b"auth:\n  enabled: true\n")

# rule_expr
for i, e in enumerate([
    "comsrv:1001:T:1 > 90.0",
    "comsrv:1001:T:1 > 5000 && comsrv:1001:T:2 < 9000",
    "comsrv:1001:S:2 == 1",
    "!(model:battery_1:soc < 20) || 1 > 0",
    "(comsrv:1:A:3 + 2) * 4 / 8 - 1 >= 0.5",
]):
    put("rule_expr", f"expr-{i}", e.encode())

# wal_recovery: [flags, first u16, second u16, split u16, bytes]; flag 1 = with header.
def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def frame(ts, ch, kind, point, value):
    payload = varint((ts << 1) ^ (ts >> 63)) + varint(ch) + bytes([kind]) + varint(point) + struct.pack("<d", value)
    return struct.pack("<II", len(payload), zlib.crc32(payload)) + payload


frames = b"".join(frame(1_700_000_000_000_000_000 + i, 1001, ord("T"), i, i * 0.5) for i in range(5))
put("wal_recovery", "five", struct.pack("<BHHH", 1, 0, 0, 0) + frames)
put("wal_recovery", "torn", struct.pack("<BHHH", 1, 10, 0, 0) + frames[:-3])
put("wal_recovery", "two-segments", struct.pack("<BHHH", 1, 0, 3, 2 * len(frame(0, 1001, 84, 0, 0.0))) + frames)
put("wal_recovery", "cursor", struct.pack("<BHHH", 5, 0, 0, 0) + frames + b"3 1")

# http_bodies: [selector, body]; 0 comsrv write, 1 rule, 2 model, 3 acknowledge, 4 resolve.
bodies = [
    (0, b'{"point_id": 1, "value": 42.5, "requested_by": "alice"}'),
    (1, b'{"id":"r1","name":"hot","condition":{"expression":"comsrv:1001:T:1 > 90.0","data_sources":["comsrv:1001:T:1"]},"actions":[{"action_type":"create_alarm","parameters":{"level":"warning"}}],"interval_ms":1000}'),
    (2, b'{"model_id":"battery_1","name":"Battery 1","template_id":"battery_template","parameters":{"channel":1001}}'),
    (3, b'{"acknowledged_by":"op","notes":"seen"}'),
    (4, b'{"resolved_by":"op"}'),
]
for sel, b in bodies:
    put("http_bodies", f"route-{sel}", bytes([sel]) + b)
