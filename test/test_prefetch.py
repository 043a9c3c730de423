"""Prefetch of the recorded working set (issue 11, points 2 and 4).

lazy_touch_order touches one page in each of 32 stretches of its region in
a fixed scattered order.  A first lazy restore records what it faulted on;
a second restore of the same images installs that record first: the
program finds every page it touches already there (it says how many were
present before its first touch), the daemon counts them as prefetched
with far fewer faults, and the program checks the contents of every page
it touched.  A record of other images and a damaged record are ignored with
exactly one warning line, and nothing is prefetched.  Each in lazy and
remote-lazy modes (pages from a page server on the images).
"""
import pytest

from lib import lazy
from lib.workingset import (NAME, NTOUCH, PAGE, STRIDE, dumped_touch_order, expected_pages,
                            in_region, present_before, read_working_set, restore_and_run,
                            warnings_about, write_working_set)

MODES = pytest.mark.parametrize("remote", [False, True], ids=["lazy", "remote-lazy"])


@pytest.fixture
def dumped(zdtm, tool, workdir):
    def make(*args):
        task, region, pid, imgdir = dumped_touch_order(zdtm, tool, workdir, args)
        # the program's log as dumped: each restore appends to it
        return task, region, pid, imgdir, task.output.read_bytes()
    return make


def proc_stats(imgdir, pid):
    st = lazy.read_stats(imgdir)
    (p,) = [p for p in st["processes"] if p["pid"] == pid]
    return st, p


@MODES
def test_record_then_prefetch(dumped, tool, procs, workdir, remote):
    task, region, pid, imgdir, as_dumped = dumped()
    first = restore_and_run(tool, procs, task, imgdir, workdir, 1, remote=remote)
    assert present_before(task) == 0, "pages present before the touches without a record"
    st1, p1 = proc_stats(imgdir, pid)
    assert st1["pages_prefetched"] == 0 and st1["faults_avoided"] == 0, st1
    record = read_working_set(imgdir / NAME)["procs"][pid]
    assert in_region(record, region) == expected_pages(region)
    assert not warnings_about(first), warnings_about(first)

    task.output.write_bytes(as_dumped)
    second = restore_and_run(tool, procs, task, imgdir, workdir, 2, remote=remote,
                             wait_installed=True)
    text = second.text()
    assert present_before(task) == NTOUCH, f"not every touched page was prefetched\n{text}"
    st2, p2 = proc_stats(imgdir, pid)
    # every page of the record is installed once: by prefetch, unless the task
    # faulted on it first (it runs before the daemon's loop starts: its stack,
    # never the region, whose pages it touches only after SIGTERM)
    missed = len(record) - p2["pages_prefetched"]
    assert 0 <= missed <= len(record) - NTOUCH, (len(record), p2, text)
    assert p2["prefetch_hits"] == (p2["pages_prefetched"] - p2["prefetch_late"]
                                   - p2["prefetch_filled"]), (p2, text)
    # each record page prefetched in time is a fault not taken, and no other
    assert p2["faults_avoided"] == p2["prefetch_hits"] >= NTOUCH, (p2, text)
    assert p2["faults"] <= p1["faults"] - NTOUCH, (
        f"faults: {p1['faults']} without the record, {p2['faults']} with it\n{text}")
    assert "prefetched" in second.out.read_text()
    # the record keeps its order: nothing of it faulted again
    after = read_working_set(imgdir / NAME)
    assert after["restores"] == 2 and after["procs"][pid][:len(record)] == record
    assert not warnings_about(second), warnings_about(second)


@MODES
def test_prefetch_races_the_tasks_mremap(dumped, tool, procs, workdir, remote):
    """The program moves its region while the record may still be going in:
    REMAP events between prefetch batches; every page arrives once, where it
    is now, with its dumped contents."""
    task, region, pid, imgdir, as_dumped = dumped("--mremap")
    restore_and_run(tool, procs, task, imgdir, workdir, 1, remote=remote)
    record = read_working_set(imgdir / NAME)["procs"][pid]
    task.output.write_bytes(as_dumped)
    second = restore_and_run(tool, procs, task, imgdir, workdir, 2, remote=remote)
    _, p2 = proc_stats(imgdir, pid)
    # installed by prefetch or, where the task came first, by its fault: once either way
    assert p2["pages_prefetched"] + p2["pages_fault"] >= len(record), (p2, second.text())
    assert p2["pages_prefetched"] > 0, (p2, second.text())


