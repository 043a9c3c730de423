"""Local access control (issue 12, point 2).

The lazy-pages socket is 0600 in a directory only its owner may write, and
the daemon closes a connection from a peer that is neither root nor its own
uid (SO_PEERCRED), then keeps waiting for the real restore.  The page
server refuses a session past its limit (16) and closes idle sessions
(CRIU_LAZY_PS_IDLE_TIMEOUT seconds in tests).  Every process is ended by
its pid, every wait has a timeout.
"""
import ctypes
import os
import socket
import stat
import time

from lib import lazy
from lib.pageserver import SMALL_VMA, Client, free_port, pages, start_page_server, stop, \
    write_images
from lib.tool import assert_error_line, assert_ok
from lib.zdtm import ZdtmTest

TIMEOUT = 60
NOBODY = 65534
MAX_SESSIONS = 16


def dump_small(zdtm, tool, workdir):
    task = zdtm(ZdtmTest("mem_anon", ("--size", "1M"), label="1M"))
    imgdir = workdir / "images"
    imgdir.mkdir(mode=0o700)
    assert_ok(tool.dump(task.pid, imgdir, workdir / "dump.log", TIMEOUT), "dump")
    task.expect_gone()
    return task, imgdir


def connect_as_nobody(path):
    """In a forked child with euid 65534 (fsuid 0, so the 0600 mode lets it
    connect and only SO_PEERCRED can tell): 0 if the daemon closes the
    connection without a byte, else non-zero."""
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            os.setresuid(NOBODY, NOBODY, 0)
            ctypes.CDLL(None, use_errno=True).setfsuid(0)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(str(path))
            code = 0 if s.recv(1) == b"" else 2
        except ConnectionResetError:
            code = 0
        except BaseException:
            code = 1
        os._exit(code)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError("the child connecting as nobody did not finish in 20 s")


def test_foreign_peer_refused_and_restore_works(zdtm, tool, procs, workdir):
    task, imgdir = dump_small(zdtm, tool, workdir)
    daemon = lazy.Daemon(procs, tool, ["lazy-pages", "-D", imgdir], workdir / "lazy.log",
                         workdir / "lazy.out", "lazy-pages")
    sock = imgdir / "lazy-pages.socket"
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600, oct(os.stat(sock).st_mode)

    assert connect_as_nobody(sock) == 0, "the daemon did not close the foreign peer\n" + \
        daemon.text()
    assert f"uid {NOBODY}" in daemon.log.read_text(), daemon.text()
    assert daemon.proc.poll() is None, "the daemon gave up after the foreign peer"

    pidfile = workdir / "restore.pid"
    res = tool.restore(imgdir, workdir / "restore.log", TIMEOUT, pidfile=pidfile,
                       extra=["--lazy-pages"])
    assert_ok(res, "restore --lazy-pages")
    task.expect_restored(pidfile)
    daemon.expect_clean_exit()
    task.check_pass()


def test_group_writable_dir_refused(zdtm, tool, workdir):
    _, imgdir = dump_small(zdtm, tool, workdir)
    os.chmod(imgdir, 0o770)
    res = tool.run(["lazy-pages", "-D", imgdir], TIMEOUT)
    assert_error_line(res, "lazy-pages", str(imgdir), r"writable by group or others")
    assert not (imgdir / "lazy-pages.socket").exists()


def test_session_limit(tool, procs, workdir):
    imgdir = write_images(workdir / "images", 64)
    port = free_port()
    p = start_page_server(tool, procs, workdir, imgdir, port)
    try:
        clients = [Client(port) for _ in range(MAX_SESSIONS)]
        for c in clients:	# each served: each one is a session
            c.get(100, SMALL_VMA, 1)
            assert c.reply()[4] == pages(100, SMALL_VMA, 1)
        extra = Client(port)
        assert extra.dropped(), "a session past the limit was kept open"
        log = (workdir / "page-server.log").read_text()
        assert f"refused: {MAX_SESSIONS} sessions are open" in log, log
        clients.pop().close()
        time.sleep(0.3)
        again = Client(port)	# room again: served
        again.get(100, SMALL_VMA, 1)
        assert again.reply()[4] == pages(100, SMALL_VMA, 1)
        assert p.poll() is None
    finally:
        stop(procs, p)


def test_idle_session_closed(tool, procs, workdir, monkeypatch):
    monkeypatch.setenv("CRIU_LAZY_PS_IDLE_TIMEOUT", "1")
    imgdir = write_images(workdir / "images", 64)
    port = free_port()
    p = start_page_server(tool, procs, workdir, imgdir, port)
    try:
        c = Client(port)
        c.get(100, SMALL_VMA, 1)
        assert c.reply()[4] == pages(100, SMALL_VMA, 1)
        t0 = time.monotonic()
        assert c.dropped(), "the idle session was not closed"	# 10 s socket timeout
        assert 0.5 < time.monotonic() - t0 < 5
        log = (workdir / "page-server.log").read_text()
        assert "idle for 1 s with nothing owed" in log, log
        assert p.poll() is None, "the server exited with the idle session"
    finally:
        stop(procs, p)
