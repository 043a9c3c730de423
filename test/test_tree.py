"""Process trees where things go wrong (issue 8, "Bad input and failures").

- A child of the tree holds something the restore can't bring back: the
  dump refuses with one line naming that child and the descriptor, and the
  whole tree runs on unharmed (no task stopped or traced; every child
  passes its own checks of pid, ppid, group, session and memory).
- A child in uninterruptible sleep (a vfork parent): ptrace cannot stop
  it, the dump refuses after its freeze timeout in one line naming it and
  its state, the tree unharmed.
- A child SIGKILLed while the dump holds it: one line saying it exited
  (or, if the dump was done with it, a whole dump), the rest of the tree
  running on untraced.
- A root dumped stopped comes back stopped, in every mode.
- No task runs before every one is restored: a process failing in the
  restore's last stage leaves the others' logs as they were.
- dump -R and -s leave every task of the tree running or stopped, as
  asked (zombies and stopped tasks as they were), unharmed.
- A pid of the images is taken when the restore runs (here: a child of the
  tree still lives): one line naming the pid, exit 1, and no task of the
  half-built tree left behind.
- Sharing the restore cannot bring back (memory shared with CLONE_VM; a
  descriptor table shared with CLONE_FILES by a process that does not
  share it with its parent; an epoll watching a fd its process replaced by
  another file): the dump refuses in one line, the tree
  unharmed.  A file the restore shares between processes that is gone by
  the restore: one line before any task exists, nothing left behind.
- A tree rooted at the init of a pid namespace comes back in a new pid
  namespace with every pid, parent, zombie and session (every mode); a pid
  namespace inside the tree is refused in one line, the tree unharmed.
- A dump that kills a pid namespace's init whose threads come and go ends
  at once, every thread reaped.
"""
import os
import re
import signal
import time

import pytest

from lib import images, lazy, paths
from lib import procs as P
from lib.badinput import dump_good, dump_must_refuse
from lib.crit import VMA_ANON_SHARED, crit_decode, need_crit
from lib.tool import assert_error_line, assert_ok
from lib.zdtm import PID_LAUNCHER, ZdtmTest, ns_tree

DUMP_TIMEOUT = 60
RESTORE_TIMEOUT = 60


def restore_fails(tool, workdir, imgdir, pids, *patterns, extra=(), env=None, pidfile=None):
    """A restore of imgdir fails with one line matching patterns and
    leaves nothing: no task of pids, no process of its own, no pidfile
    (workdir/bad.pid unless given).  How long it took (s)."""
    children = P.children_of_me()
    pidfile = pidfile or workdir / "bad.pid"
    start = time.monotonic()
    res = tool.restore(imgdir, workdir / "restore.log", RESTORE_TIMEOUT, pidfile=pidfile,
                       extra=extra, env=env)
    took = time.monotonic() - start
    assert_error_line(res, "restore", *patterns)
    for pid in pids:
        assert not P.exists(pid), f"task {pid} was left behind: {P.describe(pid)}"
    assert P.children_of_me() == children, "the failed restore left processes behind"
    assert not pidfile.exists(), "a failed restore wrote its pidfile"
    return took


def tree_is_free(pids):
    """No task of the tree is stopped or traced by anyone."""
    for pid in pids:
        st = P.state(pid)
        assert st is not None and st not in ("t", "T", "Z", "X"), (
            f"a task of the tree was harmed: {P.describe(pid)}")
        assert P.status_field(pid, "TracerPid") == "0", (
            f"a task of the tree was left traced: {P.describe(pid)}")


def test_dump_refuses_child_fd(tool, zdtm, workdir):
    task = zdtm(ZdtmTest("tree", ("--children", "2", "--bad-child"), label="bad-child"))
    kids = P.descendants(task.pid)
    assert len(kids) == 3, f"the tree should have 3 children, has {kids}"
    dump_must_refuse(tool, task, workdir, rf"\b{kids[-1]}\b", r"\b42\b", r"userfaultfd")
    tree_is_free(kids)
    task.check_pass()


def threads_in_d(pid):
    tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    return [t for t in tids if P.read_stat(t) and P.read_stat(t)[3] == "D"]


