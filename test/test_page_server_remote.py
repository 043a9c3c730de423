"""The lazy-pages daemon with pages from a page server (remote-lazy), end
to end, before and apart from the real restore.

test_page_server_restore stands in for `restore --lazy-pages`: one child
per process of the images maps the lazy VMAs at their addresses, hands its
userfaultfd to the daemon, and after "restore finished" reads every page
and checks it against the dump (zeros where nothing was dumped).  The
daemon gets every image but the pages files, so all data crosses TCP.

Failure: when the page server dies mid-restore the daemon must say so,
exit non-zero, and leave the tasks a defined outcome: SIGBUS on exactly
the pages that can no longer arrive, never wrong data.
"""
import re

import pytest

from lib import procs as procs_mod
from lib.pageserver import (RESTORE_TOOL, SMALL_VMA, PAGE, OneConnectionServer,
                            daemon_images, free_port, output_of, start_daemon,
                            start_page_server, stop, write_images)
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
