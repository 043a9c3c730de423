"""Lazy restore beyond the zdtm suite: who owns the userfaultfd, the page
counts, and what happens when something goes wrong.

Each test dumps a workload, starts a lazy-pages daemon (background delivery
deferred where the test needs pages to stay lazy), restores with
--lazy-pages, and checks one outcome.  Every process is ended by its pid.
"""
import os
import re
import signal
import time
from pathlib import Path

import pytest

from lib import images, lazy, procs as P
from lib.tool import assert_error_line, assert_ok
from lib.selfcheck import addr
from lib.zdtm import ZdtmTest

TIMEOUT = 60
WORKLOAD = ZdtmTest("mem_anon", ("--size", "64M"), label="64M", defer_background=True)


def dump(tool, task, imgdir, workdir):
    imgdir.mkdir()
    assert_ok(tool.dump(task.pid, imgdir, workdir / "dump.log", TIMEOUT), "dump")
    task.expect_gone()


def lazy_restore(tool, task, imgdir, workdir):
    pidfile = workdir / "restore.pid"
    res = tool.restore(imgdir, workdir / "restore.log", TIMEOUT, pidfile=pidfile,
                       extra=["--lazy-pages"])
    assert_ok(res, "restore --lazy-pages")
    task.expect_restored(pidfile)


def region_flags(pid):
    """VmFlags of every VMA of pid: {start: set(flags)}."""
    out, start = {}, None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        m = re.match(r"^([0-9a-f]+)-[0-9a-f]+ ", line)
        if m:
            start = int(m.group(1), 16)
        elif line.startswith("VmFlags:") and start is not None:
            out[start] = set(line.split(":", 1)[1].split())
    return out


uffd_fds = lazy.uffd_fds


@pytest.fixture
def restored(zdtm, tool, procs, workdir):
    """A 64 MiB workload restored lazily, its pages still lazy."""
    task = zdtm(WORKLOAD)
    imgdir = workdir / "images"
    dump(tool, task, imgdir, workdir)
    daemon = lazy.start_daemon(procs, tool, imgdir, workdir, "--no-background-fetch")
    lazy_restore(tool, task, imgdir, workdir)
    return task, daemon, imgdir


def test_uffd_belongs_to_the_restored_task(restored):
    task, daemon, imgdir = restored
    # The lazy VMAs of the task are registered with a userfaultfd: only a
    # uffd created by the task itself can register its memory.
    flags = region_flags(task.pid)
    registered = [s for s, f in flags.items() if "um" in f]
    assert registered, f"no VMA of task {task.pid} is registered with a userfaultfd"
    # The restore has exited; the daemon holds the uffd (once it read the
    # record: the restore does not wait for it), the task does not.
    assert P.wait_for(lambda: uffd_fds(daemon.pid), TIMEOUT), "the daemon holds no userfaultfd"
    assert not uffd_fds(task.pid), "the restored task kept its userfaultfd open"

    task.check_pass()
    daemon.expect_clean_exit()
    st = lazy.check_stats(imgdir, daemon.text())
    assert st["pages_fault"] > 0, "no page arrived by fault"
    assert st["faults"] > 0 and st["fault_latency_p99_us"] > 0
    out = daemon.out.read_text()
    assert re.search(r"latency p50 [0-9.]+ us, p99 [0-9.]+ us", out), out


def test_background_delivers_everything(zdtm, tool, procs, workdir):
    spec = ZdtmTest("mem_anon", ("--size", "64M"), label="64M")
    task = zdtm(spec)
    imgdir = workdir / "images"
    dump(tool, task, imgdir, workdir)
    daemon = lazy.start_daemon(procs, tool, imgdir, workdir)
    lazy_restore(tool, task, imgdir, workdir)
    # nothing touches the memory: the daemon must deliver it all by itself
    daemon.expect_clean_exit()
    st = lazy.check_stats(imgdir, daemon.text())
    assert st["pages_background"] > 0.9 * st["pages_lazy"], st
    assert not any("um" in f for f in region_flags(task.pid).values()), (
        "VMAs still registered with a userfaultfd after the daemon exited")
    task.check_pass()


def test_no_daemon(zdtm, tool, procs, workdir):
    task = zdtm(ZdtmTest("mem_anon", ("--size", "1M"), label="1M"))
    imgdir = workdir / "images"
    dump(tool, task, imgdir, workdir)
    res = tool.restore(imgdir, workdir / "restore.log", TIMEOUT,
                       pidfile=workdir / "restore.pid", extra=["--lazy-pages"])
    assert_error_line(res, "restore", r"lazy-pages")
    assert not P.exists(task.pid), f"restore left {P.describe(task.pid)}"
    assert not (workdir / "restore.pid").exists()


