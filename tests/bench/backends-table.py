#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Latency per operation from vmcheck JSON-lines reports, side by side.

usage: backends-table.py QMP.jsonl LIBVIRT.jsonl [REMOTE.jsonl]

Only passed steps with a latency count. The overhead is libvirt's p50
minus QMP's p50: what going through the daemon adds to the same action;
with a remote libvirt run, its column and its p50 minus local libvirt's:
what the remote protocol over SSH adds.
"""
import json
import sys


def load(path):
    ops = {}
    for line in open(path):
        if not line.strip():
            continue
        s = json.loads(line)
        if s.get("status") != "passed" or s.get("latency_ms") is None:
            continue
        ops.setdefault(s["operation"], []).append(float(s["latency_ms"]))
    return ops


def p50(v):
    v = sorted(v)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def cell(v):
    if not v:
        return f"{'-':>5} {'-':>9} {'-':>9}"
    return f"{len(v):>5} {p50(v):>9.1f} {max(v):>9.1f}"


def over(a, b):
    return f"{p50(b) - p50(a):+.1f} ms" if a and b else "-"


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__.strip().splitlines()[2])
    qmp, lv = load(sys.argv[1]), load(sys.argv[2])
    rem = load(sys.argv[3]) if len(sys.argv) == 4 else None
    order = list(qmp) + [o for o in lv if o not in qmp]
    if rem is not None:
        order += [o for o in rem if o not in order]
    head = (f"| {'operation':<18} | {'QMP n   p50 ms   max ms':>25} "
            f"| {'libvirt n   p50 ms   max ms':>25} | {'overhead p50':>12} |")
    rule = f"|{'-' * 20}|{'-' * 27}|{'-' * 27}|{'-' * 14}|"
    if rem is not None:
        head += f" {'remote n   p50 ms   max ms':>25} | {'remote-local':>12} |"
        rule += f"{'-' * 27}|{'-' * 14}|"
    print()
    print(head)
    print(rule)
    for op in order:
        a, b = qmp.get(op, []), lv.get(op, [])
        line = f"| {op:<18} | {cell(a):>25} | {cell(b):>25} | {over(a, b):>12} |"
        if rem is not None:
            r = rem.get(op, [])
            line += f" {cell(r):>25} | {over(b, r):>12} |"
        print(line)


if __name__ == "__main__":
    main()
