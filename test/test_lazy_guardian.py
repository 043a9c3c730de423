"""The lazy-pages daemon killed with SIGKILL while a process and the child
it forked after the restore still have lazy pages (issue 8): its guardian
(criu-lazy/lazy/guardian.c) poisons what is missing, and every page of
mem_sigbus's region is then either right or raises SIGBUS, never zeros or
anything else, in both processes; nothing hangs, the guardian exits.

- the FORK read by the daemon, which passed the child's uffd on;
- the FORK never read (the daemon stopped, then killed): the forking
  thread waits for the event, the guardian reads it, the fork completes
  and the child is poisoned too; also when the parent exits right after
  its fork, its child no longer below it;
- the FORK read by the daemon, its child's uffd not yet passed on (the
  daemon stopped by its test hook, then killed): the daemon's keeper
  holds it, the guardian takes it from there.

The same in a pid namespace of its own and with a page server
(remote-lazy).  The daemon killed with records of the restore still
queued for it: in the listening socket's backlog (a process, and a
tree), on the connection it accepted, half read, and at each step of the
handshake where the connection or a uffd has come to the daemon (a tree).
test_lazy.py and test_lazy_tree.py have the single process and the tree
with threads.  Every process is ended by its pid; every wait has a
timeout.
"""
import os
import re
import signal
import time

import pytest

from lib import images, lazy, modes, procs as P
from lib.badinput import dump_good
from lib.tool import assert_ok
from lib.zdtm import ZdtmTest
from test_lazy_tree import dump as dump_tree

TIMEOUT = 60
PAGES = 2048
SPEC = ZdtmTest("mem_sigbus", ("--pages", str(PAGES)), defer_background=True)
EXIT_SPEC = ZdtmTest("mem_sigbus", ("--pages", str(PAGES), "--exit-after-fork"), label="exit",
                     defer_background=True)
RESULT = re.compile(r"^mem_sigbus: pid (\d+): (\d+) right, (\d+) poisoned, (\d+) wrong")


def sigbus_results(out):
    """mem_sigbus's result lines in @out: {pid: (right, poisoned, wrong)}."""
    return {int(m.group(1)): tuple(map(int, m.group(2, 3, 4)))
            for m in map(RESULT.match, out.splitlines()) if m}


def restored(zdtm, tool, workdir, pid_ns=False, daemon_late=False, spec=SPEC, env=None):
    """daemon_late: the daemon stopped until the restore has returned (its
    process gone, the tree reparented) before it reads the first uffd.
    env: the daemon's environment (None: ours)."""
    task = zdtm(spec, pid_ns=pid_ns)
    imgdir = dump_good(tool, task, workdir, name="images")
    daemon = lazy.Daemon(task.procs, tool, ["lazy-pages", "-D", imgdir, "--no-background-fetch"],
                         workdir / "lazy-pages.log", workdir / "lazy-pages.out", "lazy-pages",
                         env=env)
    pidfile = workdir / "restore.pid"
    if daemon_late:
        os.kill(daemon.pid, signal.SIGSTOP)
    try:
        assert_ok(tool.restore(imgdir, workdir / "restore.log", TIMEOUT, pidfile=pidfile,
                               extra=["--lazy-pages"]), "restore --lazy-pages")
    finally:
        if daemon_late:
            os.kill(daemon.pid, signal.SIGCONT)
    task.expect_restored(pidfile)
    return task, daemon


def wait_said(task, pattern, timeout=TIMEOUT):
    """The first match of pattern in the program's output, waited for."""
    rx = re.compile(pattern, re.M)
    m = P.wait_for(lambda: rx.search(task.output.read_text(errors="replace")), timeout)
    assert m, f"the program did not say {pattern!r} within {timeout} s\n{task.text(task.output)}"
    return m