def test_second_daemon_refused(zdtm, tool, procs, workdir):
    task = zdtm(ZdtmTest("mem_anon", ("--size", "1M"), label="1M"))
    imgdir = workdir / "images"
    dump(tool, task, imgdir, workdir)
    first = lazy.start_daemon(procs, tool, imgdir, workdir)
    res = tool.run(["lazy-pages", "-D", imgdir], TIMEOUT)
    assert_error_line(res, "lazy-pages", r"another lazy-pages daemon")
    # the first one still serves: a restore through it works
    lazy_restore(tool, task, imgdir, workdir)
    first.expect_clean_exit()
    task.check_pass()


def test_task_exits_while_lazy(restored):
    task, daemon, imgdir = restored
    os.kill(task.pid, signal.SIGKILL)
    task.procs.reap(task.pid, TIMEOUT)
    daemon.expect_clean_exit()
    st = lazy.check_stats(imgdir, daemon.text())
    assert st["pages_dropped_exit"] > 0 and st["pages_dropped_event"] == 0, st


def test_daemon_stopped_poisons_what_is_left(restored):
    """SIGTERM to the daemon: it says so, exits non-zero, and the pages that
    can no longer arrive are poisoned: the task dies of SIGBUS when it
    touches one (or of SIGSEGV when the kernel cannot write the SIGTERM
    frame on its poisoned stack) and never reads zeros as its data."""
    task, daemon, imgdir = restored
    os.kill(daemon.pid, signal.SIGTERM)
    rc = daemon.wait_exit()
    assert rc != 0, "the daemon exited 0 although pages were left"
    assert re.search(r"stopped by signal", daemon.out.read_text()), daemon.text()
    status = task.stop()
    assert status is not None and os.WIFSIGNALED(status) and \
        os.WTERMSIG(status) in (signal.SIGBUS, signal.SIGSEGV), (
            f"the task ended with {P.wait_status_str(status)}, expected SIGBUS or SIGSEGV")
    assert not task.outfile.exists(), (
        f"the task ran its check on poisoned memory: {task.outfile.read_text()!r}")


# the guardian's line for a task (criu-lazy/lazy/guardian-poison.c)
GUARDIAN_LINE = (r"^lazy-pages: guardian: the lazy-pages daemon \(pid {daemon}\) died without "
                 r"ending its work: {who}: (\d+) missing pages poisoned \(SIGBUS when touched\)"
                 r"(; it has exited since)?$")


def test_daemon_killed_guardian_poisons(restored):
    """SIGKILL to the daemon: its guardian still holds the task's
    userfaultfd, so the registration stays; it poisons every missing page,
    says so in one line (pid, pages) on stderr and in the log, and exits 0.
    The task dies of SIGBUS when it touches one (SIGSEGV when the kernel
    cannot write the SIGTERM frame on its poisoned stack): it never reads
    zeros as its data, and it does not hang."""
    task, daemon, imgdir = restored
    kill_daemon_expect_poisoned(task, daemon)


def kill_daemon_expect_poisoned(task, daemon):
    assert daemon.guardian, f"the daemon has no guardian\n{daemon.text()}"
    # handed over by a message the guardian reads in its own time
    assert P.wait_for(lambda: uffd_fds(daemon.guardian), TIMEOUT), (
        "the guardian holds no userfaultfd")
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.wait_exit()
    assert daemon.guardian_status is not None and os.WIFEXITED(daemon.guardian_status) and \
        os.WEXITSTATUS(daemon.guardian_status) == 0, (
            f"the guardian ended with {P.wait_status_str(daemon.guardian_status)}\n"
            f"{daemon.text()}")
    line = re.compile(GUARDIAN_LINE.format(daemon=daemon.pid, who=f"task {task.pid}"))
    said = [m for l in daemon.out.read_text().splitlines() if (m := line.match(l))]
    assert len(said) == 1, f"expected one guardian line for task {task.pid}\n{daemon.text()}"
    # 64 MiB of lazy pages, none touched (no background delivery)
    assert int(said[0].group(1)) >= 16384, daemon.text()
    assert re.search(rf"guardian: the lazy-pages daemon .* task {task.pid}: ",
                     daemon.log.read_text()), "the guardian's line is not in the log"
    status = task.stop(timeout=TIMEOUT)
    assert status is not None and os.WIFSIGNALED(status) and \
        os.WTERMSIG(status) in (signal.SIGBUS, signal.SIGSEGV), (
            f"the task ended with {P.wait_status_str(status)}, expected SIGBUS or SIGSEGV")
    assert not task.outfile.exists(), (
        f"the task ran its check on poisoned memory: {task.outfile.read_text()!r}")


