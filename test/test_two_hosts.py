"""Lazy migration between two hosts: two network namespaces joined by a
veth pair (test/netns/netns_link.c, libnl-route), the page server in the
source, the lazy-pages daemon and the restore in the destination.

The workload is dumped on the machine into one image directory that both
"hosts" see (they share the filesystem; the daemon's unix socket lives
there and is reachable from any network namespace).  Every page the
daemon delivers crosses the veth: the only route from the destination to
the page server's address is that link, and its byte counters prove it.

Failure across the link: the page server killed by pid, or the link cut
(no FIN, no RST: TCP on the daemon's side gives up on its own) -- the
daemon says which connection failed and exits non-zero, and the task gets
SIGBUS (or SIGSEGV) on the pages that can no longer arrive, never hangs.
With --page-server-reconnect, a page server killed and started again is
reconnected to, and the task passes.

Every zdtm program that holds names of its network namespace (abstract
unix names, netlink ports, TCP and UDP ports and connections) or ptys runs
in the lazy-migrate mode between the two (test_migrate_zdtm), which one
host cannot do: there its copy would need what the frozen source still
holds.  The lock of its TCP connections is put in the destination under
the dump's names, as an orchestrator would, before the restore; a
program with ptys is restored with a devpts instance of its own, one with
file locks with copies of its files (the two hosts share one file system,
whose locks would be the same locks).

A TCP connection migrates too (test_migrate_tcp): the task runs in the
source with an address of its own on the source's loopback, connected to a
peer in the destination; dumped with --tcp-established (the lock in the
source's namespace), its address moves to the destination's loopback and
it is restored there, lazily, its pages coming over the link, while the
peer's data sent meanwhile waits for TCP to send it again.
"""
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lib import hosts as hosts_mod, lazy, netlock, paths, procs as P, procstate
from lib.badinput import dump_good
from lib.modes import LazyMigrate
from lib.tlscerts import Certs
from lib.tool import Tool, assert_ok
from lib.zdtm import ZdtmTask, ZdtmTest
from lib.zdtm_catalogue import ZDTM_TESTS, missing_cpu_flags

TIMEOUT = 60
PAGE = 4096
PORT = 27182		# the namespaces are new: nothing else listens in them
# a cut link is noticed by TCP: keepalive and TCP_USER_TIMEOUT (30 s) in
# criu-lazy/pageserver/ps-net.c
CUT_TIMEOUT = 120

_serial = itertools.count(1)


def _passed(node):
    rep = getattr(node, "rep_call", None)
    return rep is not None and rep.passed


@pytest.fixture
def hosts(request, procs):
    """Two fresh namespaces; afterwards, pass or fail, every process still
    in them is killed by pid and both are removed, mounts included."""
    why = hosts_mod.unavailable()
    if why:
        pytest.fail(why, pytrace=False)
    h = hosts_mod.TwoHosts(f"{os.getpid()}-{next(_serial)}")
    h.up()
    try:
        yield h
    finally:
        stray = h.end_processes(procs)
        left = h.down()
    assert not left, "the namespaces were not cleaned up:\n" + "\n".join(left)
    if stray and _passed(request.node):
        pytest.fail("processes were left in the namespaces (killed now):\n" +
                    "\n".join(stray), pytrace=False)


def start_page_server(procs, hosts, imgdir, workdir, *extra):
    return lazy.Daemon(procs, hosts.src.tool(),
                       ["page-server", "-D", imgdir, "--address", hosts.src.addr,
                        "--port", PORT, "--lazy-pages", *extra],
                       workdir / "page-server.log", workdir / "page-server.out", "page-server")


def start_daemon(procs, hosts, imgdir, workdir, *extra):
    return lazy.Daemon(procs, hosts.dst.tool(),
                       ["lazy-pages", "-D", imgdir, "--page-server",
                        "--address", hosts.src.addr, "--port", PORT, *extra],
                       workdir / "lazy-pages.log", workdir / "lazy-pages.out", "lazy-pages")


def restore_in(hosts, task, imgdir, workdir):
    pidfile = workdir / "restore.pid"
    res = hosts.dst.tool().restore(imgdir, workdir / "restore.log", TIMEOUT,
                                   pidfile=pidfile, extra=["--lazy-pages"])
    assert_ok(res, "restore --lazy-pages in the destination namespace")
    task.expect_restored(pidfile)


