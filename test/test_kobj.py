"""Kernel objects whose restore has a limit or a flag (issue 9, point 4):
what a dump refuses, with one line naming the fd, and what it drops as
CRIU does.  The states that survive a checkpoint are the zdtm programs
inotify, fanotify, file_locks, pty (test_zdtm.py, every mode).
"""
import fcntl
import os
import re
import struct

import pytest

from lib import procs as P
from lib.badinput import dump_good, dump_must_refuse
from lib.tool import assert_error_line, assert_ok
from lib.zdtm import ZdtmTest

TIOCGPTN = 0x80045430
DUMP_TIMEOUT = 60
RESTORE_TIMEOUT = 60


def refused_dump(tool, task, workdir, *patterns):
    dump_must_refuse(tool, task, workdir, *patterns)
    task.check_pass()


def test_dump_refuses_inotify_watch_on_deleted_file(tool, zdtm, workdir):
    """A watch on a deleted file that only a process outside the tree
    keeps (here: the test): no ghost file carries it."""
    with open(workdir / "ify.gone", "w") as held:
        held.write("x")
        held.flush()
        task = zdtm(ZdtmTest("inotify", ("--deleted-outside",), label="deleted-outside"))
        refused_dump(tool, task, workdir, r"\b32\b", r"inotify watch 1", r"deleted",
                     r"ify\.gone", r"no process of the tree holds")


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


def test_dump_refuses_lock_without_flag(tool, zdtm, workdir):
    task = zdtm(ZdtmTest("file_locks", ("--unflagged",), label="unflagged"))
    refused_dump(tool, task, workdir, r"\b20\b", r"fl\.posix", r"POSIX write lock",
                 r"--file-locks")


@pytest.fixture
def locks_dumped(tool, zdtm, workdir):
    task = zdtm(ZdtmTest("file_locks", cr_opts=("--file-locks",)))
    return task, dump_good(tool, task, workdir, ("--file-locks",), name="images")


def restore_fails(tool, workdir, imgdir, pid, extra, *patterns):
    children = P.children_of_me()
    pidfile = workdir / "bad.pid"
    res = tool.restore(imgdir, workdir / "restore-bad.log", RESTORE_TIMEOUT, pidfile=pidfile,
                       extra=extra)
    assert_error_line(res, "restore", *patterns)
    assert not P.exists(pid), f"a task was left behind: {P.describe(pid)}"
    new = [c for c in P.children_of_me() if c not in children]
    assert not new, "processes were left behind:\n" + "\n".join(map(P.describe, new))
    assert not pidfile.exists()


def restore_passes(tool, workdir, task, imgdir):
    pidfile = workdir / "good.pid"
    assert_ok(tool.restore(imgdir, workdir / "restore.log", RESTORE_TIMEOUT, pidfile=pidfile,
                           extra=("--file-locks",)), "restore")
    task.expect_restored(pidfile)
    task.check_pass()


def test_restore_without_flag_refuses_locks(tool, workdir, locks_dumped):
    task, imgdir = locks_dumped
    restore_fails(tool, workdir, imgdir, task.pid, (), rf"\b{task.pid}\b", r"lock",
                  r"--file-locks")
    restore_passes(tool, workdir, task, imgdir)


def test_restore_meets_conflicting_lock(tool, workdir, locks_dumped):
    """Someone else took the write lock's bytes since the dump: the restore
    fails naming the lock, and leaves nothing behind."""
    task, imgdir = locks_dumped
    with open(workdir / "fl.posix", "r+b") as f:
        fcntl.lockf(f, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, 0)
        restore_fails(tool, workdir, imgdir, task.pid, ("--file-locks",),
                      r"POSIX write lock of fd 20", r"another process holds")
    restore_passes(tool, workdir, task, imgdir)


def test_dump_refuses_terminal_from_outside(tool, zdtm, workdir):
    """A pty slave whose master no process of the tree holds is a terminal
    from outside: without --shell-job the line names it and says why."""
    task = zdtm(ZdtmTest("pty", ("--outside",), label="outside"))
    refused_dump(tool, task, workdir, r"\b24\b", r"/dev/pts/\d+", r"did not open",
                 r"--shell-job")


def test_restore_pty_index_taken(tool, zdtm, workdir):
    """Another process took the pty's number since the dump: the restore
    fails naming the pty, and leaves nothing behind."""
    task = zdtm(ZdtmTest("pty"))
    imgdir = workdir / "images"
    imgdir.mkdir()
    index = int(re.search(r"pty (\d+), session",
                          (assert_ok(tool.dump(task.pid, imgdir, workdir / "dump.log",
                                               DUMP_TIMEOUT), "dump") or
                           (workdir / "dump.log").read_text())).group(1))
    task.expect_gone()
    held = []
    try:
        for _ in range(64):
            m, s = os.openpty()
            held += [m, s]
            got = struct.unpack("I", fcntl.ioctl(m, TIOCGPTN, b"\0" * 4))[0]
            if got >= index:
                break
        if got != index:
            pytest.skip(f"pty {index} went to someone else (we got {got})")
        restore_fails(tool, workdir, imgdir, task.pid, (), rf"pty {index}", r"taken")
    finally:
        for fd in held:
            os.close(fd)
    pidfile = workdir / "good.pid"
    assert_ok(tool.restore(imgdir, workdir / "restore.log", RESTORE_TIMEOUT, pidfile=pidfile),
              "restore")
    task.expect_restored(pidfile)
    task.check_pass()


def test_dump_refuses_ctty_without_descriptor(tool, zdtm, workdir):
    """A session leader whose controlling terminal is a pty of the tree but
    that holds no descriptor of it."""
    task = zdtm(ZdtmTest("pty", ("--child-nofd",), label="child-nofd"))
    refused_dump(tool, task, workdir, r"controlling terminal is /dev/pts/\d+",
                 r"holds no descriptor")
