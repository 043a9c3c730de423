"""Local access control (issue 12, point 2).

The lazy-pages socket is 0600 in a directory only its owner may write, and
the daemon closes a connection from a peer that is neither root nor its own
uid (SO_PEERCRED), then keeps waiting for the real restore.  The page
server refuses a session past its limit (16) and closes sessions that ask for nothing
(CRIU_LAZY_PS_IDLE_TIMEOUT seconds in tests).  Every process is ended by
its pid, every wait has a timeout.
"""
import ctypes
import os
import select
import signal
import socket
import stat
import time

from lib import lazy
from lib.pageserver import SMALL_VMA, Client, pages, start_page_server, stop, write_images
from lib.ports import free_port
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


def wait_log(path, text, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        log = path.read_text()
        if text in log:
            return log
        assert time.monotonic() < deadline, f"no {text!r} in {path.name}:\n{log}"
        time.sleep(0.05)


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
    wait_log(daemon.log, f"uid {NOBODY}")
    assert daemon.proc.poll() is None, "the daemon gave up after the foreign peer"

    pidfile = workdir / "restore.pid"
    res = tool.restore(imgdir, workdir / "restore.log", TIMEOUT, pidfile=pidfile,
                       extra=["--lazy-pages"])
    assert_ok(res, "restore --lazy-pages")
    task.expect_restored(pidfile)
    daemon.expect_clean_exit()
    task.check_pass()


def test_restore_refuses_a_foreign_daemon(zdtm, tool, procs, workdir):
    """A socket whose listener runs as nobody gets no userfaultfd: the
    restore fails in one line and restores nothing."""
    task, imgdir = dump_small(zdtm, tool, workdir)
    sock = imgdir / "lazy-pages.socket"
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setresuid(NOBODY, NOBODY, 0)
            ctypes.CDLL(None, use_errno=True).setfsuid(0)	# to create the name
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(str(sock))
            s.listen(1)
            os.write(w, b"\0")
            time.sleep(60)
        finally:
            os._exit(0)
    os.close(w)
    try:
        ready, _, _ = select.select([r], [], [], 10)
        assert ready and os.read(r, 1) == b"\0", "the fake daemon did not start"
        res = tool.restore(imgdir, workdir / "restore.log", TIMEOUT,
                           pidfile=workdir / "restore.pid", extra=["--lazy-pages"])
        assert_error_line(res, "restore", f"uid {NOBODY}", "neither root nor us")
        assert not (workdir / "restore.pid").exists()
    finally:
        os.close(r)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


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
        wait_log(workdir / "page-server.log", f"refused: {MAX_SESSIONS} sessions are open")
        clients.pop().close()
        time.sleep(0.3)
        again = Client(port)	# room again: served
        again.get(100, SMALL_VMA, 1)
        assert again.reply()[4] == pages(100, SMALL_VMA, 1)
        assert p.poll() is None
    finally:
        stop(procs, p)


def test_silent_session_closed(tool, procs, workdir, monkeypatch):
    """A connection that asks for nothing is closed after the timeout; one
    that has asked for pages may stay silent (a lazily restored task can go
    a long time without a fault) and is served when it asks again."""
    monkeypatch.setenv("CRIU_LAZY_PS_IDLE_TIMEOUT", "1")
    imgdir = write_images(workdir / "images", 64)
    port = free_port()
    p = start_page_server(tool, procs, workdir, imgdir, port)
    try:
        served = Client(port)
        served.get(100, SMALL_VMA, 1)
        assert served.reply()[4] == pages(100, SMALL_VMA, 1)
        silent = Client(port)
        t0 = time.monotonic()
        assert silent.dropped(), "the silent session was not closed"	# 10 s socket timeout
        assert 0.5 < time.monotonic() - t0 < 5
        wait_log(workdir / "page-server.log", "no request within 1 s: session closed")
        time.sleep(1.5)		# past the timeout for the session that asked
        served.get(100, SMALL_VMA + 4096, 1)
        assert served.reply()[4] == pages(100, SMALL_VMA + 4096, 1), (
            "a session that had asked for pages was closed while silent")
        assert p.poll() is None, "the server exited with the silent session"
    finally:
        stop(procs, p)
