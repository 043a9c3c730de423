"""A tree in a network namespace of its own (issue 9): the namespace is
dumped with it (netns-N.img, netdev-N.img, the ip tool's ifaddr, route,
route6 and rule images) and made again before its tasks.

test_zdtm runs netns_own (loopback, an address, a route, sysctls, sockets,
a TCP connection inside) in every mode; here: a veth pair the test adds
inside the namespace comes back with its indexes, addresses, MTU, flags,
its own sysctls and a route through it, in every mode; so do its
iptables, ip6tables and nftables rules, the connections' lock left out of
them; the images decode
with crit; the kinds we cannot restore are refused naming the link and
the task, which runs on; a veth to outside the namespace comes back with
--external veth[IN]:OUT; a restore without the namespace's image fails
cleanly."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

from lib.badinput import (DUMP_TIMEOUT, RESTORE_TIMEOUT, dump_good, dump_must_refuse,
                          restore_must_fail, restore_must_pass)
from lib import images, paths, procs as P
from lib.crit import crit_decode
from lib.tool import Tool, assert_ok
from lib.zdtm import ZdtmTask, ZdtmTest

TIMEOUT = 20
IFF_UP = 0x1
# CRIU's order of net.ipv4.conf.* in the images (criu-lazy/net/net-conf.c)
CONF4_FORWARDING = 12
CONF4_RP_FILTER = 21


def in_ns(pid, *argv, check=True):
    """argv run inside the network namespace of pid; its stdout."""
    p = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", *argv], capture_output=True,
                       text=True, timeout=TIMEOUT)
    assert not check or p.returncode == 0, f"{' '.join(argv)} in the netns of {pid}:\n{p.stderr}"
    return p.stdout


def ip_json(pid, *args):
    return json.loads(in_ns(pid, "ip", "-j", *args) or "[]")


def add_veth(pid):
    """nsv0/nsv1 inside the namespace: addressed, up, MTU 9000, fixed MACs,
    a route through nsv0 and a sysctl of nsv0's own."""
    for cmd in (["ip", "link", "add", "nsv0", "mtu", "9000", "address", "02:00:00:00:77:01",
                 "type", "veth", "peer", "name", "nsv1", "mtu", "9000", "address",
                 "02:00:00:00:77:02"],
                ["ip", "addr", "add", "10.79.0.1/24", "dev", "nsv0"],
                ["ip", "addr", "add", "10.79.0.2/24", "dev", "nsv1"],
                ["ip", "link", "set", "nsv0", "up"],
                ["ip", "link", "set", "nsv1", "up"],
                ["ip", "route", "add", "10.80.0.0/16", "via", "10.79.0.2", "dev", "nsv0"],
                ["sh", "-c", "echo 2 > /proc/sys/net/ipv4/conf/nsv0/rp_filter"]):
        in_ns(pid, *cmd)


def net_state(pid):
    links = {l["ifname"]: (l["ifindex"], l["mtu"], l.get("address"),
                           "UP" in l["flags"], l.get("link"))
             for l in ip_json(pid, "link")}
    addrs = sorted((a["ifname"], i["family"], i["local"], i["prefixlen"])
                   for a in ip_json(pid, "addr") for i in a["addr_info"]
                   if i.get("scope") != "link")
    routes = sorted(json.dumps(r, sort_keys=True) for r in ip_json(pid, "route"))
    sysctl = in_ns(pid, "cat", "/proc/sys/net/ipv4/conf/nsv0/rp_filter").strip()
    return links, addrs, routes, sysctl


def one_entry(path):
    e = crit_decode(path)["entries"]
    assert len(e) == 1, f"{path.name} should hold one entry, holds {len(e)}"
    return e[0]


def test_netns_veth_pair(mode, zdtm):
    task = zdtm(ZdtmTest("netns_own", ("--links", "3"), label="veth"), pid_ns=mode.pid_ns)
    add_veth(task.pid)
    before = net_state(task.pid)
    assert before[0]["nsv0"][1] == 9000 and before[3] == "2"
    mode.cycle(task, 1)
    after = net_state(task.pid)
    assert after == before, f"the namespace changed:\nbefore {before}\nafter  {after}"
    # the route through the pair is the one the kernel takes
    got = in_ns(task.pid, "ip", "route", "get", "10.80.1.1")
    assert "via 10.79.0.2 dev nsv0" in got, got
    task.check_pass()
    mode.finish()


