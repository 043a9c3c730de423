"""TCP connections (--tcp-established) and their network lock (--network-lock).

test_zdtm.py runs tcp_established (both ends in the task) in every mode and
with every lock; here:

- a connection whose other end is outside the tree, held by the test: data
  in flight both ways at the dump, data the test sends while the task is
  dumped (the lock drops it, TCP sends it again after the restore), in the
  eager and lazy modes, with iptables and with nftables;
- without the lock (skip), the same data meets no socket and resets the
  connection: what the lock is for;
- dump -R: the connections leave repair mode and the lock goes, the task
  goes on with working connections;
- refusals: no --tcp-established at dump or at restore, a lock tool that is
  not installed; each one line, the task unharmed or the images still good.
"""
import os
import socket
import time

import pytest

from lib import netlock
from lib.badinput import dump_good, dump_must_refuse
from lib.crit import crit_decode, need_crit
from lib.tcp_peer import pattern
from lib.tool import assert_error_line, assert_ok
from lib.zdtm import ZdtmTest

DUMP_TIMEOUT = 120
RESTORE_TIMEOUT = 120
IO_TIMEOUT = 30
EST = ("--tcp-established",)


def recv_exact(s, n, what):
    s.settimeout(IO_TIMEOUT)
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        assert chunk, f"{what}: the connection ended after {len(data)} of {n} bytes"
        data += chunk
    return data


def tools_or_fail(method):
    missing = netlock.missing_tools(method)
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: run scripts/setup (Debian packages "
                    "iptables and nftables)", pytrace=False)


@pytest.fixture
def guard(request, workdir):
    """No lock left behind: a passing test must leave none, and whatever a
    failed one left is removed."""
    g = netlock.Guard(workdir)
    yield g
    left = g.end()
    rep = getattr(request.node, "rep_call", None)
    if left and rep is not None and rep.passed:
        pytest.fail("network lock left behind (removed now):\n" + "\n".join(left),
                    pytrace=False)


class Peer:
    """The test's end: a listener on the loopback, then the accepted
    connection of the program's fd 29."""

    def __init__(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.conn = None

    def accept(self):
        self.listener.settimeout(IO_TIMEOUT)
        self.conn, _ = self.listener.accept()
        self.listener.close()
        return self.conn

    def close(self):
        for s in (self.conn, self.listener):
            if s is not None:
                s.close()


@pytest.fixture
def peer():
    p = Peer()
    yield p
    p.close()


def spec_with_peer(port, lock):
    return ZdtmTest("tcp_established", ("--small", "--peer", str(port)), label=lock,
                    host_names=True, cr_opts=EST, dump_opts=("--network-lock", lock))


@pytest.mark.parametrize("lock", ["iptables", "nftables"])
def test_peer_outside(lock, mode, zdtm, peer, guard):
    """The program's fd 29 is connected to us.  Before the dump: 64 KiB from
    it unread here, 32 KiB from us unread there.  While it is dumped we
    send 1000 bytes more: the lock drops them, TCP sends them again once
    the connection is back.  After the restore every byte arrives, both
    ways, in order."""
    tools_or_fail(lock)
    spec = spec_with_peer(peer.port, lock)
    why = mode.unsupported(spec)
    if why:
        pytest.skip(f"{mode.name}: {why}")
    task = zdtm(spec)
    conn = peer.accept()
    conn.sendall(pattern(0x52, 32768))

    def while_dumped():
        conn.sendall(pattern(0x53, 1000))	# to a connection that is not there now
        time.sleep(0.5)

    mode.cycle(task, 1, between=while_dumped)
    assert recv_exact(conn, 65536, "fd 29's data from before the dump") == pattern(0x51, 65536)
    task.check_pass()
    assert recv_exact(conn, 1000, "fd 29's answer after the restore") == pattern(0x54, 1000)
    mode.finish()


def test_no_lock_resets(tool, zdtm, peer, workdir, guard):
    """--network-lock skip: what we send while the task is dumped finds no
    socket, the kernel answers with a reset, and the connection is gone:
    the lock is what keeps it alive."""
    spec = spec_with_peer(peer.port, "skip")
    task = zdtm(spec)
    conn = peer.accept()
    imgdir = workdir / "images"
    imgdir.mkdir()
    assert_ok(tool.dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT,
                        extra=spec.cr_opts + spec.dump_opts), "dump --network-lock skip")
    task.expect_gone()
    conn.settimeout(IO_TIMEOUT)
    # the reset may be there already when we first send (the kernel may
    # have answered the peer's last ACK), or come after a few segments
    with pytest.raises(ConnectionResetError):
        conn.sendall(b"x" * 100)
        for _ in range(50):
            conn.sendall(b"y")
            conn.recv(1)
            time.sleep(0.05)


