"""A dump that reads the data of connections not yet accepted (zdtm
unix_backlog: data and records waiting on a stream and a seqpacket
listener, a pipe in flight) into a file system that is too small.

The accepts that read that data cannot be undone, so the dump takes the
space of what they will write (files.img and sk-queues.img, the most the
waiting connections can hold) before it accepts anything.  Here the
images directory is a tmpfs the test mounts and sizes page by page: a
few pages short of what the dump needs, the dump fails on that reservation with
one line, no image is left and the tree runs on with every connection
still waiting, which the program then accepts, client by client, with its
data; given exactly what it needs, the dump succeeds, gives back what it
reserved and did not use, and the images restore; where the file system
has no fallocate (ramfs) the zeros that hold the space are cut off."""
import os
import re
import subprocess
from contextlib import contextmanager

import pytest

from lib.badinput import DUMP_TIMEOUT, RESTORE_TIMEOUT
from lib.tool import assert_error_line, assert_ok
from lib.zdtm import ZdtmTask, ZdtmTest

PAGE = 4096
RESERVE = r"can't reserve \d+ bytes"
# pages short of what a twin of the program left: a twin (--tree's child
# most) may leave a page or two more or less, and the reservation of
# sk-queues.img alone is over 20 pages, so this many short still fits
# every image but the reserved ones
SHORT = 8


@contextmanager
def tmpfs(path, pages):
    """A tmpfs of @pages pages at @path, unmounted on every path out."""
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={pages * PAGE},mode=0700",
                    "criu-lazy-test", str(path)], check=True, timeout=30)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True, timeout=30)


def resize(path, pages):
    subprocess.run(["mount", "-o", f"remount,size={pages * PAGE}", str(path)], check=True,
                   timeout=30)


def used_pages(path):
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize // PAGE


def pages_of_files(path):
    """The pages the files' sizes take: what a tmpfs holding them uses once
    nothing reserved past their ends is left."""
    return sum((p.stat().st_size + PAGE - 1) // PAGE for p in path.iterdir())


def start(spec, workdir, procs, name):
    """The program in a directory of its own (its sockets are bound to
    relative paths there)."""
    d = workdir / name
    d.mkdir()
    return ZdtmTask(spec, d, procs).start()


def measure(tool, spec, workdir, procs):
    """The pages a dump of a fresh copy of the program leaves in a tmpfs."""
    task = start(spec, workdir, procs, "measured")
    with tmpfs(workdir / "images-measure", 64 << 10) as imgdir:
        assert_ok(tool.dump(task.pid, imgdir, workdir / "dump-measure.log", DUMP_TIMEOUT),
                  "dump into a roomy tmpfs")
        task.expect_gone()
        return used_pages(imgdir)


def assert_matches(line, *patterns):
    for p in patterns:
        assert re.search(p, line, re.I), f"{p!r} not in {line!r}"


def refused_for_space(tool, task, imgdir, log, before):
    """A dump that fails cleanly: one line, no image left, the task as it
    was; the line."""
    res = tool.dump(task.pid, imgdir, log, DUMP_TIMEOUT)
    line = assert_error_line(res, "dump", r"no space left on device")
    assert "lost" not in line and "cannot be put back" not in line, line
    left = sorted(os.listdir(imgdir))
    assert not left, f"images left behind: {left}"
    task.expect_unharmed(before)
    return line


@pytest.mark.parametrize("variant", [(), ("--closed",), ("--tree",)],
                         ids=["plain", "closed", "tree"])
def test_dump_short_of_space_keeps_backlog(variant, tool, workdir, procs):
    """A few pages short of what the dump needs: it fails on the reservation,
    before any accept, and the program then accepts every connection,
    client by client, with the data, records, shutdown and file in flight
    they had (its own check)."""
    spec = ZdtmTest("unix_backlog", variant, label="space")
    need = measure(tool, spec, workdir, procs)
    task = start(spec, workdir, procs, "short")
    before = task.snapshot()
    with tmpfs(workdir / "images", need - SHORT) as imgdir:
        line = refused_for_space(tool, task, imgdir, workdir / "dump.log", before)
    assert_matches(line, RESERVE, r"not yet accepted")
    log = (workdir / "dump.log").read_text(errors="replace")
    assert "accepting its" not in log, "the dump accepted connections"
    task.check_pass()


def test_dump_that_fits_exactly(tool, workdir, procs):
    """The tmpfs grown a page at a time from a little short of what a twin
    of the program left: every dump that does not fit fails cleanly (the
    last of them on the reservation), the first that fits succeeds, and
    its images restore the program with every connection and its data."""
    spec = ZdtmTest("unix_backlog", (), label="space")
    need = measure(tool, spec, workdir, procs)
    task = start(spec, workdir, procs, "exact")
    before = task.snapshot()
    lines = []
    with tmpfs(workdir / "images", need - SHORT) as imgdir:
        for pages in range(need - SHORT, need + SHORT + 8):
            resize(imgdir, pages)
            log = workdir / f"dump-{pages}.log"
            res = tool.dump(task.pid, imgdir, log, DUMP_TIMEOUT)
            if res.rc == 0:
                break
            lines.append(refused_for_space(tool, task, imgdir, log, before))
        else:
            pytest.fail(f"no dump fit in up to {need + SHORT + 7} pages (a twin left {need}): "
                        f"{lines[-1]}")
        assert lines, f"the dump fit in {need - SHORT} pages, less than its twin left ({need})"
        assert_matches(lines[-1], RESERVE)
        assert "accepting its" in log.read_text(errors="replace")
        assert used_pages(imgdir) == pages_of_files(imgdir), "reserved space left behind"
        task.expect_gone()
        pidfile = workdir / "restore.pid"
        assert_ok(tool.restore(imgdir, workdir / "restore.log", RESTORE_TIMEOUT,
                               pidfile=pidfile), "restore of the images that fit exactly")
        task.expect_restored(pidfile)
    task.check_pass()


def test_dump_where_no_fallocate(tool, workdir, procs):
    """A file system without fallocate (ramfs): the space is taken by zeros
    written past the end instead, then cut at the end written, so the
    images hold nothing more than the records (the restore reads them to
    the end) and the program restores with every connection and its data."""
    spec = ZdtmTest("unix_backlog", ("--closed",), label="space")
    task = start(spec, workdir, procs, "ramfs")
    imgdir = workdir / "images"
    imgdir.mkdir()
    subprocess.run(["mount", "-t", "ramfs", "-o", "mode=0700", "criu-lazy-test", str(imgdir)],
                   check=True, timeout=30)
    try:
        assert_ok(tool.dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT),
                  "dump into a ramfs")
        task.expect_gone()
        assert "reserved" in (workdir / "dump.log").read_text(errors="replace")
        pidfile = workdir / "restore.pid"
        assert_ok(tool.restore(imgdir, workdir / "restore.log", RESTORE_TIMEOUT,
                               pidfile=pidfile), "restore from the ramfs")
        task.expect_restored(pidfile)
    finally:
        subprocess.run(["umount", str(imgdir)], check=True, timeout=30)
    task.check_pass()