@pytest.mark.parametrize("where", ["vfork", "vfork-thread"])
def test_dump_refuses_task_in_uninterruptible_sleep(where, tool, zdtm, workdir):
    """A child in uninterruptible sleep (D: a vfork parent whose child
    neither execs nor exits), or a child's second thread in that state,
    never stops for ptrace: the dump gives up after its freeze timeout with
    one line naming that task or thread and its state, and the whole tree
    runs on (the stop still pending is dropped when the dump exits): every
    task passes its checks."""
    task = zdtm(ZdtmTest("tree", ("--children", "1", f"--{where}"), label=where, tree=True))
    kids = P.descendants(task.pid)
    sleeping = [(k, t) for k in kids for t in threads_in_d(k)]
    assert len(sleeping) == 1, f"one thread of the tree should be in state D: {kids}"
    (proc, tid), = sleeping
    assert (tid == proc) == (where == "vfork"), sleeping
    dump_must_refuse(tool, task, workdir, rf"\b{tid}\b", r"uninterruptible", r"state D")
    assert threads_in_d(proc) == [tid], P.describe(proc)
    for t in os.listdir(f"/proc/{proc}/task"):
        assert P.status_field(int(t), "TracerPid") == "0", (
            f"thread {t} of {proc} was left traced")
    tree_is_free(k for k in kids if k != proc)
    task.check_pass()


@pytest.mark.parametrize("flag", ["--leave-running", "--leave-stopped"])
def test_dump_leaves_the_whole_tree(flag, tool, zdtm, workdir):
    """dump -R / -s act on every task of the tree, not the root alone: with
    -R each task runs on untraced, with -s each is stopped for real (a
    zombie stays one, the child stopped before stays stopped); continued,
    the tree is unharmed and every task passes its checks (pid, ppid,
    group, session, memory, the zombies' statuses)."""
    task = zdtm(ZdtmTest("tree", ("--children", "2", "--zombie", "--stopped", "--group"),
                         label="leave", tree=True))
    kids = P.descendants(task.pid)
    was = {pid: P.state(pid) for pid in [task.pid, *kids]}
    assert sorted(was.values()).count("Z") == 2 and list(was.values()).count("T") == 1, was
    before = task.snapshot()
    imgdir = workdir / "images"
    imgdir.mkdir()
    assert_ok(tool.dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT, extra=[flag]),
              f"dump {flag}")
    for pid, st in was.items():
        assert P.status_field(pid, "TracerPid") in ("0", None), (
            f"a task of the tree was left traced: {P.describe(pid)}")
        if st in ("Z", "T"):
            want = st
        else:
            want = "T" if flag == "--leave-stopped" else None
        if want:
            assert P.wait_for(lambda: P.state(pid) == want, 10), (
                f"{flag}: expected state {want}: {P.describe(pid)}")
        else:
            assert P.state(pid) in ("R", "S"), f"{flag}: not running: {P.describe(pid)}"
    if flag == "--leave-stopped":
        for pid, st in was.items():
            if st not in ("Z", "T"):
                os.kill(pid, signal.SIGCONT)
    task.expect_unharmed(before)
    task.check_pass()


def test_shared_memory_dumped_once(tool, zdtm, workdir):
    """MAP_SHARED|MAP_ANONYMOUS memory of three processes is one shmem
    object in the images: every process's VMA names the same shmid, its
    pages are in one pagemap-shmem image (each written page once), and no
    process's own pagemap holds any of them."""
    need_crit()
    task = zdtm(ZdtmTest("tree_shmem", tree=True))
    imgdir = dump_good(tool, task, workdir, name="images")
    pids = [task.pid, *task.tree]
    shared = {}
    for pid in pids:
        mm = crit_decode(imgdir / f"mm-{pid}.img")["entries"][0]
        anon = [v for v in mm["vmas"] if v["status"] & VMA_ANON_SHARED]
        assert len(anon) == 1, f"task {pid}: {len(anon)} shared anonymous VMAs"
        shared[pid] = anon[0]
        _, ents = images.pagemap_entries(imgdir / f"pagemap-{pid}.img")
        start, end = anon[0]["start"], anon[0]["end"]
        inside = [e for e in ents if e[0] < end and e[0] + e[1] * 4096 > start]
        assert not inside, f"pagemap-{pid}.img holds pages of the shared memory: {inside}"
    shmids = {v["shmid"] for v in shared.values()}
    assert len(shmids) == 1, f"the processes' shared VMAs name different objects: {shared}"
    objs = sorted(imgdir.glob("pagemap-shmem-*.img"))
    assert [p.name for p in objs] == [f"pagemap-shmem-{shmids.pop()}.img"], objs
    _, ents = images.pagemap_entries(objs[0])
    offsets = [o + k * 4096 for o, n, _ in ents for k in range(n)]
    assert len(offsets) == len(set(offsets)) == 64, (
        f"the object's 64 written pages, each once: {len(offsets)} ({len(set(offsets))} "
        "distinct)")


