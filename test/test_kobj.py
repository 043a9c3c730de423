"""Kernel objects whose restore has a limit or a flag (issue 9, point 4):
what a dump refuses, with one line naming the fd, and what it drops as
CRIU does.  The states that survive a checkpoint are the zdtm programs
inotify, fanotify, file_locks, pty (test_zdtm.py, every mode).
"""
from lib.tool import assert_error_line, assert_ok
from lib.zdtm import ZdtmTest

DUMP_TIMEOUT = 60
RESTORE_TIMEOUT = 60


def refused_dump(tool, task, workdir, *patterns):
    before = task.snapshot()
    imgdir = workdir / "images"
    imgdir.mkdir()
    res = tool.dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT)
    assert_error_line(res, "dump", *patterns)
    task.expect_unharmed(before)
    assert not list(imgdir.iterdir()), f"a refused dump left images: {list(imgdir.iterdir())}"
    task.check_pass()


def test_dump_refuses_inotify_watch_on_deleted_file(tool, zdtm, workdir):
    task = zdtm(ZdtmTest("inotify", ("--deleted",), label="deleted"))
    refused_dump(tool, task, workdir, r"\b32\b", r"inotify watch 1", r"deleted",
                 r"ify\.gone")


def test_inotify_queued_events_are_dropped(tool, zdtm, workdir):
    """An event still queued at dump is dropped, as CRIU drops it: the dump
    says so in its log, and the restored group has an empty queue."""
    task = zdtm(ZdtmTest("inotify", ("--queued",), label="queued"))
    imgdir = workdir / "images"
    imgdir.mkdir()
    res = tool.dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT)
    assert_ok(res, "dump")
    log = (workdir / "dump.log").read_text(errors="replace")
    assert "inotify events still queued are dropped" in log, log[-3000:]
    task.expect_gone()
    pidfile = workdir / "restore.pid"
    assert_ok(tool.restore(imgdir, workdir / "restore.log", RESTORE_TIMEOUT, pidfile=pidfile),
              "restore")
    task.expect_restored(pidfile)
    task.check_pass()


def test_dump_refuses_fanotify_filesystem_mark(tool, zdtm, workdir):
    """CRIU's image format has inode and mount marks only."""
    task = zdtm(ZdtmTest("fanotify", ("--sb",), label="sb"))
    refused_dump(tool, task, workdir, r"\b32\b", r"fanotify mark 1", r"filesystem mark")
