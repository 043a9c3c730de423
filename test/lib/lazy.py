"""The lazy-pages daemon and page server as a test runs them.

A daemon is started on an images directory before `restore --lazy-pages`
and is ready when it writes its byte to --status-fd.  When every task has
all its pages (or has exited) it prints its statistics, writes
lazy-pages-stats.json next to the images and exits 0.
"""
import json
import os
import re
import select
import signal
from pathlib import Path

from . import images, procs as P

READY_TIMEOUT = 30
EXIT_TIMEOUT = 120


def wait_ready(read_fd, proc, what, timeout=READY_TIMEOUT):
    """The one zero byte a daemon writes on --status-fd once it listens."""
    try:
        r, _, _ = select.select([read_fd], [], [], timeout)
        data = os.read(read_fd, 1) if r else b""
    finally:
        os.close(read_fd)
    if data != b"\0":
        rc = proc.poll()
        raise AssertionError(f"{what} did not get ready within {timeout} s "
                             f"(exit status {rc})")


class Daemon:
    """One `criu-lazy lazy-pages` (or `page-server`) process of a test."""

    def __init__(self, tracker, tool, args, log, out, what, ready_timeout=READY_TIMEOUT,
                 env=None):
        """env: its environment (None: ours)."""
        self.procs = tracker
        self.what = what
        self.log = Path(log)
        self.out = Path(out)
        r, w = os.pipe()
        try:
            self.proc = tracker.spawn(tool.argv([*args, "--status-fd", w, "-v4", "-o", log]),
                                      stdout=out, pass_fds=(w,), env=env)
        finally:
            os.close(w)
        wait_ready(r, self.proc, what, ready_timeout)
        self.pid = self.proc.pid
        # the lazy-pages daemon's guardian (guardian.h), forked before ready
        self.guardian = find_guardian(self.pid, self.log) if str(args[0]) == "lazy-pages" \
            else None
        if self.guardian:
            tracker.adopt_follower(self.guardian)
        # and its keeper (guardian-keeper.c), which ends with the guardian
        self.keeper = find_keeper(self.pid, self.log) if self.guardian else None
        if self.keeper:
            tracker.adopt_follower(self.keeper)

    def text(self):
        out = [f"--- {self.what} output"]
        for path in (self.out, self.log):
            try:
                out.append(path.read_text(errors="replace")[-6000:])
            except FileNotFoundError:
                out.append(f"({path.name} missing)")
        return "\n".join(out)

    def wait_exit(self, timeout=EXIT_TIMEOUT):
        """The exit status (an int, negative for a signal).  Its guardian
        ends too: reaped by the daemon at a normal end, else by itself once
        it has poisoned what the daemon left (then it is ours to reap)."""
        try:
            status = self.procs.reap(self.pid, timeout)
        except TimeoutError:
            raise AssertionError(f"{self.what} did not exit within {timeout} s\n{self.text()}")
        self.guardian_status = self.wait_guardian(timeout)
        self.wait_keeper(timeout)
        if status is None:
            return self.proc.returncode
        return os.waitstatus_to_exitcode(status)

    def wait_guardian(self, timeout=EXIT_TIMEOUT):
        """The guardian's wait status once it is gone (None: not ours to
        see, the daemon reaped it)."""
        if not self.guardian or not self.procs.owns(self.guardian):
            return None
        try:
            return self.procs.reap(self.guardian, timeout)
        except TimeoutError:
            raise AssertionError(f"the guardian {self.guardian} of {self.what} did not exit "
                                 f"within {timeout} s\n{self.text()}")

    def wait_keeper(self, timeout=EXIT_TIMEOUT):
        """The keeper gone: the daemon reaps it at a normal end, else the
        guardian ends it at its takeover (then it is ours to reap)."""
        if not self.keeper or not self.procs.owns(self.keeper):
            return
        try:
            self.procs.reap(self.keeper, timeout)
        except TimeoutError:
            raise AssertionError(f"the keeper {self.keeper} of {self.what} did not exit "
                                 f"within {timeout} s\n{self.text()}")

    def guardian_lines(self, timeout=EXIT_TIMEOUT):
        """After the daemon died without ending its work (SIGKILL): its end
        waited for, and its guardian's, which must have exited 0; the
        guardian's lines of the daemon's output."""
        self.wait_exit(timeout)
        status = self.guardian_status
        assert status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (
            f"the guardian ended with {P.wait_status_str(status)}\n{self.text()}")
        return [l for l in self.out.read_text().splitlines() if "guardian: " in l]

    def expect_clean_exit(self, timeout=EXIT_TIMEOUT):
        rc = self.wait_exit(timeout)
        assert rc == 0, f"{self.what} exited with {rc}\n{self.text()}"