@pytest.mark.parametrize("delay", [0, 0.02, 0.1, 0.3])
def test_dump_child_killed_while_frozen(delay, tool, zdtm, workdir, procs):
    """A child of the tree SIGKILLed (by someone else) while the dump holds
    it, `delay` s after it was seized: either the dump was done with it and
    succeeds (the tree is gone, the images whole), or it fails with one line
    saying that child exited, and every other task of the tree runs on,
    untraced and not stopped."""
    task = zdtm(ZdtmTest("tree_stress", ("--pages", "16384"), label="killed", tree=True))
    kids = P.descendants(task.pid)
    victim = kids[-1]
    imgdir = workdir / "images"
    imgdir.mkdir()
    out = workdir / "dump.out"
    dump = procs.spawn(tool.argv(["dump", "-t", task.pid, "-D", imgdir, "-o", "dump.log"]),
                       stdout=out)
    assert P.wait_for(lambda: P.status_field(victim, "TracerPid") not in ("0", None),
                      DUMP_TIMEOUT), f"the dump never seized {victim}: {out.read_text()}"
    time.sleep(delay)
    os.kill(victim, signal.SIGKILL)
    status = procs.reap(dump.pid, DUMP_TIMEOUT)
    text = out.read_text(errors="replace")
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        task.expect_gone()
        assert not text.strip(), text
        return
    lines = [l for l in text.splitlines() if l.strip()]
    assert len(lines) == 1 and re.match(rf"dump: .*\b{victim}\b.*exited", lines[0]), (
        f"expected one line saying task {victim} exited:\n{text}\n"
        f"{(imgdir / 'dump.log').read_text(errors='replace')[-3000:]}")
    for pid in [task.pid, *kids[:-1]]:
        assert P.status_field(pid, "TracerPid") == "0", P.describe(pid)
        assert P.state(pid) in ("R", "S"), P.describe(pid)
    left = sorted(p.name for p in imgdir.iterdir() if p.name != "dump.log")
    assert not left, f"a failed dump left images: {left}"
    # the tree lost a child: its checks cannot pass.  End the root; its
    # children, reparented to us (a subreaper), are then ours to reap.
    procs.kill(task.pid)
    for pid in kids:
        if P.state(pid) not in (None, "Z"):
            os.kill(pid, signal.SIGKILL)
        procs.reap(pid, DUMP_TIMEOUT)


def test_stopped_root_comes_back_stopped(mode, zdtm):
    """The root itself stopped (SIGSTOP) when it is dumped comes back
    stopped and untraced, in every mode; continued, it passes its checks
    (a stopped child: zdtm tree-zombie-stopped)."""
    task = zdtm(ZdtmTest("mem_anon", ("--size", "64K"), label="stopped"), pid_ns=mode.pid_ns)
    os.kill(task.pid, signal.SIGSTOP)
    assert P.wait_for(lambda: P.state(task.pid) == "T", 10), P.describe(task.pid)
    expect_running = task.expect_restored

    def expect_stopped(pidfile=None):
        pid = int(pidfile.read_text()) if pidfile and mode.pid_ns else task.pid
        assert P.wait_for(lambda: P.state(pid) == "T", 10), (
            f"the root was dumped stopped but is not stopped now: {P.describe(pid)}")
        assert P.status_field(pid, "TracerPid") == "0", P.describe(pid)
        os.kill(pid, signal.SIGCONT)
        assert P.wait_for(lambda: P.state(pid) != "T", 10), P.describe(pid)
        expect_running(pidfile)

    task.expect_restored = expect_stopped
    mode.cycle(task, 1)
    task.check_pass()
    mode.finish()


DELAY_FINALIZE = "CRIU_LAZY_TEST_DELAY_FINALIZE_MS"