@MODES
def test_record_of_other_images_is_ignored(dumped, tool, procs, workdir, remote):
    task, region, pid, imgdir, _ = dumped()
    # a well-formed record of the same pid and pages, but of another dump
    write_working_set(imgdir / NAME, 0x1234, {pid: expected_pages(region)}, restores=3)
    daemon = restore_and_run(tool, procs, task, imgdir, workdir, 1, remote=remote)
    warned = warnings_about(daemon)
    assert len(warned) == 1 and "recorded from other images" in warned[0], warned
    assert present_before(task) == 0
    st, p = proc_stats(imgdir, pid)
    assert st["pages_prefetched"] == 0 and p["faults"] >= NTOUCH, st
    ws = read_working_set(imgdir / NAME)
    assert ws["restores"] == 1 and ws["identity"] != 0x1234


@MODES
@pytest.mark.parametrize("damage", ["flipped", "truncated"])
def test_damaged_record_is_ignored(dumped, tool, procs, workdir, remote, damage):
    task, region, pid, imgdir, as_dumped = dumped()
    restore_and_run(tool, procs, task, imgdir, workdir, 1, remote=remote)
    data = bytearray((imgdir / NAME).read_bytes())
    if damage == "flipped":
        data[40] ^= 0x10	# an address: only the checksum tells
    else:
        del data[-20:]
    (imgdir / NAME).write_bytes(bytes(data))
    task.output.write_bytes(as_dumped)
    daemon = restore_and_run(tool, procs, task, imgdir, workdir, 2, remote=remote)
    warned = warnings_about(daemon)
    assert len(warned) == 1 and "damaged" in warned[0], warned
    assert present_before(task) == 0
    st, _ = proc_stats(imgdir, pid)
    assert st["pages_prefetched"] == 0, st
    ws = read_working_set(imgdir / NAME)
    assert ws["restores"] == 1
    assert in_region(ws["procs"][pid], region) == expected_pages(region)


def test_no_working_set_does_not_prefetch(dumped, tool, procs, workdir):
    task, region, pid, imgdir, as_dumped = dumped()
    restore_and_run(tool, procs, task, imgdir, workdir, 1)
    before = (imgdir / NAME).read_bytes()
    task.output.write_bytes(as_dumped)
    restore_and_run(tool, procs, task, imgdir, workdir, 2, "--no-working-set")
    assert present_before(task) == 0
    st, _ = proc_stats(imgdir, pid)
    assert st["pages_prefetched"] == 0, st
    assert (imgdir / NAME).read_bytes() == before


@MODES
def test_prefetch_fills_short_gaps(dumped, tool, procs, workdir, remote):
    """A record of every third page of the region: the prefetch asks for
    runs that take the two pages between each pair with them (gaps of up to
    PF_GAP_PAGES), once each, counted in prefetch_filled; over a page server
    too, where a batch used to be cut to the few pages the window of GETs
    had room for and rarely joined two record pages."""
    task, region, pid, imgdir, as_dumped = dumped()
    restore_and_run(tool, procs, task, imgdir, workdir, 1, remote=remote)
    identity = read_working_set(imgdir / NAME)["identity"]
    npages = NTOUCH * STRIDE
    record = [region + i * PAGE for i in range(0, npages, 3)]
    gaps = 2 * (len(record) - 1)
    write_working_set(imgdir / NAME, identity, {pid: record})
    task.output.write_bytes(as_dumped)
    second = restore_and_run(tool, procs, task, imgdir, workdir, 2, remote=remote,
                             wait_installed=True)
    text = second.text()
    _, p = proc_stats(imgdir, pid)
    assert p["prefetch_hits"] == (p["pages_prefetched"] - p["prefetch_late"]
                                  - p["prefetch_filled"]), (p, text)
    # the record's pages the task did not fault on first, and the gaps between
    # them but a few where one batch ends and the next begins
    assert p["prefetch_filled"] <= gaps, (gaps, p, text)
    assert p["prefetch_filled"] >= gaps * 9 // 10, (
        f"{p['prefetch_filled']} of the {gaps} pages between record pages filled\n{text}")
    assert p["prefetch_hits"] + p["prefetch_late"] >= len(record) - NTOUCH, (p, text)
    assert present_before(task) == NTOUCH, text
