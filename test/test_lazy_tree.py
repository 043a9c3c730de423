"""Lazy restore of a process tree beyond the zdtm suite (issue 8).

- Background delivery is shared between the processes in proportion to
  the pages each still has: a child 16 times smaller than the root has
  half of its pages when the root has half of its, and its last ones come
  late too, not first (round robin per chunk used to finish it early);
  the statistics say so per process (half_pages_at, last_page_at: the
  pages the whole tree had received by then).
- A child whose restorer fails after its userfaultfd exists but before it
  sends it (a madvise the kernel refuses, set in its images): one line
  naming the task and the step, exit 1, no task of the tree left, the
  daemon left waiting for a restore that never comes (it is stopped by us),
  and the undamaged images then restore lazily and pass.
- The daemon stopped while the whole tree is lazy: it says so in one line,
  exits non-zero, and every process of the tree dies of SIGBUS (or SIGSEGV)
  when it touches a page that can no longer arrive; none hangs, none is
  left behind, none reads zeros as its data.

Every process is ended by its pid; every wait has a timeout.
"""
import os
import re
import signal

from lib import images, lazy, procs as P
from lib.badinput import damaged_copy, expect_nothing_left
from lib.tool import assert_ok, assert_error_line
from lib.zdtm import ZdtmTest

TIMEOUT = 60
ROOT_PAGES = 65536		# 256 MiB
CHILD_PAGES = 4096		# 16 MiB

def dump(tool, task, imgdir, workdir):
    imgdir.mkdir()
    task.note_tree()
    assert_ok(tool.dump(task.pid, imgdir, workdir / "dump.log", TIMEOUT), "dump")
    task.expect_gone()


def restore(tool, task, imgdir, workdir, *daemon_args):
    daemon = lazy.Daemon(task.procs, tool, ["lazy-pages", "-D", imgdir, *daemon_args],
                         workdir / "lazy-pages.log", workdir / "lazy-pages.out", "lazy-pages")
    pidfile = workdir / "restore.pid"
    assert_ok(tool.restore(imgdir, workdir / "restore.log", TIMEOUT, pidfile=pidfile,
                           extra=["--lazy-pages"]), "restore --lazy-pages")
    task.expect_restored(pidfile)
    return daemon


def test_background_is_shared_between_processes(zdtm, tool, workdir):
    """A 256 MiB root and four 16 MiB children, nothing touched: each
    process gets background pages in proportion to those it still has, so
    all of them are half there at about the same time, and complete at
    about the same time.  Delivering process by process would finish a
    child only after the whole root (it comes first in the tree); round
    robin per chunk finished each child in its first dozen turns, when the
    root still missed more than three quarters of its pages."""
    spec = ZdtmTest("tree_lazy_stress", ("--pages", str(ROOT_PAGES), "--child-pages",
                                         str(CHILD_PAGES), "--inherited-pages", "16"),
                    label="fair", tree=True)
    task = zdtm(spec)
    imgdir = workdir / "images"
    dump(tool, task, imgdir, workdir)
    daemon = restore(tool, task, imgdir, workdir)
    daemon.expect_clean_exit()
    st = lazy.check_stats(imgdir, daemon.text(), removed=0)
    procs = {p["pid"]: p for p in st["processes"]}
    root = procs.pop(task.pid)
    assert len(procs) == 4, f"expected the root and 4 children: {st['processes']}"
    assert root["pages_lazy"] > 10 * max(p["pages_lazy"] for p in procs.values()), st
    # on the daemon's clock in pages (what the whole tree had received when
    # a process was half there, complete): the order of delivery, which the
    # scheduler alone decides, where wall-clock times would also hold every
    # moment the loaded machine kept the daemon off its CPU
    root_half, root_last = root["half_pages_at"], root["last_page_at"]
    assert 0 < root_half < root_last, st
    for pid, p in procs.items():
        assert p["pages_background"] > 0, f"child {pid} got nothing in background: {p}"
        half, last = p["half_pages_at"], p["last_page_at"]
        # in proportion: its half with the root's (its growing chunks put
        # it a little ahead), and not done before the root is half there
        assert 0.5 * root_half < half < 1.5 * root_half and last > 0.5 * root_last, (
            f"child {pid} ({p['pages_lazy']} pages) was half there when the tree had "
            f"received {half} pages and complete at {last}; the root "
            f"({root['pages_lazy']} pages) at {root_half} and {root_last}: "
            f"not in proportion to their pages\n{daemon.text()}")
    task.check_pass()


# glibc's futex_fatal_error: what a futex wait says before abort() when the
# kernel returns EFAULT, as it does for a poisoned futex word
GLIBC_FUTEX_EFAULT = "The futex facility returned an unexpected error code."