def arm_and_fork(task, daemon, stop_daemon_first):
    os.kill(task.pid, signal.SIGUSR1)
    wait_said(task, r"^mem_sigbus: armed$")
    if stop_daemon_first:
        os.kill(daemon.pid, signal.SIGSTOP)
        os.kill(task.pid, signal.SIGUSR2)
        # the fork waits for its event to be read: no child yet
        time.sleep(0.5)
        assert "forked child" not in task.output.read_text(), (
            "the fork went through with its daemon stopped")
        return None
    os.kill(task.pid, signal.SIGUSR2)
    child = int(wait_said(task, r"^mem_sigbus: forked child (\d+)$").group(1))
    task.procs.adopt(child)
    assert P.wait_for(lambda: "forked: new uffd" in daemon.log.read_text(), TIMEOUT), (
        "the daemon did not read the FORK event\n" + daemon.text())
    return child


def expect_guardian(daemon, root):
    """One line for the root and one for its child; the guardian exits 0."""
    lines = daemon.guardian_lines()
    head = rf"^lazy-pages: guardian: the lazy-pages daemon \(pid {daemon.pid}\) died without " \
           r"ending its work: "
    tail = r": [1-9][0-9]* missing pages poisoned \(SIGBUS when touched\)"
    assert [l for l in lines if re.match(head + rf"task {root}" + tail, l)], daemon.text()
    assert [l for l in lines if re.match(
        head + rf"a child of task {root} forked after the restore" + tail, l)], daemon.text()
    assert len(lines) == 2, daemon.text()


def expect_every_page_right_or_poisoned(task, child):
    """SIGTERM to both: each checks its region and says how it found it."""
    os.kill(child, signal.SIGTERM)
    os.kill(task.pid, signal.SIGTERM)
    status = task.procs.reap(task.pid, TIMEOUT)
    # the root reaps its child (or dies first: then the child is ours)
    if P.exists(child):
        task.procs.reap(child, TIMEOUT)
    assert not P.exists(child), P.describe(child)
    out = task.output.read_text(errors="replace")
    results = sigbus_results(out)
    assert set(results) == {task.pid, child}, f"results: {results}\n{out}"
    for pid, (right, poisoned, wrong) in results.items():
        assert wrong == 0, f"process {pid}: {wrong} pages wrong\n{out}"
        assert right + poisoned == PAGES, f"process {pid}: {results[pid]}\n{out}"
        # the first half was read while the daemon lived; the rest never came
        assert right >= PAGES // 2 and poisoned > 0, f"process {pid}: {results[pid]}\n{out}"
    # the root ends by its check (FAIL: pages raised SIGBUS, none wrong), or
    # dies of SIGBUS on libc memory that was still lazy (its stdio) after it
    assert status is not None, "the root's end could not be seen"
    result = task.outfile.read_text() if task.outfile.exists() else ""
    assert (os.WIFEXITED(status) and re.match(r"FAIL: \d+ pages of the region raised SIGBUS "
                                              r"\(none was wrong\)", result)) or (
        os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGBUS, signal.SIGSEGV)), (
            f"the root ended with {P.wait_status_str(status)}: {result!r}\n{out}")


def kill_daemon_of_one(task, daemon, said):
    """One process, no fork: its region armed, the daemon SIGKILLed, its
    guardian's one line matching the regex said; then SIGTERM to the
    process.  ((right, poisoned, wrong) of its result line, its output).
    "armed" is said once the program has touched all it needs besides the
    region's second half, so the kill right after it cannot poison a page
    it needs to report; a SIGBUS outside the check is in its output
    ("SIGBUS outside the check at ADDR (ip IP)") and fails the test."""
    os.kill(task.pid, signal.SIGUSR1)
    wait_said(task, r"^mem_sigbus: armed$")
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.wait_exit()
    lines = [l for l in daemon.out.read_text().splitlines() if "guardian: " in l]
    assert len(lines) == 1 and re.search(said, lines[0]), daemon.text()
    os.kill(task.pid, signal.SIGTERM)
    task.procs.reap(task.pid, TIMEOUT)
    out = task.output.read_text(errors="replace")
    results = list(sigbus_results(out).values())
    assert len(results) == 1, out
    return results[0], out


