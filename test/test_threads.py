"""Threads: their images tell the truth, and broken thread images fail cleanly.

- The zdtm `thread` program (threads with state of their own) is dumped
  with -R: pstree.img lists every thread, leader first; each has its own
  core-TID.img (only the leader's with a task_core), decoded by Debian's
  crit, whose blocked mask, credentials, name, nice and fs_base are what
  /proc/PID/task/TID said just before the dump; the program keeps running
  and passes its checks.
- A restore whose images name a thread id that is taken, lack a thread's
  core, or give a thread a task_core fails with one line naming it, and
  leaves nothing behind; the undamaged images then restore and PASS.
"""
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from lib import images, procs as P
from lib.badinput import dump_good, restore_must_fail, restore_must_pass
from lib.crit import crit_decode
from lib.tool import assert_ok
from lib.zdtm import ZdtmTest

TIMEOUT = 60
THREADS = ZdtmTest("thread", ("--threads", "4"), label="4")


def task_status(pid, tid):
    out = {}
    with open(f"/proc/{pid}/task/{tid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    with open(f"/proc/{pid}/task/{tid}/comm") as f:
        out["comm"] = f.read().strip()
    with open(f"/proc/{pid}/task/{tid}/stat") as f:
        data = f.read()
    out["nice"] = int(data[data.rindex(")") + 2:].split()[16])
    return out


def tids_of(pid):
    return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))


def test_thread_images_with_crit(tool, zdtm, workdir):
    task = zdtm(THREADS)
    tids = tids_of(task.pid)
    assert len(tids) == 5, f"the thread test should have 5 threads, has {tids}"
    facts = {t: task_status(task.pid, t) for t in tids}
    imgdir = workdir / "images"
    imgdir.mkdir()
    assert_ok(tool.dump(task.pid, imgdir, workdir / "dump.log", TIMEOUT, ("-R",)), "dump -R")

    (tree,) = crit_decode(imgdir / "pstree.img")["entries"]
    assert tree["pid"] == task.pid
    assert tree["threads"][0] == task.pid, "the leader comes first in pstree threads"
    assert sorted(tree["threads"]) == tids, "pstree threads are the task's threads"
    fs_bases = set()
    for tid in tids:
        (core,) = crit_decode(imgdir / f"core-{tid}.img")["entries"]
        st, th = facts[tid], core["thread_core"]
        blk = int(st["SigBlk"], 16)
        if tid == task.pid:
            assert "tc" in core, "the leader's core has the task state"
            # in sigsuspend (test_waitsig): /proc shows the temporary mask,
            # the image may hold the one sigsuspend restores (SIGTERM added)
            assert int(str(core["tc"]["blk_sigset"]), 0) in (blk, blk | 1 << 14), (
                f"thread {tid}: blocked mask")
        else:
            assert "tc" not in core, f"core-{tid}.img: a thread's core has no task state"
            assert int(str(th["blk_sigset"]), 0) == blk, f"thread {tid}: blocked mask"
        assert th["comm"] == st["comm"], f"thread {tid}: name"
        assert th["sched_nice"] == st["nice"], f"thread {tid}: nice"
        uid, gid = (list(map(int, st[k].split())) for k in ("Uid", "Gid"))
        cr = th["creds"]
        assert [cr["uid"], cr["euid"], cr["suid"], cr["fsuid"]] == uid, f"thread {tid}: uids"
        assert [cr["gid"], cr["egid"], cr["sgid"], cr["fsgid"]] == gid, f"thread {tid}: gids"
        eff = int(st["CapEff"], 16)
        assert [int(str(w), 0) for w in cr["cap_eff"]] == [eff & 0xffffffff, eff >> 32], (
            f"thread {tid}: effective capabilities")
        assert th["futex_rla"] != 0 and th["futex_rla_len"] == 24, f"thread {tid}: robust list"
        assert core["thread_info"]["clear_tid_addr"] != 0, f"thread {tid}: clear_child_tid"
        fs_bases.add(int(str(core["thread_info"]["gpregs"]["fs_base"]), 0))
    assert len(fs_bases) == len(tids), "every thread has a TLS of its own (fs_base)"
    # the source kept running through the dump
    assert tids_of(task.pid) == tids
    task.check_pass()


def test_dump_frees_every_thread_id_before_it_returns(tool, zdtm, workdir):
    """A dump that kills its task returns only once every thread of it is
    released: a restore started right after it (a script's dump && restore)
    finds every tid free, round after round."""
    task = zdtm(ZdtmTest("thread", ("--threads", "48"), label="48"))
    tids = tids_of(task.pid)
    assert len(tids) == 49, f"48 threads and the leader expected, found {tids}"
    for n in range(1, 6):
        imgdir = workdir / f"images-{n}"
        imgdir.mkdir()
        assert_ok(tool.dump(task.pid, imgdir, workdir / f"dump-{n}.log", TIMEOUT),
                  f"dump {n}")
        # the leader waits for us (its parent) to reap it; its threads may not
        held = [P.describe(t) for t in tids if t != task.pid and P.exists(t)]
        assert not held, f"dump {n} returned with threads of the task still there: {held}"
        task.expect_gone()
        pidfile = workdir / f"restore-{n}.pid"
        assert_ok(tool.restore(imgdir, workdir / f"restore-{n}.log", TIMEOUT,
                               pidfile=pidfile), f"restore {n}")
        task.expect_restored(pidfile)
        assert tids_of(task.pid) == tids, f"restore {n}: not the dumped thread ids"
    task.check_pass()


