"""Bad input gets one clear line, a non-zero exit, and nothing left behind.

Restore from damaged images: each case damages one thing in a copy of a
good dump, restore must fail with exactly one stderr line "restore: ..."
naming the file (or pid, or directory) at fault, leave no process behind,
and write no pidfile.  Then the undamaged copy must restore and PASS, so
the failure is known to come from the damage and not from the tool or the
dump being broken anyway.

Dump of what we cannot handle: a non-existent pid, and tasks holding a
socket, pipe, eventfd, ... or a seccomp filter with a user-space listener:
refused with a line naming
the fd (or thread) and its kind, and the task keeps running unharmed --
the same /proc state, not stopped, not traced -- and passes its own checks.
"""
import ctypes
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time

import pytest

from lib import images, procs as P
from lib.tool import Tool, assert_error_line, assert_ok
from lib.zdtm import REFUSED_FDS, REFUSED_KINDS, ZdtmTest

DUMP_TIMEOUT = 60
RESTORE_TIMEOUT = 60
WORKLOAD = ZdtmTest("mem_anon", ("--size", "256K"), label="256K")


# ------------------------------------------------------------------ helpers

def image_path(imgdir, key, pid):
    names = {
        "inventory": "inventory.img", "pstree": "pstree.img",
        "core": f"core-{pid}.img", "mm": f"mm-{pid}.img",
        "pagemap": f"pagemap-{pid}.img", "fs": f"fs-{pid}.img",
        "ids": f"ids-{pid}.img", "files": "files.img",
    }
    if key == "fdinfo":
        found = sorted(imgdir.glob("fdinfo-*.img"))
    elif key == "pages":
        found = sorted(imgdir.glob("pages-*.img"))
    else:
        found = [imgdir / names[key]] if (imgdir / names[key]).exists() else []
    assert len(found) == 1, (f"the dump should have written exactly one {key} image, "
                             f"found {[p.name for p in found]} in {sorted(os.listdir(imgdir))}")
    return found[0]


def expect_nothing_left(pid, children_before, pidfile):
    """No process with the dumped pid, no new child or adopted orphan."""
    for _ in range(2):	# now, and once more after stragglers had time to reparent
        assert not P.exists(pid), f"a task was left behind: {P.describe(pid)}"
        new = [c for c in P.children_of_me() if c not in children_before]
        assert not new, "processes were left behind:\n" + "\n".join(map(P.describe, new))
        time.sleep(0.2)
    assert not pidfile.exists(), f"a failed restore wrote its pidfile ({pidfile.read_text()!r})"


@pytest.fixture
def dumped(tool, zdtm, workdir):
    """A small task dumped (and so killed) into images-good."""
    task = zdtm(WORKLOAD)
    good = workdir / "images-good"
    good.mkdir()
    assert_ok(tool.dump(task.pid, good, workdir / "dump.log", DUMP_TIMEOUT), "dump")
    task.expect_gone()
    return task, good


def restore_must_fail(tool, workdir, imgdir, pid, *patterns):
    children = P.children_of_me()
    pidfile = workdir / "bad.pid"
    res = tool.restore(imgdir, workdir / "restore-bad.log", RESTORE_TIMEOUT, pidfile=pidfile)
    line = assert_error_line(res, "restore", *patterns)
    expect_nothing_left(pid, children, pidfile)
    return line


def restore_must_pass(tool, workdir, task, good):
    pidfile = workdir / "good.pid"
    res = tool.restore(good, workdir / "restore-good.log", RESTORE_TIMEOUT, pidfile=pidfile)
    assert_ok(res, "restore of the undamaged images (the control)")
    task.expect_restored(pidfile)
    task.check_pass()


def damaged_copy(good, workdir):
    bad = workdir / "images-bad"
    shutil.copytree(good, bad)
    return bad


# ------------------------------------------------------------------ damage