def test_killed_after_a_fork(zdtm, tool, workdir):
    """The daemon read the FORK and passed the child's uffd to its guardian,
    then it is killed: parent and child get SIGBUS for each page that did
    not come, their data everywhere else."""
    task, daemon = restored(zdtm, tool, workdir)
    child = arm_and_fork(task, daemon, stop_daemon_first=False)
    os.kill(daemon.pid, signal.SIGKILL)
    expect_guardian(daemon, task.pid)
    expect_every_page_right_or_poisoned(task, child)


def test_killed_with_a_fork_unread(zdtm, tool, workdir):
    """The daemon stopped before it read a FORK, then killed: the guardian
    reads the event (the child's uffd comes to it), the fork completes,
    and both processes are poisoned."""
    task, daemon = restored(zdtm, tool, workdir)
    arm_and_fork(task, daemon, stop_daemon_first=True)
    os.kill(daemon.pid, signal.SIGKILL)
    child = int(wait_said(task, r"^mem_sigbus: forked child (\d+)$").group(1))
    task.procs.adopt(child)
    expect_guardian(daemon, task.pid)
    expect_every_page_right_or_poisoned(task, child)


def test_killed_with_a_fork_unread_parent_gone(zdtm, tool, workdir):
    """The same, the parent exiting right after its fork: the guardian's
    read of the FORK lets it go, and when the guardian comes to the child
    the parent is gone and the child no longer below it.  The child is
    poisoned from what the parent missed when the fork began (taken before
    the read); before, the guardian found no process to take runs from,
    poisoned nothing in the child ("0 missing pages poisoned"), and the
    child read zeros where its pages were missing once the guardian
    closed."""
    task, daemon = restored(zdtm, tool, workdir, spec=EXIT_SPEC)
    arm_and_fork(task, daemon, stop_daemon_first=True)
    os.kill(daemon.pid, signal.SIGKILL)
    child = int(wait_said(task, r"^mem_sigbus: forked child (\d+)$").group(1))
    task.procs.adopt(child)
    status = task.procs.reap(task.pid, TIMEOUT)
    assert status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (
        f"the parent ended with {P.wait_status_str(status)}\n{task.text(task.output)}")
    lines = daemon.guardian_lines()
    assert [l for l in lines if re.search(
        rf"a child of task {task.pid} forked after the restore: [1-9][0-9]* missing pages "
        r"poisoned \(SIGBUS when touched\)$", l)], daemon.text()
    os.kill(child, signal.SIGTERM)
    task.procs.reap(child, TIMEOUT)
    out = task.output.read_text(errors="replace")
    right, poisoned, wrong = sigbus_results(out).get(child, (0, 0, -1))
    assert wrong == 0 and right >= PAGES // 2 and poisoned > 0 and right + poisoned == PAGES, (
        f"the child: {right} right, {poisoned} poisoned, {wrong} wrong\n{out}")


def test_killed_with_a_fork_read_not_passed(zdtm, tool, workdir):
    """The daemon stopped by CRIU_LAZY_TEST_STOP_AFTER_FORK_READ right after
    its read of a FORK (the fork completes: the child runs, its uffd in the
    daemon's fd table), before it hands the child's uffd to its guardian,
    then killed.  The daemon's keeper, which shares its fd table, keeps
    that uffd open; the guardian takes it from there (pidfd_getfd) and
    poisons the child through it, its parent not known: one line for the
    root, one for the child; every page of both right or poisoned; no
    keeper left.  Before, the uffd died with the daemon, the kernel
    unregistered the child's ranges and its missing pages read zeros."""
    env = dict(os.environ, CRIU_LAZY_TEST_STOP_AFTER_FORK_READ="1")
    task, daemon = restored(zdtm, tool, workdir, env=env)
    os.kill(task.pid, signal.SIGUSR1)
    wait_said(task, r"^mem_sigbus: armed$")
    os.kill(task.pid, signal.SIGUSR2)
    child = int(wait_said(task, r"^mem_sigbus: forked child (\d+)$").group(1))
    task.procs.adopt(child)
    assert P.wait_for(lambda: P.state(daemon.pid) == "T", TIMEOUT), daemon.text()
    assert "forked: new uffd" not in daemon.log.read_text(), daemon.text()
    os.kill(daemon.pid, signal.SIGKILL)
    lines = daemon.guardian_lines()
    expect_every_page_right_or_poisoned(task, child)
    assert daemon.keeper, "the daemon made no keeper\n" + daemon.text()
    assert not P.exists(daemon.keeper), P.describe(daemon.keeper)
    head = rf"^lazy-pages: guardian: the lazy-pages daemon \(pid {daemon.pid}\) died without " \
           r"ending its work: "
    tail = r": [1-9][0-9]* missing pages poisoned \(SIGBUS when touched\)"
    assert [l for l in lines if re.match(head + rf"task {task.pid}" + tail, l)], daemon.text()
    assert [l for l in lines if re.match(
        head + r"a child forked after the restore, its parent not known" + tail, l)], (
            daemon.text())
    assert len(lines) == 2, daemon.text()


