"""The lazy-pages daemon with pages from a page server (remote-lazy), end
to end, before and apart from the real restore.

test_page_server_restore stands in for `restore --lazy-pages`: one child
per process of the images maps the lazy VMAs at their addresses, hands its
userfaultfd to the daemon, and after "restore finished" reads every page
and checks it against the dump (zeros where nothing was dumped).  The
daemon gets every image but the pages files, so all data crosses TCP.

Failure: when the page server dies mid-restore the daemon must say so,
exit non-zero, and leave the tasks a defined outcome: SIGBUS on exactly
the pages that can no longer arrive, never wrong data.  With
--page-server-reconnect it waits for the server to come back on the same
images, and gives up the same way when it does not, or comes back with
other pages.
"""
import json
import re
import time

import pytest

from lib import procs as procs_mod
from lib.pageserver import (RESTORE_TOOL, SMALL_VMA, PAGE, OneConnectionServer,
                            daemon_images, output_of, start_daemon, start_page_server, stop,
                            write_images)
from lib.ports import free_port
from lib.tool import assert_error_line

BIG = 4096
TIMEOUT = 60


def exit_status(procs, p, timeout=TIMEOUT):
    return procs_mod.wait_status_str(procs.reap(p.pid, timeout))


def restore_standin(procs, workdir, imgdir, *extra):
    return procs.spawn([RESTORE_TOOL, imgdir, *extra], stdout=workdir / "restore.output")


def task_counts(workdir):
    """{pid: (with data, zero, sigbus, wrong)} from the stand-in's output."""
    out = output_of(workdir, "restore")
    got = {}
    for m in re.finditer(r"task (\d+): (\d+) pages with data, (\d+) zero, (\d+) SIGBUS, "
                         r"(\d+) wrong", out):
        got[int(m.group(1))] = tuple(int(x) for x in m.groups()[1:])
    assert set(got) == {100, 200}, out
    return got


@pytest.fixture
def dirs(workdir):
    src = write_images(workdir / "images", BIG)
    return src, daemon_images(src, workdir / "images-daemon")


# task 100 with --churn: 50 pages discarded (zeros now), 10 unmapped, 100 moved
CHURNED = (BIG + 20 - 50 - 10, 44 + 50, 0, 0)


@pytest.mark.parametrize("background,churn", [(True, False), (False, False), (True, True)],
                         ids=["background", "faults-only", "events"])
def test_remote_lazy(tool, procs, workdir, dirs, background, churn):
    """Every page arrives right; with --churn the task discards, moves and
    unmaps memory while requests for it are in flight."""
    src, dst = dirs
    port = free_port()
    server = start_page_server(tool, procs, workdir, src, port)
    daemon = start_daemon(tool, procs, workdir, dst, port,
                          extra=() if background else ("--no-background-fetch",))
    restore = restore_standin(procs, workdir, dst, *(("--churn",) if churn else ()))

    assert exit_status(procs, restore) == "exit code 0", output_of(workdir, "restore")
    assert task_counts(workdir) == {100: CHURNED if churn else (BIG + 20, 44, 0, 0),
                                    200: (32, 0, 0, 0)}
    assert exit_status(procs, daemon) == "exit code 0", output_of(workdir, "lazy-pages")
    # both sessions ended with CLOSE: the server is done too
    assert exit_status(procs, server, 10) == "exit code 0", output_of(workdir, "page-server")
    log = (workdir / "lazy-pages.log").read_text()
    assert "fault and background connections" in log
    ps_log = (workdir / "page-server.log").read_text()
    assert ps_log.count("session ended (closed after CLOSE)") == 2, ps_log