def cut_mid_record(img):
    r = img.records[-1]
    return img.data[:r.payload_offset + max(1, r.length // 2)] if r.length > 1 \
        else img.data[:r.offset + 2]


def cut_in_length(img):
    return img.data[:img.records[0].offset + 2]


def garbage_payload(img):
    r = img.records[0]
    n = min(r.length, 16)
    return img.data[:r.payload_offset] + b"\xff" * n + img.data[r.payload_offset + n:]


def length_past_eof(img):
    r = img.records[-1]
    return img.data[:r.offset] + struct.pack("<I", r.length + 4096) + img.data[r.offset + 4:]


def bad_magic(img):
    return bytes([img.data[0] ^ 0xff]) + img.data[1:]


DAMAGE = [
    *[("truncated", key, cut_mid_record) for key in
      ("inventory", "pstree", "core", "mm", "pagemap", "files", "fdinfo", "fs", "ids")],
    ("cut-length-prefix", "core", cut_in_length),
    ("cut-length-prefix", "mm", cut_in_length),
    *[("garbage-entry", key, garbage_payload) for key in
      ("inventory", "pstree", "core", "mm", "pagemap", "fdinfo")],
    ("length-past-eof", "mm", length_past_eof),
    ("length-past-eof", "pagemap", length_past_eof),
    *[("bad-magic", key, bad_magic) for key in ("inventory", "core", "mm", "pagemap")],
]


@pytest.mark.parametrize("what,key,damage", [pytest.param(*d, id=f"{d[0]}-{d[1]}")
                                             for d in DAMAGE])
def test_damaged_image(what, key, damage, dumped, tool, workdir):
    task, good = dumped
    bad = damaged_copy(good, workdir)
    path = image_path(bad, key, task.pid)
    path.write_bytes(damage(images.load(path)))
    restore_must_fail(tool, workdir, bad, task.pid, path.name.replace(".", r"\."))
    restore_must_pass(tool, workdir, task, good)


@pytest.mark.parametrize("key", ["inventory", "pstree", "core", "mm", "pagemap", "pages"])
def test_missing_image(key, dumped, tool, workdir):
    task, good = dumped
    bad = damaged_copy(good, workdir)
    path = image_path(bad, key, task.pid)
    path.unlink()
    restore_must_fail(tool, workdir, bad, task.pid, path.name.replace(".", r"\."))
    restore_must_pass(tool, workdir, task, good)


def replace_by_non_regular(path, kind):
    """A FIFO (a reader would wait for a writer for ever) or a symlink to
    /dev/zero (a reader would get zeros without end)."""
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path, 0o600)
    else:
        path.symlink_to("/dev/zero")


NON_REGULAR = ["fifo", "dev-zero"]


@pytest.mark.parametrize("kind", NON_REGULAR)
@pytest.mark.parametrize("key", ["inventory", "pstree", "core", "mm", "pagemap", "pages"])
def test_image_not_a_regular_file(key, kind, dumped, tool, workdir):
    task, good = dumped
    bad = damaged_copy(good, workdir)
    path = image_path(bad, key, task.pid)
    replace_by_non_regular(path, kind)
    # the tool's timeout (RESTORE_TIMEOUT) ends the test if the restore blocks
    restore_must_fail(tool, workdir, bad, task.pid, re.escape(path.name) + ": not a regular file")
    restore_must_pass(tool, workdir, task, good)


@pytest.mark.parametrize("kind", NON_REGULAR)
def test_show_and_daemon_refuse_non_regular_images(kind, dumped, tool, workdir):
    task, good = dumped
    bad = damaged_copy(good, workdir)
    for key in ("mm", "pages"):
        path = image_path(bad, key, task.pid)
        replace_by_non_regular(path, kind)
        res = tool.run(["show", path], 20)
        assert_error_line(res, "show", re.escape(path.name) + ": not a regular file")
    replace_by_non_regular(bad / "pstree.img", kind)
    res = tool.run(["lazy-pages", "-D", bad], 20)
    assert_error_line(res, "lazy-pages", r"pstree\.img: not a regular file")
    assert not (bad / "lazy-pages.socket").exists()


def test_pagemap_points_past_pages_file(dumped, tool, workdir):
    task, good = dumped
    bad = damaged_copy(good, workdir)
    pm = image_path(bad, "pagemap", task.pid)
    img = images.load(pm)
    # the last entry with data in the pages file claims 16 pages more
    for i in range(len(img.records) - 1, 0, -1):
        f = images.decode(img.payload(i))
        flags = images.get(f, 4)
        if not flags or flags[0] & images.PE_PRESENT:
            break
    else:
        pytest.fail("the pagemap has no entry with PE_PRESENT")
    nr = (images.get(f, 5) or images.get(f, 2))[0]
    field = 5 if images.get(f, 5) else 2
    pm.write_bytes(images.replace_record(img, i, images.encode(
        images.set_field(f, field, nr + 16))))
    restore_must_fail(tool, workdir, bad, task.pid, r"pagemap-\d+\.img|pages-\d+\.img")
    restore_must_pass(tool, workdir, task, good)


def test_pages_file_shorter_than_pagemap(dumped, tool, workdir):
    task, good = dumped
    bad = damaged_copy(good, workdir)
    pages = image_path(bad, "pages", task.pid)
    size = pages.stat().st_size
    assert size >= 4096, "the dump wrote no pages at all"
    os.truncate(pages, size - 4096)
    restore_must_fail(tool, workdir, bad, task.pid, r"pagemap-\d+\.img|pages-\d+\.img")
    restore_must_pass(tool, workdir, task, good)


def test_vma_end_before_start(dumped, tool, workdir):
    task, good = dumped
    bad = damaged_copy(good, workdir)
    mm = image_path(bad, "mm", task.pid)
    img = images.load(mm)
    f = images.decode(img.payload(0))
    vma = images.decode(images.get(f, 14)[0])
    start, end = images.get(vma, 1)[0], images.get(vma, 2)[0]
    vma = images.set_field(images.set_field(vma, 1, end), 2, start)
    f = images.set_field(f, 14, images.encode(vma))
    mm.write_bytes(images.replace_record(img, 0, images.encode(f)))
    restore_must_fail(tool, workdir, bad, task.pid, mm.name.replace(".", r"\."))
    restore_must_pass(tool, workdir, task, good)


def test_core_of_another_arch(dumped, tool, workdir):
    task, good = dumped
    bad = damaged_copy(good, workdir)
    core = image_path(bad, "core", task.pid)
    img = images.load(core)
    f = images.decode(img.payload(0))
    assert images.get(f, 1) == [1], "core_entry.mtype should be X86_64 (1)"
    core.write_bytes(images.replace_record(img, 0, images.encode(images.set_field(f, 1, 3))))
    restore_must_fail(tool, workdir, bad, task.pid, core.name.replace(".", r"\."))
    restore_must_pass(tool, workdir, task, good)


def test_pid_ns_of_its_own_but_not_init(dumped, tool, workdir):
    """ids-PID.img names a pid namespace other than inventory.root_ids' for
    a task that is not pid 1: only a namespace init can get a new one."""
    task, good = dumped
    bad = damaged_copy(good, workdir)
    ids = image_path(bad, "ids", task.pid)
    img = images.load(ids)
    f = images.decode(img.payload(0))
    pid_ns = images.get(f, 5)
    assert pid_ns, "ids_entry.pid_ns_id should be there"
    ids.write_bytes(images.replace_record(img, 0, images.encode(
        images.set_field(f, 5, pid_ns[0] + 100))))
    restore_must_fail(tool, workdir, bad, task.pid, ids.name.replace(".", r"\."),
                      r"pid namespace", r"init")
    restore_must_pass(tool, workdir, task, good)


def test_restore_empty_dir(dumped, tool, workdir):
    task, good = dumped
    empty = workdir / "images-empty"
    empty.mkdir()
    restore_must_fail(tool, workdir, empty, task.pid, r"inventory\.img")
    restore_must_pass(tool, workdir, task, good)


def test_restore_no_such_dir(dumped, tool, workdir):
    task, good = dumped
    missing = workdir / "no-such-dir"
    restore_must_fail(tool, workdir, missing, task.pid, r"no-such-dir")
    restore_must_pass(tool, workdir, task, good)


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


def free_pid():
    """A pid that existed a moment ago and does not now."""
    p = subprocess.Popen(["/bin/true"])
    p.wait(10)
    assert not P.exists(p.pid)
    return p.pid


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
    before = task.snapshot()
    imgdir = workdir / "images"
    imgdir.mkdir()
    res = tool.dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT)
    fds = "|".join(map(str, REFUSED_FDS))
    assert_error_line(res, "dump", rf"\b({fds})\b", REFUSED_KINDS[kind])
    task.expect_unharmed(before)
    task.check_pass()