def test_killed_before_the_handshake(zdtm, tool, workdir):
    """The daemon stopped through the whole restore (which does not wait for
    it), then killed: the restore's connection, with the task's record and
    uffd, still waits in the listening socket's backlog.  The guardian holds
    a copy of that socket, takes the connection and the uffd, and poisons
    the task; before, the uffd died with the daemon, nobody poisoned
    anything and the task read zeros (mem_sigbus died of SIGSEGV).  The
    task may die of the poison as soon as it runs: alive, its region's
    pages must read as poisoned, not as zeros."""
    task = zdtm(SPEC)
    region = int(wait_said(task, r"region (0x[0-9a-f]+)").group(1), 16)
    imgdir = dump_good(tool, task, workdir, name="images")
    daemon = lazy.Daemon(task.procs, tool, ["lazy-pages", "-D", imgdir, "--no-background-fetch"],
                         workdir / "lazy-pages.log", workdir / "lazy-pages.out", "lazy-pages")
    os.kill(daemon.pid, signal.SIGSTOP)
    try:
        assert_ok(tool.restore(imgdir, workdir / "restore.log", TIMEOUT,
                               extra=["--lazy-pages"]), "restore --lazy-pages")
    finally:
        os.kill(daemon.pid, signal.SIGKILL)
    task.procs.adopt(task.pid)
    lines = daemon.guardian_lines()
    assert len(lines) == 1 and re.search(
        rf": task {task.pid}: [1-9][0-9]* missing pages poisoned \(SIGBUS when touched\)",
        lines[0]), daemon.text()
    try:
        with open(f"/proc/{task.pid}/mem", "rb", buffering=0) as mem:
            mem.seek(region + (PAGES - 1) * 4096)
            data = mem.read(4096) or None	# b"": a zombie's, no memory left
    except OSError:		# poisoned (EIO), or the task is gone
        data = None
    assert data is None, f"the region's last page reads {data[:16]!r}... (zeros?)"
    task.procs.kill(task.pid)


def test_killed_in_a_pid_namespace(zdtm, tool, workdir):
    """A tree restored into a pid namespace of its own: the restore names
    its processes by their pids there (1 for the root), which are other
    processes' pids here.  The daemon finds each process's pid in its own
    namespace, so its guardian poisons the right one: its half not read
    before the daemon was killed raises SIGBUS, none reads zeros.

    The daemon is killed as soon as the program says "armed", so
    everything it touches afterwards besides its region's second half
    must be there by then (mem_sigbus's arm(): its stack, its SIGTERM
    flag's page, which was never dumped and would be poisoned); the
    daemon may read the uffd after the restore has returned (see
    test_killed_in_a_pid_namespace_restore_gone).  Nothing else is waited
    for: the half not read must still be missing when the daemon dies."""
    task, daemon = restored(zdtm, tool, workdir, pid_ns=True)
    (right, poisoned, wrong), out = kill_daemon_of_one(
        task, daemon, rf": task 1 \(pid {task.pid} here\): [1-9][0-9]* missing pages poisoned "
        r"\(SIGBUS when touched\)$")
    assert wrong == 0 and right >= PAGES // 2 and right + poisoned == PAGES, out