def test_netns_images_decode_with_crit(tool, zdtm, workdir):
    task = zdtm(ZdtmTest("netns_own"))
    good = dump_good(tool, task, workdir)
    ids = one_entry(good / f"ids-{task.pid}.img")
    inv = crit_decode(good / "inventory.img")["entries"][0]
    nsid = ids["net_ns_id"]
    assert nsid != inv["root_ids"]["net_ns_id"], "the namespace was not told from ours"
    devs = crit_decode(good / f"netdev-{nsid}.img")["entries"]
    lo = [d for d in devs if d["name"] == "lo"]
    assert len(devs) == 1 and lo and lo[0]["type"] == "LOOPBACK", devs
    assert lo[0]["mtu"] == 16000 and int(str(lo[0]["flags"]), 0) & IFF_UP
    ns = one_entry(good / f"netns-{nsid}.img")
    assert ns["unix_conf"][0]["iarg"] == 77
    assert ns["all_conf4"][CONF4_FORWARDING]["iarg"] == 1		# ip_forward
    assert ns["def_conf4"][CONF4_RP_FILTER]["iarg"] == 2
    for raw in ("ifaddr", "route", "rule"):
        assert (good / f"{raw}-{nsid}.img").stat().st_size > 4, f"{raw}-{nsid}.img is empty"
    restore_must_pass(tool, workdir, task, good)


def test_netns_dump_refuses_unsupported_link(tool, zdtm, workdir):
    task = zdtm(ZdtmTest("netns_own"))
    in_ns(task.pid, "ip", "link", "add", "nsifb0", "type", "ifb")
    dump_must_refuse(tool, task, workdir, r"link nsifb0 \(index \d+, kind ifb\)",
                     rf"task {task.pid}\b", r"not supported")
    in_ns(task.pid, "ip", "link", "del", "nsifb0")
    task.check_pass()


def test_netns_dump_refuses_nested_namespace(tool, zdtm, workdir):
    task = zdtm(ZdtmTest("netns_own", ("--child-netns",), label="child-netns", tree=True))
    dump_must_refuse(tool, task, workdir, r"task (\d+) is in another network namespace than "
                     rf"the root task {task.pid}\b", r"not supported")
    task.check_pass()


def test_netns_restore_without_its_image(tool, zdtm, workdir):
    task = zdtm(ZdtmTest("netns_own"))
    good = dump_good(tool, task, workdir)
    nsid = one_entry(good / f"ids-{task.pid}.img")["net_ns_id"]
    bad = workdir / "images-bad"
    shutil.copytree(good, bad)
    (bad / f"netns-{nsid}.img").unlink()
    restore_must_fail(tool, workdir, bad, task.pid, rf"netns-{nsid}\.img is missing",
                      rf"task {task.pid}\b")
    restore_must_pass(tool, workdir, task, good)


def firewall(pid):
    """The namespace's iptables and ip6tables rules (comments and counters
    left out) and its nftables table inet nstest."""
    def rules(tool):
        return [re.sub(r"\[\d+:\d+\]", "", l) for l in in_ns(pid, tool).splitlines()
                if l and not l.startswith("#")]
    return (rules("iptables-save"), rules("ip6tables-save"),
            in_ns(pid, "nft", "list", "table", "inet", "nstest"))


