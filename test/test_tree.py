"""Process trees where things go wrong (issue 8, "Bad input and failures").

- A child of the tree holds something the restore can't bring back: the
  dump refuses with one line naming that child and the descriptor, and the
  whole tree runs on unharmed (no task stopped or traced; every child
  passes its own checks of pid, ppid, group, session and memory).
- A pid of the images is taken when the restore runs (here: a child of the
  tree still lives): one line naming the pid, exit 1, and no task of the
  half-built tree left behind.
"""
import os

import pytest

from lib import procs as P
from lib.tool import assert_error_line, assert_ok
from lib.zdtm import ZdtmTest

DUMP_TIMEOUT = 60
RESTORE_TIMEOUT = 60


def tree_is_free(pids):
    """No task of the tree is stopped or traced by anyone."""
    for pid in pids:
        st = P.state(pid)
        assert st is not None and st not in ("t", "T", "Z", "X"), (
            f"a task of the tree was harmed: {P.describe(pid)}")
        assert P.status_field(pid, "TracerPid") == "0", (
            f"a task of the tree was left traced: {P.describe(pid)}")


def test_dump_refuses_child_fd(tool, zdtm, workdir):
    task = zdtm(ZdtmTest("tree", ("--children", "2", "--bad-child"), label="bad-child"))
    kids = P.descendants(task.pid)
    assert len(kids) == 3, f"the tree should have 3 children, has {kids}"
    before = task.snapshot()
    imgdir = workdir / "images"
    imgdir.mkdir()
    res = tool.dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT)
    bad = kids[-1]
    assert_error_line(res, "dump", rf"\b{bad}\b", r"\b42\b", r"userfaultfd")
    task.expect_unharmed(before)
    tree_is_free(kids)
    assert not list(imgdir.iterdir()), f"a refused dump left images: {os.listdir(imgdir)}"
    task.check_pass()


def occupy_pid(procs, pid, tries=5):
    """A process of ours with exactly this pid (ns_last_pid; pids are
    global, so another test may take it first: a few tries)."""
    for _ in range(tries):
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(pid - 1))
        p = procs.spawn(["sleep", "60"])
        if p.pid == pid:
            return p
        procs.kill(p.pid)
    pytest.skip(f"could not get pid {pid} for a process of ours")


def test_restore_child_pid_taken(tool, zdtm, workdir, procs):
    task = zdtm(ZdtmTest("tree", ("--children", "2"), label="two-children"))
    imgdir = workdir / "images"
    imgdir.mkdir()
    task.note_tree()
    kids = list(task.tree)
    assert_ok(tool.dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT), "dump")
    task.expect_gone()
    squatter = occupy_pid(procs, kids[-1])
    children = P.children_of_me()
    pidfile = workdir / "bad.pid"
    res = tool.restore(imgdir, workdir / "restore.log", RESTORE_TIMEOUT, pidfile=pidfile)
    assert_error_line(res, "restore", rf"\b{kids[-1]}\b", r"in use")
    assert not P.exists(task.pid), f"the root was left behind: {P.describe(task.pid)}"
    assert P.children_of_me() == children, "the failed restore left processes behind"
    assert not pidfile.exists(), "a failed restore wrote its pidfile"
    procs.kill(squatter.pid)
