"""The network lock of TCP connections (--network-lock), seen from a test.

A dump with --tcp-established locks each connection: iptables/ip6tables
rules that drop its packets unless they carry the mark 0xc114, or an
nftables table "inet CRIU-<run id>".  The restore (or dump -R) removes
them.  Guard(workdir).end() removes (and reports) the locks the test's own
dumps left: the nftables tables of the run ids in its images, the rules of
the ports of its connections.  Other tests run at the same time on this
machine, so nothing else is ever touched.
"""
import json
import re
import shutil
import subprocess
from pathlib import Path

from . import paths

TIMEOUT = 20
MARK = "0xc114"
TOOLS = {"iptables": ("iptables", "ip6tables"), "nftables": ("nft",)}


def sbin_which(name):
    return shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")


def missing_tools(method):
    """The commands `method` needs that are not installed (scripts/setup
    installs Debian's iptables and nftables)."""
    return [t for t in TOOLS.get(method, ()) if not sbin_which(t)]


def _run(argv):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=TIMEOUT)
    return p.returncode, p.stdout, p.stderr


def iptables_rules():
    """Every lock rule on the machine: (command, rule spec as iptables -S
    prints it).  Only to pick a test's own from (Guard): never act on all."""
    rules = []
    for cmd in TOOLS["iptables"]:
        if not sbin_which(cmd):
            continue
        rc, out, _ = _run([sbin_which(cmd), "-w", "10", "-S"])
        if rc:
            continue
        for line in out.splitlines():
            if line.startswith("-A ") and MARK in line.lower() and "-j DROP" in line:
                rules.append((cmd, line))
    return rules


def nft_tables():
    """Every lock table on the machine: "inet CRIU-..." names.  Only to pick
    a test's own from (Guard: its run ids): never act on all."""
    if not sbin_which("nft"):
        return []
    rc, out, _ = _run([sbin_which("nft"), "list", "tables"])
    if rc:
        return []
    return [m.group(1) for m in re.finditer(r"^table (inet CRIU-\S+)$", out, re.M)]


def _show(path):
    p = subprocess.run([str(paths.TOOL), "show", str(path)], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=TIMEOUT)
    return json.loads(p.stdout)["entries"] if p.returncode == 0 else []


def images_locks(workdir):
    """(run ids, connection ports) of every dump under workdir that holds a
    TCP connection (a tcp-stream image)."""
    run_ids, ports = set(), set()
    for inv in Path(workdir).rglob("inventory.img"):
        d = inv.parent
        if not any(d.glob("tcp-stream-*.img")):
            continue
        for e in _show(inv):
            if e.get("dump_criu_run_id"):
                run_ids.add(e["dump_criu_run_id"])
        for e in _show(d / "files.img"):
            isk = e.get("isk")
            if isk and isk.get("dst_port"):
                ports.add((isk["src_port"], isk["dst_port"]))
    return run_ids, ports


def _rule_ports(rule):
    s = re.search(r"--sport (\d+)", rule)
    d = re.search(r"--dport (\d+)", rule)
    return (int(s.group(1)), int(d.group(1))) if s and d else None


class Guard:
    """After a test, end() removes the locks its dumps (under workdir) left,
    and returns their description (empty when there were none)."""

    def __init__(self, workdir):
        self.workdir = workdir

    def end(self):
        run_ids, ports = images_locks(self.workdir)
        if not run_ids and not ports:
            return []
        left = []
        for cmd, rule in iptables_rules():
            p = _rule_ports(rule)
            if p and (p in ports or p[::-1] in ports):
                left.append(f"{cmd} {rule}")
                _run([sbin_which(cmd), "-w", "10", "-D", *rule.split()[1:]])
        for table in nft_tables():
            if table.split("CRIU-", 1)[1] in run_ids:
                left.append(f"nft table {table}")
                _run([sbin_which("nft"), "delete", "table", *table.split()])
        return left
