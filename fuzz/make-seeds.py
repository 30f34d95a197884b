#!/usr/bin/env python3
"""Writes the seed inputs of fuzz/corpus/TARGET (a handful per target).

Run from anywhere: `python3 fuzz/make-seeds.py`. Needs the `cryptography`
package for the sealed seeds (keyring, recording), which use the fixed
fuzzing keys of `jumpgate_server::fuzzing` (root key 07..07, recording data
key 07..07, recording id "rec_fuzz"). Seeds are examples of valid input that
let the fuzzer start deep inside each decoder; `scripts/fuzz` never writes
to these directories.
"""

import base64
import json
import os
import struct

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

HERE = os.path.dirname(os.path.abspath(__file__))
KEY7 = bytes([7]) * 32


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- frames: type u8, flags u8, reserved u16, stream u32, length u32 ---
def frame(ty, stream, length, payload=b""):
    return struct.pack(">BBHII", ty, 0, 0, stream, length) + payload


def data(stream, payload):
    return frame(2, stream, len(payload), payload)


def control(payload):
    return frame(9, 0, len(payload), payload)


def goaway(code, reason):
    body = struct.pack(">I", code) + reason
    return frame(8, 0, len(body), body)


hello = json.dumps({
    "type": "hello", "versions": [1], "agent_id": "ag_1", "signature": "c2ln",
    "info": {"hostname": "web-1", "os": "linux", "arch": "x86_64", "agent_version": "0.1.0"},
}).encode()

write("frame", "open-data-fin", frame(1, 2, 0) + data(2, b"hello") + frame(4, 2, 0))
write("frame", "window-reset", frame(3, 3, 65536) + frame(5, 3, 2))
write("frame", "ping-pong", frame(6, 0, 42) + frame(7, 0, 42))
write("frame", "goaway", goaway(1, "shutting down ✓".encode()))
write("frame", "control", control(hello))

# --- control messages (JSON) ---
write("control", "hello", hello)
write("control", "welcome", json.dumps(
    {"type": "welcome", "version": 1, "endpoint": "web-1", "heartbeat_secs": 20}))
write("control", "reject", json.dumps(
    {"type": "reject", "code": "revoked", "message": "revoked by an administrator"}))
write("control", "agent-info", json.dumps(
    {"type": "agent_info", "hostname": "h", "os": "linux", "arch": "aarch64", "agent_version": "0.1.0"}))


# --- session messages: type u8, length u32, payload; first byte = split ---
def msg(ty, body):
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    return struct.pack(">BI", ty, len(body)) + body


shell = (msg(1, {"kind": "shell", "term": "xterm-256color", "cols": 80, "rows": 24})
         + msg(2, {}) + msg(4, b"ls\r") + msg(7, struct.pack(">HH", 120, 40))
         + msg(5, b"file1  file2\r\n") + msg(10, b"\x02") + msg(9, b"")
         + msg(8, {"code": 0}) + msg(14, {"reason": "terminated"}))
upload = (msg(1, {"kind": "upload", "path": "/tmp", "mode": 420, "size": 5, "file_name": "a.txt"})
          + msg(11, b"hel") + msg(11, b"lo") + msg(12, {"size": 5, "sha256": "00"})
          + msg(13, {"ok": True, "sha256": "2cf24dba", "message": ""}))
execs = (msg(1, {"kind": "exec", "command": ["sh", "-c", "echo hi >&2"]})
         + msg(2, {"size": 5, "mode": 420}) + msg(6, b"hi\n")
         + msg(8, {"code": None, "signal": 9}) + msg(3, {"code": "permission-denied", "message": "no"}))
write("session", "shell", b"\x00" + shell)
write("session", "upload", b"\x05" + upload)
write("session", "exec", b"\x0b" + execs)
write("session", "forward-download", b"\x01" + msg(1, {"kind": "forward", "host": "127.0.0.1", "port": 22})
      + msg(1, {"kind": "download", "path": "/etc/hostname"}))


# --- system stream messages: split byte, body-limit byte (x64), messages ---
write("system", "echo-request", b"\x03\xff" + msg(0x80, {"topic": "echo", "size": 300})
      + msg(0x82, bytes(range(200))) + msg(0x82, bytes(100)))
write("system", "facts-reply", b"\x00\x40" + msg(0x81, {"status": "ok", "size": 5})
      + msg(0x82, b'{"a":'))
write("system", "refused", b"\x07\x01" + msg(0x81, {"status": "unknown-topic", "message": "no", "size": 0}))

# --- recording file (the `File` variant of the recording target's input) ---
def nonce(i):
    return b"\0" * 4 + struct.pack(">Q", i)