@pytest.mark.parametrize("lock", ["iptables", "nftables"])
def test_leave_running(lock, tool, zdtm, workdir, guard):
    """dump -R: every connection leaves repair mode and its lock goes before
    the task runs again; its connections still carry every byte."""
    tools_or_fail(lock)
    task = zdtm(ZdtmTest("tcp_established", ("--half-closed",)))
    imgdir = workdir / "images"
    imgdir.mkdir()
    assert_ok(tool.dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT,
                        extra=(*EST, "--network-lock", lock, "-R")), "dump -R")
    left = guard.end()
    assert not left, "dump -R left its lock:\n" + "\n".join(left)
    assert any(p.name.startswith("tcp-stream-") for p in imgdir.iterdir()), \
        "no tcp-stream image"
    task.check_pass()


def test_dump_refused_without_flag(tool, zdtm, workdir, guard):
    """No --tcp-established: one line naming the fd and the flag; the task
    and its connections unharmed, nothing locked, no image."""
    task = zdtm(ZdtmTest("tcp_established"))
    dump_must_refuse(tool, task, workdir, r"fd 2\d of task \d+", r"TCP", r"--tcp-established")
    task.check_pass()


def test_restore_refused_without_flag(tool, zdtm, workdir, guard):
    """Images with connections, restored without --tcp-established: one line
    naming the flag, nothing created; with it, the restore works."""
    tools_or_fail("nftables")
    task = zdtm(ZdtmTest("tcp_established"))
    imgdir = dump_good(tool, task, workdir, extra=(*EST, "--network-lock", "nftables"),
                       name="images", timeout=DUMP_TIMEOUT)
    res = tool.restore(imgdir, workdir / "restore-refused.log", RESTORE_TIMEOUT)
    assert_error_line(res, "restore", r"TCP connection", r"--tcp-established")
    assert not os.path.exists(f"/proc/{task.pid}"), "a refused restore left the task"
    pidfile = workdir / "restore.pid"
    assert_ok(tool.restore(imgdir, workdir / "restore.log", RESTORE_TIMEOUT, pidfile=pidfile,
                           extra=EST), "restore --tcp-established")
    task.expect_restored(pidfile)
    task.check_pass()


@pytest.mark.parametrize("lock,tool_name", [("iptables", "iptables"), ("nftables", "nft")])
def test_lock_tool_missing(lock, tool_name, tool, zdtm, workdir, guard):
    """The lock's tool is not installed (not in PATH): one line naming it and
    its Debian package; the task unharmed, no image.  iptables is CRIU's
    default, so a plain --tcp-established needs it too."""
    task = zdtm(ZdtmTest("tcp_established"))
    extra = (*EST, "--network-lock", lock) if lock != "iptables" else EST
    dump_must_refuse(tool, task, workdir, rf"\b{tool_name}\b", r"not in PATH",
                     r"Debian package", extra=extra,
                     env={"PATH": "/usr/bin:/bin"})	# Debian puts both in /usr/sbin
    task.check_pass()