def test_killed_in_a_pid_namespace_restore_gone(zdtm, tool, workdir):
    """The same, the daemon reading the restore's uffd only after the
    restore has returned (it does not wait for the daemon; a busy machine
    did this to test_killed_in_a_pid_namespace now and then): its process
    gone, no process below it to find pid 1 among; the daemon finds the
    one process started after it whose innermost pid is 1 and which has a
    userfaultfd VMA (host-pid.c), not the host's init."""
    task, daemon = restored(zdtm, tool, workdir, pid_ns=True, daemon_late=True)
    assert P.wait_for(lambda: "got uffd" in daemon.log.read_text(), TIMEOUT), daemon.text()
    assert "no process below the restore" not in daemon.log.read_text(), daemon.text()
    (right, poisoned, wrong), out = kill_daemon_of_one(
        task, daemon, rf": task 1 \(pid {task.pid} here\): [1-9][0-9]* missing pages poisoned "
        r"\(SIGBUS when touched\)$")
    assert wrong == 0 and right >= PAGES // 2 and right + poisoned == PAGES, out


def test_killed_remote(zdtm, tool, procs, workdir):
    """remote-lazy: the pages come from a page server; the daemon killed
    with SIGKILL, its guardian poisons the half not read yet, none reads
    zeros (the server's session simply ends)."""
    mode = modes.MODES["remote-lazy"](tool, procs, workdir)
    try:
        task = zdtm(SPEC)
        mode.cycle(task, 1)
        daemon = mode.daemons[-1][1]
        (right, poisoned, wrong), out = kill_daemon_of_one(
            task, daemon, rf": task {task.pid}: [1-9][0-9]* missing pages poisoned")
        assert wrong == 0 and right >= PAGES // 2 and poisoned > 0 and \
            right + poisoned == PAGES, out
    finally:
        # the page server waits for another session: ours to end
        for server in mode.servers:
            procs.kill(server.pid)
        mode.cleanup()


# no threads: tree_lazy_stress's, restored in futex waits on lazy pages,
# wait in the kernel's fault, where a stop signal does not end the wait,
# and now and then one ran glibc's abort() on the poison's EFAULT before
# the stop held its process (5 runs of 100), which then could not be read
TREE_SPEC = ZdtmTest("tree", ("--children", "4"), label="queued", tree=True)


def lazy_pages_as_read(imgdir, pid, here=None):
    """(right, poisoned, wrong) of the lazy pages of pagemap-PID.img as
    /proc/HERE/mem (here: the process's pid in ours, if not pid) reads them
    now: the dumped bytes, an error (a poisoned page: EIO), or anything
    else (zeros where data was)."""
    pages_id, ents = images.pagemap_entries(imgdir / f"pagemap-{pid}.img")
    dumped = (imgdir / f"pages-{pages_id}.img").read_bytes()
    right = poisoned = wrong = off = 0
    with open(f"/proc/{here or pid}/mem", "rb", buffering=0) as mem:
        for vaddr, n, fl in ents:
            if not fl & images.PE_PRESENT:
                continue
            for k in range(n):
                if fl & images.PE_LAZY:
                    try:
                        mem.seek(vaddr + k * 4096)
                        live = mem.read(4096)
                    except OSError:
                        live = None
                    if live is None:
                        poisoned += 1
                    elif live == dumped[off:off + 4096]:
                        right += 1
                    else:
                        wrong += 1
                off += 4096
    return right, poisoned, wrong


STOP_BIT = 1 << (signal.SIGSTOP - 1)


def stop_pending(path):
    """A SIGSTOP sent to the process or thread of /proc/PATH that it has
    not acted on yet (its bit in SigPnd or ShdPnd)."""
    return any(int(P.status_field(path, key) or "0", 16) & STOP_BIT
               for key in ("SigPnd", "ShdPnd"))


def thread_states(pid):
    """{tid: its state, "uffd" for a thread waiting in the kernel for a
    lazy page, or "stop pending" for the one thread of a process that has
    not acted on its SIGSTOP yet} of pid's threads."""
    out = {}
    tids = os.listdir(f"/proc/{pid}/task")
    for tid in tids:
        path = f"{pid}/task/{tid}"
        try:
            with open(f"/proc/{path}/stack") as f:
                waits = "handle_userfault" in f.read()
        except FileNotFoundError:
            continue
        state = P.state(path)
        if waits:
            state = "uffd"
        elif state not in ("T", "t") and len(tids) == 1 and stop_pending(path):
            state = "stop pending"
        out[int(tid)] = state
    return out


