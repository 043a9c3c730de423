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
import subprocess

import pytest

from lib.crit import need_crit
from lib.workingset import (NAME, TIMEOUT, dumped_touch_order, expected_pages, in_region,
                            read_working_set, restore_and_run, write_working_set)


@pytest.fixture
def dumped(zdtm, tool, workdir):
    def make(*args):
        return dumped_touch_order(zdtm, tool, workdir, args)
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
    assert "ignoring working-set: damaged" in daemon.log.read_text()


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
    crit = need_crit()
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
    write_working_set(imgdir / NAME, good["identity"] ^ 1, {pid: [stranger]}, restores=5)
    task.output.write_bytes(dumped_output)
    daemon = restore_and_run(tool, procs, task, imgdir, workdir, 2)
    ws = read_working_set(imgdir / NAME)
    assert ws["identity"] == good["identity"] and ws["restores"] == 1
    assert stranger not in [a for a, _ in ws["procs"][pid]]
    assert in_region(ws["procs"][pid], region) == expected_pages(region)
    assert "ignoring working-set: recorded from other images" in daemon.log.read_text()