def test_page_server_killed_mid_restore(tool, procs, workdir, dirs):
    src, dst = dirs
    port = free_port()
    wait_file = workdir / "go"
    server = start_page_server(tool, procs, workdir, src, port)
    daemon = start_daemon(tool, procs, workdir, dst, port, extra=("--no-background-fetch",))
    restore = restore_standin(procs, workdir, dst, "--wait-file", wait_file)

    halves = [workdir / f"go.{pid}.half" for pid in (100, 200)]
    assert procs_mod.wait_for(lambda: all(h.exists() for h in halves), TIMEOUT), \
        output_of(workdir, "restore")
    procs.kill(server.pid)

    assert exit_status(procs, daemon, 10) == "exit code 1", output_of(workdir, "lazy-pages")
    out = output_of(workdir, "lazy-pages")
    m = re.search(rf"lazy-pages: page server 127\.0\.0\.1:{port} (closed|reset) the "
                  r"connection with (\d+) pages still to deliver", out)
    assert m, out
    left = int(m.group(2))

    wait_file.touch()
    assert exit_status(procs, restore) == "exit code 0", output_of(workdir, "restore")
    counts = task_counts(workdir)
    assert all(c[3] == 0 for c in counts.values()), counts
    # every page that had not arrived raises SIGBUS, every other one is right
    assert sum(c[2] for c in counts.values()) == left > 0, (left, counts)
    assert sum(c[0] + c[2] for c in counts.values()) == BIG + 20 + 32


RECONNECT = ("--no-background-fetch", "--page-server-reconnect", "20")


def kill_server_at_half(procs, workdir, server):
    """The stand-in's tasks have read part of their pages: kill the server."""
    halves = [workdir / f"go.{pid}.half" for pid in (100, 200)]
    assert procs_mod.wait_for(lambda: all(h.exists() for h in halves), TIMEOUT), \
        output_of(workdir, "restore")
    procs.kill(server.pid)


@pytest.mark.parametrize("kills", [1, 2], ids=["once", "twice"])
def test_page_server_restarted_mid_restore(tool, procs, workdir, dirs, kills, monkeypatch):
    """--page-server-reconnect: the server is killed mid-restore while the
    tasks fault, and started again on the same images: the daemon checks
    the pages it had received, asks again for what the old one owed, and
    every page arrives right.  Twice: each loss has the whole time.  The
    watchdog's grace is 0.1 s (lazy-watchdog.c): what a lost connection
    owed is never an orphan, its reconnect asks for it again."""
    monkeypatch.setenv("CRIU_LAZY_WATCHDOG_MS", "100")
    src, dst = dirs
    port = free_port()
    wait_file = workdir / "go"
    server = start_page_server(tool, procs, workdir, src, port)
    daemon = start_daemon(tool, procs, workdir, dst, port,
                          extra=RECONNECT if kills == 1 else
                          ("--no-background-fetch", "--page-server-reconnect", "3"))
    restore = restore_standin(procs, workdir, dst, "--wait-file", wait_file)
    kill_server_at_half(procs, workdir, server)
    if kills == 2:
        # back, both connections reconnected, idle; then killed once more
        # after longer than the daemon's 3 s: a new loss, with its own time
        server = start_page_server(tool, procs, workdir, src, port, name="page-server-first")
        assert procs_mod.wait_for(lambda: (workdir / "lazy-pages.log").read_text().count(
            "reconnected to page server") == 2, TIMEOUT), output_of(workdir, "lazy-pages")
        time.sleep(3.5)
        procs.kill(server.pid)
    wait_file.touch()		# the tasks fault while no server is there
    time.sleep(1)
    again = start_page_server(tool, procs, workdir, src, port, name="page-server-again")

    assert exit_status(procs, restore) == "exit code 0", output_of(workdir, "restore")
    assert task_counts(workdir) == {100: (BIG + 20, 44, 0, 0), 200: (32, 0, 0, 0)}
    assert exit_status(procs, daemon) == "exit code 0", output_of(workdir, "lazy-pages")
    log = (workdir / "lazy-pages.log").read_text()
    m = re.search(rf"reconnected to page server 127\.0\.0\.1:{port} \((fault|background) "
                  r"connection\) after [\d.]+ s, (\d+) pages checked", log)
    assert m and int(m.group(2)) > 0, log
    stats = json.loads((dst / "lazy-pages-stats.json").read_text())
    assert stats["page_server_reconnects"] >= 2 * kills - 1 and stats["pages_lost"] == 0, stats
    assert exit_status(procs, again, 10) == "exit code 0", output_of(workdir, "page-server-again")