def migrate(procs, hosts, tool, task, workdir, *daemon_args, server_args=()):
    """Dump on the machine, serve from src, restore in dst: the daemon and
    page server are running and the task is back when this returns."""
    imgdir = dump_good(tool, task, workdir, name="images")
    server = start_page_server(procs, hosts, imgdir, workdir, *server_args)
    daemon = start_daemon(procs, hosts, imgdir, workdir, *daemon_args)
    restore_in(hosts, task, imgdir, workdir)
    assert hosts.src.holds(server.pid), f"the page server is not in {hosts.src.name}"
    assert hosts.dst.holds(daemon.pid), f"the daemon is not in {hosts.dst.name}"
    assert hosts.dst.holds(task.pid), f"the restored task is not in {hosts.dst.name}"
    return imgdir, server, daemon


def served_pages(server_log, peer_addr):
    """Pages the page server sent to peer_addr, from its session lines."""
    return sum(int(m.group(1)) for m in re.finditer(
        rf"{re.escape(peer_addr)}:\d+: session ended \([^)]*\) after \d+ GETs, (\d+) pages",
        server_log))


@pytest.mark.parametrize("spec,daemon_args,tls", [
    (ZdtmTest("mem_anon", ("--size", "64M"), label="64M"), (), False),
    (ZdtmTest("lazy_fork", defer_background=True), ("--no-background-fetch",), False),
    (ZdtmTest("mem_anon", ("--size", "64M"), label="64M"), (), True),
], ids=["mem_anon-64M", "lazy_fork-faults-only", "mem_anon-64M-tls"])
def test_migrate(spec, daemon_args, tls, hosts, zdtm, tool, procs, workdir):
    """tls: both ends with --tls, the daemon checking that the server's
    certificate names the source's address (test/lib/tlscerts.py)."""
    task = zdtm(spec)
    before = hosts.dst.counters()
    server_args = ()
    if tls:
        certs = Certs(workdir / "pki")
        server_args = [str(a) for a in certs.args("server")]
        daemon_args = (*daemon_args, *[str(a) for a in certs.args("client")])
    imgdir, server, daemon = migrate(procs, hosts, tool, task, workdir, *daemon_args,
                                     server_args=server_args)
    if tls:
        assert re.search(rf"page server {re.escape(hosts.src.addr)}:{PORT} \(fault "
                         r"connection\): TLS: .*CN=localhost", daemon.log.read_text())

    task.check_pass()
    daemon.expect_clean_exit()
    st = lazy.check_stats(imgdir, daemon.text())
    server.expect_clean_exit()
    after = hosts.dst.counters()

    # Every page the daemon delivered came from the page server at the
    # source's address (a reply cut short by an event is fetched again, so
    # the server may send more), and everything it sent crossed the veth.
    assert f"connected to page server {hosts.src.addr}:{PORT}" in daemon.log.read_text()
    server_log = server.log.read_text()
    peers = set(re.findall(r"(\S+):\d+: new session", server_log))
    assert peers == {hosts.dst.addr}, f"sessions from {peers}\n{server_log[-3000:]}"
    delivered = st["pages_fault"] + st["pages_background"]
    sent = served_pages(server_log, hosts.dst.addr)
    assert sent >= delivered > 0, (
        f"the page server sent {sent} pages, the daemon delivered {delivered}: {st}\n"
        f"{server_log[-3000:]}")
    got = after["rx_bytes"] - before["rx_bytes"]
    assert got >= sent * PAGE, (
        f"{hosts.dst.name}:{hosts_mod.VETH} received {got} bytes, less than the "
        f"{sent} pages ({sent * PAGE} bytes) the page server sent")


HOST_BOUND = [pytest.param(s, id=s.id) for s in ZDTM_TESTS
              if s.host_names or s.host_ptys or s.host_locks]


def other_host(snap, own_mounts, copied):
    """A /proc snapshot as a copy on another host keeps it: with a mount
    namespace of its own (own_mounts) every file's mount id is new, and
    the inodes of a pty (its devpts instance's) and of a copied file."""
    fds = {}
    for fd, (target, fields) in snap["fds"].items():
        drop = ("mnt_id",) if own_mounts else ()
        if target.startswith(("/dev/pts/", "/dev/ptmx")) or target in copied:
            drop += ("ino",)
        fds[fd] = (target, tuple(f for f in fields if f[0] not in drop))
    return {**snap, "fds": fds}


