"""A lazy page already there at the handover fails the daemon loudly
(Documentation/lazy-pages.md, "The loop": the check at a handover).

Such a page never faults, so with faults alone the daemon would never see
it, and the task would keep whatever made it present (a huge page of zeros
around an eager fill).  The daemon scans each task's lazy regions when its
uffd arrives: every pending page must be missing; one that is not is named
in a line of its own, counted in pages_lost, and the daemon exits 1.

No debug switch of the tool makes that happen here: test/helpers/lazy_present
plays the restore for a real dump of mem_anon.  It creates a task with the
dumped pid that maps the lazy VMAs where they were, fills their eager pages,
makes chosen lazy pages present (written over before the userfaultfd is
registered, or a transparent huge page around one byte), registers the
VMAs, and hands the uffd to a real `criu-lazy lazy-pages` with the
restore's own encoder.  Then the task reads every page back: each one the
daemon delivered must hold the image's data, each present one what it held.
The clean case (nothing written) is the same program with exit 0.  Every
case runs with background delivery and with faults alone, from the images
and from a page server; the shm-* cases put the pages in a shared anonymous
object (mmap_anon_shared), which the daemon checks when it opens it, and
a shared page written behind the daemon's back after that check is lost
by the EEXIST of its copy.
"""
import collections
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lib import lazy, paths
from lib.ports import free_port
from lib.tool import assert_ok
from lib.zdtm import ZdtmTest

# the helper writes pages of lazy VMAs before their registration: with
# THP `always` (test_lazy_thp.py) their neighbours would come too
pytestmark = pytest.mark.usefixtures("thp_as_host")

TIMEOUT = 60
HELPER = paths.BUILD / "test" / "helpers" / "lazy_present"
WORKLOAD = ZdtmTest("mem_anon", ("--size", "8M"), label="8M")
SHM_WORKLOAD = ZdtmTest("mmap_anon_shared")
PG = 4096
HUGE = 2 << 20
LOST_LINES = 16		# PM_LOST_LINES of lazy-task.c: error lines, the rest warnings
LOST_RE = re.compile(r"task (\d+): lazy page 0x([0-9a-f]+) (\(shared memory \d+, offset "
                     r"0x[0-9a-f]+\) )?(was present before we delivered anything|present "
                     r"before any delivery)")


def helper_text(out):
    text = Path(out).read_text(errors="replace")
    return f"--- lazy_present output (last 3000 bytes)\n{text[-3000:]}"