def stop_tree_lazy(zdtm, tool, workdir, label):
    """tree_lazy_stress restored lazily, nothing delivered in the background:
    (task, daemon, the root's 4 children)."""
    spec = ZdtmTest("tree_lazy_stress", ("--pages", "4096", "--child-pages", "1024"),
                    label=label, tree=True)
    task = zdtm(spec)
    imgdir = workdir / "images"
    dump(tool, task, imgdir, workdir)
    daemon = restore(tool, task, imgdir, workdir, "--no-background-fetch")
    tree = P.descendants(task.pid)
    assert len(tree) == 4, f"the restored tree: {tree}"
    for pid in tree:
        task.procs.adopt(pid)
    return task, daemon, tree


def expect_tree_poisoned(task, tree):
    """Each process ends touching its memory and dies of SIGBUS or SIGSEGV:
    none passes, hangs or stays.  A thread whose restarted futex wait finds
    its futex word poisoned gets EFAULT from the kernel instead of a SIGBUS,
    and glibc aborts on that with its futex message: SIGABRT is right only
    with that message, once for each process that ended so."""
    # the children first (they are the root's to signal, but the root may
    # die before it can)
    for pid in [*tree, task.pid]:
        os.kill(pid, signal.SIGTERM)
    # the root first: its dead children are then ours to reap
    poisoned = (signal.SIGBUS, signal.SIGSEGV, signal.SIGABRT)
    aborted = []
    for pid in [task.pid, *tree]:
        status = task.procs.reap(pid, TIMEOUT)
        assert not P.exists(pid), f"process {pid} of the tree is still there"
        if status is not None and os.WIFSIGNALED(status) and \
                os.WTERMSIG(status) == signal.SIGABRT:
            aborted.append(pid)
        if pid != task.pid:
            assert status is None or (os.WIFSIGNALED(status) and os.WTERMSIG(status) in
                                      poisoned), (
                f"child {pid} ended with {P.wait_status_str(status)}, expected SIGBUS, "
                "SIGSEGV or glibc's abort on a poisoned futex")
        else:
            assert status is not None and os.WIFSIGNALED(status) and \
                os.WTERMSIG(status) in poisoned, (
                    f"the root ended with {P.wait_status_str(status)}, expected SIGBUS, "
                    "SIGSEGV or glibc's abort on a poisoned futex")
    said_futex = task.output.read_text(errors="replace").count(GLIBC_FUTEX_EFAULT)
    assert len(aborted) <= said_futex, (
        f"{aborted} died of SIGABRT but glibc said {GLIBC_FUTEX_EFAULT!r} {said_futex} "
        f"time(s): an abort of the program's own\n{task.text(task.output)}")
    assert not task.outfile.exists() or not re.match(r"PASS", task.outfile.read_text()), (
        "the tree passed its checks on poisoned memory")


def test_daemon_stopped_mid_tree(zdtm, tool, workdir):
    """SIGTERM to the daemon while every process of the tree still has lazy
    pages: one line, exit 1, then each process dies touching its memory
    (expect_tree_poisoned)."""
    task, daemon, tree = stop_tree_lazy(zdtm, tool, workdir, "stopped")
    os.kill(daemon.pid, signal.SIGTERM)
    assert daemon.wait_exit() != 0, "the daemon exited 0 although pages were left"
    said = [l for l in daemon.out.read_text().splitlines() if l.startswith("lazy-pages: ")
            and "stopped by signal" in l]
    assert len(said) == 1, daemon.text()
    assert "guardian: " not in daemon.out.read_text(), (
        "the guardian took over from a daemon that ended by itself\n" + daemon.text())
    expect_tree_poisoned(task, tree)


def test_daemon_killed_mid_tree(zdtm, tool, workdir):
    """SIGKILL to the daemon while every process of the tree (16 threads in
    the root, 4 in each child) still has lazy pages: its guardian poisons
    what each process misses, says so in one line per process, and exits 0;
    then each process dies touching its memory (expect_tree_poisoned), none
    reads zeros as its data.

    The kill waits until the guardian holds the five uffds: the restore
    does not wait for the daemon, and a uffd still queued on the restore's
    connection when the daemon was killed died with it (lazy-pages.md,
    "The races"), the likely cause of this test's one failure on a loaded
    machine (not reproduced in 350 runs under load).  The guardian now
    takes those too (test_lazy_guardian.py), but not one the daemon had
    read and not yet handed over."""
    task, daemon, tree = stop_tree_lazy(zdtm, tool, workdir, "killed")
    assert daemon.guardian and P.wait_for(lambda: len(lazy.uffd_fds(daemon.guardian)) == 5,
                                          TIMEOUT), daemon.text()
    os.kill(daemon.pid, signal.SIGKILL)
    lines = daemon.guardian_lines()
    for pid in [task.pid, *tree]:
        mine = [l for l in lines if re.search(
            rf"^lazy-pages: guardian: the lazy-pages daemon \(pid {daemon.pid}\) died without "
            rf"ending its work: task {pid}: [1-9][0-9]* missing pages poisoned", l)]
        assert len(mine) == 1, f"process {pid}: {mine}\n{daemon.text()}"
    assert len(lines) == 5, daemon.text()
    expect_tree_poisoned(task, tree)


