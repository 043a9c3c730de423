"""Transparent huge pages must not hide lazy pages (restore.md, "THP during
the fill").  The restore fills a few pages of lazy VMAs (a thread's stack
pointer, the rseq area) before the userfaultfd is registered; with THP on
for that VMA the kernel could allocate a whole huge page of zeros around
the filled page, and the lazy pages in it would read as zeros.

This host's setting is `madvise`, and the restore puts MADV_HUGEPAGE back
only after the registration, so the test sets the host's THP to `always`
(and, apart, one mTHP size to `always`) for the run and back afterwards.
lazy_thp: a thread's stack in a 2 MiB aligned MADV_HUGEPAGE region; every
other page of the region must keep its data, and THP must be on again in
the restored task (THP_enabled in /proc/PID/status) as it was dumped.
"""
import contextlib
import fcntl
from pathlib import Path

import pytest

from lib.zdtm import ZdtmTest

THP = Path("/sys/kernel/mm/transparent_hugepage")
LOCK = "/tmp/criu-lazy-thp.lock"
SETTINGS = [pytest.param("enabled", id="always"),
            pytest.param("hugepages-64kB/enabled", id="mthp-64k")]


@contextlib.contextmanager
def thp_always(knob):
    """The host's THP knob at `always` for the block, then as it was (one
    test at a time changes it)."""
    path = THP / knob
    if not path.exists():
        pytest.skip(f"{path} does not exist on this kernel")
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = path.read_text().split("[")[1].split("]")[0]
        try:
            path.write_text("always")
        except OSError as e:	# a container's read-only /sys
            pytest.skip(f"cannot set {path} to always: {e.strerror}")
        try:
            yield
        finally:
            path.write_text(old)


def thp_enabled(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("THP_enabled:"):
            return line.split()[1]
    return None


@pytest.mark.parametrize("knob", SETTINGS)
def test_fill_gets_no_huge_page(knob, mode, zdtm):
    if mode.name not in ("lazy", "remote-lazy", "lazy-migrate"):
        pytest.skip(f"{mode.name}: no page is lazy")
    with thp_always(knob):
        task = zdtm(ZdtmTest("lazy_thp", defer_background=True), pid_ns=mode.pid_ns)
        before = thp_enabled(task.pid)
        mode.cycle(task, 1)
        assert thp_enabled(task.pid) == before, (
            "THP_enabled of the restored task differs from the dumped one's")
        task.check_pass()
        mode.finish()