def layout(imgdir, pid):
    """The helper's view of the images: {(kind, start, end): [lazy pages]},
    kind "vma" (private) or "shm" (shared, its object's dumped pages)."""
    res = subprocess.run([str(HELPER), "-D", str(imgdir), "-p", str(pid), "--list"],
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert res.returncode == 0, f"lazy_present --list: {res.stderr}"
    vmas, cur = {}, None
    for line in res.stdout.splitlines():
        kind, a, b = line.split()
        if kind in ("vma", "shm"):
            cur = (kind, int(a, 16), int(b, 16))
            vmas[cur] = []
        else:
            vmas[cur] += [int(a, 16) + i * PG for i in range(int(b))]
    return vmas


def pick(vmas, case):
    """--write/--thp arguments for the case, on the biggest lazy VMA
    (mem_anon's 8 MiB: runs of 7 lazy pages, every 8th page a hole; for
    "shm-*", mmap_anon_shared's biggest shared region)."""
    kind = "shm" if case.startswith("shm") else "vma"
    (_, start, end), pages = max(((k, v) for k, v in vmas.items() if k[0] == kind),
                                 key=lambda kv: len(kv[1]))
    first, middle, last = pages[0], pages[len(pages) // 2], pages[-1]
    if case in ("clean", "shm-clean"):
        return []
    if case == "middle":
        return ["--write", hex(middle)]
    if case in ("first-middle-last", "shm-first-middle-last"):
        return [a for p in (first, middle, last) for a in ("--write", hex(p))]
    huge = next(a for a in range((start + HUGE - 1) // HUGE * HUGE, end - HUGE + 1, HUGE)
                if not a <= middle < a + HUGE)
    if case == "huge-run":	# the whole 2 MiB, its holes too: not lazy, so not lost
        return ["--write", f"{hex(huge)}:{HUGE // PG}"]
    return ["--thp", hex(huge)]


def few(addrs):
    """A set of addresses, short enough for a failure message."""
    addrs = sorted(addrs)
    return f"{len(addrs)}: {', '.join(hex(a) for a in addrs[:8])}{' ...' if len(addrs) > 8 else ''}"


def written(args):
    """The pages the --write arguments name."""
    out = set()
    for opt, val in zip(args[::2], args[1::2]):
        if opt == "--write":
            a, _, n = val.partition(":")
            out |= {int(a, 16) + i * PG for i in range(int(n or 1))}
    return out


class Run:
    """One dump of the workload, a daemon on its images (source "remote":
    their pages from a `page-server --lazy-pages` on a copy of them) and
    the helper playing the restore with args(layout): their outputs, once
    they ended."""

    def __init__(self, zdtm, tool, procs, workdir, workload, delivery, args, source="local"):
        task = zdtm(workload)
        self.imgdir = workdir / "images"
        self.imgdir.mkdir()
        assert_ok(tool.dump(task.pid, self.imgdir, workdir / "dump.log", TIMEOUT), "dump")
        task.expect_gone()
        self.vmas = layout(self.imgdir, task.pid)
        self.lazy_pages = {p for pages in self.vmas.values() for p in pages}
        self.args = args(self.vmas)
        extra = ["--no-background-fetch"] if delivery == "faults" else []
        server = None
        if source == "remote":
            port = free_port()
            shutil.copytree(self.imgdir, workdir / "server-images")
            server = lazy.Daemon(procs, tool, ["page-server", "-D", workdir / "server-images",
                                               "--address", "127.0.0.1", "--port", port,
                                               "--lazy-pages"],
                                 workdir / "page-server.log", workdir / "page-server.out",
                                 "page-server")
            extra += ["--page-server", "--address", "127.0.0.1", "--port", port]
        self.daemon = lazy.Daemon(procs, tool, ["lazy-pages", "-D", self.imgdir, *extra],
                                  workdir / "lazy-pages.log", workdir / "lazy-pages.out",
                                  "lazy-pages")
        out = workdir / "lazy_present.out"
        helper = procs.spawn([HELPER, "-D", self.imgdir, "-p", task.pid, *self.args],
                             stdout=out)
        status = procs.reap(helper.pid, TIMEOUT)
        self.rc = self.daemon.wait_exit()
        if server:	# its end is not what this test is about
            procs.kill(server.pid)
        self.text = helper_text(out) + "\n" + self.daemon.text()
        assert status is not None and status >> 8 == 0 and not status & 0x7f, (
            f"lazy_present exited with status {status:#x}: a page read back wrong, or the "
            f"setup failed\n{self.text}")
        report = out.read_text()
        assert re.search(r"^checked \d+ pages, 0 wrong$", report, re.M), self.text
        self.present = {int(a, 16) for a in re.findall(r"^present 0x([0-9a-f]+)$", report, re.M)}
        self.log = self.daemon.log.read_text(errors="replace")
        self.out = self.daemon.out.read_text(errors="replace")

    def expect_named(self, lost):
        """Each of the lost pages named once by the check at the handover,
        in an error line for the first LOST_LINES, and no other page."""
        named = collections.Counter(int(m.group(2), 16) for m in LOST_RE.finditer(self.log))
        assert set(named) == lost, (
            f"present lazy pages not named: {few(lost - set(named))}; "
            f"named but not present: {few(set(named) - lost)}\n{self.text}")
        assert all(n == 1 for n in named.values()), (
            f"named twice: {few(a for a, n in named.items() if n > 1)}\n{self.text}")
        errors = [m for m in LOST_RE.finditer(self.out) if m.group(4).startswith("was")]
        assert len(errors) == min(len(lost), LOST_LINES), (
            f"{len(errors)} error lines on stderr for {len(lost)} lost pages\n{self.text}")

    def other_lost(self):
        """Lines of pages lost any other way (a copy meeting EEXIST, ENOENT)."""
        return [ln for ln in self.log.splitlines()
                if ln.endswith("lost") and not LOST_RE.search(ln)]

    def expect_end(self, delivery, lost):
        """pages_lost is `lost` and the accounting holds; every page came by
        a fault with --no-background-fetch; exit 1 with the count, or 0."""
        st = lazy.check_stats(self.imgdir, self.text, lost=lost)
        assert st["pages_dropped_exit"] == 0, (
            f"the task exited with pages lazy: {st}\n{self.text}")
        if delivery == "faults":
            assert st["pages_background"] == 0 and \
                st["pages_fault"] == st["pages_lazy"] - lost, (
                    f"not every page came by a fault: {st}\n{self.text}")
        if lost:
            assert self.rc == 1, f"the daemon lost {lost} pages and exited {self.rc}\n{self.text}"
            assert re.search(rf"{lost} lazy pages were lost, each named above", self.out), \
                self.text
        else:
            assert self.rc == 0, f"nothing was present, yet the daemon exited {self.rc}\n{self.text}"


@pytest.mark.parametrize("source", ["local", "remote"])
@pytest.mark.parametrize("delivery", ["background", "faults"])
@pytest.mark.parametrize("case", ["clean", "middle", "first-middle-last", "huge-run", "thp",
                                  "shm-clean", "shm-first-middle-last"])
def test_present_lazy_page_is_lost_loudly(case, delivery, source, zdtm, tool, procs, workdir):
    """delivery "faults": --no-background-fetch, so every page comes by the
    task's own faults, their fault-around windows next to the lost pages.
    "shm-*": the pages are in a shared anonymous object (lazy-shmem-load.c
    checks it when it opens the object)."""
    run = Run(zdtm, tool, procs, workdir, SHM_WORKLOAD if case.startswith("shm") else WORKLOAD,
              delivery, lambda vmas: pick(vmas, case), source)
    args, text = run.args, run.text
    assert written(args) <= run.present, f"pages written but not present\n{text}"
    lost = run.present & run.lazy_pages
    if case == "thp":
        window = set(range(int(args[1], 16), int(args[1], 16) + HUGE, PG))
        if not window <= run.present:
            pytest.skip("the kernel gave the MADV_HUGEPAGE range no huge page "
                        f"({len(window & run.present)} of 512 pages there)")
    else:
        assert lost == written(args) & run.lazy_pages, (
            f"lazy pages present that the test did not write: "
            f"{few(lost - written(args))}\n{text}")
    run.expect_named(lost)
    assert not run.other_lost(), f"other pages lost: {run.other_lost()[:4]}\n{text}"
    run.expect_end(delivery, len(lost))


@pytest.mark.parametrize("source", ["local", "remote"])
def test_shared_page_filled_behind_the_daemon(source, zdtm, tool, procs, workdir):
    """After the check: a page of a lazy object written through a mapping
    no uffd registers (the helper's --late-write, once the daemon serves
    faults) is in the object with no fault; the daemon's copy of it meets
    EEXIST and counts it lost with its offset, never delivered."""
    def late(vmas):
        (_, start, _), pages = max(((k, v) for k, v in vmas.items() if k[0] == "shm"),
                                   key=lambda kv: len(kv[1]))
        return ["--late-write", hex(pages[len(pages) // 2])]

    run = Run(zdtm, tool, procs, workdir, SHM_WORKLOAD, "faults", late, source)
    page = int(run.args[1], 16)
    start = next(s for (kind, s, e) in run.vmas if kind == "shm" and s <= page < e)
    assert not run.present & run.lazy_pages, f"lazy pages present at the handover\n{run.text}"
    run.expect_named(set())
    other = run.other_lost()
    want = (rf"shared memory \d+: 1 lazy page\(s\) from offset {page - start:#x} were in the "
            r"object before their data came from us \(EEXIST\): lost$")
    assert len(other) == 1 and re.search(want, other[0]), (
        f"not one EEXIST line for offset {page - start:#x}: {other}\n{run.text}")
    run.expect_end("faults", 1)