def test_dump_refuses_mlock_onfault(tool, zdtm, workdir):
    """Memory locked on fault (mlock2 MLOCK_ONFAULT): the images have no
    bit for it (restored MAP_LOCKED, every page would be populated), so
    the dump refuses it, naming the mapping, and the task runs on."""
    task = zdtm(ZdtmTest("vma_flags", ("--state", "mlock-onfault"), label="mlock-onfault"))
    before = task.snapshot()
    imgdir = workdir / "images"
    imgdir.mkdir()
    res = tool.dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT)
    assert_error_line(res, "dump", rf"mapping [0-9a-f]+-[0-9a-f]+ .* of task {task.pid}",
                      r"MLOCK_ONFAULT")
    task.expect_unharmed(before)
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
            before = task.snapshot()
            imgdir = workdir / "images"
            imgdir.mkdir()
            res = tool.dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT)
            assert_error_line(res, "dump", r"\bfd 42\b", r"unix stream socket",
                              r"peer outside the dumped tree", r"--ext-unix-sk")
            task.expect_unharmed(before)
            conn.settimeout(DUMP_TIMEOUT)
            assert conn.recv(4) == b"ping"
            conn.sendall(b"pong")
            task.check_pass()
    finally:
        listener.close()


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
        before = task.snapshot()
        imgdir = workdir / "images"
        imgdir.mkdir()
        res = tool.dump(task.pid, imgdir, workdir / "dump-refused.log", DUMP_TIMEOUT)
        assert_error_line(res, "dump", r"\bfd 42\b", r"unix datagram socket",
                          r"outside the dumped tree", r"--ext-unix-sk")
        task.expect_unharmed(before)
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
    good = workdir / "images-good"
    good.mkdir()
    assert_ok(tool.dump(task.pid, good, workdir / "dump.log", DUMP_TIMEOUT), "dump")
    task.expect_gone()
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
    good = workdir / "images-good"
    good.mkdir()
    assert_ok(tool.dump(task.pid, good, workdir / "dump.log", DUMP_TIMEOUT), "dump")
    task.expect_gone()
    squatter = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 2)	# NETLINK_USERSOCK
    try:
        squatter.bind((port, 0))
        restore_must_fail(tool, workdir, good, task.pid, rf"port {port}\b",
                          r"port id is taken")
    finally:
        squatter.close()
    restore_must_pass(tool, workdir, task, good)


