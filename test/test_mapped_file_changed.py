"""A file a dumped task maps (its executable, a file it mmapped) that was
replaced or changed size since the dump: the restore refuses with one line
naming the file, both sizes (or both ELF build-ids, for a
binary rebuilt to the same size) and the task, in every mode, instead of
mapping the new file in the old one's place (the task would crash on it);
nothing is left behind, and with the file put back the restore works."""
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from lib import lazy
from lib import procs as P
from lib.badinput import (RESTORE_TIMEOUT, dump_good, expect_nothing_left,
                          restore_must_pass)
from lib.tool import assert_error_line, assert_ok
from lib.zdtm import ZdtmTest


@dataclass(frozen=True)
class CopiedTest(ZdtmTest):
    """A zdtm program run from a copy of its binary at `copy`."""
    copy: str = ""

    def binary(self):
        return Path(self.copy)


def start_daemon(tool, workdir, procs, imgdir, mode):
    if mode != "lazy":
        return None
    return lazy.Daemon(procs, tool, ["lazy-pages", "-D", imgdir], workdir / "lazy-pages.log",
                       workdir / "lazy-pages.out", "lazy-pages")


def restore(tool, workdir, imgdir, daemon, name):
    pidfile = workdir / f"{name}.pid"
    res = tool.restore(imgdir, workdir / f"restore-{name}.log", RESTORE_TIMEOUT,
                       pidfile=pidfile, extra=["--lazy-pages"] if daemon else [])
    return res, pidfile


def must_refuse(tool, workdir, imgdir, task, daemon, *patterns):
    """The restore fails before any task exists: the lazy-pages daemon,
    which the restore never reached, is left listening for the next one."""
    children = P.children_of_me()
    res, pidfile = restore(tool, workdir, imgdir, daemon, "bad")
    assert_error_line(res, "restore", *patterns)
    expect_nothing_left(task.pid, children, pidfile)
    if daemon:
        assert daemon.proc.poll() is None, daemon.text()


def must_pass(tool, workdir, imgdir, task, daemon, mode):
    res, pidfile = restore(tool, workdir, imgdir, daemon, "good")
    assert_ok(res, f"{mode} restore with the file put back (the control)")
    task.expect_restored(pidfile)
    task.check_pass()
    if daemon:
        daemon.expect_clean_exit()


@pytest.mark.parametrize("mode", ["eager", "lazy"])
def test_executable_replaced(mode, tool, zdtm, workdir, procs):
    """The program's binary, run from a copy, is replaced by another
    program's after the dump."""
    copy = workdir / "prog"
    original = ZdtmTest("mem_anon").binary()
    shutil.copy(original, copy)
    task = zdtm(CopiedTest("mem_anon", ("--size", "64K"), label="copied", copy=str(copy)))
    good = dump_good(tool, task, workdir)
    other = ZdtmTest("vdso").binary()
    old, new = original.stat().st_size, other.stat().st_size
    assert old != new, "the two programs should differ in size"
    shutil.copy(other, copy)
    daemon = start_daemon(tool, workdir, procs, good, mode)
    must_refuse(tool, workdir, good, task, daemon, rf"{copy}: size {new} differs "
                rf"from the dumped {old}", rf"exe of task {task.pid}\b")
    shutil.copy(original, copy)
    must_pass(tool, workdir, good, task, daemon, mode)


def dump_then_grow_mapped_file(tool, zdtm, workdir):
    """mmap_file_private dumped, then the file it maps grown by 4 bytes:
    the task, its images, the file and the file's bytes as dumped."""
    task = zdtm(ZdtmTest("mmap_file_private"))
    good = dump_good(tool, task, workdir)
    path = task.dir / "private.data"
    data = path.read_bytes()
    path.write_bytes(data + b"more")
    return task, good, path, data