def other_pages(src, dst):
    """The same images, but every page file's data changed (each byte xor
    0x5a: translate() takes 0.03 s for the 16 MB, a byte loop 1 s)."""
    flip = bytes(b ^ 0x5a for b in range(256))
    dst.mkdir()
    for f in src.iterdir():
        data = f.read_bytes()
        if f.name.startswith("pages-"):
            data = data.translate(flip)
        (dst / f.name).write_bytes(data)
    return dst


@pytest.mark.parametrize("back", ["other-pages", "never"])
def test_page_server_not_back(tool, procs, workdir, dirs, back):
    """--page-server-reconnect refuses a server that comes back with other
    pages (a fingerprint of a page it served before differs), and gives up
    when none comes back in time: either way the daemon fails saying so,
    and every page that had not arrived raises SIGBUS, none is wrong."""
    src, dst = dirs
    port = free_port()
    wait_file = workdir / "go"
    # before the kill: the reconnect window is the daemon's, not the copy's
    # (which took 25 s of the 20 under a loaded full run)
    other = other_pages(src, workdir / "images-other") if back == "other-pages" else None
    server = start_page_server(tool, procs, workdir, src, port)
    window = "20" if back == "other-pages" else "2"
    daemon = start_daemon(tool, procs, workdir, dst, port,
                          extra=("--no-background-fetch", "--page-server-reconnect", window))
    restore = restore_standin(procs, workdir, dst, "--wait-file", wait_file)
    kill_server_at_half(procs, workdir, server)
    if other:
        server = start_page_server(tool, procs, workdir, other, port, name="page-server-other")

    assert exit_status(procs, daemon, 30) == "exit code 1", output_of(workdir, "lazy-pages")
    out = output_of(workdir, "lazy-pages")
    want = (r"came back with other data at task \d+ 0x[0-9a-f]+ than it served before"
            if back == "other-pages" else
            r": no (fault|background) connection that answers within the reconnect time, "
            r"with \d+ pages still to deliver")
    assert re.search(rf"lazy-pages: page server 127\.0\.0\.1:{port}\s?{want}", out), out
    assert not (dst / "lazy-pages-stats.json").exists()

    wait_file.touch()
    assert exit_status(procs, restore) == "exit code 0", output_of(workdir, "restore")
    counts = task_counts(workdir)
    assert all(c[3] == 0 for c in counts.values()), counts
    assert sum(c[2] for c in counts.values()) > 0, counts
    assert sum(c[0] + c[2] for c in counts.values()) == BIG + 20 + 32
    if back == "other-pages":
        stop(procs, server)


def test_reconnect_needs_page_server(tool, workdir, dirs):
    _, dst = dirs
    res = tool.run(["lazy-pages", "-D", dst, "--page-server-reconnect", "5"], timeout=20)
    assert_error_line(res, "lazy-pages", r"--page-server-reconnect needs --page-server")


