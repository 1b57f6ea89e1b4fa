#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpus of tests/fuzz/fuzz-frame.c.

Protobuf is encoded by hand (varints and tags, field numbers from
proto/vmcheck.proto) so the seeds need nothing but python3. Each seed starts
with the fuzzer's chunk-size byte (0: the whole stream in one feed).

usage: tests/fuzz/make-corpus.py [DIR]   (default: tests/fuzz/corpus)
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

SEEDS = {
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


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