def files_of_its_own(hosts, task, workdir, copied):
    """prepare_destination for a program holding file locks: the regular
    files it made in its directory (its output excepted), as the images
    name them, copied once the dump has written them (the source is
    frozen), each copy bound over its original for the restore there: a
    host with files of its own, as another machine has."""
    def prepare(imgdir):
        pairs = []
        for e in netlock._show(imgdir / "files.img"):
            path = Path((e.get("reg") or {}).get("name", "/"))
            if path.parent != task.dir or not path.is_file() or \
                    path.name.startswith(task.spec.id):
                continue
            copy = workdir / "dst-files" / path.name
            copy.parent.mkdir(exist_ok=True)
            shutil.copy2(path, copy)
            pairs.append((copy, path))
            copied.add(str(path))
        assert pairs, f"no file of {task.spec.id} in {imgdir / 'files.img'}"
        return Tool(paths.TOOL, prefix=(*hosts.dst.enter(), *hosts_mod.own_files_prefix(pairs)))
    return prepare


@pytest.mark.parametrize("spec", HOST_BOUND)
def test_migrate_zdtm(spec, hosts, tool, procs, workdir):
    """The lazy-migrate mode of test_zdtm.py with the task in the source
    namespace and its copy restored in the destination (with a devpts of
    its own for a program that holds ptys): what /proc shows is the same,
    the program passes, the transfer ends cleanly."""
    missing = missing_cpu_flags(spec)
    if missing:
        pytest.skip(f"this CPU lacks {', '.join(missing)}")
    for h in hosts.hosts():
        ip(h, "link", "set", "lo", "up")
    mode = LazyMigrate(tool, procs, workdir, hosts=hosts, own_devpts=spec.host_ptys)
    mode.own_files = spec.host_locks
    why = mode.unsupported(spec)
    assert not why, why
    task = ZdtmTask(spec, workdir, procs, pid_ns=True, prefix=hosts.src.enter()).start()
    copied = set()
    if spec.host_locks:
        mode.prepare_destination = files_of_its_own(hosts, task, workdir, copied)
    assert hosts.src.holds(task.pid), f"the task is not in {hosts.src.name}"
    before = procstate.settled_snapshot(task.pid, spec.ignore_fd_pos,
                                        threads_vary=spec.threads_vary)
    mode.cycle(task, 1)
    assert hosts.dst.holds(task.pid), f"the restored task is not in {hosts.dst.name}"
    if not netlock.missing_tools("nftables") + netlock.missing_tools("iptables"):
        assert destination_locks(hosts.dst) == 0, "the restore left the destination locked"
    own_mounts = spec.host_ptys or spec.host_locks
    changes = procstate.diff(other_host(before, own_mounts, copied), other_host(
        procstate.settled_snapshot(task.pid, spec.ignore_fd_pos,
                                   threads_vary=spec.threads_vary), own_mounts, copied))
    assert not changes, (f"after the migration, /proc/{task.pid} differs from before:\n" +
                         "\n".join(changes))
    task.check_pass()
    mode.finish()


@pytest.mark.parametrize("established", [False, True], ids=["plain", "established"])
def test_migrate_own_netns(established, hosts, tool, procs, workdir):
    """A tree in a network namespace of its own, started in the source:
    the lazy migration makes its namespace again under the destination
    (its loopback, address, route, sysctls, sockets and, with
    --established, a TCP connection inside it, under the namespace's own
    lock), and leaves no lock in the destination's namespace."""
    for h in hosts.hosts():
        ip(h, "link", "set", "lo", "up")
    spec = (ZdtmTest("netns_own", ("--established",), label="established",
                     cr_opts=("--tcp-established",)) if established
            else ZdtmTest("netns_own"))
    mode = LazyMigrate(tool, procs, workdir, hosts=hosts)
    task = ZdtmTask(spec, workdir, procs, pid_ns=True, prefix=hosts.src.enter()).start()
    before = hosts_mod.netns_id(f"/proc/{task.pid}/ns/net")
    assert not hosts.src.holds(task.pid), "the task has no network namespace of its own"
    mode.cycle(task, 1)
    after = hosts_mod.netns_id(f"/proc/{task.pid}/ns/net")
    assert after != before and not hosts.dst.holds(task.pid) and not hosts.src.holds(
        task.pid), "the restored task is not in a network namespace of its own"
    if not netlock.missing_tools("iptables"):
        assert destination_locks(hosts.dst) == 0, "the restore left the destination locked"
    task.check_pass()
    mode.finish()