def test_guardian_releases_what_the_daemon_closes(zdtm, tool, workdir):
    """The guardian holds a copy of each process's uffd, and closes it when
    the daemon closes its own (here: a child killed): kept, it would hold
    the VMAs of a task the daemon no longer serves registered, and a fault
    there would wait for nobody.  The rest of the tree stays guarded."""
    task, daemon, tree = stop_tree_lazy(zdtm, tool, workdir, "release")
    # each uffd handed over by a message the guardian reads in its own time
    assert daemon.guardian and P.wait_for(lambda: len(lazy.uffd_fds(daemon.guardian)) == 5,
                                          TIMEOUT), daemon.text()
    os.kill(tree[0], signal.SIGKILL)
    assert P.wait_for(lambda: len(lazy.uffd_fds(daemon.guardian)) == 4, TIMEOUT), (
        f"the guardian still holds {len(lazy.uffd_fds(daemon.guardian))} uffds after the "
        f"daemon closed the killed child's\n{daemon.text()}")
    assert re.search(rf"task {tree[0]} exited", daemon.log.read_text()), daemon.text()
    # the end: the daemon poisons what is left itself, then the tree goes
    os.kill(daemon.pid, signal.SIGTERM)
    assert daemon.wait_exit() != 0
    assert daemon.guardian_status is None and not P.exists(daemon.guardian), daemon.text()
    for pid in [task.pid, *tree]:
        task.procs.kill(pid)


def socket_fds(pid):
    """The fds of pid that are sockets."""
    fds = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                fds.append(int(fd))
        except FileNotFoundError:
            pass
    return fds


def test_guardian_drops_the_connection_once_every_record_is_read(zdtm, tool, workdir):
    """The guardian holds the restore's connection only while a record may
    be queued on it (guardian-handshake.c): once the daemon has read every
    record it says so (GUARDIAN_CONN_DONE) and the guardian closes its
    copy, the daemon its own at the connection's end; left, the guardian
    kept the connection open as long as it lived.  What it holds then: its
    end of the socketpair, and the five uffds."""
    task, daemon, tree = stop_tree_lazy(zdtm, tool, workdir, "conn")
    assert daemon.guardian and P.wait_for(
        lambda: len(lazy.uffd_fds(daemon.guardian)) == 5 and
        len(socket_fds(daemon.guardian)) == 1, TIMEOUT), (
        f"the guardian holds {len(lazy.uffd_fds(daemon.guardian))} uffds and "
        f"{len(socket_fds(daemon.guardian))} sockets\n{daemon.text()}")
    os.kill(daemon.pid, signal.SIGTERM)
    assert daemon.wait_exit() != 0
    for pid in [task.pid, *tree]:
        task.procs.kill(pid)


MADV_WIPEONFORK = 18		# private anonymous memory only: EINVAL on a file


def wipeonfork_on_first_file_vma(mm):
    """mm.img with MADV_WIPEONFORK in the madv of its first file-backed VMA."""
    done = []

    def change(fields):
        out = []
        for num, wt, v in fields:
            if num == 14 and not done:
                vma = images.decode(v)
                if images.get(vma, 8)[0] >= 0:	# fd: a file
                    vma = [f for f in vma if f[0] != 9] + [(9, images.VARINT,
                                                            1 << MADV_WIPEONFORK)]
                    v = images.encode(vma)
                    done.append(images.get(vma, 1)[0])
            out.append((num, wt, v))
        return out
    images.edit_record(mm, change)
    assert done, f"{mm}: no file-backed VMA"
    return done[0]


def test_child_restorer_fails_before_its_uffd_is_sent(zdtm, tool, workdir):
    """The blob sends its uffd itself and goes on (pie/uffd.c): one that
    fails before it does must fail the restore with its own step, not hang
    it or pass for a handover."""
    spec = ZdtmTest("tree_lazy_stress", ("--pages", "1024", "--child-pages", "256",
                                         "--inherited-pages", "16"), label="blobfail", tree=True)
    task = zdtm(spec)
    good = workdir / "images"
    dump(tool, task, good, workdir)
    child = sorted(task.tree)[0]
    bad = damaged_copy(good, workdir)
    addr = wipeonfork_on_first_file_vma(bad / f"mm-{child}.img")
    daemon = lazy.Daemon(task.procs, tool, ["lazy-pages", "-D", bad],
                         workdir / "lazy-pages-bad.log", workdir / "lazy-pages-bad.out",
                         "lazy-pages")
    children = P.children_of_me()
    pidfile = workdir / "bad.pid"
    res = tool.restore(bad, workdir / "restore-bad.log", TIMEOUT, pidfile=pidfile,
                       extra=["--lazy-pages"])
    assert_error_line(res, "restore", rf"task {child}: restorer: madvise on the VMA at "
                      rf"0x{addr:x} failed: Invalid argument")
    expect_nothing_left(task.pid, children, pidfile)
    # it never got a record: stopped, it says so and exits non-zero
    os.kill(daemon.pid, signal.SIGTERM)
    assert daemon.wait_exit() != 0, daemon.text()
    daemon = restore(tool, task, good, workdir)
    daemon.expect_clean_exit()
    task.check_pass()
