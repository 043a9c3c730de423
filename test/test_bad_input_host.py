"""Bad input from the restoring host: what the images need is taken or
changed there (the pid, a TCP or netlink port, a FIFO's path, a file's
size, the loginuid, an external unix peer): one line naming it, nothing left behind,
and the restore works once it is put right."""
import ctypes
import os
import re
import socket
import time

import pytest

from lib import procs as P
from lib.tool import Tool, assert_error_line, assert_ok
from lib.zdtm import ZdtmTest
from lib.badinput import (DUMP_TIMEOUT, RESTORE_TIMEOUT, WORKLOAD, dump_good,
                          dump_must_refuse, restore_must_fail, restore_must_pass)


def test_restore_pid_taken(tool, zdtm, workdir):
    """dump -R leaves the task running, so its pid is taken at restore."""
    task = zdtm(WORKLOAD)
    before = task.snapshot()
    imgdir = workdir / "images"
    imgdir.mkdir()
    assert_ok(tool.dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT,
                        extra=["-R"]), "dump -R")
    task.expect_unharmed(before)
    children = P.children_of_me()
    pidfile = workdir / "restore.pid"
    res = tool.restore(imgdir, workdir / "restore.log", RESTORE_TIMEOUT, pidfile=pidfile)
    assert_error_line(res, "restore", rf"\b{task.pid}\b")
    new = [c for c in P.children_of_me() if c not in children]
    assert not new, "processes were left behind:\n" + "\n".join(map(P.describe, new))
    assert not pidfile.exists(), "a failed restore wrote its pidfile"
    task.expect_unharmed(before)
    task.check_pass()


def test_ext_unix_sk_datagram(tool, zdtm, workdir):
    """A datagram socket connected to a socket of ours: refused without
    --ext-unix-sk at dump and at restore (one line each, nothing left
    behind), reconnected by name with it."""
    name = f"criu-lazy-test-extdg-{os.getpid()}-{time.monotonic_ns()}"
    outside = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        outside.bind("\0" + name)
        outside.settimeout(DUMP_TIMEOUT)
        task = zdtm(ZdtmTest("unsupported_fd", ("--kind", "unix-ext-dgram", "--peer", name),
                             label="unix-ext-dgram"))
        assert outside.recv(16) == b"ping"
        imgdir = dump_must_refuse(tool, task, workdir, r"\bfd 42\b", r"unix datagram socket",
                                  r"outside the dumped tree", r"--ext-unix-sk")
        res = tool.dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT,
                        extra=("--ext-unix-sk",))
        assert_ok(res, "dump --ext-unix-sk")
        task.expect_gone()
        restore_must_fail(tool, workdir, imgdir, task.pid, r"--ext-unix-sk",
                          rf"@{name}")
        pidfile = workdir / "good.pid"
        res = tool.restore(imgdir, workdir / "restore-good.log", RESTORE_TIMEOUT,
                           pidfile=pidfile, extra=("--ext-unix-sk",))
        assert_ok(res, "restore --ext-unix-sk")
        task.expect_restored(pidfile)
        task.check_pass()
        assert outside.recv(16) == b"pong", "the restored socket sends elsewhere"
    finally:
        outside.close()


def test_restore_port_taken(tool, zdtm, workdir):
    """The TCP listener's port is taken when the restore comes: one line
    naming the address and the port, nothing left; free again, it works."""
    task = zdtm(ZdtmTest("inet_sockets"))
    pidfd = os.pidfd_open(task.pid)
    try:
        fd = ctypes.CDLL(None, use_errno=True).syscall(438, pidfd, 20, 0)	# pidfd_getfd
        assert fd >= 0, "pidfd_getfd"
    finally:
        os.close(pidfd)
    with socket.socket(fileno=fd) as theirs:
        addr, port = theirs.getsockname()
    good = dump_good(tool, task, workdir)
    squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        squatter.bind((addr, port))
        squatter.listen(1)
        restore_must_fail(tool, workdir, good, task.pid, rf"{addr}:{port}",
                          r"address already in use", r"port is taken")
    finally:
        squatter.close()
    restore_must_pass(tool, workdir, task, good)


def test_restore_netlink_port_taken(tool, zdtm, workdir):
    """A netlink socket's port id is taken when the restore comes: one line
    naming the port, nothing left; free again, it works."""
    task = zdtm(ZdtmTest("netlink"))
    port = int(re.search(r"port22 (0x[0-9a-f]+)", task.output.read_text()).group(1), 16)
    good = dump_good(tool, task, workdir)
    squatter = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 2)	# NETLINK_USERSOCK
    try:
        squatter.bind((port, 0))
        restore_must_fail(tool, workdir, good, task.pid, rf"port {port}\b",
                          r"port id is taken")
    finally:
        squatter.close()
    restore_must_pass(tool, workdir, task, good)


def test_fifo_replaced_by_a_file(tool, zdtm, workdir):
    """The path of a dumped FIFO is a regular file at restore."""
    task = zdtm(ZdtmTest("fifo"))
    good = dump_good(tool, task, workdir)
    fifo = task.dir / "fifo.a"
    fifo.unlink()
    fifo.write_bytes(b"not a fifo")
    restore_must_fail(tool, workdir, good, task.pid, r"fifo\.a", r"not a FIFO")
    fifo.unlink()
    os.mkfifo(fifo, 0o600)
    restore_must_pass(tool, workdir, task, good)


@pytest.mark.parametrize("change", ["grown", "shrunk"])
def test_file_changed_size(change, tool, zdtm, workdir):
    """A regular file a dumped fd holds is longer or shorter at restore
    than it was at the dump: one line naming the file, both sizes and the
    fd, nothing left behind; with its size put back the restore works."""
    task = zdtm(ZdtmTest("files"))
    good = dump_good(tool, task, workdir)
    path = task.dir / "ro.data"
    data = path.read_bytes()
    path.write_bytes(data + b"more" if change == "grown" else data[:-1])
    size = len(data) + 4 if change == "grown" else len(data) - 1
    restore_must_fail(tool, workdir, good, task.pid, r"ro\.data",
                      rf"size {size} differs from the dumped {len(data)}", r"fd 10 of task")
    path.write_bytes(data)
    restore_must_pass(tool, workdir, task, good)


def test_loginuid_cannot_be_restored(tool, zdtm, workdir):
    """A task with loginuid 3 restored by a process whose own loginuid is
    set (5) and that lacks CAP_AUDIT_CONTROL: the kernel refuses to change
    it, so the restore must fail naming the loginuid, never go on with 5."""
    if not os.path.exists("/proc/self/loginuid"):
        pytest.skip("this kernel has no audit loginuid")
    task = zdtm(ZdtmTest("loginuid"))
    imgdir = workdir / "images"
    imgdir.mkdir()
    assert_ok(tool.dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT), "dump")
    task.expect_gone()
    limited = Tool(tool.binary, prefix=(
        "sh", "-c", 'echo 5 > /proc/self/loginuid && '
        'exec setpriv --bounding-set -audit_control -- "$0" "$@"'))
    restore_must_fail(limited, workdir, imgdir, task.pid, r"loginuid", r"\b3\b")
    restore_must_pass(tool, workdir, task, imgdir)