def all_held(pid):
    """Every thread of pid stopped (SIGSTOP), or in the kernel where it
    stops before it runs any code of its own: waiting for a lazy page (a
    futex word), it stops as soon as that wait ends; or the one thread of
    a process with its SIGSTOP still pending, which it takes on its way
    back to its own code (SIGSTOP is neither blocked nor caught; one
    running its own code is interrupted at once).

    The latter is a thread in a fault on a lazy page taken in the kernel
    (rt_sigsuspend() reading its mask): a stop signal does not end that
    wait, only a fatal one does (x86 do_user_addr_fault()), so with the
    daemon stopped it retries the fault on its CPU until the page comes,
    in state R or S, and its /proc stack reads empty while it runs (the
    unwinder refuses a task running on another CPU): the root of
    TREE_SPEC, its mask on the stack page above its stack pointer's
    (lazy; that one is eager), about 1 restore in 60 (soak.md)."""
    states = thread_states(pid)
    return bool(states) and all(s in ("T", "t", "uffd", "stop pending")
                                for s in states.values())


# where the daemon is stopped: (its test hook and N, the records of the
# five it has read by then, those its guardian then takes from the
# restore's connection); no hook: stopped by us before the restore
# connects, which then waits in the listening socket's backlog
STOPPED_AT = {
    "backlog": (None, 0, 5),
    "accepted": (("CRIU_LAZY_TEST_STOP_AT_RECORD", 1), 0, 5),
    "mid": (("CRIU_LAZY_TEST_STOP_AT_RECORD", 3), 2, 3),
    # the two windows of the handshake: the connection, and a uffd, come
    # to the daemon and not yet to the guardian
    "after-accept": (("CRIU_LAZY_TEST_STOP_AFTER_ACCEPT", 1), 0, 5),
    "after-recv": (("CRIU_LAZY_TEST_STOP_AFTER_RECV", 3), 2, 3),
    # the third uffd handed over, its message not yet read: still queued, a
    # second copy of one the guardian holds, dropped
    "after-hold": (("CRIU_LAZY_TEST_STOP_AFTER_HOLD", 3), 2, 2),
}


@pytest.mark.parametrize("stopped", sorted(STOPPED_AT))
def test_killed_with_records_queued(zdtm, tool, workdir, stopped):
    """test_killed_before_the_handshake for a tree, on each of the ways
    there: the daemon stopped (SIGSTOP) while the restore, which does not
    wait for it, sends its records, so every record it has not read, its
    uffd with it, is still queued on the restore's connection, or in the
    listening socket's backlog with the connection, when the daemon is
    SIGKILLed.  The guardian takes them from the socket it holds: one line
    per process, every lazy page of every process right or poisoned, none
    zeros (before, those of a process whose record was queued all read
    zeros).

    - backlog: stopped before the restore connects (its guardian accepts
      it, the daemon never has it);
    - accepted: stopped by its test hook right after the connection came
      to it;
    - mid: stopped before the third record (two uffds handed over);
    - after-accept: right after the connection came to the daemon;
    - after-recv: right after the third uffd came to the daemon (two
      handed over);
    - after-hold: right after the third uffd was handed over, before its
      message was read off the connection.
    after-accept and after-recv were the handshake's two windows: the
    connection, or a uffd, in the daemon's hands alone (before, the lazy
    pages of a process queued then all read zeros, in every run).
    The processes are stopped before the kill, so that what they hold can
    be read (/proc/PID/mem) after the guardian has gone, before one dies
    touching it; then killed by their pids."""
    killed_with_records_queued(zdtm, tool, workdir, stopped)


