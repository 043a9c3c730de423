"""The lazy-pages daemon's watchdog (criu-lazy/lazy/lazy-watchdog.c): a
request the daemon loses track of fails it loudly, instead of leaving the
thread that faulted on it waiting for ever (the hang of soak.md).

The bug is made with the test-only hook CRIU_LAZY_TEST_DROP_REQUEST=N: the
daemon forgets its Nth request, whose span stays in flight with nothing
behind it; CRIU_LAZY_WATCHDOG_MS shortens the grace.  Expected: one error
line naming the task and the range, exit 1, every page that did not come
raises SIGBUS (none reads zeros or anything else), nothing left running.
CRIU_LAZY_TEST_DROP_SHMEM_REQUEST=N does the same with shared memory from
a page server; CRIU_LAZY_TEST_STOP_READING=N makes the daemon stop reading
its fault connection, whose replies then wait unread: the same failure.

The legitimate slow cases must not trip it, even with a grace of 0.1 s: a
page server stopped (SIGSTOP) while faults wait for its replies, the
daemon stopped too, the stopped server killed and started again with GETs
out (--page-server-reconnect asks for them again: without that, as before
d6d2cd3, the watchdog fires).  test_page_server_remote.py's
test_page_server_restarted_mid_restore runs its reconnects with the same
short grace.  Every process is ended by its pid; every wait has a timeout.
"""
import os
import re
import signal
import time

import pytest

from lib import lazy, procs as P
from lib.badinput import dump_good
from lib.pageserver import output_of, start_daemon, start_page_server, stop
from lib.ports import free_port
from lib.tool import assert_ok
from lib.zdtm import ZdtmTest
from test_lazy_shmem import ServerKeepsTheImages
from test_page_server_remote import (BIG, dirs, exit_status, restore_standin,  # noqa: F401
                                     task_counts)

TIMEOUT = 60
DROP = "CRIU_LAZY_TEST_DROP_REQUEST"
GRACE = "CRIU_LAZY_WATCHDOG_MS"
STOP = "CRIU_LAZY_TEST_STOP_READING"
DROP_SHMEM = "CRIU_LAZY_TEST_DROP_SHMEM_REQUEST"
BUG = "a bug of the daemon"


def watchdog_line(out, source):
    """The watchdog's one error line: (task pid, start, end)."""
    lines = [l for l in out.splitlines() if BUG in l]
    assert len(lines) == 1, out
    m = re.match(r"lazy-pages: task (\d+): 0x([0-9a-f]+)-0x([0-9a-f]+) \(\d+ pages, 0x[0-9a-f]+ "
                 r"when dumped\) has been in flight for [\d.]+ s with " + source +
                 r" \(a fault's request, its fault waiting, \d+ other faults waiting\): "
                 r"a bug of the daemon, which fails rather than leave it undelivered$",
                 lines[0])
    assert m, lines[0]
    return int(m.group(1)), int(m.group(2), 16), int(m.group(3), 16)


def daemon_with_hook(tool, procs, workdir, dirs, monkeypatch, hook, n):
    """A page server, a daemon with the test hook `hook`=n and a 0.5 s
    grace, and the stand-in restore; the daemon must fail: (port, server,
    daemon, restore, its output, its log)."""
    src, dst = dirs
    port = free_port()
    server = start_page_server(tool, procs, workdir, src, port)
    monkeypatch.setenv(hook, n)
    monkeypatch.setenv(GRACE, "500")
    daemon = start_daemon(tool, procs, workdir, dst, port, extra=("--no-background-fetch",))
    restore = restore_standin(procs, workdir, dst, "--wait-file", workdir / "go")
    assert exit_status(procs, daemon, 30) == "exit code 1", output_of(workdir, "lazy-pages")
    return (port, server, daemon, restore, output_of(workdir, "lazy-pages"),
            (workdir / "lazy-pages.log").read_text())


def expect_poisoned_not_zeros(procs, workdir, server, daemon, restore):
    """Both stand-in tasks got SIGBUS where pages did not come and went on
    to their half; none read a wrong page; nothing is left running: each
    task's counts (right, ..., poisoned, wrong)."""
    halves = [workdir / f"go.{pid}.half" for pid in (100, 200)]
    assert P.wait_for(lambda: all(h.exists() for h in halves), TIMEOUT), \
        output_of(workdir, "restore")
    (workdir / "go").touch()
    assert exit_status(procs, restore) == "exit code 0", output_of(workdir, "restore")
    counts = task_counts(workdir)
    assert all(c[3] == 0 for c in counts.values()), counts
    assert sum(c[2] for c in counts.values()) > 0, counts
    assert sum(c[0] + c[2] for c in counts.values()) == BIG + 20 + 32, counts
    stop(procs, server)
    for p in (daemon, restore, server):
        assert not P.exists(p.pid), P.describe(p.pid)
    return counts


