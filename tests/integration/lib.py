# SPDX-License-Identifier: MIT
"""Helpers shared by the integration tests: paths, checks, tools, resources.

Every test prints one line per check, "ok ..." or "FAIL ...", and exits
non-zero if any check failed; run-all counts those lines.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
B = os.environ.get("B", "build")
# make test-asan runs tests with the sanitized build of vmcheck instead.
VMCHECK = os.environ.get("VMCHECK") or os.path.join(B, "vmcheck")
AGENT = os.path.join(B, "vmcheck-agent")
AGENT_SPEC = "exec:%s --stdio" % AGENT

os.chdir(ROOT)
# Let finally blocks remove veths and loop devices when run-all is stopped.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


class Checks:
    """Counts and prints results; exit() turns them into the exit status."""

    def __init__(self):
        self.failed = 0

    def ok(self, cond, what, detail=""):
        if not cond:
            self.failed += 1
        detail = " | ".join(filter(None, detail.splitlines()))
        print("%s %s%s" % ("ok" if cond else "FAIL", what,
                           ": " + detail if detail else ""), flush=True)
        return cond

    def fail(self, what, detail=""):
        return self.ok(False, what, detail)

    def equal(self, what, agent, tool):
        """One field compared with a tool's value; both printed on mismatch."""
        if agent == tool:
            return True
        return self.fail(what, "agent %r, tool %r" % (agent, tool))

    def exit(self):
        sys.exit(1 if self.failed else 0)


def is_root():
    return os.geteuid() == 0


def skip(what):
    print("skip %s: needs root" % what, flush=True)


def run(argv, timeout=30, stdin=None):
    """Run @argv; returns the CompletedProcess (text), never raises on status."""
    return subprocess.run(argv, input=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout,
                          env=dict(os.environ, LC_ALL="C"))


def must(argv, timeout=30):
    """Run @argv; its stdout, or RuntimeError with its stderr."""
    p = run(argv, timeout)
    if p.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv), p.returncode,
                                               p.stderr.strip()))
    return p.stdout


def tool_json(argv):
    return json.loads(must(argv))


def num(v):
    """A protobuf integer from JSON: 64-bit ones may come as strings."""
    return int(v) if v not in (None, "") else 0


def vmcheck_state(agent=AGENT_SPEC, extra=()):
    """One State from `vmcheck state --json`, as a dict; RuntimeError on failure."""
    out = must([VMCHECK, "state", "--agent", agent, "--json", *extra])
    try:
        return json.loads(out)
    except ValueError as e:
        raise RuntimeError("vmcheck state printed no JSON object (%s): %r" % (e, out[:200]))


def cpulist(s):
    """Kernel/lscpu CPU list ("0-3,5" or "0,1") as a set of ints."""
    out = set()
    for part in filter(None, (s or "").split(",")):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


class Loop:
    """A loop device over a sparse temp file of @size bytes; detached on exit."""

    def __init__(self, size):
        self.size = size
        self.dev = None
        fd, self.file = tempfile.mkstemp(prefix="vmc-loop-")
        os.ftruncate(fd, size)
        os.close(fd)

    def attach(self):
        self.dev = must(["losetup", "-f", "--show", self.file]).strip()
        return os.path.basename(self.dev)

    def detach(self):
        if self.dev:
            run(["losetup", "-d", self.dev])
            self.dev = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.detach()
        os.unlink(self.file)


class Veth:
    """A veth pair @a/@b, deleted on exit (deleting one end removes both)."""

    def __init__(self, a, b):
        self.a, self.b = a, b
        run(["ip", "link", "del", a])  # a leftover of an interrupted run

    def add(self):
        must(["ip", "link", "add", self.a, "type", "veth", "peer", "name", self.b])

    def delete(self):
        must(["ip", "link", "del", self.a])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        run(["ip", "link", "del", self.a])