SERVICE_ADDR = "10.231.1.1"	# the migrating task's own address
PEER_PORT = PORT + 1
TCP_PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib", "tcp_peer.py")


def ip(host, *args):
    p = subprocess.run([*host.enter(), netlock.sbin_which("ip") or "ip", *args],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=TIMEOUT)
    assert p.returncode == 0, f"ip {' '.join(args)} in {host.name}: {p.stderr.strip()}"


def run_in(host, argv, stdin=None):
    p = subprocess.run([*host.enter(), *argv], input=stdin, capture_output=True, text=True,
                       timeout=TIMEOUT)
    assert p.returncode == 0, f"{' '.join(argv)} in {host.name}: {p.stderr.strip()}"
    return p.stdout


def lock_destination(host, lock, imgdir):
    """What the orchestrator of a migration does before the task's address
    arrives: lock its connection in the destination as the dump locked it
    in the source, under the dump's names, so the restore's unlock removes
    it (the restore itself locks nothing, as CRIU's)."""
    run_id = [e for e in netlock._show(imgdir / "inventory.img")][0]["dump_criu_run_id"]
    _, ports = netlock.images_locks(imgdir)
    (me, peer), = ports
    if lock == "nftables":
        t = f"inet CRIU-{run_id}"
        run_in(host, [netlock.sbin_which("nft"), "-f", "-"], stdin="".join(
            f"{line}\n" for line in (
                f"add table {t}",
                f"add chain {t} input {{ type filter hook input priority 0; }}",
                f"add chain {t} output {{ type filter hook output priority 0; }}",
                f"add set {t} conns4 {{ type ipv4_addr . inet_service . ipv4_addr . "
                "inet_service; }",
                f"add rule {t} input ip saddr . tcp sport . ip daddr . tcp dport @conns4 drop",
                f"add rule {t} output ip saddr . tcp sport . ip daddr . tcp dport @conns4 drop",
                f"add element {t} conns4 {{ {hosts_mod.DST_ADDR} . {peer} . {SERVICE_ADDR} . "
                f"{me}, {SERVICE_ADDR} . {me} . {hosts_mod.DST_ADDR} . {peer} }}")))
        return
    for chain, (src, sport, dst, dport) in (("INPUT", (hosts_mod.DST_ADDR, peer, SERVICE_ADDR, me)),
                                            ("OUTPUT", (SERVICE_ADDR, me, hosts_mod.DST_ADDR, peer))):
        run_in(host, [netlock.sbin_which("iptables"), "-w", "10", "-t", "filter", "-I", chain,
                      "--protocol", "tcp", "-m", "mark", "!", "--mark", "0xc114",
                      "--source", src, "--sport", str(sport), "--destination", dst,
                      "--dport", str(dport), "-j", "DROP"])


def destination_locks(host):
    return (run_in(host, [netlock.sbin_which("nft"), "list", "tables"]).count("CRIU-") +
            run_in(host, [netlock.sbin_which("iptables"), "-w", "10", "-S"]).lower().count(
                netlock.MARK))


def wait_file(path, timeout=TIMEOUT):
    assert P.wait_for(lambda: path.exists(), timeout), f"{path.name} did not appear"


