# SPDX-License-Identifier: MIT
"""Helpers shared by the integration tests: paths, checks, tools, resources.

Every test prints one line per check, "ok ..." or "FAIL ...", and exits
non-zero if any check failed; run-all counts those lines.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

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


class Qmp:
    """A second QMP monitor of the user's VM, to look at it as the user would."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.f = self.s.makefile("rw")
        self.f.readline()
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.f.flush()
        while True:
            r = json.loads(self.f.readline())
            if "return" in r or "error" in r:
                return r.get("return", r.get("error"))

    def ours(self):
        """What of vmcheck's (disk*, nic*, dimm*, vcpu*) the VM still has."""
        names = set()
        for b in self.cmd("query-named-block-nodes"):
            names.add(b.get("node-name", ""))
        for p in self.cmd("qom-list", path="/machine/peripheral"):
            names.add(p["name"])
        for bus in self.cmd("query-pci"):
            names |= set(re.findall(r'"qdev_id": "([^"]*)"', json.dumps(bus)))
        for m in self.cmd("query-memory-devices"):
            names.add(m.get("data", {}).get("id", ""))
        for o in self.cmd("qom-list", path="/objects"):
            names.add(o["name"])
        return sorted(n for n in names if re.match(r"(disk|nic|dimm|vcpu)\d", n))


def attach_vm(d, guest, name):
    """Start the embedded guest in @guest under QEMU as a user would, for attach
    mode: QMP on d/qmp.sock, a second monitor on d/look.sock, the agent's
    port on d/agent.sock, eight free root ports, the console in d/console.log."""
    append = open(os.path.join(guest, "cmdline")).read().strip()
    argv = ["qemu-system-x86_64", "-name", name, "-machine", "q35",
            "-accel", "tcg", "-cpu", "qemu64", "-m", "512M,slots=4,maxmem=4096M",
            "-smp", "1,maxcpus=4", "-nodefaults", "-no-user-config", "-display", "none",
            "-kernel", os.path.join(guest, "vmlinuz"),
            "-initrd", os.path.join(guest, "initrd.img"), "-append", append,
            "-chardev", "file,id=console,path=%s/console.log" % d,
            "-serial", "chardev:console"]
    for m in ("qmp", "look"):
        argv += ["-chardev", "socket,id=%s,path=%s/%s.sock,server=on,wait=off" % (m, d, m),
                 "-mon", "chardev=%s,mode=control" % m]
    for i in range(1, 9):
        argv += ["-device", "pcie-root-port,id=pciroot%d,chassis=%d,slot=%d" % (i, i, i)]
    argv += ["-device", "pcie-root-port,id=rp-agent,chassis=9,slot=9",
             "-device", "virtio-serial-pci,id=agent-serial,bus=rp-agent",
             "-chardev", "socket,id=agent,path=%s/agent.sock,server=on,wait=off" % d,
             "-device", "virtserialport,id=agent-port,bus=agent-serial.0,chardev=agent,"
             "name=org.vmcheck.agent.0"]
    q = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                         stdout=open(os.path.join(d, "qemu.stderr"), "w"),
                         stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while not os.path.exists(os.path.join(d, "look.sock")) and time.monotonic() < deadline:
        time.sleep(0.02)
    return q