def spoil_fpu_state(core_img):
    """core_img says its task used an FPU state component no CPU has (bit
    62 of xstate_bv): the task finds out as it builds its restorer's
    arguments (attrs/fpu.c), the restore process when it comes to that
    task's blob in the last stage."""
    # thread_info, its fpregs, their xsave, its xstate_bv
    images.edit_record(core_img, lambda core: images.set_nested(
        core, (2, 3, 13), lambda xs: images.set_field(xs, 1, images.get(xs, 1)[0] | 1 << 62)))


def spoil_code_segment(core_img):
    """core_img's task ran with a kernel code segment (cs 0x10, privilege
    level 0): nothing checks it before the restore process sets that
    task's registers, the last of its last steps (PTRACE_SETREGS: EIO)."""
    # thread_info, its gpregs, their cs
    images.edit_record(core_img, lambda core: images.set_nested(
        core, (2, 2), lambda regs: images.set_field(regs, 18, 0x10)))


# what fails late (the last child's image spoiled, or none: the pidfile's
# directory missing) and the restore's error line (that child's pid given)
LATE_FAILURES = [
    pytest.param(spoil_fpu_state, lambda pid: (rf"core-{pid}\.img", r"FPU"),
                 id="fpu-in-the-blob"),
    pytest.param(spoil_code_segment, lambda pid: (rf"registers of task {pid}\b",),
                 id="regs-in-the-last-steps"),
    pytest.param(None, lambda pid: (r"pidfile .*no-such-dir",), id="pidfile-after-them"),
]


@pytest.mark.parametrize("spoil,words", LATE_FAILURES)
def test_no_task_runs_before_every_one_is_complete(tool, zdtm, workdir, spoil, words):
    """The tasks of a tree resume together, only once every one is fully
    restored: a tree whose processes each append a tick to a log every
    millisecond while they run (counter --children 3) fails at the very
    end of its restore: the last child's blob's FPU state; or its
    registers, set by the restore process after every other step of it
    (the last child's blob ends last, as a rule: then every other process
    is complete); or, every process complete, the pidfile, written last
    before the resume.  The restore fails with one line, nothing of the
    tree is left, and no log grew: no process ran, not even those
    restored before the failure.  Each process's last steps are followed
    by 50 ms of waiting (a test hook), failed or not, and the pidfile's
    stage waits as long before it writes, so that one let go before the
    tree is complete, whenever it happened (after its own steps, during
    the last process's, or after them), would have run for tens of ticks
    before the failure."""
    task = zdtm(ZdtmTest("counter", ("--log", "counter.log", "--size", "1M", "--interval-ms",
                                     "1", "--children", "3"), label="tree-ticks", tree=True))
    kids = P.descendants(task.pid)
    assert len(kids) == 3, kids
    imgdir = dump_good(tool, task, workdir, name="images")
    logs = sorted(workdir.glob("counter.log*"))
    assert len(logs) == 4, logs
    sizes = {p.name: p.stat().st_size for p in logs}
    if spoil:
        spoil(imgdir / f"core-{kids[2]}.img")
    restore_fails(tool, workdir, imgdir, [task.pid, *kids], *words(kids[2]),
                  env={**os.environ, DELAY_FINALIZE: "50"},
                  pidfile=None if spoil else workdir / "no-such-dir" / "bad.pid")
    log = (workdir / "restore.log").read_text(errors="replace")
    assert "as each restorer ends" in log, (
        "the restore failed before its last stage: this tests nothing\n" + log[-3000:])
    assert f"test hook {DELAY_FINALIZE}=50" in log, log[-3000:]
    grown = {p.name: (sizes[p.name], p.stat().st_size) for p in logs
             if p.stat().st_size != sizes[p.name]}
    assert not grown, f"a process ran before the restore was complete: {grown}"


SHARING_REFUSED = [
    (ZdtmTest("share_fdtable", ("--vm",), label="vm"),
     (r"CLONE_VM", r"memory")),
    (ZdtmTest("share_fdtable", ("--not-parent",), label="files-not-parent"),
     (r"CLONE_FILES", r"not share it with its parent")),
    (ZdtmTest("share_kobj", ("--epoll-replaced",), label="epoll-replaced"),
     (r"epoll", r"\bfd 34\b", r"replaced")),
    (ZdtmTest("share_fs", ("--not-parent",), label="not-parent"),
     (r"CLONE_FS", r"not share them with its parent")),
]