@pytest.mark.parametrize("lock", ["nftables", "iptables"])
def test_migrate_tcp(lock, hosts, tool, procs, workdir):
    missing = netlock.missing_tools(lock) + ([] if netlock.sbin_which("ip") else ["ip"])
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: run scripts/setup", pytrace=False)
    # the task's address on the source's loopback, reached over the link
    ip(hosts.src, "link", "set", "lo", "up")
    ip(hosts.src, "addr", "add", f"{SERVICE_ADDR}/32", "dev", "lo")
    ip(hosts.dst, "link", "set", "lo", "up")
    ip(hosts.dst, "route", "add", f"{SERVICE_ADDR}/32", "via", hosts.src.addr)
    peer = procs.spawn([*hosts.dst.enter(), sys.executable, TCP_PEER, workdir, hosts.dst.addr,
                        PEER_PORT], stdout=workdir / "peer.out")
    wait_file(workdir / "peer-ready")
    est = ("--tcp-established",)
    spec = ZdtmTest("tcp_established", ("--only-peer", "--peer", str(PEER_PORT), "--peer-addr",
                                        hosts.dst.addr, "--bind", SERVICE_ADDR), label=lock)
    task = ZdtmTask(spec, workdir, procs, prefix=hosts.src.enter()).start()
    assert hosts.src.holds(task.pid), f"the task is not in {hosts.src.name}"

    imgdir = workdir / "images"
    imgdir.mkdir()
    assert_ok(hosts.src.tool().dump(task.pid, imgdir, workdir / "dump.log", TIMEOUT,
                                    extra=(*est, "--network-lock", lock)), "dump in the source")
    task.expect_gone()
    (workdir / "peer-go").touch()	# the peer sends while the task is gone
    time.sleep(0.5)
    # the address goes with the task, into a destination locked for it
    lock_destination(hosts.dst, lock, imgdir)
    assert destination_locks(hosts.dst) > 0
    ip(hosts.src, "addr", "del", f"{SERVICE_ADDR}/32", "dev", "lo")
    ip(hosts.dst, "route", "del", f"{SERVICE_ADDR}/32")
    ip(hosts.dst, "addr", "add", f"{SERVICE_ADDR}/32", "dev", "lo")

    server = start_page_server(procs, hosts, imgdir, workdir)
    daemon = start_daemon(procs, hosts, imgdir, workdir)
    pidfile = workdir / "restore.pid"
    res = hosts.dst.tool().restore(imgdir, workdir / "restore.log", TIMEOUT, pidfile=pidfile,
                                   extra=["--lazy-pages", *est])
    assert_ok(res, "restore --lazy-pages --tcp-established in the destination")
    task.expect_restored(pidfile)
    assert hosts.dst.holds(task.pid), f"the restored task is not in {hosts.dst.name}"
    assert destination_locks(hosts.dst) == 0, "the restore left the destination locked"
    task.check_pass()
    wait_file(workdir / "peer-result")
    result = (workdir / "peer-result").read_text().strip()
    assert result == "PASS", f"the peer in {hosts.dst.name}: {result}"
    assert procs.reap(peer.pid, TIMEOUT) == 0
    daemon.expect_clean_exit()
    lazy.check_stats(imgdir, daemon.text())
    server.expect_clean_exit()


def expect_lost_pages(task):
    """The task touches pages that can no longer arrive: it dies of SIGBUS
    (or of SIGSEGV when the kernel cannot write the signal frame on a
    poisoned stack), never runs its check on wrong data, never hangs."""
    status = task.stop(timeout=CUT_TIMEOUT)
    assert status is not None and os.WIFSIGNALED(status) and \
        os.WTERMSIG(status) in (signal.SIGBUS, signal.SIGSEGV), (
            f"the task ended with {P.wait_status_str(status)}, expected SIGBUS or SIGSEGV")
    assert not task.outfile.exists(), (
        f"the task ran its check on lost memory: {task.outfile.read_text()!r}")


def daemon_error(daemon, timeout=TIMEOUT):
    rc = daemon.wait_exit(timeout)
    assert rc == 1, f"the daemon exited with {rc}, expected 1\n{daemon.text()}"
    lines = [l for l in daemon.out.read_text().splitlines() if l.startswith("lazy-pages: ")]
    assert lines, f"the daemon printed no error line\n{daemon.text()}"
    return lines


def test_page_server_killed(hosts, zdtm, tool, procs, workdir):
    task = zdtm(ZdtmTest("mem_anon", ("--size", "64M"), label="64M", defer_background=True))
    imgdir, server, daemon = migrate(procs, hosts, tool, task, workdir,
                                     "--no-background-fetch")
    procs.kill(server.pid)
    lines = daemon_error(daemon)
    assert any(re.search(rf"page server {re.escape(hosts.src.addr)}:{PORT} (closed|reset) "
                         r"the connection with [1-9]\d* pages still to deliver", l)
               for l in lines), daemon.text()
    expect_lost_pages(task)