@pytest.mark.parametrize("churn", [False, True], ids=["plain", "events"])
def test_one_connection_server(tool, procs, workdir, dirs, churn):
    """A server that takes one connection only, as CRIU's: everything
    shares it, and the restore still gets every page."""
    src, dst = dirs
    port = free_port()
    server = OneConnectionServer(port, BIG)
    server.start()
    daemon = start_daemon(tool, procs, workdir, dst, port)
    restore = restore_standin(procs, workdir, dst, *(("--churn",) if churn else ()))

    assert exit_status(procs, restore) == "exit code 0", output_of(workdir, "restore")
    assert task_counts(workdir) == {100: CHURNED if churn else (BIG + 20, 44, 0, 0),
                                    200: (32, 0, 0, 0)}
    assert exit_status(procs, daemon) == "exit code 0", output_of(workdir, "lazy-pages")
    server.join(10)
    assert not server.is_alive() and server.error is None and server.closed_ok, server.error
    log = (workdir / "lazy-pages.log").read_text()
    assert re.search(r"takes one connection only|refused a second connection", log), log


def test_server_drops_the_session(tool, procs, workdir):
    """The server cannot serve a GET (lazy pages without data) and closes:
    the daemon names the request it got no reply to."""
    src = write_images(workdir / "images", 256, lazy_not_present=True)
    dst = daemon_images(src, workdir / "images-daemon")
    port = free_port()
    server = start_page_server(tool, procs, workdir, src, port)
    daemon = start_daemon(tool, procs, workdir, dst, port)
    restore = restore_standin(procs, workdir, dst)

    assert exit_status(procs, daemon) == "exit code 1", output_of(workdir, "lazy-pages")
    out = output_of(workdir, "lazy-pages")
    assert re.search(rf"page server 127\.0\.0\.1:{port} closed the connection with \d+ pages "
                     rf"still to deliver \(no reply to GET task 100 {SMALL_VMA + 40 * PAGE:#x}",
                     out), out
    # the pages of that GET raise SIGBUS in the task; nothing reads wrong data
    assert exit_status(procs, restore) == "exit code 1", output_of(workdir, "restore")
    counts = task_counts(workdir)
    assert counts[100][2] > 0 and all(c[3] == 0 for c in counts.values()), counts
    stop(procs, server)


def test_server_keeps_dropping_the_session(tool, procs, workdir):
    """With --page-server-reconnect, a server that takes the connection
    again but drops it at the same GET each time does not keep the daemon
    going round forever: the time counts until a reply comes, and then the
    daemon fails as without the option."""
    src = write_images(workdir / "images", 256, lazy_not_present=True)
    dst = daemon_images(src, workdir / "images-daemon")
    port = free_port()
    server = start_page_server(tool, procs, workdir, src, port)
    t0 = time.monotonic()
    daemon = start_daemon(tool, procs, workdir, dst, port,
                          extra=("--page-server-reconnect", "3"))
    restore = restore_standin(procs, workdir, dst)

    assert exit_status(procs, daemon, 30) == "exit code 1", output_of(workdir, "lazy-pages")
    assert time.monotonic() - t0 < 20
    out = output_of(workdir, "lazy-pages")
    assert re.search(rf"lazy-pages: page server 127\.0\.0\.1:{port}: no (fault|background) "
                     r"connection that answers within the reconnect time, with \d+ pages still "
                     r"to deliver \(it closed again before any reply\)", out), out
    log = (workdir / "lazy-pages.log").read_text()
    assert log.count("reconnected to page server") >= 2, log
    assert exit_status(procs, restore) == "exit code 1", output_of(workdir, "restore")
    counts = task_counts(workdir)
    assert counts[100][2] > 0 and all(c[3] == 0 for c in counts.values()), counts
    stop(procs, server)


def test_no_page_server(tool, workdir, dirs):
    _, dst = dirs
    port = free_port()
    res = tool.run(["lazy-pages", "-D", dst, "--page-server", "--address", "127.0.0.1",
                    "--port", port], timeout=20)
    assert_error_line(res, "lazy-pages", rf"page server 127\.0\.0\.1:{port}", "refused")


def test_page_server_needs_address(tool, workdir, dirs):
    _, dst = dirs
    res = tool.run(["lazy-pages", "-D", dst, "--page-server", "--port", "1"], timeout=20)
    assert_error_line(res, "lazy-pages", r"--address")