# ------------------------------------------------------------ broken images

@pytest.fixture
def dumped_threads(tool, zdtm, workdir):
    task = zdtm(ZdtmTest("thread", ("--threads", "2"), label="2"))
    tids = tids_of(task.pid)
    return task, dump_good(tool, task, workdir), [t for t in tids if t != task.pid]


def rename_thread(bad, old, new):
    """pstree.img and the core file say thread `old` is `new`."""
    images.edit_record(bad / "pstree.img", lambda f: images.set_field(
        f, 5, new, images.get(f, 5).index(old)))
    os.rename(bad / f"core-{old}.img", bad / f"core-{new}.img")


def test_thread_id_in_use(tool, workdir, dumped_threads):
    task, good, (tid, *_) = dumped_threads
    bad = workdir / "images-bad"
    shutil.copytree(good, bad)
    busy = os.getpid()
    rename_thread(bad, tid, busy)
    restore_must_fail(tool, workdir, bad, task.pid, rf"thread id {busy}\b", r"in use")
    restore_must_pass(tool, workdir, task, good)


def test_thread_core_missing(tool, workdir, dumped_threads):
    task, good, (tid, *_) = dumped_threads
    bad = workdir / "images-bad"
    shutil.copytree(good, bad)
    os.unlink(bad / f"core-{tid}.img")
    restore_must_fail(tool, workdir, bad, task.pid, rf"core-{tid}\.img")
    restore_must_pass(tool, workdir, task, good)


def test_thread_core_with_task_state(tool, workdir, dumped_threads):
    task, good, (tid, *_) = dumped_threads
    bad = workdir / "images-bad"
    shutil.copytree(good, bad)
    shutil.copy(bad / f"core-{task.pid}.img", bad / f"core-{tid}.img")
    restore_must_fail(tool, workdir, bad, task.pid, rf"core-{tid}\.img", r"thread",
                      r"task_core")
    restore_must_pass(tool, workdir, task, good)


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_broken_thread_core_read_by_the_prefetch_worker(tool, zdtm, workdir, damage):
    """With enough images (12 and more) a worker thread reads them too,
    from the end of the list (restore/images-prefetch.c): the last thread's
    core is its first.  One it cannot read is read again by the restore
    process, which says what is wrong with it: one line on stderr, and once
    in the log (the worker logs nothing), nothing left behind."""
    task = zdtm(ZdtmTest("thread", ("--threads", "12"), label="12"))
    tids = [t for t in tids_of(task.pid) if t != task.pid]
    good = dump_good(tool, task, workdir)
    bad = workdir / "images-bad"
    shutil.copytree(good, bad)
    pstree = images.load(good / "pstree.img")
    rec = pstree.records[0]
    listed = images.get(images.decode(
        pstree.data[rec.payload_offset:rec.payload_offset + rec.length]), 5)
    assert sorted(listed) == sorted(tids + [task.pid]), listed
    core = bad / f"core-{listed[-1]}.img"
    if damage == "missing":
        core.unlink()
    else:
        core.write_bytes(core.read_bytes()[:-7])
    restore_must_fail(tool, workdir, bad, task.pid, re.escape(core.name))
    log = (workdir / "restore-bad.log").read_text()
    said = [l for l in log.splitlines() if core.name in l and "Error" in l]
    assert len(said) == 1, f"the error about {core.name} should be logged once:\n{log}"
    assert "the worker read" in log, "no prefetch worker ran: the test no longer tests it"
    restore_must_pass(tool, workdir, task, good)


def set_thread_cs(bad, tid, cs):
    """core-TID.img with the thread's code segment selector set to `cs`."""
    # thread_info, its gpregs, their cs
    images.edit_record(bad / f"core-{tid}.img", lambda core: images.set_nested(
        core, (2, 2), lambda regs: images.set_field(regs, 18, cs)))


def test_thread_registers_refused_at_the_final_stop(tool, workdir, dumped_threads):
    """A thread's registers the kernel refuses (a code segment selector that
    is no user one: PTRACE_SETREGS says EIO) fail the restore at the final
    stop, when every other thread of the task is already seized and
    interrupted: one line naming the thread, and all of them reaped within
    the bound (at once, woken by SIGCHLD), nothing left."""
    task, good, (tid, *_) = dumped_threads
    bad = workdir / "images-bad"
    shutil.copytree(good, bad)
    set_thread_cs(bad, tid, 0x1234)
    start = time.monotonic()
    restore_must_fail(tool, workdir, bad, task.pid,
                      rf"cannot set the registers of task {tid}\b")
    assert time.monotonic() - start < 20, "the failed restore took too long to clean up"
    restore_must_pass(tool, workdir, task, good)