@pytest.mark.parametrize("established", [False, True], ids=["plain", "established"])
def test_netns_firewall(established, mode, zdtm):
    """iptables, ip6tables and a table of nft's own come back as they were;
    the network lock of the connections (taken inside the namespace, at
    dump and again at restore) is gone from them."""
    for tool in ("iptables-save", "ip6tables-save", "nft"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing: scripts/setup installs it", pytrace=False)
    spec = (ZdtmTest("netns_own", ("--established",), label="fw-established",
                     cr_opts=("--tcp-established",)) if established
            else ZdtmTest("netns_own", label="fw"))
    task = zdtm(spec, pid_ns=mode.pid_ns)
    for cmd in (["iptables", "-A", "INPUT", "-p", "tcp", "--dport", "7999", "-j", "DROP"],
                ["iptables", "-N", "NSCHAIN"],
                ["iptables", "-A", "NSCHAIN", "-s", "10.81.0.0/16", "-j", "ACCEPT"],
                ["ip6tables", "-A", "OUTPUT", "-p", "udp", "--dport", "7998", "-j", "REJECT"],
                ["nft", "add", "table", "inet", "nstest"],
                ["nft", "add", "chain", "inet", "nstest", "c",
                 "{ type filter hook input priority 10 ; }"],
                ["nft", "add", "rule", "inet", "nstest", "c", "tcp", "dport", "7997", "drop"]):
        in_ns(task.pid, *cmd)
    before = firewall(task.pid)
    assert "7997" in before[2] and any("7999" in l for l in before[0])
    mode.cycle(task, 1)
    after = firewall(task.pid)
    assert after == before, f"the firewall changed:\nbefore {before}\nafter  {after}"
    task.check_pass()
    mode.finish()


def lock_rules(pid, method):
    """What of the network lock is in the namespace of pid: iptables' CRIU
    chain and INPUT/OUTPUT rules naming a port (a lock per connection), or
    nftables' tables CRIU-<run id>."""
    if method == "iptables":
        return [l for l in in_ns(pid, "iptables", "-S").splitlines()
                if "CRIU" in l or "--sport" in l]
    tables = re.findall(r"^table (inet CRIU-\S+)$", in_ns(pid, "nft", "list", "tables"), re.M)
    return "".join(in_ns(pid, "nft", "list", "table", *t.split()) for t in tables)


@pytest.mark.parametrize("method", ["iptables", "nftables"])
def test_netns_lock_whole_namespace(method, tool, zdtm, workdir):
    """With a namespace of its own the lock is CRIU's: the whole namespace
    (only packets with the mark 0xc114 pass), not a rule per connection;
    it stays on a tree left stopped (-s), is not in the new namespace once
    restored, and goes with -R."""
    spec = ZdtmTest("netns_own", ("--established",), label="lock",
                    cr_opts=("--tcp-established",))
    task = zdtm(spec)
    imgdir = workdir / "images"
    imgdir.mkdir()
    assert_ok(tool.dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT,
                        extra=["--tcp-established", "--network-lock", method, "-s"]),
              "dump -s")
    held = lock_rules(task.pid, method)
    if method == "iptables":
        assert sorted(held) == sorted([
            "-N CRIU", "-A INPUT -j CRIU", "-A OUTPUT -j CRIU",
            "-A CRIU -m mark --mark 0xc114 -j ACCEPT", "-A CRIU -j DROP"]), held
    else:
        assert re.search(r"chain input \{.*meta mark 0x0000c114 accept.*drop", held, re.S), held
    os.kill(task.pid, signal.SIGKILL)
    task.expect_gone()
    pidfile = workdir / "restored.pid"
    assert_ok(tool.restore(imgdir, workdir / "restore.log", RESTORE_TIMEOUT, pidfile=pidfile,
                           extra=["--tcp-established"]), "restore")
    task.expect_restored(pidfile)
    assert not lock_rules(task.pid, method), "the lock is still in the new namespace"
    assert_ok(tool.dump(task.pid, workdir / "images", workdir / "dump-R.log", DUMP_TIMEOUT,
                        extra=["--tcp-established", "--network-lock", method, "-R"]),
              "dump -R")
    assert not lock_rules(task.pid, method), "dump -R left its lock"
    task.check_pass()


REFUSED_PROBE = """import socket, sys
try:
    socket.create_connection((sys.argv[1], 9), timeout=5)
except ConnectionRefusedError:
    sys.exit(0)
sys.exit(1)
"""