def test_images_crit(tool, zdtm, workdir, guard):
    """tcp-stream-<ino>.img is CRIU's: crit decodes it, with the queue bytes
    after the entry, and inet_sk_entry has the connection's state."""
    import json
    import subprocess
    tools_or_fail("nftables")
    need_crit()
    task = zdtm(ZdtmTest("tcp_established", ("--small",)))
    imgdir = dump_good(tool, task, workdir, extra=(*EST, "--network-lock", "nftables"),
                       name="images", timeout=DUMP_TIMEOUT)
    streams = sorted(p for p in imgdir.iterdir() if p.name.startswith("tcp-stream-"))
    assert len(streams) == 4, [p.name for p in imgdir.iterdir()]
    total = 0
    for p in streams:
        e = crit_decode(p)["entries"][0]
        assert e["mss_clamp"] > 0 and "inq_seq" in e, e
        total += e["inq_len"]
    # 60000 + 40000 + 3000 + 3000 bytes unread at the dump
    assert total == 106000, total
    # our own show skips the queue bytes after each entry the same way
    out = subprocess.run([str(tool.binary), "show", str(imgdir)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, f"criu-lazy show: {out.stderr}"
    shown = json.loads(out.stdout)
    ours = {p.name: shown[p.name]["entries"][0]["inq_len"] for p in streams}
    assert sum(ours.values()) == 106000, ours
    states = [f["isk"]["state"] for f in crit_decode(imgdir / "files.img")["entries"]
              if "isk" in f]
    assert states.count("ESTABLISHED") == 4 or states.count(1) == 4, states
    pidfile = workdir / "restore.pid"
    assert_ok(tool.restore(imgdir, workdir / "restore.log", RESTORE_TIMEOUT, pidfile=pidfile,
                           extra=EST), "restore")
    task.expect_restored(pidfile)
    task.check_pass()


def listener_address(pid, fd):
    """The address of the task's listening socket fd (pidfd_getfd)."""
    import ctypes
    pidfd = os.pidfd_open(pid)
    try:
        got = ctypes.CDLL(None, use_errno=True).syscall(438, pidfd, fd, 0)	# pidfd_getfd
        assert got >= 0, f"pidfd_getfd({pid}, {fd}): {os.strerror(ctypes.get_errno())}"
    finally:
        os.close(pidfd)
    with socket.socket(fileno=got) as s:
        return s.getsockname()


def test_listener_with_pending_connection(tool, zdtm, workdir, guard):
    """A connection to fd 20 not yet accepted: refused with a line naming
    --skip-in-flight, the task unharmed; with the flag, as CRIU, the
    listener is dumped without it: its client sees a reset, the restored
    listener takes new connections."""
    tools_or_fail("nftables")
    task = zdtm(ZdtmTest("tcp_established", ("--small",)))
    client = socket.create_connection(listener_address(task.pid, 20), timeout=IO_TIMEOUT)
    try:
        lock = (*EST, "--network-lock", "nftables")
        imgdir = dump_must_refuse(tool, task, workdir, r"fd 20 of task", r"not yet accepted",
                                  r"--skip-in-flight", extra=lock)
        assert_ok(tool.dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT,
                            extra=(*lock, "--skip-in-flight")), "dump --skip-in-flight")
        task.expect_gone()
        pidfile = workdir / "restore.pid"
        assert_ok(tool.restore(imgdir, workdir / "restore.log", RESTORE_TIMEOUT,
                               pidfile=pidfile, extra=EST), "restore")
        task.expect_restored(pidfile)
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            for _ in range(50):
                client.sendall(b"x")
                assert client.recv(1) != b"", "the connection was closed, not reset"
                time.sleep(0.05)
    finally:
        client.close()
    task.check_pass()


def test_syn_sent_fastopen_refused(tool, zdtm, workdir):
    """A connection being opened with TCP Fast Open data waiting in its send
    queue: refused even with --tcp-established (the restore would send a
    plain SYN), naming the fd, and the task runs on unharmed: its data
    still arrives once it is connected."""
    task = zdtm(ZdtmTest("tcp_syn_sent", ("--fastopen",), label="fastopen"))
    dump_must_refuse(tool, task, workdir, r"fd 21 of task", r"SYN_SENT", r"Fast Open",
                     extra=(*EST, "--skip-in-flight", "--network-lock", "skip"))
    task.check_pass()