def test_restore_in_foreground_leaves_no_thread_traced(tool, zdtm, workdir):
    """Without -d the restore stays the root's parent until it exits: it
    must have let every thread go, not only the leaders (a thread still
    traced stops at its next signal, for a tracer that never looks)."""
    task = zdtm(THREADS)
    imgdir = dump_good(tool, task, workdir, name="images")
    pidfile = workdir / "restore.pid"
    restore = subprocess.Popen([str(tool.binary), "restore", "-D", str(imgdir), "-v4", "-o",
                                str(workdir / "restore.log"), "--pidfile", str(pidfile)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        P.wait_for(lambda: pidfile.exists() or restore.poll() is not None, TIMEOUT)
        assert pidfile.exists(), f"the restore ended early: {restore.stderr.read().decode()}"
        assert int(pidfile.read_text()) == task.pid
        assert P.ppid(task.pid) == restore.pid, "the restore is not the parent of its root"
        # the pidfile comes a stage before the detach (stages.c): the log's
        # last line says the restore is done
        log = workdir / "restore.log"
        P.wait_for(lambda: "restored in" in log.read_text(errors="replace") or
                   restore.poll() is not None, TIMEOUT)
        assert "restored in" in log.read_text(errors="replace"), (
            "the restore did not finish: " + log.read_text(errors="replace")[-2000:])
        tids = tids_of(task.pid)
        assert len(tids) == 5, f"4 threads and the leader expected, found {tids}"
        for tid in tids:
            tracer = task_status(task.pid, tid)["TracerPid"]
            assert tracer == "0", f"thread {tid} is still traced by {tracer} after the restore"
        os.kill(task.pid, signal.SIGTERM)
        assert restore.wait(timeout=TIMEOUT) == 0, (
            "the restore did not exit with the task's 0:\n" + task.outfile.read_text())
        assert task.outfile.read_text().startswith("PASS"), task.outfile.read_text()
    finally:
        if restore.poll() is None:
            if P.exists(task.pid):
                os.kill(task.pid, signal.SIGKILL)
            restore.kill()
            restore.wait(timeout=TIMEOUT)


def cpus_allowed(tid):
    with open(f"/proc/{tid}/status") as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                return line.split(":", 1)[1].strip()
    raise AssertionError(f"no Cpus_allowed_list for {tid}")


AFFINITY_TREE = ZdtmTest("tree_lazy_stress", ("--pages", "1024", "--child-pages", "256"),
                         label="small", tree=True)


@pytest.mark.parametrize("shape", ["threads", "tree"])
@pytest.mark.parametrize("cpus", ["all", "last"])
def test_restore_gives_every_thread_its_affinity_back(tool, zdtm, workdir, cpus, shape):
    """The restore gives each process of a tree a CPU of its own while the
    blobs run, and runs its last ptrace steps with each finished process on
    its own CPU (restore/cpu-pin.c): every thread of every process must then
    get back the affinity it inherited from the restore, all CPUs the
    restore may use ("all"), or the one it was started on ("last": taskset)."""
    if cpus == "last" and os.cpu_count() < 2:
        pytest.skip("one CPU: nothing to tell apart")
    ncpu = len(os.sched_getaffinity(0))
    mask = f"0-{ncpu - 1}" if cpus == "all" else str(max(os.sched_getaffinity(0)))
    task = zdtm(THREADS if shape == "threads" else AFFINITY_TREE)
    imgdir = dump_good(tool, task, workdir, name="images")
    pidfile = workdir / "restore.pid"
    runner = type(tool)(tool.binary, prefix=("taskset", "-c", mask))
    assert_ok(runner.restore(imgdir, workdir / "restore.log", TIMEOUT, pidfile=pidfile),
              f"restore under taskset -c {mask}")
    task.expect_restored(pidfile)
    want = cpus_allowed(os.getpid()) if cpus == "all" else mask
    procs = [task.pid] + (list(P.descendants(task.pid)) if shape == "tree" else [])
    tids = [t for p in procs for t in tids_of(p)]
    if shape == "threads":
        assert len(tids) == 5, f"4 threads and the leader expected, found {tids}"
    else:
        assert len(procs) == 5 and len(tids) > len(procs), (
            f"a root, 4 children and their threads expected, found {procs}: {tids}")
    got = {tid: cpus_allowed(tid) for tid in tids}
    assert all(v == want for v in got.values()), (
        f"threads' CPU affinity after the restore: {got}, expected {want} for each")
    task.check_pass()
