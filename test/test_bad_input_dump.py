"""Dump of what we cannot handle: a non-existent pid, a missing directory,
and tasks holding a socket, pipe, eventfd, ... or a seccomp filter with a
user-space listener: refused with a line naming the fd (or thread) and its
kind, and the task keeps running unharmed -- the same /proc state, not
stopped, not traced -- and passes its own checks.  And dump -s, which
leaves the task stopped."""
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from lib import procs as P
from lib.tool import Tool, assert_error_line, assert_ok
from lib.zdtm_catalogue import REFUSED_FDS, REFUSED_KINDS, ZdtmTest
from lib.badinput import DUMP_TIMEOUT, WORKLOAD, dump_must_refuse, free_pid, restore_must_pass
from lib.selfcheck import expect_fail


def test_dump_leave_stopped(tool, zdtm, workdir):
    """dump -s: the task is stopped for real (not traced) when the dump
    exits, and whole: continued, it is unharmed and passes its checks."""
    task = zdtm(WORKLOAD)
    before = task.snapshot()
    imgdir = workdir / "images"
    imgdir.mkdir()
    assert_ok(tool.dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT,
                        extra=["--leave-stopped"]), "dump -s")
    assert P.state(task.pid) == "T", f"not stopped: {P.describe(task.pid)}"
    assert P.status_field(task.pid, "TracerPid") == "0", "still traced"
    os.kill(task.pid, signal.SIGCONT)
    task.expect_unharmed(before)
    task.check_pass()


def test_dump_no_such_pid(tool, workdir):
    pid = free_pid()
    imgdir = workdir / "images"
    imgdir.mkdir()
    res = tool.dump(pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT)
    assert_error_line(res, "dump", rf"\b{pid}\b")
    assert not P.exists(pid)


def test_dump_into_missing_dir(tool, zdtm, workdir):
    task = zdtm(WORKLOAD)
    before = task.snapshot()
    res = tool.dump(task.pid, workdir / "no-such-dir", workdir / "dump.log", DUMP_TIMEOUT)
    assert_error_line(res, "dump", r"no-such-dir")
    task.expect_unharmed(before)
    task.check_pass()


@pytest.mark.parametrize("kind", list(REFUSED_KINDS))
def test_dump_refuses_fd(kind, tool, zdtm, workdir):
    task = zdtm(ZdtmTest("unsupported_fd", ("--kind", kind), label=kind))
    fds = "|".join(map(str, REFUSED_FDS))
    dump_must_refuse(tool, task, workdir, rf"\b({fds})\b", REFUSED_KINDS[kind])
    task.check_pass()


def test_dump_refuses_mlock_onfault(tool, zdtm, workdir):
    """Memory locked on fault (mlock2 MLOCK_ONFAULT): the images have no
    bit for it (restored MAP_LOCKED, every page would be populated), so
    the dump refuses it, naming the mapping, and the task runs on."""
    task = zdtm(ZdtmTest("vma_flags", ("--state", "mlock-onfault"), label="mlock-onfault"))
    dump_must_refuse(tool, task, workdir,
                     rf"mapping [0-9a-f]+-[0-9a-f]+ .* of task {task.pid}",
                     r"MLOCK_ONFAULT")
    task.check_pass()


def test_dump_refuses_external_unix_peer(tool, zdtm, workdir):
    """A unix socket connected to a listener of ours (outside the tree):
    refused, naming the fd, and the connection still works afterwards."""
    name = f"criu-lazy-test-ext-{os.getpid()}-{time.monotonic_ns()}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind("\0" + name)
        listener.listen(1)
        task = zdtm(ZdtmTest("unsupported_fd", ("--kind", "unix-ext", "--peer", name),
                             label="unix-ext"))
        listener.settimeout(DUMP_TIMEOUT)
        conn, _ = listener.accept()
        with conn:
            dump_must_refuse(tool, task, workdir, r"\bfd 42\b", r"unix stream socket",
                             r"peer outside the dumped tree", r"--ext-unix-sk")
            conn.settimeout(DUMP_TIMEOUT)
            assert conn.recv(4) == b"ping"
            conn.sendall(b"pong")
            task.check_pass()
    finally:
        listener.close()


