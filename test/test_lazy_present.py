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
The clean case (nothing written) is the same program with exit 0.
"""
import collections
import re
import subprocess
from pathlib import Path

import pytest

from lib import lazy, paths
from lib.tool import assert_ok
from lib.zdtm import ZdtmTest

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


@pytest.mark.parametrize("delivery", ["background", "faults"])
@pytest.mark.parametrize("case", ["clean", "middle", "first-middle-last", "huge-run", "thp",
                                  "shm-clean", "shm-first-middle-last"])
def test_present_lazy_page_is_lost_loudly(case, delivery, zdtm, tool, procs, workdir):
    """delivery "faults": --no-background-fetch, so every page comes by the
    task's own faults, their fault-around windows next to the lost pages.
    "shm-*": the pages are in a shared anonymous object (lazy-shmem-load.c
    checks it when it opens the object)."""
    task = zdtm(SHM_WORKLOAD if case.startswith("shm") else WORKLOAD)
    imgdir = workdir / "images"
    imgdir.mkdir()
    assert_ok(tool.dump(task.pid, imgdir, workdir / "dump.log", TIMEOUT), "dump")
    task.expect_gone()
    vmas = layout(imgdir, task.pid)
    lazy_pages = {p for pages in vmas.values() for p in pages}
    args = pick(vmas, case)

    extra = ["--no-background-fetch"] if delivery == "faults" else []
    daemon = lazy.Daemon(procs, tool, ["lazy-pages", "-D", imgdir, *extra],
                         workdir / "lazy-pages.log", workdir / "lazy-pages.out", "lazy-pages")
    out = workdir / "lazy_present.out"
    helper = procs.spawn([HELPER, "-D", imgdir, "-p", task.pid, *args], stdout=out)
    status = procs.reap(helper.pid, TIMEOUT)
    rc = daemon.wait_exit()
    text = helper_text(out) + "\n" + daemon.text()
    assert status is not None and status >> 8 == 0 and not status & 0x7f, (
        f"lazy_present exited with status {status:#x}: a page read back wrong, or the "
        f"setup failed\n{text}")
    report = out.read_text()
    assert re.search(r"^checked \d+ pages, 0 wrong$", report, re.M), text

    present = {int(a, 16) for a in re.findall(r"^present 0x([0-9a-f]+)$", report, re.M)}
    assert written(args) <= present, f"pages written but not present\n{text}"
    lost = present & lazy_pages
    if case == "thp":
        window = set(range(int(args[1], 16), int(args[1], 16) + HUGE, PG))
        if not window <= present:
            pytest.skip("the kernel gave the MADV_HUGEPAGE range no huge page "
                        f"({len(window & present)} of 512 pages there)")
    else:
        assert lost == written(args) & lazy_pages, (
            f"lazy pages present that the test did not write: "
            f"{few(lost - written(args))}\n{text}")

    log = daemon.log.read_text(errors="replace")
    named = collections.Counter(int(m.group(2), 16) for m in LOST_RE.finditer(log))
    assert set(named) == lost, (
        f"present lazy pages not named: {few(lost - set(named))}; "
        f"named but not present: {few(set(named) - lost)}\n{text}")
    assert all(n == 1 for n in named.values()), (
        f"named twice: {few(a for a, n in named.items() if n > 1)}\n{text}")
    # and no page lost any other way (a copy meeting EEXIST, an ENOENT)
    other = [ln for ln in log.splitlines() if ln.endswith("lost") and not LOST_RE.search(ln)]
    assert not other, f"other pages lost: {other[:4]}\n{text}"
    errors = [m for m in LOST_RE.finditer(daemon.out.read_text(errors="replace"))
              if m.group(4).startswith("was")]
    assert len(errors) == min(len(lost), LOST_LINES), (
        f"{len(errors)} error lines on stderr for {len(lost)} lost pages\n{text}")

    st = lazy.check_stats(imgdir, text, lost=len(lost))
    assert st["pages_dropped_exit"] == 0, f"the task exited with pages lazy: {st}\n{text}"
    if delivery == "faults":
        assert st["pages_background"] == 0 and st["pages_fault"] == st["pages_lazy"] - len(lost), (
            f"not every page came by a fault: {st}\n{text}")
    if lost:
        assert rc == 1, f"the daemon lost {len(lost)} pages and exited {rc}\n{text}"
        assert re.search(rf"{len(lost)} lazy pages were lost, each named above",
                         daemon.out.read_text()), text
    else:
        assert rc == 0, f"nothing was present, yet the daemon exited {rc}\n{text}"