@pytest.mark.parametrize("stopped", sorted(STOPPED_AT))
def test_killed_with_records_queued_in_a_pid_namespace(zdtm, tool, workdir, stopped):
    """The same for a tree restored into a pid namespace of its own, its
    records sent without credentials (CRIU_LAZY_TEST_NO_CREDENTIALS, as
    from a restore without CAP_SYS_ADMIN): each record's pid is the
    process's pid there (1 for the root), another process's here.  The
    guardian finds each process as the daemon does (host-pid.c: below the
    restore, or the one process started since the daemon with that pid
    there, its heap's start and a userfaultfd); before, it took the
    image's pid for the process here and poisoned nothing of it."""
    killed_with_records_queued(zdtm, tool, workdir, stopped, pid_ns=True)


def killed_with_records_queued(zdtm, tool, workdir, stopped, pid_ns=False):
    hook, nr_read, nr_taken = STOPPED_AT[stopped]
    task = zdtm(TREE_SPEC, pid_ns=pid_ns)
    imgdir = workdir / "images"
    dump_tree(tool, task, imgdir, workdir)
    env = dict(os.environ)
    if hook:
        env[hook[0]] = str(hook[1])
    if pid_ns:
        env["CRIU_LAZY_TEST_NO_CREDENTIALS"] = "1"
    daemon = lazy.Daemon(task.procs, tool, ["lazy-pages", "-D", imgdir, "--no-background-fetch"],
                         workdir / "lazy-pages.log", workdir / "lazy-pages.out", "lazy-pages",
                         env=env)
    pidfile = workdir / "restore.pid"
    if not hook:
        os.kill(daemon.pid, signal.SIGSTOP)
    assert_ok(tool.restore(imgdir, workdir / "restore.log", TIMEOUT, pidfile=pidfile,
                           extra=["--lazy-pages"], env=env), "restore --lazy-pages")
    task.expect_restored(pidfile)
    tree = [task.pid, *P.descendants(task.pid)]
    assert len(tree) == 5, f"the restored tree: {tree}"
    for pid in tree[1:]:
        task.procs.adopt(pid)
    # each process's pid in the images (its innermost)
    in_images = {pid: int(P.status_field(pid, "NSpid").split()[-1]) for pid in tree}
    assert P.wait_for(lambda: P.state(daemon.pid) == "T", TIMEOUT), daemon.text()
    assert daemon.log.read_text().count("got uffd") == nr_read, daemon.text()
    # stopped, so that what they hold can be read when the guardian is
    # gone, before one dies touching a poisoned page
    for pid in tree:
        os.kill(pid, signal.SIGSTOP)
    assert P.wait_for(lambda: all(all_held(pid) for pid in tree), TIMEOUT), (
        {pid: thread_states(pid) for pid in tree})

    os.kill(daemon.pid, signal.SIGKILL)
    lines = daemon.guardian_lines()
    try:
        for pid in tree:
            right, poisoned, wrong = lazy_pages_as_read(imgdir, in_images[pid], pid)
            assert wrong == 0 and poisoned > 0, (
                f"process {pid}: {right} lazy pages right, {poisoned} poisoned, {wrong} wrong "
                f"(nothing was delivered)\n{daemon.text()}")
            mine = [l for l in lines if re.search(
                rf"^lazy-pages: guardian: the lazy-pages daemon \(pid {daemon.pid}\) died "
                rf"without ending its work: task {in_images[pid]}( \(pid {pid} here\))?: "
                rf"[1-9][0-9]* missing pages poisoned", l)]
            assert len(mine) == 1, f"process {pid}: {mine}\n{daemon.text()}"
        assert len(lines) == len(tree), daemon.text()
        taken = daemon.log.read_text().count("its uffd was still queued for the daemon")
        assert taken == nr_taken, daemon.text()
        again = daemon.log.read_text().count("was left on the connection: closed, ours is poisoned")
        assert again == (stopped == "after-hold"), daemon.text()
    finally:
        # the root last: in a pid namespace of its own its end kills the rest
        for pid in reversed(tree):
            os.kill(pid, signal.SIGKILL)
        for pid in tree:
            task.procs.reap(pid, TIMEOUT)
    assert not any(P.exists(pid) for pid in tree), [P.describe(pid) for pid in tree]
