"""A lazy-pages daemon that fails in the middle of the handshake
(Documentation/lazy-pages.md, "A handshake that fails part way").

The restore may have queued the uffds of the next processes on the
connection already: the daemon must take them before it exits and poison
their lazy pages, as it poisons those of the tasks it holds.  Dropped with
the connection, they would be unregistered and their tasks would read
zeros where their data was.  Our restore kills its tasks when the daemon
fails; a sender that does not (CRIU's restore, a stand-in) leaves them
running, so it plays the restore here: test_page_server_restore, whose
tasks 100 and 200 (of pstree.img, in that order) read every page of
their lazy VMAs once the daemon has gone.

The daemon is stopped (SIGSTOP) until both records are queued, so task
200's is in the connection when the daemon fails at task 100:
- "image": its pages file missing (the daemon's directory has every image
  but those), so the page source fails to take task 100;
- "twice": task 100's record sent twice, which the daemon refuses;
- "stopped": SIGTERM before it accepted the connection (the restore's
  connection waits in the backlog with both records): it takes both.
Each way: exit 1, the failure's line and one saying how many tasks'
pages were poisoned; every lazy page with data raises SIGBUS in both
tasks, none reads zeros or other data; nothing is left running.
Every process is ended by its pid; every wait has a timeout.
"""
import os
import re
import signal

import pytest

from lib import procs as P
from lib.pageserver import daemon_images, output_of, spawn_ready, write_images
from test_page_server_remote import BIG, exit_status, restore_standin, task_counts

TIMEOUT = 60
# the failure's line, the stand-in's extra arguments
FAILURES = {
    "image": (r"pages-\d+\.img: No such file or directory", ()),
    "twice": (r"the restore sent pid 100, which is not a process of pstree\.img or came twice",
              ("--twice",)),
    "stopped": (r"stopped by signal 15 \(Terminated\) while waiting for the restore to "
                r"connect", ()),
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_queued_tasks_are_poisoned(tool, procs, workdir, failure):
    want_error, standin_args = FAILURES[failure]
    src = write_images(workdir / "images", BIG)
    imgdir = daemon_images(src, workdir / "images-daemon") if failure == "image" else src
    children = P.children_of_me()
    daemon = spawn_ready(procs, workdir, "lazy-pages", [
        tool.binary, "lazy-pages", "-D", imgdir, "-v4", "-o", workdir / "lazy-pages.log"])
    os.kill(daemon.pid, signal.SIGSTOP)
    go = workdir / "go"
    try:
        restore = restore_standin(procs, workdir, imgdir, "--wait-file", go, "--first", "0",
                                  *standin_args)
        # each task's record is sent before its marker: both are queued
        halves = [workdir / f"go.{pid}.half" for pid in (100, 200)]
        assert P.wait_for(lambda: all(h.exists() for h in halves), TIMEOUT), \
            output_of(workdir, "restore")
        if failure == "stopped":
            os.kill(daemon.pid, signal.SIGTERM)
    finally:
        os.kill(daemon.pid, signal.SIGCONT)

    assert exit_status(procs, daemon) == "exit code 1", output_of(workdir, "lazy-pages")
    said = [l for l in output_of(workdir, "lazy-pages").splitlines() if l.strip()]
    assert len(said) == 2 and re.search(rf"^lazy-pages: .*{want_error}", said[0]), said
    assert said[1] == ("lazy-pages: the handshake failed with 2 task(s) handed over: the lazy "
                       "pages of 2 poisoned (SIGBUS where they are touched)"), said
    log = (workdir / "lazy-pages.log").read_text()
    for pid in (100, 200) if failure == "stopped" else (200,):
        assert re.search(rf"task {pid}: got uffd \d+ after the handshake failed", log), log

    go.touch()
    assert exit_status(procs, restore) == "exit code 0", output_of(workdir, "restore")
    # (with data, zeros, SIGBUS, wrong): the zeros are the pages never dumped
    assert task_counts(workdir) == {100: (0, 44, BIG + 20, 0), 200: (0, 0, 32, 0)}, \
        output_of(workdir, "restore")
    assert P.children_of_me() == children, "a process was left behind (the guardian?)"