def test_forgotten_get(tool, procs, workdir, dirs, monkeypatch):
    """A page server's GET never sent: the fault that asked for it would
    wait for ever.  The watchdog fails the daemon; the waiting thread and
    every later touch of a page that did not come get SIGBUS."""
    port, server, daemon, restore, out, log = daemon_with_hook(tool, procs, workdir, dirs,
                                                               monkeypatch, DROP, "5")
    assert re.search(rf"Warn : test hook {DROP}: request 5 \(task \d+, 0x[0-9a-f]+-"
                     r"0x[0-9a-f]+\) forgotten", log), log
    pid, start, end = watchdog_line(out, "no GET for it on an open connection to the page "
                                    "server")
    assert pid in (100, 200) and start < end, out
    # the task that waited got SIGBUS and went on to its half
    counts = expect_poisoned_not_zeros(procs, workdir, server, daemon, restore)
    assert counts[100][1] == 44 and counts[200][1] == 0, counts


def test_replies_left_unread(tool, procs, workdir, dirs, monkeypatch):
    """The daemon stops reading its fault connection (the test-only hook
    CRIU_LAZY_TEST_STOP_READING=N: from its Nth reply on): the replies wait
    on the socket, their GETs still count as out on an open connection,
    and the threads would wait for ever.  The watchdog sees the bytes wait
    unread for the grace and fails the daemon; every page that did not come
    raises SIGBUS, none reads zeros."""
    port, server, daemon, restore, out, log = daemon_with_hook(tool, procs, workdir, dirs,
                                                               monkeypatch, STOP, "5")
    assert re.search(rf"Warn : test hook {STOP}=5: the fault connection to page server "
                     rf"127.0.0.1:{port} is read no more", log), log
    lines = [l for l in out.splitlines() if BUG in l]
    assert len(lines) == 1, out
    m = re.match(rf"lazy-pages: page server 127.0.0.1:{port} \(fault connection\): replies "
                 r"have waited unread for ([\d.]+) s \((\d+) bytes here\), (\d+) GET\(s\) out, "
                 r"the oldest GET task (\d+) 0x[0-9a-f]+ \(\d+ pages\): the daemon stopped "
                 r"reading the connection, a bug of the daemon, which fails rather than leave "
                 r"their pages undelivered$", lines[0])
    assert m and float(m.group(1)) >= 0.5 and int(m.group(2)) > 0, lines[0]
    assert int(m.group(3)) >= 1 and int(m.group(4)) in (100, 200), lines[0]
    expect_poisoned_not_zeros(procs, workdir, server, daemon, restore)


def test_forgotten_get_of_shared_memory(zdtm, tool, procs, workdir, monkeypatch):
    """Shared memory from a page server: the daemon forgets its first
    GET_SHMEM (CRIU_LAZY_TEST_DROP_SHMEM_REQUEST=1), whose pages stay in
    flight with nothing behind them.  The watchdog fails the daemon, the
    shared memory that did not come is poisoned: the root dies of SIGBUS
    at it, the tree never passes."""
    spec = ZdtmTest("shmem_lazy_share", ("--size", "1M"), label="shm-forgotten", tree=True,
                    defer_background=True)
    monkeypatch.setenv(DROP_SHMEM, "1")
    monkeypatch.setenv(GRACE, "500")
    mode = ServerKeepsTheImages(tool, procs, workdir)
    try:
        task = zdtm(spec)
        child = lazy.restore_shmem_pair(mode, task, procs)
        lazy.expect_shmem_tree_poisoned(procs, task, child, TIMEOUT)
        daemon = mode.daemons[0][1]
        assert daemon.wait_exit() == 1, daemon.text()
        mode.daemons = []
        log = daemon.log.read_text()
        assert re.search(rf"Warn : test hook {DROP_SHMEM}: request 1 \(shared memory \d+, "
                         r"0x[0-9a-f]+-0x[0-9a-f]+\) forgotten", log), log[-3000:]
        lines = [l for l in daemon.out.read_text().splitlines() if BUG in l]
        assert len(lines) == 1 and re.search(
            r"(a fault at 0x[0-9a-f]+ has waited [\d.]+ s for offset 0x[0-9a-f]+ of shared "
            r"memory \d+|shared memory \d+: offset 0x[0-9a-f]+ has been in flight for [\d.]+ "
            r"s), with no GET for it on an open connection to the page server", lines[0]), \
            daemon.text()
        assert re.search(r"pages of shared memory that can no longer arrive will raise SIGBUS",
                         log), log[-3000:]
        # the server waits for a daemon that may come back: ended by its pid
        server = mode.servers.pop()
        procs.kill(server.pid)
        assert not P.exists(daemon.pid) and not P.exists(server.pid)
    finally:
        mode.cleanup()


SPEC = ZdtmTest("mem_sigbus", ("--pages", "256"), defer_background=True)