def test_dump_refuses_seccomp_user_notif(tool, zdtm, workdir):
    """A thread whose seccomp filter hands syscalls to a user-space listener
    (SECCOMP_RET_USER_NOTIF): refused by its tid, the tree left running."""
    task = zdtm(ZdtmTest("thread_seccomp", ("--user-notif",), label="user-notif"))
    tids = sorted(int(t) for t in os.listdir(f"/proc/{task.pid}/task"))
    assert len(tids) == 2, f"the seccomp test should have 2 threads, has {tids}"
    dump_must_refuse(tool, task, workdir, rf"thread {tids[1]} of task {task.pid}",
                     r"seccomp filter .*user-space listener")
    assert sorted(int(t) for t in os.listdir(f"/proc/{task.pid}/task")) == tids
    task.check_pass()


def test_dump_refuses_epoll_watch_held_in_flight_only(tool, zdtm, workdir):
    """An epoll watching a file its process closed, which only a message in
    flight still holds: no descriptor of the tree to find it through."""
    task = zdtm(ZdtmTest("epoll", ("--in-flight",), label="in-flight"))
    dump_must_refuse(tool, task, workdir, r"fd 30 of task", r"epoll", r"\bfd 43\b",
                     r"in flight")
    task.check_pass()


@pytest.mark.parametrize("kind,why", [("outsider", r"not being dumped"),
                                      ("reaped", r"exited")])
def test_dump_refuses_pidfd(tool, zdtm, workdir, kind, why):
    """A pidfd of a process outside the tree, or of a child already reaped:
    the dump refuses naming the fd, and the tree keeps running."""
    task = zdtm(ZdtmTest("pidfd_child", (f"--{kind}",), label=kind, tree=True))
    dump_must_refuse(tool, task, workdir, rf"fd 22 of task {task.pid}", r"pidfd", why)
    task.check_pass()


def test_dump_refuses_mdwe(tool, zdtm, workdir):
    """A process that denies itself write-execute memory (PR_SET_MDWE):
    the images cannot carry it, so the dump refuses and leaves it running."""
    task = zdtm(ZdtmTest("mem_anon", ("--size", "4K"), env=(("ZDTM_MDWE", "1"),),
                         label="mdwe"))
    dump_must_refuse(tool, task, workdir, rf"\b{task.pid}\b", r"PR_SET_MDWE")
    task.check_pass()


@pytest.mark.parametrize("flag", ["--leave-running", "--leave-stopped"])
def test_dump_refuses_backlog_data_left_running(flag, tool, zdtm, workdir):
    """Data waiting in a connection a listener has not accepted yet: only
    accepting it reads it, which a tree that runs on after the dump must
    not see, so -R and -s refuse it (naming the client, the listener and
    the flag) and the task runs on with every connection still waiting."""
    task = zdtm(ZdtmTest("unix_backlog"))
    dump_must_refuse(tool, task, workdir, r"fd 21 of task", r"listening unix socket at fd 20",
                     r"not yet accepted", flag, extra=[flag])
    task.check_pass()


@pytest.mark.parametrize("flag", ["--leave-running", "--leave-stopped"])
def test_dump_refuses_backlog_closed_client_left_running(flag, tool, zdtm, workdir):
    """A connection not yet accepted whose client is closed, even one that
    sent nothing: the kernel shows no queue of it, only accepting it tells,
    so -R and -s refuse it (naming the listener and the flag) and the task
    runs on with every connection still waiting."""
    task = zdtm(ZdtmTest("unix_backlog", ("--closed", "--empty"), label="closed-empty"))
    dump_must_refuse(tool, task, workdir, r"fd 20 of task", r"whose client is closed", flag,
                     extra=[flag])
    task.check_pass()


