"""The network lock of TCP connections (--network-lock), seen from a test.

A dump with --tcp-established locks each connection: iptables/ip6tables
rules that drop its packets unless they carry the mark 0xc114, or an
nftables table "inet CRIU-<run id>".  The restore (or dump -R) removes
them.  Guard notes what exists before a test and, after it, removes
(and reports) what the test left, so a failed test leaves no rule behind.
"""
import re
import shutil
import subprocess

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
    """Our lock's rules: (command, rule spec as iptables -S prints it)."""
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
    """Our lock's tables: "inet CRIU-..." names."""
    if not sbin_which("nft"):
        return []
    rc, out, _ = _run([sbin_which("nft"), "list", "tables"])
    if rc:
        return []
    return [m.group(1) for m in re.finditer(r"^table (inet CRIU-\S+)$", out, re.M)]


def snapshot():
    return set(iptables_rules()), set(nft_tables())


class Guard:
    """Before a test: snapshot; after it: end() removes what is new and
    returns its description (empty when the test left nothing)."""

    def __init__(self):
        self.before = snapshot()

    def end(self):
        rules, tables = snapshot()
        left = []
        for cmd, rule in sorted(rules - self.before[0]):
            left.append(f"{cmd} {rule}")
            _run([sbin_which(cmd), "-w", "10", "-D", *rule.split()[1:]])
        for table in sorted(tables - self.before[1]):
            left.append(f"nft table {table}")
            _run([sbin_which("nft"), "delete", "table", *table.split()])
        return left