def chunk(i, plain, last):
    flags = 1 if last else 0
    aad = b"rec_fuzz" + struct.pack(">Q", i) + bytes([flags])
    sealed = AESGCM(KEY7).encrypt(nonce(i), plain, aad)
    return struct.pack(">IB", len(sealed), flags) + sealed


header = b'{"version": 2, "width": 80, "height": 24}\n'
lines = [header, b'[0.100000, "o", "$ ls\\r\\n"]\n', b'[0.250000, "o", "a  b\\r\\n"]\n']
rec = b"JGREC/1\n" + b"".join(chunk(i, p, i == len(lines) - 1) for i, p in enumerate(lines))
# The target's input is an `arbitrary` enum: four zero bytes pick its first
# variant, `File`, whose bytes are the rest of the input.
write("recording", "finished", b"\x00\x00\x00\x00" + rec)
write("recording", "cut-by-a-crash", b"\x00\x00\x00\x00" + rec[:-7])

# --- keyring file under the fuzzing root key ---
B64 = lambda b: base64.b64encode(b).decode().rstrip("=")


def seal(key, aad, plain):
    n = os.urandom(12)
    return n + AESGCM(key).encrypt(n, plain, aad)


def keyring(extra_recordings_version=False, next_db=False):
    purposes = {}
    keks = {}
    for p in ["database", "recordings", "vault", "blobs"]:
        kek = os.urandom(32)
        keks[p] = kek
        versions = [{"version": 1, "created_at_ms": 1700000000000,
                     "sealed": B64(seal(KEY7, f"jumpgate:kek:{p}:v1".encode(), kek))}]
        current = 1
        if extra_recordings_version and p == "recordings":
            # Rotated: v2 is current, v1 still live until the sweep retires it.
            kek2 = os.urandom(32)
            versions.append({"version": 2, "created_at_ms": 1700000001000,
                             "sealed": B64(seal(KEY7, b"jumpgate:kek:recordings:v2", kek2))})
            current = 2
        purposes[p] = {"current": current, "versions": versions}
    db = "database:v1:" + B64(seal(keks["database"], b"jumpgate:database:v1", os.urandom(32)))
    f = {"format": 1, "purposes": purposes, "database_key": db}
    if next_db:
        f["database_key_next"] = "database:v1:" + B64(
            seal(keks["database"], b"jumpgate:database:v1", os.urandom(32)))
        f["root"] = {"generation": 1, "rotated_at_ms": 1700000002000}
    return json.dumps(f, indent=2)


write("keyring", "new", keyring())
write("keyring", "rotated-recordings", keyring(extra_recordings_version=True))
write("keyring", "pending-database-rekey", keyring(next_db=True))
write("keyring", "root-key-hex", "07" * 32)
write("keyring", "root-key-base64", base64.b64encode(KEY7).decode())

# --- gateway config file (TOML) ---
write("config", "full", """\
data_dir = "/var/lib/jumpgate"
listen = "0.0.0.0:443"
redirect_listen = "0.0.0.0:80"
hostname = "gw.example.com"

[tls]
cert = "/etc/jumpgate/cert.pem"
key = "/etc/jumpgate/key.pem"

[agents]
heartbeat = "20s"

[auth]
session_ttl = "12h"

[limits]
max_connections = 20000

[recording]
keystrokes = false

[retention]
recordings_days = 90
audit_days = 365

[keys]
rotate_every = "90d"
sweep_batch = 500
sweep_pause = "0s"

[vault]
retention = "30d"
""")
write("config", "minimal", 'data_dir = "/tmp/jg"\n')
write("config", "ipv6-never-rotate", 'data_dir = "d"\nlisten = "[::]:8443"\nhostname = "::1"\n[keys]\nrotate_every = "never"\n')

# --- API JSON bodies: first byte picks the type (index into TYPES) ---
api = [
    (0, {"username": "alice", "password": "correct horse", "totp": "123456", "cookie": True}),
    (4, {"token": "jget_x", "name": "web-1", "public_key": "AAAA", "details": {"hostname": "h", "os": "linux", "arch": "x86_64", "agent_version": "0.1.0"}}),
    (15, {"username": "bob", "password": "a long password", "role": "technician", "groups": ["ops"], "email": None}),
    (34, {"value": "s3cret"}),
    (42, [{"id": "ep_1", "name": "web-1", "group": "ops", "online": True, "last_seen": None,
           "enrolled_at": "2026-11-30T18:00:00Z", "hostname": "web-1", "os": "linux",
           "arch": "x86_64", "agent_version": "0.1.0"}]),
]
for i, (pick, body) in enumerate(api):
    write("api_json", f"body-{i}", bytes([pick]) + json.dumps(body).encode())