def test_dump_refused_after_backlog_keeps_it(tool, zdtm, workdir):
    """A refusal met after the listener with data waiting in its backlog (a
    child's socket connected outside the tree, checked once every task is
    seen): the dump fails before it accepts anything, so the tree runs on
    with every connection still waiting, their data read by the program's
    own accept() after the dump."""
    name = f"criu-lazy-test-ext-{os.getpid()}-{time.monotonic_ns()}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind("\0" + name)
        listener.listen(1)
        task = zdtm(ZdtmTest("unix_backlog", ("--tree", "--ext-peer", name),
                             label="ext-peer"))
        listener.settimeout(DUMP_TIMEOUT)
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(DUMP_TIMEOUT)
            assert conn.recv(4) == b"ping"
            dump_must_refuse(tool, task, workdir, r"\bfd 40 of task",
                             r"peer outside the dumped tree")
            task.check_pass()
    finally:
        listener.close()


def test_dump_write_error_keeps_backlog(tool, zdtm, workdir):
    """An image that cannot be written (the directory is a tmpfs of 16 KiB:
    ENOSPC on the pages) with data waiting in connections not yet accepted:
    the accepts come after every other image, so the dump fails before
    them and the tree runs on with its connections and their data."""
    task = zdtm(ZdtmTest("unix_backlog", ("--tree",), label="tree"))
    before = task.snapshot()
    imgdir = workdir / "images"
    imgdir.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "criu-lazy-test", str(imgdir)],
                   check=True, timeout=30)
    try:
        res = tool.dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT)
        assert_error_line(res, "dump", r"no space left on device")
        assert "accepting" not in (workdir / "dump.log").read_text(errors="replace")
    finally:
        subprocess.run(["umount", str(imgdir)], check=True, timeout=30)
    task.expect_unharmed(before)
    task.check_pass()


def limited(nofile):
    """The tool run under RLIMIT_NOFILE @nofile ("soft:hard")."""
    return Tool(prefix=("prlimit", f"--nofile={nofile}", "--"))


@pytest.mark.parametrize("nofile", ["5:5", "6:6", "7:7"])
def test_dump_out_of_fds_leaves_the_task(nofile, zdtm, workdir):
    """The dump runs out of file descriptors of its own (a hard limit of a
    few): one line with the cause (EMFILE, not "task exited": a /proc file
    we could not open is no exit), and the task let go as it was, its
    registers and memory back (no scratch page of ours left)."""
    task = zdtm(WORKLOAD)
    before = task.snapshot()
    imgdir = workdir / "images"
    imgdir.mkdir()
    res = limited(nofile).dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT)
    line = assert_error_line(res, "dump", r"too many open files")
    assert "exited" not in line, line
    assert not os.listdir(imgdir), "images left behind"
    task.expect_unharmed(before)
    task.check_pass()


def test_dump_without_fds_for_backlog_keeps_it(zdtm, workdir):
    """Too few file descriptors for the dump to read what the connections
    not yet accepted carry (a message may hold 253 files in flight, each a
    descriptor of ours; a read cut short after the accept would lose the
    connections): refused before any accept, the tree runs on with them."""
    task = zdtm(ZdtmTest("unix_backlog", ("--closed",), label="closed"))
    before = task.snapshot()
    imgdir = workdir / "images"
    imgdir.mkdir()
    res = limited("64:64").dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT)
    assert_error_line(res, "dump", r"file descriptors free", r"RLIMIT_NOFILE",
                      r"not yet accepted", r"not accepting")
    assert "accepting its" not in (workdir / "dump.log").read_text(errors="replace")
    assert not os.listdir(imgdir), "images left behind"
    task.expect_unharmed(before)
    task.check_pass()


def dump_limited_then_restore(task, workdir, nofile, what):
    """A dump run under the descriptor limit nofile ("soft:hard") must
    succeed, and its images restore the task whole."""
    imgdir = workdir / "images"
    imgdir.mkdir()
    assert_ok(limited(nofile).dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT), what)
    task.expect_gone()
    restore_must_pass(Tool(), workdir, task, imgdir)