def test_forgotten_read_of_the_images(zdtm, tool, workdir):
    """Pages from the images: the restored process's first fault is never
    served.  The daemon fails, the process dies of SIGBUS at that page (it
    has no handler yet; SIGSEGV if the page is its stack's: the kernel has
    nowhere to put the SIGBUS's frame) instead of waiting for ever or
    reading zeros."""
    task = zdtm(SPEC)
    imgdir = dump_good(tool, task, workdir, name="images")
    env = dict(os.environ, **{DROP: "1", GRACE: "500"})
    daemon = lazy.Daemon(task.procs, tool, ["lazy-pages", "-D", imgdir, "--no-background-fetch"],
                         workdir / "lazy-pages.log", workdir / "lazy-pages.out", "lazy-pages",
                         env=env)
    pidfile = workdir / "restore.pid"
    assert_ok(tool.restore(imgdir, workdir / "restore.log", TIMEOUT, pidfile=pidfile,
                           extra=["--lazy-pages"]), "restore --lazy-pages")
    task.expect_restored(pidfile)
    # it may sleep without a fault: its check surely faults
    os.kill(task.pid, signal.SIGTERM)

    assert daemon.wait_exit(TIMEOUT) == 1, daemon.text()
    out = daemon.out.read_text()
    pid, _, _ = watchdog_line(out, "no read of the images to come")
    assert pid == task.pid, out
    status = task.procs.reap(task.pid, TIMEOUT)
    # SIGSEGV when the page is its stack's: the SIGBUS has nowhere to go
    assert status is not None and os.WIFSIGNALED(status) and \
        os.WTERMSIG(status) in (signal.SIGBUS, signal.SIGSEGV), (
            P.wait_status_str(status), daemon.text())
    log = daemon.log.read_text()
    assert re.search(rf"Warn : task {task.pid}: [1-9][0-9]* pages that can no longer arrive "
                     r"will raise SIGBUS", log), log
    assert not P.exists(daemon.pid) and not P.exists(task.pid)
    if daemon.guardian:
        assert not P.exists(daemon.guardian), P.describe(daemon.guardian)


@pytest.mark.parametrize("case", ["server-stopped", "daemon-stopped-too", "server-killed",
                                  "daemon-stopped"])
def test_slow_is_not_a_bug(tool, procs, workdir, dirs, monkeypatch, case):
    """Faults wait for a page server stopped (SIGSTOP) for 1.5 s: their GETs
    are out on an open connection.  daemon-stopped-too: the daemon is
    stopped as well meanwhile.  server-killed: the stopped server is then
    killed and started again (--page-server-reconnect): the GETs the lost
    connections owed are asked for again.  daemon-stopped: the daemon alone
    is stopped for 1 s right after the faults, whose replies wait unread
    meanwhile (its first turn reads them).  With a grace of 0.1 s the
    watchdog says nothing, and every page arrives right."""
    src, dst = dirs
    port = free_port()
    wait_file = workdir / "go"
    server, name = start_page_server(tool, procs, workdir, src, port), "page-server"
    monkeypatch.setenv(GRACE, "100")
    daemon = start_daemon(tool, procs, workdir, dst, port,
                          extra=("--no-background-fetch", "--page-server-reconnect", "20"))
    restore = restore_standin(procs, workdir, dst, "--wait-file", wait_file)
    halves = [workdir / f"go.{pid}.half" for pid in (100, 200)]
    assert P.wait_for(lambda: all(h.exists() for h in halves), TIMEOUT), \
        output_of(workdir, "restore")

    alone = case == "daemon-stopped"
    if not alone:
        os.kill(server.pid, signal.SIGSTOP)
    try:
        if alone:
            wait_file.touch()	# the tasks fault, their GETs go out, the replies wait
            time.sleep(0.02)
            os.kill(daemon.pid, signal.SIGSTOP)
        else:
            wait_file.touch()	# the tasks fault, their GETs go unanswered
            time.sleep(0.5)
        if case == "daemon-stopped-too":
            os.kill(daemon.pid, signal.SIGSTOP)
        time.sleep(1.0)
        if case == "server-killed":
            procs.kill(server.pid)
            time.sleep(0.5)
            name = "page-server-again"
            server = start_page_server(tool, procs, workdir, src, port, name=name)
    finally:
        if procs.owns(server.pid):
            os.kill(server.pid, signal.SIGCONT)
        if case in ("daemon-stopped-too", "daemon-stopped"):
            os.kill(daemon.pid, signal.SIGCONT)

    assert exit_status(procs, restore) == "exit code 0", output_of(workdir, "restore")
    assert task_counts(workdir) == {100: (BIG + 20, 44, 0, 0), 200: (32, 0, 0, 0)}
    assert exit_status(procs, daemon) == "exit code 0", output_of(workdir, "lazy-pages")
    assert BUG not in output_of(workdir, "lazy-pages")
    if case == "server-killed":
        log = (workdir / "lazy-pages.log").read_text()
        m = re.findall(r"reconnected to page server .* (\d+) requests sent again", log)
        assert m and sum(map(int, m)) > 0, log
    assert exit_status(procs, server, 10) == "exit code 0", output_of(workdir, name)