def start_daemon(procs, tool, imgdir, workdir, *extra, name="lazy-pages"):
    """`lazy-pages -D imgdir extra...`, its log and output in workdir."""
    return Daemon(procs, tool, ["lazy-pages", "-D", imgdir, *extra],
                  workdir / f"{name}.log", workdir / f"{name}.out", name)


def uffd_fds(pid):
    """The fds of pid that are userfaultfds."""
    fds = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[userfaultfd]":
                fds.append(int(fd))
        except FileNotFoundError:
            pass
    return fds


def find_keeper(pid, log):
    """The daemon's child that shares its fd table (guardian-keeper.c), as
    its log names it before the daemon gets ready, or None."""
    try:
        said = re.search(r"keeper: pid (\d+) shares", Path(log).read_text(errors="replace"))
    except FileNotFoundError:
        return None
    if said and P.ppid(int(said.group(1))) == pid:
        return int(said.group(1))
    return None


def find_guardian(pid, log):
    """The daemon's child, the guardian, or None.  The daemon logs its pid
    before it gets ready ('guardian: pid N holds a copy'): that child, read
    back from the log.  Else, a child named lazy-guardian (or not renamed
    yet): the daemon has no other child at ready time.  A guardian missed
    here is not waited for, and a test reading its lines right after the
    daemon's SIGKILL found none (it poisons after the daemon is gone)."""
    try:
        said = re.search(r"guardian: pid (\d+) holds a copy", Path(log).read_text(errors="replace"))
    except FileNotFoundError:
        said = None
    if said and P.ppid(int(said.group(1))) == pid:
        return int(said.group(1))
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(x) for x in f.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        return None
    for kid in kids:
        try:
            with open(f"/proc/{kid}/comm") as f:
                if f.read().strip() in ("lazy-guardian", "criu-lazy"):
                    return kid
        except (FileNotFoundError, ProcessLookupError):
            pass
    return None


def lazy_pages_by_pid(imgdir):
    """{pid: PE_LAZY pages of pagemap-PID.img} (spec 1.3)."""
    out = {}
    for path in Path(imgdir).glob("pagemap-*.img"):
        if path.name.startswith("pagemap-shmem-"):
            continue
        _, entries = images.pagemap_entries(path)
        out[int(path.name[len("pagemap-"):-len(".img")])] = sum(
            nr for _, nr, flags in entries if flags & images.PE_LAZY)
    return out


def lazy_pages_in_images(imgdir):
    """Sum of the PE_LAZY pages of every pagemap-PID.img (spec 1.3)."""
    return sum(lazy_pages_by_pid(imgdir).values())


def shmem_pages_in_images(imgdir):
    """Pages of every pagemap-shmem-SHMID.img (shared memory objects)."""
    total = 0
    for path in Path(imgdir).glob("pagemap-shmem-*.img"):
        _, entries = images.pagemap_entries(path)
        total += sum(nr for _, nr, flags in entries if flags & images.PE_PRESENT)
    return total


def read_stats(imgdir):
    path = Path(imgdir) / "lazy-pages-stats.json"
    assert path.exists(), f"the daemon wrote no {path}"
    return json.loads(path.read_text())


DROPPED = ("pages_dropped_event", "pages_dropped_exit", "pages_lost")