@pytest.mark.parametrize("spec,words", [pytest.param(s, w, id=s.id) for s, w in SHARING_REFUSED])
def test_dump_refuses_sharing(tool, zdtm, workdir, spec, words):
    task = zdtm(spec)
    kids = P.descendants(task.pid)
    assert kids, "the tree has no child"
    dump_must_refuse(tool, task, workdir, *words)
    tree_is_free(kids)
    task.check_pass()


def test_shared_file_comes_by_fork(mode, zdtm):
    """A regular file the root shares with its child (one open file
    description, inherited at the fork) is opened by the root before it
    forks the child, which inherits it again: no socket carries it
    (restore.md, "By fork").  share_files checks that it is one file
    (kcmp), with one offset and one set of status flags, in every mode."""
    task = zdtm(ZdtmTest("share_files"), pid_ns=mode.pid_ns)
    mode.cycle(task, 1)
    log = (mode.dir / "restore-1.log").read_text(errors="replace")
    assert re.search(r"file \d+ \(regular file\): created by task \d+, passed to 1 other "
                     r"task\(s\), 1 of them by fork", log), log[-3000:]
    task.check_pass()
    mode.finish()


def test_restore_shared_file_gone(tool, zdtm, workdir):
    """The file root and child share is gone: one line naming it, before
    any task exists (the pids are free again afterwards)."""
    task = zdtm(ZdtmTest("share_files"))
    imgdir = dump_good(tool, task, workdir, name="images")
    (task.dir / "share.data").rename(task.dir / "share.data.moved")
    restore_fails(tool, workdir, imgdir, [task.pid, *task.tree], r"share\.data", r"No such file")


NS_LAST_PID = "/proc/sys/kernel/ns_last_pid"


def occupy_pid(procs, pid):
    """A process of ours with exactly this pid (`pid_launch`: clone3 with
    set_tid), or a skip when another process has it already.

    Not through ns_last_pid: that is the cursor of the whole machine's pid
    allocation, and while it is back at pid - 1 every fork anywhere (another
    test run on the host) walks through the pids freed since, one of them
    maybe the pid a dump just freed for its restore (the soak's one 'thread
    id N is already in use' and a suite's 'pid N is already in use' came
    from here, even with the cursor put back at once).  set_tid moves no
    cursor."""
    launcher = procs.spawn([paths.zdtm_binary(PID_LAUNCHER), pid, "sleep", "60"])
    status = procs.reap(launcher.pid, 10)
    if status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 3:
        pytest.skip(f"pid {pid} is taken by another process")
    assert status == 0, f"{PID_LAUNCHER} {pid} failed ({P.wait_status_str(status)})"
    procs.adopt(pid)
    return pid


def test_occupy_pid_leaves_the_pid_cursor(procs):
    """Taking a recent pid for a test moves no later fork back among the
    pids freed since (a restore waiting for them would find them taken)."""
    freed = [procs.spawn(["true"]) for _ in range(4)]	# holes above the first
    for p in freed:
        procs.reap(p.pid, 10)
    gone = freed[0]
    with open(NS_LAST_PID) as f:
        last = int(f.read())
    with open("/proc/sys/kernel/pid_max") as f:
        if last > int(f.read()) - 100000:
            pytest.skip("the pids are about to wrap")
    squatter = occupy_pid(procs, gone.pid)
    after = procs.spawn(["true"])
    procs.reap(after.pid, 10)
    procs.kill(squatter)
    assert after.pid > last, (
        f"a fork after occupy_pid({gone.pid}) got pid {after.pid}, below {last}: the "
        f"allocation was sent back among recently freed pids")


def test_restore_child_pid_taken(tool, zdtm, workdir, procs):
    task = zdtm(ZdtmTest("tree", ("--children", "2"), label="two-children"))
    imgdir = dump_good(tool, task, workdir, name="images")
    kids = list(task.tree)
    squatter = occupy_pid(procs, kids[-1])
    restore_fails(tool, workdir, imgdir, [task.pid], rf"\b{kids[-1]}\b", r"in use")
    procs.kill(squatter)


