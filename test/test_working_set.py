"""The working set a lazy restore records (issue 11, point 1).

lazy_touch_order touches one page in each of 32 stretches of its region in
a fixed scattered order and nothing else of it; after the daemon exits,
DIR/working-set must list exactly those pages (by dump-time address, also
when the program moved its region with mremap first) in that order, with
the pages from the images or from a page server.  A
second restore of the same images replaces the file by rename and keeps
the list (union in first-seen order); a damaged file, or one recorded from
other images, is replaced;
--no-working-set writes nothing; crit and `criu-lazy show` ignore it.
"""
import os
import re
import shutil
import socket
import struct
import subprocess

import pytest

from lib import lazy
from lib.tool import assert_ok
from lib.zdtm import ZdtmTest

TIMEOUT = 60
PAGE = 4096
NTOUCH, STRIDE = 32, 32			# test/zdtm/lazy_touch_order.c
NAME = "working-set"
MAGIC, VERSION = 0x54455357, 1
FNV_OFFSET, FNV_PRIME = 0xcbf29ce484222325, 0x100000001b3


def touched(k):
    return ((k * 7 + 3) % NTOUCH) * STRIDE + k % 5


def fnv1a(data):
    h = FNV_OFFSET
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & 0xffffffffffffffff
    return h


def read_working_set(path):
    """{'identity', 'restores', 'procs': {pid: [(img, ms), ...]}}, checked."""
    data = path.read_bytes()
    assert len(data) >= 32, f"{path}: {len(data)} bytes, too short"
    (sum_,) = struct.unpack_from("<Q", data, len(data) - 8)
    assert fnv1a(data[:-8]) == sum_, f"{path}: checksum mismatch"
    magic, version, identity, restores, nr_procs = struct.unpack_from("<IIQII", data, 0)
    assert (magic, version) == (MAGIC, VERSION), (hex(magic), version)
    off, procs = 24, {}
    for _ in range(nr_procs):
        pid, n = struct.unpack_from("<iI", data, off)
        off += 8
        procs[pid] = [struct.unpack_from("<QI", data, off + 16 * i)[:2] for i in range(n)]
        off += 16 * n
    assert off == len(data) - 8, f"{path}: {len(data) - 8 - off} stray bytes"
    return {"identity": identity, "restores": restores, "procs": procs}


def region_of(task):
    m = re.search(r"region (0x[0-9a-f]+)", task.output.read_text())
    assert m, f"no region line in {task.output}"
    return int(m.group(1), 16)


def dump(tool, task, imgdir, workdir):
    imgdir.mkdir()
    assert_ok(tool.dump(task.pid, imgdir, workdir / "dump.log", TIMEOUT), "dump")
    task.expect_gone()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def restore_and_run(tool, procs, task, imgdir, workdir, run, *extra, remote=False):
    """One lazy restore of the images, the program's touches, the daemon's
    exit; with remote, the pages come from a page server on the images."""
    server = None
    if remote:
        port = free_port()
        server = lazy.Daemon(procs, tool, ["page-server", "-D", imgdir, "--address",
                                           "127.0.0.1", "--port", port, "--lazy-pages"],
                             workdir / f"page-server-{run}.log",
                             workdir / f"page-server-{run}.out", f"page-server {run}")
        extra = (*extra, "--page-server", "--address", "127.0.0.1", "--port", port)
    daemon = lazy.Daemon(procs, tool, ["lazy-pages", "-D", imgdir, "--no-background-fetch",
                                       *extra],
                         workdir / f"lazy-pages-{run}.log", workdir / f"lazy-pages-{run}.out",
                         f"lazy-pages {run}")
    pidfile = workdir / f"restore-{run}.pid"
    assert_ok(tool.restore(imgdir, workdir / f"restore-{run}.log", TIMEOUT, pidfile=pidfile,
                           extra=["--lazy-pages"]), "restore --lazy-pages")
    task.expect_restored(pidfile)
    task.check_pass()
    daemon.expect_clean_exit()
    if server:
        server.expect_clean_exit()
    lazy.check_stats(imgdir, daemon.text())
    return daemon


def expected_pages(region):
    return [region + touched(k) * PAGE for k in range(NTOUCH)]


def in_region(entries, region):
    return [img for img, _ in entries if region <= img < region + NTOUCH * STRIDE * PAGE]


@pytest.fixture
def dumped(zdtm, tool, workdir):
    def make(*args):
        task = zdtm(ZdtmTest("lazy_touch_order", args, defer_background=True))
        region = region_of(task)
        pid = task.ns_pid or task.pid
        imgdir = workdir / "images"
        dump(tool, task, imgdir, workdir)
        return task, region, pid, imgdir
    return make