def test_dump_raises_its_fd_limit(zdtm, workdir):
    """A low soft limit of descriptors with room under the hard one: the
    dump raises it (as CRIU does) and reads the backlog."""
    task = zdtm(ZdtmTest("unix_backlog", ("--closed",), label="closed"))
    dump_limited_then_restore(task, workdir, "16:4096", "dump with a soft limit of 16 descriptors")


def test_dump_holds_one_copy_of_each_file_in_flight(zdtm, workdir):
    """Three closed clients each passed fd 27 (a pipe the program holds)
    in two messages of 200: 1200 passes, 400 in each connection, as many
    as the dump's descriptors, with room for the 269 it checks before the
    accepts.  Each message's files are resolved as it is read and our copy
    of a file a task holds (or of one met in flight before) closed, so the
    dump holds at most one message's passes: it succeeds and the program
    accepts every connection with its files.  (Holding them all, a read
    was cut, MSG_CTRUNC, after the accepts, and the connections lost.)"""
    task = zdtm(ZdtmTest("unix_backlog", ("--passes", "3"), label="passes"))
    dump_limited_then_restore(task, workdir, "400:400",
                              "dump with 400 descriptors of 1200 passes in flight")


def test_dump_files_img_unwritable_keeps_backlog(tool, zdtm, workdir):
    """files.img cannot be made (a directory is there), with data waiting
    in connections not yet accepted: files.img is opened, and its space
    taken, before the accepts, so the dump fails before them and the tree
    runs on with its connections and their data."""
    task = zdtm(ZdtmTest("unix_backlog", (), label="files-img-unwritable"))
    before = task.snapshot()
    imgdir = workdir / "images"
    imgdir.mkdir()
    (imgdir / "files.img").mkdir()
    res = tool.dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT)
    line = assert_error_line(res, "dump", r"files\.img", r"is a directory")
    assert "lost" not in line, line
    assert "accepting" not in (workdir / "dump.log").read_text(errors="replace")
    left = [p.name for p in imgdir.iterdir() if p.name != "files.img"]
    assert not left, f"images left behind: {left}"
    task.expect_unharmed(before)
    task.check_pass()


def test_dump_failing_after_backlog_accept_names_the_loss(tool, zdtm, workdir):
    """A failure after the dump accepted a listener's connections to read
    them: a client's connection carries an epoll fd in flight, which only
    the accept shows and the dump refuses.  A connection once accepted
    cannot be put back on its listener (the kernel queues on a listener
    only what connect() makes, and the client, connected to the end we
    accepted, cannot connect again: EISCONN), so the dump fails with one
    line: the cause, and the connections lost, each listener's named with
    its clients.  The refusal comes as soon as the connection that carries
    the file is read: the other listener's connections still wait.  The
    tree runs on, no image is left, and the program's own accept() then
    finds its connections gone."""
    task = zdtm(ZdtmTest("unix_backlog", ("--pass-epoll",), label="epoll-in-flight"))
    imgdir = workdir / "images"
    imgdir.mkdir()
    res = tool.dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT)
    stream = (r"the listening unix socket at fd 20 of task \d+: 4 \(fd 21 of task \d+, "
              r"fd 22 of task \d+, fd 23 of task \d+, fd 24 of task \d+\)")
    seqpacket = r"fd 30 of task \d+: 2 \(fd 31 of task \d+, fd 32 of task \d+\)"
    line = assert_error_line(res, "dump", r"epoll", r"cannot be put back", r"lost", stream)
    assert not re.search(seqpacket, line), line
    left = list(imgdir.iterdir())
    assert not left, f"images left behind: {left}"
    assert P.state(task.pid) in ("S", "R"), P.describe(task.pid)
    expect_fail(task, r"connection 1 \(fd 21\): nothing to accept on fd 20")