def test_dump_refuses_seccomp_user_notif(tool, zdtm, workdir):
    """A thread whose seccomp filter hands syscalls to a user-space listener
    (SECCOMP_RET_USER_NOTIF): refused by its tid, the tree left running."""
    task = zdtm(ZdtmTest("thread_seccomp", ("--user-notif",), label="user-notif"))
    tids = sorted(int(t) for t in os.listdir(f"/proc/{task.pid}/task"))
    assert len(tids) == 2, f"the seccomp test should have 2 threads, has {tids}"
    before = task.snapshot()
    imgdir = workdir / "images"
    imgdir.mkdir()
    res = tool.dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT)
    assert_error_line(res, "dump", rf"thread {tids[1]} of task {task.pid}",
                      r"seccomp filter .*user-space listener")
    task.expect_unharmed(before)
    assert sorted(int(t) for t in os.listdir(f"/proc/{task.pid}/task")) == tids
    assert not list(imgdir.iterdir()), "a refused dump left images"
    task.check_pass()


# ------------------------------------------------------------------ fd kinds

@pytest.fixture
def dumped_pipes(tool, zdtm, workdir):
    """The pipe program dumped into images-good: pipes-data.img has its pipes."""
    task = zdtm(ZdtmTest("pipe"))
    good = workdir / "images-good"
    good.mkdir()
    assert_ok(tool.dump(task.pid, good, workdir / "dump.log", DUMP_TIMEOUT), "dump")
    task.expect_gone()
    return task, good


def damage_pipe_data(bad, field, value):
    """Set pipe_data_entry field of the first pipe; the data stays as it is."""
    path = bad / "pipes-data.img"
    img = images.load_raw_following(path)
    f = images.set_field(images.decode(img.payload(0)), field, value)
    path.write_bytes(images.replace_record(img, 0, images.encode(f)))
    return path


def test_pipe_larger_than_pipe_max_size(dumped_pipes, tool, workdir):
    task, good = dumped_pipes
    bad = damaged_copy(good, workdir)
    damage_pipe_data(bad, 3, 4 << 20)
    restore_must_fail(tool, workdir, bad, task.pid, r"pipes-data\.img",
                      r"pipe-max-size")
    restore_must_pass(tool, workdir, task, good)


def test_pipe_data_more_than_its_size(dumped_pipes, tool, workdir):
    task, good = dumped_pipes
    bad = damaged_copy(good, workdir)
    damage_pipe_data(bad, 3, 4096)
    restore_must_fail(tool, workdir, bad, task.pid, r"pipes-data\.img", r"more than its size")
    restore_must_pass(tool, workdir, task, good)