def test_page_server_restarted(hosts, zdtm, tool, procs, workdir):
    """--page-server-reconnect across the link: the page server is killed
    mid-restore and started again in the source on the same images; the
    daemon reconnects (the pages it had are checked), and the task gets
    every page right and passes."""
    task = zdtm(ZdtmTest("mem_anon", ("--size", "64M"), label="64M", defer_background=True))
    imgdir, server, daemon = migrate(procs, hosts, tool, task, workdir,
                                     "--no-background-fetch", "--page-server-reconnect", "30")
    procs.kill(server.pid)
    again = lazy.Daemon(procs, hosts.src.tool(),
                        ["page-server", "-D", imgdir, "--address", hosts.src.addr,
                         "--port", PORT, "--lazy-pages"],
                        workdir / "page-server-again.log", workdir / "page-server-again.out",
                        "page-server (again)")
    task.check_pass()
    daemon.expect_clean_exit()
    st = lazy.check_stats(imgdir, daemon.text())
    assert st["page_server_reconnects"] >= 1, st
    assert re.search(rf"reconnected to page server {re.escape(hosts.src.addr)}:{PORT} ",
                     daemon.log.read_text()), daemon.text()
    again.expect_clean_exit()


def test_link_cut(hosts, zdtm, tool, procs, workdir):
    """The source's veth end goes down mid-restore: nothing tells the
    daemon, its TCP gives up, and it must not wait forever."""
    task = zdtm(ZdtmTest("mem_anon", ("--size", "64M"), label="64M", defer_background=True))
    imgdir, server, daemon = migrate(procs, hosts, tool, task, workdir,
                                     "--no-background-fetch")
    hosts.cut(hosts.src)
    expect_lost_pages(task)
    lines = daemon_error(daemon, CUT_TIMEOUT)
    # TCP gives up with ETIMEDOUT, or with EHOSTUNREACH when ARP for the
    # source's address failed while it retransmitted (the kernel reports
    # the last soft error it saw)
    assert any(re.search(rf"connection to page server {re.escape(hosts.src.addr)}:{PORT} "
                         r"failed \((Connection timed out|No route to host)\) with [1-9]\d* "
                         r"pages still to deliver", l) for l in lines), daemon.text()
    # the source cannot tell either; it is ended by pid
    procs.kill(server.pid)


def test_netns_link_errors():
    """The helper fails with one line, leaving nothing behind."""
    why = hosts_mod.unavailable()
    if why:
        pytest.fail(why, pytrace=False)
    tag = f"{os.getpid()}-{next(_serial)}"
    a, b, c = (f"cl-err-{x}-{tag}" for x in "abc")
    run_dir = hosts_mod.RUN_DIR
    was_mounted = str(run_dir) in hosts_mod.mount_points()

    rc, out, err = hosts_mod.run_helper("up", a, b, "10.231.0.1/30", "10.231.0.2")
    assert rc == 1 and err.startswith("netns_link: bad address '10.231.0.2'") and \
        len(err.splitlines()) == 1, err
    rc, out, err = hosts_mod.run_helper("down", a, b)
    assert rc == 1 and f"no namespace {a}" in err, err

    rc, out, err = hosts_mod.run_helper("up", a, b, "10.231.0.1/30", "10.231.0.2/30")
    assert rc == 0, err
    try:
        # c is created first, then b is found taken: c must be removed again
        rc, out, err = hosts_mod.run_helper("up", c, b, "10.231.0.5/30", "10.231.0.6/30")
        assert rc == 1 and err.strip() == \
            f"netns_link: namespace {b} already exists ({run_dir}/{b})", err
        assert not (run_dir / c).exists()
        assert f"{run_dir}/{c}" not in hosts_mod.mount_points()
    finally:
        rc, out, err = hosts_mod.run_helper("down", a, b)
    assert rc == 0, err
    mounts = hosts_mod.mount_points()
    assert not any(m.startswith(f"{run_dir}/cl-err-") for m in mounts), mounts
    assert not hosts_mod.run_dir_left_mounted(was_mounted), f"{run_dir} is still mounted"