@pytest.mark.parametrize("remote", [False, True], ids=["lazy", "remote-lazy"])
@pytest.mark.parametrize("args", [(), ("--mremap",)], ids=["in-place", "mremap"])
def test_records_the_touches_in_order(dumped, tool, procs, workdir, args, remote):
    task, region, pid, imgdir = dumped(*args)
    restore_and_run(tool, procs, task, imgdir, workdir, 1, remote=remote)
    ws = read_working_set(imgdir / NAME)
    assert ws["restores"] == 1
    assert list(ws["procs"]) == [pid], ws["procs"].keys()
    entries = ws["procs"][pid]
    # exactly the pages it touched, in its order, by dump-time address
    assert in_region(entries, region) == expected_pages(region), [hex(a) for a, _ in entries]
    assert len({a for a, _ in entries}) == len(entries), "a page recorded twice"
    times = [ms for _, ms in entries]
    assert times == sorted(times), times
    assert not (imgdir / f"{NAME}.tmp").exists()


def test_second_restore_refines_by_rename(dumped, tool, procs, workdir):
    task, region, pid, imgdir = dumped()
    # the program's log as dumped: the first run appends to it
    dumped_output = task.output.read_bytes()
    restore_and_run(tool, procs, task, imgdir, workdir, 1)
    first = read_working_set(imgdir / NAME)
    ino = os.stat(imgdir / NAME).st_ino
    task.output.write_bytes(dumped_output)
    restore_and_run(tool, procs, task, imgdir, workdir, 2)
    second = read_working_set(imgdir / NAME)
    assert os.stat(imgdir / NAME).st_ino != ino, "the file was rewritten in place, not renamed"
    assert second["restores"] == 2 and second["identity"] == first["identity"]
    # union in first-seen order: the first record stays as it was, in front
    old = first["procs"][pid]
    assert second["procs"][pid][:len(old)] == old
    assert in_region(second["procs"][pid], region) == expected_pages(region)
    assert not (imgdir / f"{NAME}.tmp").exists()


def test_damaged_file_is_replaced(dumped, tool, procs, workdir):
    task, region, pid, imgdir = dumped()
    (imgdir / NAME).write_bytes(b"WSET" + b"\x01" * 60)
    daemon = restore_and_run(tool, procs, task, imgdir, workdir, 1)
    ws = read_working_set(imgdir / NAME)
    assert ws["restores"] == 1
    assert in_region(ws["procs"][pid], region) == expected_pages(region)
    assert "replacing working-set: damaged" in daemon.log.read_text()


def test_no_working_set(dumped, tool, procs, workdir):
    task, region, pid, imgdir = dumped()
    restore_and_run(tool, procs, task, imgdir, workdir, 1, "--no-working-set")
    assert not (imgdir / NAME).exists()
    assert not (imgdir / f"{NAME}.tmp").exists()


def test_crit_and_show_ignore_it(dumped, tool, procs, workdir):
    task, region, pid, imgdir = dumped()
    restore_and_run(tool, procs, task, imgdir, workdir, 1)
    assert (imgdir / NAME).exists()
    res = tool.run(["show", imgdir], TIMEOUT)
    assert res.rc == 0 and NAME not in res.stdout + res.stderr, res
    crit = shutil.which("crit")
    if not crit:
        pytest.fail("crit is missing: scripts/setup installs it (Debian package criu)",
                    pytrace=False)
    for what in ("ps", "mems"):
        p = subprocess.run([crit, "x", str(imgdir), what], capture_output=True, timeout=TIMEOUT)
        assert p.returncode == 0, p.stderr.decode(errors="replace")


def test_record_of_other_images_is_replaced(dumped, tool, procs, workdir):
    """A well-formed file whose identity is not these images' is not merged."""
    task, region, pid, imgdir = dumped()
    dumped_output = task.output.read_bytes()
    restore_and_run(tool, procs, task, imgdir, workdir, 1)
    good = read_working_set(imgdir / NAME)
    stranger = 0x7000000000
    body = struct.pack("<IIQII", MAGIC, VERSION, good["identity"] ^ 1, 5, 1)
    body += struct.pack("<iI", pid, 1) + struct.pack("<QII", stranger, 0, 0)
    (imgdir / NAME).write_bytes(body + struct.pack("<Q", fnv1a(body)))
    task.output.write_bytes(dumped_output)
    daemon = restore_and_run(tool, procs, task, imgdir, workdir, 2)
    ws = read_working_set(imgdir / NAME)
    assert ws["identity"] == good["identity"] and ws["restores"] == 1
    assert stranger not in [a for a, _ in ws["procs"][pid]]
    assert in_region(ws["procs"][pid], region) == expected_pages(region)
    assert "replacing working-set: recorded from other images" in daemon.log.read_text()