@pytest.mark.parametrize("mode", ["eager", "lazy"])
def test_mapped_file_changed_size(mode, tool, zdtm, workdir, procs):
    """A file the task mmapped (and whose fds it closed) grew since the
    dump."""
    task, good, path, data = dump_then_grow_mapped_file(tool, zdtm, workdir)
    daemon = start_daemon(tool, workdir, procs, good, mode)
    must_refuse(tool, workdir, good, task, daemon, r"private\.data: size "
                rf"{len(data) + 4} differs from the dumped {len(data)}",
                rf"mapped at 0x[0-9a-f]+ of task {task.pid}\b")
    path.write_bytes(data)
    must_pass(tool, workdir, good, task, daemon, mode)


BUILD_ID_NOTE = b"\x04\x00\x00\x00\x14\x00\x00\x00\x03\x00\x00\x00GNU\x00"


@pytest.mark.parametrize("mode", ["eager", "lazy"])
def test_executable_same_size_other_build_id(mode, tool, zdtm, workdir, procs):
    """The copy is replaced by one of the same size whose build-id differs
    (a rebuild the size cannot tell): refused naming both build-ids."""
    copy = workdir / "prog"
    original = ZdtmTest("mem_anon").binary()
    data = original.read_bytes()
    at = data.find(BUILD_ID_NOTE)
    assert at >= 0, f"{original} has no GNU build-id note"
    at += len(BUILD_ID_NOTE)
    old = data[at:at + 20]
    new = bytes([old[0] ^ 0xff]) + old[1:]
    copy.write_bytes(data)
    copy.chmod(0o755)
    task = zdtm(CopiedTest("mem_anon", ("--size", "64K"), label="copied", copy=str(copy)))
    good = dump_good(tool, task, workdir)
    copy.write_bytes(data[:at] + new + data[at + 20:])
    daemon = start_daemon(tool, workdir, procs, good, mode)
    must_refuse(tool, workdir, good, task, daemon, rf"{copy}: build-id {new.hex()} differs "
                rf"from the dumped {old.hex()}", rf"exe of task {task.pid}\b")
    copy.write_bytes(data)
    must_pass(tool, workdir, good, task, daemon, mode)


HANDSHAKE_WAIT_S = 3


def test_daemon_gives_up_without_a_restore(tool, zdtm, workdir, procs):
    """A lazy restore refused before it reaches the daemon (a mapped file
    grew) leaves the daemon waiting for the restore to connect, as CRIU's
    does; but not for ever (CRIU's would): after the handshake timeout
    (CRIU_LAZY_HANDSHAKE_TIMEOUT, 120 s by default) it gives up in one
    line and exits 1, its socket and guardian gone.  A restore after that
    finds no daemon and fails in one line, leaving nothing."""
    task, good, path, data = dump_then_grow_mapped_file(tool, zdtm, workdir)
    started = time.monotonic()
    daemon = lazy.Daemon(procs, tool, ["lazy-pages", "-D", good], workdir / "lazy-pages.log",
                         workdir / "lazy-pages.out", "lazy-pages",
                         env=dict(os.environ, CRIU_LAZY_HANDSHAKE_TIMEOUT=str(HANDSHAKE_WAIT_S)))
    must_refuse(tool, workdir, good, task, daemon, r"private\.data: size ")
    rc = daemon.wait_exit(timeout=HANDSHAKE_WAIT_S + 60)
    waited = time.monotonic() - started
    assert rc == 1, f"the daemon exited with {rc}\n{daemon.text()}"
    assert waited >= HANDSHAKE_WAIT_S, f"the daemon gave up after {waited:.1f} s"
    said = [l for l in daemon.out.read_text().splitlines() if l.strip()]
    assert said == [f"lazy-pages: gave up waiting for the restore to connect after "
                    f"{HANDSHAKE_WAIT_S} s"], daemon.text()
    assert not (good / "lazy-pages.socket").exists(), "the socket was left behind"
    assert daemon.guardian is None or not P.exists(daemon.guardian), "the guardian was left"
    path.write_bytes(data)
    children = P.children_of_me()
    res, pidfile = restore(tool, workdir, good, True, "late")
    assert_error_line(res, "restore", r"no lazy-pages daemon at .*lazy-pages\.socket")
    expect_nothing_left(task.pid, children, pidfile)