def test_pipe_data_cut_short(dumped_pipes, tool, workdir):
    task, good = dumped_pipes
    bad = damaged_copy(good, workdir)
    path = bad / "pipes-data.img"
    img = images.load_raw_following(path)
    r = img.records[0]
    path.write_bytes(img.data[:r.end + 1000])
    restore_must_fail(tool, workdir, bad, task.pid, r"pipes-data\.img", r"cut short")
    restore_must_pass(tool, workdir, task, good)


def test_fifo_replaced_by_a_file(tool, zdtm, workdir):
    """The path of a dumped FIFO is a regular file at restore."""
    task = zdtm(ZdtmTest("fifo"))
    good = workdir / "images-good"
    good.mkdir()
    assert_ok(tool.dump(task.pid, good, workdir / "dump.log", DUMP_TIMEOUT), "dump")
    task.expect_gone()
    fifo = task.dir / "fifo.a"
    fifo.unlink()
    fifo.write_bytes(b"not a fifo")
    restore_must_fail(tool, workdir, good, task.pid, r"fifo\.a", r"not a FIFO")
    fifo.unlink()
    os.mkfifo(fifo, 0o600)
    restore_must_pass(tool, workdir, task, good)


def test_eventfd_counter_out_of_range(tool, zdtm, workdir):
    """files.img: an eventfd counter no eventfd can hold (2^64 - 1)."""
    task = zdtm(ZdtmTest("eventfd"))
    good = workdir / "images-good"
    good.mkdir()
    assert_ok(tool.dump(task.pid, good, workdir / "dump.log", DUMP_TIMEOUT), "dump")
    task.expect_gone()
    bad = damaged_copy(good, workdir)
    path = bad / "files.img"
    img = images.load(path)
    for i in range(len(img.records)):
        f = images.decode(img.payload(i))
        efd = images.get(f, 8)
        if efd:
            efd = images.set_field(images.decode(efd[0]), 4, 2**64 - 1)
            f = images.set_field(f, 8, images.encode(efd))
            path.write_bytes(images.replace_record(img, i, images.encode(f)))
            break
    else:
        pytest.fail("files.img of the eventfd program has no eventfd entry")
    restore_must_fail(tool, workdir, bad, task.pid, r"files\.img", r"eventfd", r"counter")
    restore_must_pass(tool, workdir, task, good)


def test_dump_refuses_epoll_watch_of_closed_fd(tool, zdtm, workdir):
    task = zdtm(ZdtmTest("epoll", ("--stale",), label="stale"))
    before = task.snapshot()
    imgdir = workdir / "images"
    imgdir.mkdir()
    res = tool.dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT)
    assert_error_line(res, "dump", r"\b30\b", r"epoll", r"\b40\b", r"closed")
    task.expect_unharmed(before)
    task.check_pass()


# ------------------------------------------------------------ task attributes

def test_membarrier_unknown_registration(dumped, tool, workdir):
    """task_core_entry.membarrier_registration_mask with a command we do not
    know how to register again: refused, naming the core image."""
    task, good = dumped
    bad = damaged_copy(good, workdir)
    core = image_path(bad, "core", task.pid)
    img = images.load(core)
    f = images.decode(img.payload(0))
    tc = images.decode(images.get(f, 3)[0])
    tc = [x for x in tc if x[0] != 22] + [(22, images.VARINT, 1 << 20)]
    f = images.set_field(f, 3, images.encode(tc))
    core.write_bytes(images.replace_record(img, 0, images.encode(f)))
    restore_must_fail(tool, workdir, bad, task.pid, core.name.replace(".", r"\."),
                      r"membarrier")
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