def test_netns_external_veth(tool, procs, workdir):
    """A veth whose peer is outside the tree's namespace, in a namespace
    standing for the host (never the machine's own: a link made there
    notifies every netlink socket of the machine's, other tests' too): the dump refuses it without --external
    veth[vin0], dumps it with; the restore refuses it without
    --external veth[vin0]:vout0 and, with it, makes the pair again, the
    peer vout0 up in the restore's own namespace, and the two ends reach
    each other."""
    outer_p = procs.spawn(["unshare", "-n", "sleep", "600"], stdout=workdir / "outer.out")
    outer = outer_p.pid
    ours = os.stat("/proc/self/ns/net").st_ino
    assert P.wait_for(lambda: os.stat(f"/proc/{outer}/ns/net").st_ino != ours, TIMEOUT)
    enter = ("nsenter", f"--net=/proc/{outer}/ns/net")

    def outside(*argv, check=True):
        p = subprocess.run([*enter, *argv], capture_output=True, text=True, timeout=TIMEOUT)
        assert not check or p.returncode == 0, f"{' '.join(argv)} outside:\n{p.stderr}"
        return p

    try:
        t = Tool(paths.TOOL, prefix=enter)
        task = ZdtmTask(ZdtmTest("netns_own", ("--links", "2"), label="ext-veth"), workdir,
                        procs, prefix=enter).start()
        outside("ip", "link", "add", "vout0", "type", "veth", "peer", "name", "vin0", "netns",
                str(task.pid))
        in_ns(task.pid, "ip", "addr", "add", "10.82.0.2/24", "dev", "vin0")
        in_ns(task.pid, "ip", "link", "set", "vin0", "up")
        index = ip_json(task.pid, "link", "show", "vin0")[0]["ifindex"]
        dump_must_refuse(t, task, workdir, r"link vin0 .* task \d+ is a veth whose peer",
                         r"--external veth\[vin0\]")
        good = workdir / "images-ext"
        good.mkdir()
        assert_ok(t.dump(task.pid, good, workdir / "dump-ext.log", DUMP_TIMEOUT,
                         extra=["--external", "veth[vin0]"]), "dump --external veth[vin0]")
        task.expect_gone()
        # the pair goes with the dumped namespace, in the kernel's own time
        assert P.wait_for(lambda: outside("ip", "link", "show", "vout0", check=False)
                          .returncode != 0, TIMEOUT), "vout0 outlived its peer's namespace"
        restore_must_fail(t, workdir, good, task.pid, r"veth vin0 .* peer outside",
                          r"--external veth\[vin0\]:OUTSIDE")
        pidfile = workdir / "ext.pid"
        assert_ok(t.restore(good, workdir / "restore-ext.log", RESTORE_TIMEOUT,
                            pidfile=pidfile, extra=["--external", "veth[vin0]:vout0"]),
                  "restore --external veth[vin0]:vout0")
        task.expect_restored(pidfile)
        assert ip_json(task.pid, "link", "show", "vin0")[0]["ifindex"] == index
        link = json.loads(outside("ip", "-j", "link", "show", "vout0").stdout)[0]
        assert "UP" in link["flags"], link
        outside("ip", "addr", "add", "10.82.0.1/24", "dev", "vout0")
        probe = outside(sys.executable, "-c", REFUSED_PROBE, "10.82.0.2", check=False)
        assert probe.returncode == 0, "the restored pair does not carry packets"
        task.check_pass()
    finally:
        os.kill(outer, signal.SIGKILL)
        outer_p.wait(TIMEOUT)


@pytest.mark.parametrize("arg, why", [
    ("mnt[/a]:b", r"--external mnt\[/a\]:b: only veth\[IFNAME\]:OUTSIDE is supported"),
    ("veth[v0]:out@br0", r"a bridge \(@BRIDGE\) is not supported"),
    ("veth[]:out", r"invalid --external 'veth\[\]:out'"),
    ("veth[v0]:", r"invalid --external 'veth\[v0\]:'"),
    ("veth[v0]x", r"invalid --external 'veth\[v0\]x'"),
    ("veth[v0]:a-name-of-16-chars", r"invalid --external"),
])
def test_netns_external_bad_syntax(arg, why, tool, workdir):
    res = tool.run(["restore", "-D", workdir, "--external", arg], TIMEOUT)
    assert res.rc == 1, res.describe()
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("criu-lazy: ") and re.search(why, lines[0]), (
        res.describe())


def test_netns_restore_refuses_child_in_another_namespace(tool, zdtm, workdir):
    """Images (CRIU's, say) whose child was in another network namespace
    than the root, the root in ours: refused before any task exists."""
    task = zdtm(ZdtmTest("tree", ("--children", "1"), tree=True))
    task.note_tree()
    good = dump_good(tool, task, workdir)
    task.reap_tree()
    child = [e["pid"] for e in crit_decode(good / "pstree.img")["entries"] if e["ppid"]][0]
    bad = workdir / "images-bad"
    shutil.copytree(good, bad)
    images.edit_record(bad / f"ids-{child}.img",
                       lambda f: images.set_field(f, 6, 999))	# net_ns_id
    restore_must_fail(tool, workdir, bad, task.pid,
                      rf"task {child} was in another network namespace \(999\)")
    restore_must_pass(tool, workdir, task, good)


def test_netns_restore_bad_ifaddr_image(tool, zdtm, workdir):
    """ifaddr-N.img that ip cannot read: one line naming the ip command and
    what it said, no task left; the good images still restore."""
    task = zdtm(ZdtmTest("netns_own"))
    good = dump_good(tool, task, workdir)
    nsid = one_entry(good / f"ids-{task.pid}.img")["net_ns_id"]
    bad = workdir / "images-bad"
    shutil.copytree(good, bad)
    (bad / f"ifaddr-{nsid}.img").write_bytes(b"not what ip addr save wrote\n" * 4)
    restore_must_fail(tool, workdir, bad, task.pid, r"ip addr restore failed")
    restore_must_pass(tool, workdir, task, good)