def test_lazy_restore_child_pid_taken(tool, zdtm, workdir, procs):
    """The same in a lazy restore: one line naming the pid, no task left,
    and the lazy-pages daemon, which never got a process, exits by itself
    (not left waiting for the restore forever)."""
    task = zdtm(ZdtmTest("tree", ("--children", "2"), label="two-children"))
    imgdir = dump_good(tool, task, workdir, name="images")
    kids = list(task.tree)
    squatter = occupy_pid(procs, kids[-1])
    daemon = lazy.Daemon(procs, tool, ["lazy-pages", "-D", imgdir], workdir / "lazy-pages.log",
                         workdir / "lazy-pages.out", "lazy-pages")
    restore_fails(tool, workdir, imgdir, [task.pid], rf"\b{kids[-1]}\b", r"in use",
                  extra=["--lazy-pages"])
    assert daemon.wait_exit() > 0, daemon.text()
    said = [l for l in daemon.out.read_text().splitlines() if l.strip()]
    assert len(said) == 1 and said[0].startswith("lazy-pages: "), daemon.text()
    procs.kill(squatter)


PIDNS_TREE = ZdtmTest("tree", ("--children", "2", "--zombie", "--session", "--group"),
                      label="pidns", tree=True)


def test_tree_in_pid_ns(mode, zdtm):
    """Dumped from outside its namespace, restored into a new one: the same
    pids there, each with the same parent and state, and every child passes
    its checks (pid, ppid, group, session, memory)."""
    task = zdtm(PIDNS_TREE, pid_ns=True)
    before = ns_tree(task.pid)
    assert len(before) == 9 and before[1][0] == 0, f"the tree: {before}"
    mode.cycle(task, 1)
    after = ns_tree(task.pid)
    assert after == before, f"restored tree {after}, dumped {before}"
    task.check_pass()
    mode.finish()


def test_dump_refuses_pid_ns_inside_tree(tool, procs, workdir):
    """A child that is the init of a pid namespace of its own: refused,
    naming it, and nothing of the tree stopped or traced."""
    sh = procs.spawn(["/bin/sh", "-c", "unshare --pid --fork sleep 600 & wait"], cwd=workdir)
    assert P.wait_for(lambda: len(P.descendants(sh.pid)) == 2, 10), (
        f"the tree never formed: {P.descendants(sh.pid)}")
    kids = P.descendants(sh.pid)
    inner = kids[-1]
    assert P.wait_for(lambda: (P.status_field(inner, "NSpid") or "").split()[-1:] == ["1"], 10)
    res = tool.dump(sh.pid, workdir, workdir / "dump.log", DUMP_TIMEOUT)
    assert_error_line(res, "dump", rf"\b{inner}\b", r"pid namespace")
    tree_is_free([sh.pid, *kids])
    assert not list(workdir.glob("*.img")), "a refused dump wrote images"
    # the namespace's end ends unshare, which sh reaps before it exits
    procs.adopt(inner)
    procs.kill(inner)
    procs.reap(sh.pid, DUMP_TIMEOUT)


def test_restore_refuses_child_in_other_pid_ns(tool, zdtm, workdir):
    """ids-CHILD.img naming a pid namespace other than the root's (a
    namespace inside the tree): one line naming that image, nothing left
    behind; the undamaged images restore."""
    import shutil

    from lib import images

    task = zdtm(ZdtmTest("tree", ("--children", "1"), label="one-child"))
    good = dump_good(tool, task, workdir, name="images")
    (kid,) = task.tree
    bad = workdir / "images-bad"
    shutil.copytree(good, bad)
    images.edit_record(bad / f"ids-{kid}.img",
                       lambda f: images.set_field(f, 5, images.get(f, 5)[0] + 100))
    restore_fails(tool, workdir, bad, [task.pid, kid], rf"ids-{kid}\.img",
                  r"pid namespace inside the tree")
    pidfile = workdir / "good.pid"
    assert_ok(tool.restore(good, workdir / "restore-good.log", RESTORE_TIMEOUT,
                           pidfile=pidfile), "restore of the undamaged images")
    task.expect_restored(pidfile)
    task.check_pass()