def test_posix_timer_notifies_foreign_thread(tool, zdtm, workdir):
    """A SIGEV_THREAD_ID timer whose thread is not one of the task's:
    refused before any task exists, naming the core image and the timer."""
    task = zdtm(ZdtmTest("posix_timers"))
    good = workdir / "images-good"
    good.mkdir()
    assert_ok(tool.dump(task.pid, good, workdir / "dump.log", DUMP_TIMEOUT), "dump")
    task.expect_gone()
    bad = damaged_copy(good, workdir)
    core = image_path(bad, "core", task.pid)
    img = images.load(core)
    f = images.decode(img.payload(0))
    tc = images.decode(images.get(f, 3)[0])
    timers = images.decode(images.get(tc, 7)[0])
    for n, posix in enumerate(images.get(timers, 4)):
        pt = images.decode(posix)
        if images.get(pt, 4) == [4]:		# SIGEV_THREAD_ID
            pt = images.set_field(pt, 11, task.ns_pid + 1000)
            timers = images.set_field(timers, 4, images.encode(pt), nth=n)
            break
    else:
        pytest.fail("the posix_timers program has no SIGEV_THREAD_ID timer in its core")
    tc = images.set_field(tc, 7, images.encode(timers))
    core.write_bytes(images.replace_record(img, 0, images.encode(images.set_field(
        f, 3, images.encode(tc)))))
    restore_must_fail(tool, workdir, bad, task.pid, core.name.replace(".", r"\."),
                      r"POSIX timer \d+", r"thread")
    restore_must_pass(tool, workdir, task, good)


@pytest.mark.parametrize("kind,why", [("outsider", r"not being dumped"),
                                      ("reaped", r"exited")])
def test_dump_refuses_pidfd(tool, zdtm, workdir, kind, why):
    """A pidfd of a process outside the tree, or of a child already reaped:
    the dump refuses naming the fd, and the tree keeps running."""
    task = zdtm(ZdtmTest("pidfd_child", (f"--{kind}",), label=kind, tree=True))
    before = task.snapshot()
    imgdir = workdir / "images"
    imgdir.mkdir()
    res = tool.dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT)
    assert_error_line(res, "dump", rf"fd 22 of task {task.pid}", r"pidfd", why)
    task.expect_unharmed(before)
    assert not list(imgdir.iterdir()), "a refused dump left images"
    task.check_pass()


def test_pidfd_of_another_task(tool, zdtm, workdir):
    """files.img: a pidfd naming a task that pstree.img does not list (a
    stranger that may have that pid here): refused before any task exists."""
    task = zdtm(ZdtmTest("pidfd"))
    good = workdir / "images-good"
    good.mkdir()
    assert_ok(tool.dump(task.pid, good, workdir / "dump.log", DUMP_TIMEOUT), "dump")
    task.expect_gone()
    bad = damaged_copy(good, workdir)
    path = bad / "files.img"
    img = images.load(path)
    for i in range(len(img.records)):
        f = images.decode(img.payload(i))
        pidfd = images.get(f, 22)
        if pidfd:
            pidfd = images.set_field(images.decode(pidfd[0]), 4, task.ns_pid + 1000)
            f = images.set_field(f, 22, images.encode(pidfd))
            path.write_bytes(images.replace_record(img, i, images.encode(f)))
            break
    else:
        pytest.fail("files.img of the pidfd program has no pidfd entry")
    restore_must_fail(tool, workdir, bad, task.pid, r"files\.img", r"pidfd",
                      rf"\b{task.ns_pid + 1000}\b")
    restore_must_pass(tool, workdir, task, good)


def test_dump_refuses_mdwe(tool, zdtm, workdir):
    """A process that denies itself write-execute memory (PR_SET_MDWE):
    the images cannot carry it, so the dump refuses and leaves it running."""
    task = zdtm(ZdtmTest("mem_anon", ("--size", "4K"), env=(("ZDTM_MDWE", "1"),),
                         label="mdwe"))
    before = task.snapshot()
    imgdir = workdir / "images"
    imgdir.mkdir()
    res = tool.dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT)
    assert_error_line(res, "dump", rf"\b{task.pid}\b", r"PR_SET_MDWE")
    task.expect_unharmed(before)
    task.check_pass()


def test_memfd_contents_missing(tool, zdtm, workdir):
    """The pagemap-shmem image of a memfd's contents is gone."""
    task = zdtm(ZdtmTest("memfd"))
    good = workdir / "images-good"
    good.mkdir()
    assert_ok(tool.dump(task.pid, good, workdir / "dump.log", DUMP_TIMEOUT), "dump")
    task.expect_gone()
    bad = damaged_copy(good, workdir)
    shmem = sorted(bad.glob("pagemap-shmem-*.img"))
    assert shmem, "the memfd program's dump has no pagemap-shmem image"
    shmem[0].unlink()
    restore_must_fail(tool, workdir, bad, task.pid, shmem[0].name.replace(".", r"\."))
    restore_must_pass(tool, workdir, task, good)