def test_normal_end_leaves_no_guardian(zdtm, tool, procs, workdir):
    """Every page delivered: the daemon tells its guardian to end and reaps
    it before it exits itself; while it runs, the guardian holds a copy of
    the task's userfaultfd and the task has none.  The keeper, which shares
    the daemon's fd table (its uffds are the daemon's), ends with the
    guardian and is reaped too: none is left."""
    task = zdtm(ZdtmTest("mem_anon", ("--size", "4M"), label="4M", defer_background=True))
    imgdir = workdir / "images"
    dump(tool, task, imgdir, workdir)
    daemon = lazy.start_daemon(procs, tool, imgdir, workdir, "--no-background-fetch")
    lazy_restore(tool, task, imgdir, workdir)
    assert daemon.guardian and P.ppid(daemon.guardian) == daemon.pid, daemon.text()
    assert P.wait_for(lambda: len(uffd_fds(daemon.guardian)) == 1, TIMEOUT), (
        "the guardian holds no copy of the uffd")
    assert not uffd_fds(task.pid)
    assert daemon.keeper and P.ppid(daemon.keeper) == daemon.pid, daemon.text()
    assert uffd_fds(daemon.keeper) == uffd_fds(daemon.pid), "the keeper's fd table is not shared"
    # the daemon's stop signals, which a process-group kill brings it too, are not its end
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        os.kill(daemon.keeper, sig)
    time.sleep(0.2)
    assert P.state(daemon.keeper) in ("S", "R"), P.describe(daemon.keeper)
    task.check_pass()
    daemon.expect_clean_exit()
    assert daemon.guardian_status is None, "the guardian outlived its daemon"
    assert not P.exists(daemon.guardian), P.describe(daemon.guardian)
    assert not P.exists(daemon.keeper), P.describe(daemon.keeper)
    assert "guardian: " not in daemon.out.read_text(), daemon.text()


def test_guardian_stopped_before_the_restore(zdtm, tool, procs, workdir):
    """The guardian accepts the restore's connection for the daemon, so
    that no SIGKILL of the daemon finds it in the daemon's hands alone
    (guardian-handshake.c).  Stopped (SIGSTOP), it leaves it in the
    backlog: after 1 s the daemon accepts it itself (one warning) and hands
    the guardian a copy, which it reads once continued; it then holds the
    task's uffd, and poisons the task when the daemon is SIGKILLed."""
    task = zdtm(WORKLOAD)
    imgdir = workdir / "images"
    dump(tool, task, imgdir, workdir)
    daemon = lazy.start_daemon(procs, tool, imgdir, workdir, "--no-background-fetch")
    assert daemon.guardian, f"the daemon has no guardian\n{daemon.text()}"
    os.kill(daemon.guardian, signal.SIGSTOP)
    try:
        lazy_restore(tool, task, imgdir, workdir)
        assert P.wait_for(lambda: re.search(
            rf"Warn : the guardian \(pid {daemon.guardian}\) did not take the restore's "
            r"connection: accepted here", daemon.log.read_text()), TIMEOUT), daemon.text()
    finally:
        os.kill(daemon.guardian, signal.SIGCONT)
    kill_daemon_expect_poisoned(task, daemon)


def test_guardian_killed_daemon_goes_on(restored):
    """SIGKILL to the guardian: the daemon warns once, reaps it and serves
    the task to the end, unguarded (its own copies keep the registrations:
    nothing changes for the task)."""
    task, daemon, imgdir = restored
    os.kill(daemon.guardian, signal.SIGKILL)
    assert P.wait_for(lambda: not P.exists(daemon.guardian), TIMEOUT), (
        "the daemon did not reap its killed guardian\n" + daemon.text())
    assert re.search(rf"guardian: pid {daemon.guardian} is gone: a SIGKILL of this daemon "
                     r"would now leave", daemon.log.read_text()), daemon.text()
    task.check_pass()
    daemon.expect_clean_exit()
    lazy.check_stats(imgdir, daemon.text())


