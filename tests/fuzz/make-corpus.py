#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpora of the harnesses in tests/fuzz.

Protobuf is encoded by hand (varints and tags, field numbers from
proto/vmcheck.proto) so the seeds need nothing but python3.
  corpus-frame         fuzz-frame.c: a chunk-size byte (0: the whole stream
                       in one feed), then the stream the agent reads
  corpus-agent-client  fuzz-agent-client.c: records (op, u16 length, bytes)
                       scripting what the agent says and when the host calls
  corpus-state         fuzz-state.c: records (op, u16 length, State)

usage: tests/fuzz/make-corpus.py [DIR]   (default: tests/fuzz; writes DIR/corpus-NAME)
"""
import os
import struct
import sys

VARINT, LEN = 0, 2


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def tag(field, wire):
    return varint(field << 3 | wire)


def uint(field, n):
    return tag(field, VARINT) + varint(n)


def sub(field, body):
    return tag(field, LEN) + varint(len(body)) + body


def frame(payload):
    return b"VMC1" + struct.pack(">I", len(payload)) + payload


# Request: id = 1; hello = 10, get_state = 11, subscribe = 12,
# unsubscribe = 13, probe = 14, act = 15, read_kmsg = 16.
def request(rid, field, body):
    return uint(1, rid) + sub(field, body)


SECTION_LINKS = 2
hello = request(1, 10, uint(1, 1) + sub(2, b"vmcheck 0.1.0"))
get_all = request(2, 11, b"")
get_links = request(3, 11, uint(1, SECTION_LINKS))
subscribe = request(4, 12, uint(1, SECTION_LINKS) + uint(2, 5))
unsubscribe = request(5, 13, uint(1, 1))
disk_probe = request(6, 14, sub(1, sub(1, b"vdb") + sub(2, b"\xa5" * 16) + sub(3, varint(0) + varint(4096))))

FRAME_SEEDS = {
    "hello": b"\0" + frame(hello),
    "get-state": b"\0" + frame(get_all),
    "get-state-links": b"\0" + frame(get_links),
    "subscribe": b"\0" + frame(subscribe),
    "session": b"\x05" + b"".join(frame(m) for m in (hello, subscribe, get_links, unsubscribe, disk_probe)),
    "garbage-then-frame": b"\x07" + b"login: \r\nVM\x00VMC" + frame(hello),
    "oversize-header": b"\0" + b"VMC1" + struct.pack(">I", 1 << 30) + b"\xff" * 8 + frame(get_all),
    "truncated": b"\x03" + frame(get_links)[:-2],
    "empty-payload": b"\0" + frame(b"") + frame(hello),
    "fake-header-then-frame": b"\0" + b"VMC1" + struct.pack(">I", 16) + b"\x07\xff\xff\xff" + frame(get_links),
}


# ---- States (State = 1 generation, 2 boot_id, 3 mono_ns, 6 sections,
# 10 system .. 16 crash, 20 errors) and Responses.
SYSTEM, LINKS, BLOCKS, MEMORY, CPUS, PCI, CRASH = 1, 2, 4, 8, 16, 32, 64


def string(field, s):
    return sub(field, s if isinstance(s, bytes) else s.encode())


def state(gen, sections, body=b""):
    return uint(1, gen) + string(2, "b007") + uint(3, 1000 * gen) + uint(6, sections) + body


def system(host, kernel="6.1.0-18-amd64"):
    return sub(10, string(1, "b007") + string(3, kernel) + string(6, host) + uint(11, 2))


def link(name, ifindex, mtu=1500, carrier=1, addr=None):
    body = string(1, name) + uint(2, ifindex) + string(3, "52:54:00:12:34:%02x" % ifindex)
    body += string(4, "up") + uint(5, carrier) + uint(6, mtu) + string(7, "virtio_net")
    if addr:
        body += sub(9, uint(1, 2) + string(2, addr) + uint(3, 24))
    return sub(11, body)


def block(name, size, serial=""):
    return sub(12, string(1, name) + uint(2, 254) + uint(3, 16) + uint(4, size) + string(8, serial) + string(12, "disk"))


def memory(*blocks):
    return sub(13, uint(1, 128 << 20) + b"".join(sub(2, uint(1, i) + uint(2, st) + string(3, "Normal") + uint(6, i << 27)) for i, st in blocks))


def cpus(*online):
    return sub(14, string(1, "0-%d" % (len(online) - 1)) + b"".join(sub(5, uint(1, i) + uint(2, on) + uint(8, 1)) for i, on in enumerate(online)))


def pci(*funcs):
    return sub(15, b"".join(sub(1, string(1, a) + uint(2, 0x1af4) + uint(3, d) + string(5, "virtio-pci")) for a, d in funcs))


def crash(loaded, dumps=0):
    d = b"".join(sub(4, string(1, "dump%d" % i) + uint(3, 1)) for i in range(dumps))
    return sub(16, uint(1, loaded) + uint(2, 256 << 20) + sub(3, string(1, "/var/crash") + uint(2, 1) + d))


def section_error(bit, msg):
    return sub(20, uint(1, bit) + uint(2, 5) + string(3, msg))


def record(op, body):
    return bytes([op]) + struct.pack(">H", len(body)) + body


FULL = state(1, 127, system("guest") + link("lo", 1, 65536) + link("eth0", 2, addr="10.0.2.15")
             + block("vda", 1 << 30, "root") + memory((0, 1), (1, 1), (2, 2)) + cpus(1, 1)
             + pci(("0000:00:03.0", 0x1000), ("0000:00:04.0", 0x1001)) + crash(1))
LINK_UP = state(2, LINKS, link("lo", 1, 65536) + link("eth0", 2, 9000) + link("vmct0", 5, carrier=2))
DISK_ADDED = state(3, BLOCKS, block("vda", 1 << 30, "root") + block("vdb", 64 << 20, "vmct-disk1"))
MEM_ONLINE = state(4, MEMORY | CPUS, memory((0, 1), (1, 1), (2, 1), (3, 3)) + cpus(1, 0, 1))
PCI_ERR = state(5, CRASH, crash(0, 2) + section_error(PCI, "reading /sys/bus/pci: Input/output error"))
HOSTILE = state(6, SYSTEM | LINKS, system("\x1b]0;pwned\x07\x1b[2J", "\xff\xfe\x00x")
                + link("\x1b[31meth0", 2) + link("\x1b[31meth0", 2, 1400) + link("", 0))

# fuzz-state.c ops: 0 merge, 1 merge then baseline, 2 reset then merge, 3 diff.
STATE_SEEDS = {
    "full": record(0, FULL),
    "baseline-then-changes": record(1, FULL) + record(0, LINK_UP) + record(0, DISK_ADDED)
    + record(0, MEM_ONLINE) + record(3, FULL),
    "section-error": record(1, FULL) + record(0, PCI_ERR) + record(0, FULL),
    "reset": record(0, FULL) + record(2, LINK_UP) + record(3, DISK_ADDED),
    "hostile-strings": record(1, FULL) + record(0, HOSTILE) + record(3, HOSTILE),
}

# fuzz-agent-client.c ops: 0 raw, 1 + 5 * K frame (K: 0 the next call's id,
# 1 the one before, 2 the one after, 3 a push, 4 as it is), 2 call (first
# byte: 0 hello, 1 get_state, 2 subscribe; 0x80 leaves the reply lent),
# 3 events, 4 eof.
RAW, CALL, EVENTS, EOF = 0, 2, 3, 4


def frame_op(k):
    return 1 + 5 * k


NEXT, STALE, AHEAD, PUSH, KEEP = range(5)
HELLO_REPLY = uint(1, 7) + sub(10, uint(1, 1) + string(2, "vmcheck-agent 0.1.0") + string(3, "state")
                               + uint(4, 4 << 20) + string(6, "virtio-serial") + uint(7, 2))
STATE_REPLY = uint(1, 7) + sub(11, FULL)
SUBSCRIBED = uint(1, 7) + sub(17, uint(1, 1) + sub(2, FULL))
EVENT = sub(12, uint(1, 1) + sub(2, LINK_UP) + sub(3, uint(1, 1) + string(2, "add") + string(3, "net")))
ERROR = uint(1, 7) + sub(16, uint(1, 3) + uint(2, 2) + string(3, "no such section \x1b[2J") + string(4, "get_state"))

CLIENT_SEEDS = {
    "hello": record(frame_op(NEXT), HELLO_REPLY) + record(CALL, b"\x00"),
    "session": record(frame_op(NEXT), HELLO_REPLY) + record(CALL, b"\x00")
    + record(frame_op(STALE), STATE_REPLY) + record(frame_op(PUSH), EVENT) + record(frame_op(NEXT), SUBSCRIBED)
    + record(CALL, b"\x02") + record(frame_op(PUSH), EVENT) + record(EVENTS, b"")
    + record(frame_op(NEXT), STATE_REPLY) + record(CALL, b"\x81"),
    "garbage-and-error": record(RAW, b"login: \r\nVMC1\xff\xff\xff\xffVM") + record(frame_op(NEXT), ERROR)
    + record(CALL, b"\x01") + record(frame_op(AHEAD), HELLO_REPLY) + record(CALL, b"\x00"),
    "undecodable": record(frame_op(KEEP), b"\xff\xff\xff") + record(frame_op(NEXT), STATE_REPLY)
    + record(CALL, b"\x01") + record(EVENTS, b""),
    "cut-then-eof": record(frame_op(PUSH), EVENT) + record(RAW, frame(HELLO_REPLY)[:9]) + record(EOF, b"")
    + record(CALL, b"\x00") + record(EVENTS, b"") + record(CALL, b"\x01"),
    "future-version": record(frame_op(NEXT), uint(1, 7) + sub(10, uint(1, 2) + uint(7, 9))) + record(CALL, b"\x00"),
}

CORPORA = {"corpus-frame": FRAME_SEEDS, "corpus-agent-client": CLIENT_SEEDS, "corpus-state": STATE_SEEDS}


def main():
    top = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    for corpus, seeds in CORPORA.items():
        out = os.path.join(top, corpus)
        os.makedirs(out, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(out, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
