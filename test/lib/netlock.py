"""The network lock of TCP connections (--network-lock), seen from a test.

A dump with --tcp-established locks each connection: iptables/ip6tables
rules that drop its packets unless they carry the mark 0xc114, or an
nftables table "inet CRIU-<run id>".  The restore (or dump -R) removes
them.  Guard(workdir).end() removes (and reports) the locks the test's own
dumps left: the nftables tables of the run ids in its images, the rules of
the ports of its connections.  Other tests run at the same time on this
machine, so nothing else is ever touched.
"""
import ipaddress
import json
import re
import shutil
import struct
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


def _addr(words):
    """An inet_sk_entry address (the kernel's bytes in uint32 words)."""
    return ipaddress.ip_address(struct.pack(f"<{len(words)}I", *words))


def image_conns(imgdir):
    """(method, run id, [(version, src, sport, dst, dport)]) of the TCP
    connections a dump locked: IPv4-mapped IPv6 addresses as IPv4, as the
    dump's iptables rules take them."""
    inv = (_show(Path(imgdir) / "inventory.img") or [{}])[0]
    method = {"nftables": 1, "skip": 2}.get(inv.get("network_lock_method"),
                                          inv.get("network_lock_method", 0))
    conns = []
    for e in _show(Path(imgdir) / "files.img"):
        isk = e.get("isk")
        if not isk or not isk.get("dst_port") or isk.get("proto") not in (6, "IPPROTO_TCP"):
            continue
        src, dst = _addr(isk["src_addr"]), _addr(isk["dst_addr"])
        if src.version == 6 and src.ipv4_mapped:
            src, dst = src.ipv4_mapped, dst.ipv4_mapped
        conns.append((src.version, str(src), isk["src_port"], str(dst), isk["dst_port"]))
    return method, inv.get("dump_criu_run_id"), conns


def own_netns(imgdir):
    """The dumped tree had a network namespace of its own: its connections
    are made again in a new one, which the restore locks itself."""
    root = [e for e in _show(Path(imgdir) / "pstree.img") if not e.get("ppid")]
    inv = _show(Path(imgdir) / "inventory.img")
    if not root or not inv:
        return False
    ids = _show(Path(imgdir) / f"ids-{root[0]['pid']}.img")
    return bool(ids) and ids[0].get("net_ns_id") != inv[0].get("root_ids", {}).get("net_ns_id")


def lock_like_dump(prefix, imgdir):
    """What the orchestrator of a migration does before the connections'
    addresses arrive where they go: lock them there as the dump locked them
    here, under the dump's names (the restore's unlock removes that lock;
    it locks nothing itself, as CRIU's).  prefix: the command that runs a
    tool there (nsenter --net=...)."""
    method, run_id, conns = image_conns(imgdir)
    if not conns or method == 2 or own_netns(imgdir):
        return
    if method == 1:
        t = f"inet CRIU-{run_id}"
        lines = [f"add table {t}"]
        for hook in ("input", "output"):
            lines += [f"add chain {t} {hook} {{ type filter hook {hook} priority 0; }}",
                      f"add rule {t} {hook} meta mark {MARK} accept"]
        for v, ip in ((4, "ip"), (6, "ip6")):
            lines.append(f"add set {t} conns{v} {{ type ipv{v}_addr . inet_service . "
                         f"ipv{v}_addr . inet_service; }}")
            for hook in ("input", "output"):
                lines.append(f"add rule {t} {hook} {ip} saddr . tcp sport . {ip} daddr . "
                             f"tcp dport @conns{v} drop")
        for v, src, sport, dst, dport in conns:
            lines.append(f"add element {t} conns{v} {{ {dst} . {dport} . {src} . {sport}, "
                         f"{src} . {sport} . {dst} . {dport} }}")
        p = subprocess.run([*map(str, prefix), sbin_which("nft"), "-f", "-"],
                           input="".join(f"{l}\n" for l in lines), capture_output=True,
                           text=True, timeout=TIMEOUT)
        assert p.returncode == 0, f"nft -f - (the destination's lock): {p.stderr.strip()}"
        return
    for v, src, sport, dst, dport in conns:
        cmd = sbin_which("iptables" if v == 4 else "ip6tables")
        for chain, a, ap, b, bp in (("INPUT", dst, dport, src, sport),
                                    ("OUTPUT", src, sport, dst, dport)):
            rc, _, err = _run([*map(str, prefix), cmd, "-w", "10", "-t", "filter", "-I", chain,
                               "--protocol", "tcp", "-m", "mark", "!", "--mark", MARK,
                               "--source", a, "--sport", str(ap), "--destination", b,
                               "--dport", str(bp), "-j", "DROP"])
            assert rc == 0, f"{cmd} -I {chain} (the destination's lock): {err.strip()}"