def check_stats(imgdir, daemon_text="", removed=0, exact=True, lost=0):
    """Every lazy page of the images was delivered once or dropped for a
    reason that allows it (issue 13, Documentation/lazy-pages.md): no page
    was lost (exactly `lost` where the test made them so), the pages dropped because of an UNMAP/REMOVE event are
    exactly the `removed` pages the program took away itself (at most those
    when not `exact`), and
        pages_lazy + pages_inherited == pages_fault + pages_background
            + pages_prefetched + pages_dropped_event + pages_dropped_exit
            + pages_lost."""
    st = read_stats(imgdir)
    # shared memory restored lazily: each object once (lazy-pages.md)
    assert st["pages_shmem"] <= shmem_pages_in_images(imgdir), (
        f"the daemon counted {st['pages_shmem']} lazy pages of shared memory, the images "
        f"hold {shmem_pages_in_images(imgdir)}\n{daemon_text}")
    want = lazy_pages_in_images(imgdir) + st["pages_shmem"]
    assert st["pages_lazy"] == want, (
        f"the daemon counted {st['pages_lazy']} lazy pages, the images hold {want}\n"
        f"{daemon_text}")
    assert st["pages_lost"] == lost, (
        f"the daemon lost {st['pages_lost']} pages, expected {lost}\n{daemon_text}")
    ev = st["pages_dropped_event"]
    assert ev == removed if exact else ev <= removed, (
        f"the daemon dropped {ev} pages because of events, but the program removed "
        f"{'' if exact else 'at most '}{removed}: {st}\n{daemon_text}")
    want += st["pages_inherited"]	# a child forked after restore needs them too
    done = st["pages_fault"] + st["pages_background"] + st["pages_prefetched"] + \
        sum(st[k] for k in DROPPED)
    assert done == want, (f"{want} lazy pages (with {st['pages_inherited']} inherited by "
                          f"forks), but {st['pages_fault']} by fault + "
                          f"{st['pages_background']} in background + "
                          f"{st['pages_prefetched']} prefetched + "
                          + " + ".join(f"{st[k]} {k[6:]}" for k in DROPPED) +
                          f" = {done}\n{daemon_text}")
    check_process_stats(st, imgdir, daemon_text)
    return st


PROC_COUNTS = ("tasks", "pages_lazy", "pages_inherited", "pages_fault", "pages_background",
               "pages_zero", "faults", "pages_shmem", "pages_prefetched", "prefetch_hits",
               "prefetch_late", "prefetch_filled", "faults_avoided", "faults_installing") + DROPPED


def check_process_stats(st, imgdir, daemon_text=""):
    """The per-process statistics (issue 8): one entry per dumped process
    with lazy pages, each with its own image's lazy pages and the same
    accounting as the tree, and the tree's totals their sums."""
    procs = st.get("processes")
    assert procs is not None, f"no per-process statistics: {st}\n{daemon_text}"
    by_pid = lazy_pages_by_pid(imgdir)
    for p in procs:
        pid = p["pid"]
        assert p["pages_lazy"] == by_pid.get(pid, 0) + p["pages_shmem"], (
            f"process {pid}: {p['pages_lazy']} lazy pages counted, its image has "
            f"{by_pid.get(pid, 0)} (+{p['pages_shmem']} of shared memory)\n{daemon_text}")
        done = p["pages_fault"] + p["pages_background"] + p["pages_prefetched"] + \
            sum(p[k] for k in DROPPED)
        assert p["pages_lazy"] + p["pages_inherited"] == done, (
            f"process {pid}: {p['pages_lazy']} lazy + {p['pages_inherited']} inherited, but "
            f"{done} delivered or dropped: {p}\n{daemon_text}")
    for key in PROC_COUNTS:
        total = sum(p[key] for p in procs)
        assert total == st[key], (f"{key}: the processes add up to {total}, the tree says "
                                  f"{st[key]}: {procs}\n{daemon_text}")
    return procs


def restore_shmem_pair(mode, task, procs):
    """One checkpoint/restore cycle of mode for a root and its one child
    (shmem_lazy_share): the child of the restored root, adopted."""
    mode.cycle(task, 1)
    tree = P.descendants(task.pid)
    assert len(tree) == 1, f"the restored tree: {tree}"
    procs.adopt(tree[0])
    return tree[0]


def expect_shmem_tree_poisoned(procs, task, child, timeout):
    """A two-process tree whose shared memory can no longer arrive:
    SIGTERM makes the root touch it (and wake the child), and it dies of
    SIGBUS (SIGSEGV when the handler's memory is poisoned too); the child
    is killed by its pid; the tree never said PASS."""
    os.kill(task.pid, signal.SIGTERM)
    status = procs.reap(task.pid, timeout)
    assert status is not None and os.WIFSIGNALED(status) and \
        os.WTERMSIG(status) in (signal.SIGBUS, signal.SIGSEGV), (
            f"the root ended with {P.wait_status_str(status)}, expected SIGBUS")
    os.kill(child, signal.SIGKILL)
    procs.reap(child, timeout)
    assert not task.outfile.exists() or not re.match(r"PASS", task.outfile.read_text()), (
        "the tree passed its checks on poisoned memory")