def test_corrupted_pagemap(zdtm, tool, procs, workdir):
    task = zdtm(ZdtmTest("mem_anon", ("--size", "1M"), label="1M"))
    imgdir = workdir / "images"
    dump(tool, task, imgdir, workdir)
    pm = imgdir / f"pagemap-{task.pid}.img"
    data = bytearray(pm.read_bytes())
    data[-3:] = b"\xff\xff\xff"
    pm.write_bytes(bytes(data))
    daemon = lazy.start_daemon(procs, tool, imgdir, workdir)
    # the daemon reads a task's pagemap only when the restore hands it the
    # task; the restore reads it first and fails naming the file
    res = tool.restore(imgdir, workdir / "restore.log", TIMEOUT, extra=["--lazy-pages"])
    assert_error_line(res, "restore", rf"pagemap-{task.pid}\.img")
    assert not P.exists(task.pid)
    procs.kill(daemon.pid)


def test_daemon_stopped_before_the_restore(zdtm, tool, procs, workdir):
    """A stop request while the daemon waits for the restore: one line,
    non-zero exit, and no socket left behind in the images directory."""
    task = zdtm(ZdtmTest("mem_anon", ("--size", "1M"), label="1M"))
    imgdir = workdir / "images"
    dump(tool, task, imgdir, workdir)
    daemon = lazy.start_daemon(procs, tool, imgdir, workdir)
    assert (imgdir / "lazy-pages.socket").exists()
    os.kill(daemon.pid, signal.SIGTERM)
    rc = daemon.wait_exit(timeout=TIMEOUT)
    assert rc == 1, f"the daemon exited with {rc}\n{daemon.text()}"
    assert re.search(r"stopped by signal 15", daemon.out.read_text()), daemon.text()
    assert not (imgdir / "lazy-pages.socket").exists(), "the socket was left behind"


def test_pages_file_short(zdtm, tool, procs, workdir):
    """A pages file shorter than its pagemap says: the restore names both
    files before any task exists; the waiting daemon is ended by its pid."""
    task = zdtm(ZdtmTest("mem_anon", ("--size", "1M"), label="1M"))
    imgdir = workdir / "images"
    dump(tool, task, imgdir, workdir)
    pages = imgdir / "pages-1.img"
    os.truncate(pages, pages.stat().st_size - 8192)
    daemon = lazy.start_daemon(procs, tool, imgdir, workdir)
    res = tool.restore(imgdir, workdir / "restore.log", TIMEOUT, extra=["--lazy-pages"])
    assert_error_line(res, "restore", r"pages-1\.img")
    assert not P.exists(task.pid)
    procs.kill(daemon.pid)


def region_pages(imgdir, pid, start, end):
    """The pages of [start, end) that pagemap-PID.img of imgdir saves."""
    _, ents = images.pagemap_entries(imgdir / f"pagemap-{pid}.img")
    return {a for vaddr, n, _ in ents for a in range(vaddr, vaddr + n * 4096, 4096)
            if start <= a < end}


@pytest.mark.usefixtures("thp_as_host")	# THP `always` would fill the holes
def test_second_dump_of_lazy_task_keeps_holes(zdtm, tool, procs, workdir):
    """A task restored lazily, dumped again while most of its pages are
    still to come: the dump reads the pages through the daemon, and the
    pages never in the images (mem_anon leaves every 8th page untouched)
    must stay holes in the new images, as for an eagerly restored task;
    before, every page of the registered VMA was saved, holes as zeros."""
    npages = 1027
    task = zdtm(ZdtmTest("mem_anon", ("--size", f"{npages * 4}K"), label="odd",
                         defer_background=True))
    start = addr(task, r"region (0x[0-9a-f]+) size")
    end = start + npages * 4096
    first = workdir / "images"
    dump(tool, task, first, workdir)
    saved = region_pages(first, task.pid, start, end)
    assert len(saved) == npages - len(range(5, npages, 8)), len(saved)
    daemon = lazy.start_daemon(procs, tool, first, workdir, "--no-background-fetch")
    lazy_restore(tool, task, first, workdir)
    assert any("um" in f for f in region_flags(task.pid).values())
    second = workdir / "images-2"
    second.mkdir()
    assert_ok(tool.dump(task.pid, second, workdir / "dump-2.log", TIMEOUT,
                        extra=["--leave-running"]), "second dump")
    again = region_pages(second, task.pid, start, end)
    assert again == saved, (
        f"{len(again - saved)} pages saved that the first images do not have "
        f"(holes made zero pages?), {len(saved - again)} missing")
    task.check_pass()
    daemon.expect_clean_exit()