def break_child_file(imgdir, name=b"share.data", pos=100):
    """A regular file of the child's own (share.data at offset 100, not
    shared, unless told otherwise) asks O_DIRECTORY: its open fails in
    the task, after the checks."""
    files = imgdir / "files.img"
    img = images.load(files)
    for i in range(len(img.records)):
        f = images.decode(img.payload(i))
        regs = images.get(f, 3)
        if not regs:
            continue
        reg = images.decode(regs[0])
        if images.get(reg, 3) in ([pos], [] if pos == 0 else None) and \
                images.get(reg, 6)[0].endswith(name):
            reg = images.set_field(reg, 2, images.get(reg, 2)[0] | os.O_DIRECTORY)
            files.write_bytes(images.replace_record(img, i, images.encode(
                images.set_field(f, 3, images.encode(reg)))))
            return
    raise AssertionError(f"files.img has no {name} at offset {pos}")


@pytest.mark.parametrize("pid_ns", [False, True], ids=["plain", "pidns"])
def test_restore_child_fails(tool, zdtm, workdir, pid_ns):
    """A child's own rebuild fails (a file of its own cannot be opened as
    its image says): the child's own line, within seconds, in a pid
    namespace as well as without one; nothing of the tree left."""
    task = zdtm(ZdtmTest("share_files", tree=True), pid_ns=pid_ns)
    imgdir = dump_good(tool, task, workdir, name="images")
    break_child_file(imgdir)
    took = restore_fails(tool, workdir, imgdir, [task.pid], r"share\.data", r"Not a directory")
    assert took < 5, f"the restore took {took:.1f} s to report the child's error"


def test_restore_fdtable_owner_fails(tool, zdtm, workdir):
    """The process that restores a descriptor table it shares with two
    others (CLONE_FILES) fails to open one of its files: its own line,
    within seconds (the sharers waiting for the table do not time out
    first), and nothing of the tree left."""
    task = zdtm(ZdtmTest("share_fdtable", ("--chain",), label="chain", tree=True))
    imgdir = dump_good(tool, task, workdir, name="images")
    break_child_file(imgdir, b"fdt.late", 0)
    took = restore_fails(tool, workdir, imgdir, [task.pid, *task.tree], r"fdt\.late",
                         r"Not a directory")
    assert took < 5, f"the restore took {took:.1f} s to report the owner's error"


CHAIN_CYCLES = 12


def test_unix_chain_restores_every_time(tool, zdtm, workdir):
    """Unix sockets connected by name across three processes (zdtm
    unix_chain): dumped and restored again and again, every restore must
    bind each name before anything connects to it and connect a datagram
    chain from its start (one process makes them all), whichever task
    runs first; the old keying raced here in most runs."""
    task = zdtm(ZdtmTest("unix_chain", tree=True))
    for n in range(1, CHAIN_CYCLES + 1):
        imgdir = workdir / f"images-{n}"
        imgdir.mkdir()
        task.note_tree()
        assert_ok(tool.dump(task.pid, imgdir, workdir / f"dump-{n}.log", DUMP_TIMEOUT),
                  f"dump #{n}")
        task.expect_gone()
        pidfile = workdir / f"restore-{n}.pid"
        assert_ok(tool.restore(imgdir, workdir / f"restore-{n}.log", RESTORE_TIMEOUT,
                               pidfile=pidfile), f"restore #{n}")
        task.expect_restored(pidfile)
    task.check_pass()


def test_dump_kills_threaded_pid_ns_init(tool, zdtm, workdir, procs):
    """A dump that kills the init of a pid namespace whose threads come and
    go ends at once, without a thread left unreaped: the last live thread
    waits in zap_pid_ns_processes() until we reap its traced zombie
    siblings, so they are reaped all at once (a wait for it alone first
    held each dump 20 s under load, 92 s in CI)."""
    for i in range(6):
        task = zdtm(ZdtmTest("threads_churn", threads_vary=True, label=f"kill{i}"), pid_ns=True)
        imgdir = workdir / f"images-{i}"
        imgdir.mkdir()
        t0 = time.monotonic()
        res = tool.run(["dump", "-t", task.pid, "-D", imgdir, "-v4", "-o", "dump.log"],
                       timeout=DUMP_TIMEOUT)
        took = time.monotonic() - t0
        log = (imgdir / "dump.log").read_text(errors="replace")
        assert_ok(res, f"dump #{i} of threads_churn")
        task.expect_gone()
        assert "did not" not in log and took < 8, f"dump #{i} took {took:.1f} s:\n{log[-2000:]}"
