#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Latency per operation from two vmcheck JSON-lines reports, side by side.

usage: backends-table.py QMP.jsonl LIBVIRT.jsonl

Only passed steps with a latency count. The overhead is libvirt's p50
minus QMP's p50: what going through the daemon adds to the same action.
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


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2])
    qmp, lv = load(sys.argv[1]), load(sys.argv[2])
    order = list(qmp) + [o for o in lv if o not in qmp]
    print()
    print(f"| {'operation':<18} | {'QMP n   p50 ms   max ms':>25} "
          f"| {'libvirt n   p50 ms   max ms':>25} | {'overhead p50':>12} |")
    print(f"|{'-' * 20}|{'-' * 27}|{'-' * 27}|{'-' * 14}|")
    for op in order:
        a, b = qmp.get(op, []), lv.get(op, [])
        over = f"{p50(b) - p50(a):+.1f} ms" if a and b else "-"
        print(f"| {op:<18} | {cell(a):>25} | {cell(b):>25} | {over:>12} |")


if __name__ == "__main__":
    main()
