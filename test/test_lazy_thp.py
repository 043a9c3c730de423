"""Transparent huge pages must not hide lazy pages (restore.md, "THP during
the fill").  The restore fills a few pages of lazy VMAs (a thread's stack
pointer, the rseq area) before the userfaultfd is registered; with THP on
for that VMA the kernel could allocate a whole huge page of zeros around
the filled page, and the lazy pages in it would read as zeros.

This host's setting is `madvise`, and the restore puts MADV_HUGEPAGE back
only after the registration, so the test sets the host's THP to `always`
(and, apart, one mTHP size to `always`) for the run and back afterwards,
holding the host's lock of the knobs (lib/thp.py): a test of another
checkout that counts on them as the host has them waits meanwhile.
lazy_thp: a thread's stack in a 2 MiB aligned MADV_HUGEPAGE region; every
other page of the region must keep its data, and THP must be on again in
the restored task (THP_enabled in /proc/PID/status) as it was dumped.
"""
import fcntl
from pathlib import Path

import pytest

from lib import thp
from lib.zdtm import ZdtmTest

SETTINGS = [pytest.param("enabled", id="always"),
            pytest.param("hugepages-64kB/enabled", id="mthp-64k")]


def thp_enabled(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("THP_enabled:"):
            return line.split()[1]
    return None


@pytest.mark.parametrize("knob", SETTINGS)
def test_fill_gets_no_huge_page(knob, mode, zdtm):
    if mode.name not in ("lazy", "remote-lazy", "lazy-migrate"):
        pytest.skip(f"{mode.name}: no page is lazy")
    with thp.changed(knob, "always"):
        task = zdtm(ZdtmTest("lazy_thp", defer_background=True), pid_ns=mode.pid_ns)
        before = thp_enabled(task.pid)
        mode.cycle(task, 1)
        assert thp_enabled(task.pid) == before, (
            "THP_enabled of the restored task differs from the dumped one's")
        task.check_pass()
        mode.finish()


def test_knob_put_back(tmp_path, monkeypatch):
    """A change is undone when its block fails; a run killed while it had a
    knob changed (no `finally` ran) left the knob's old value in SAVED, and
    the next holder of the lock, shared or exclusive, puts it back first.
    On a made-up THP directory and locks: the host's knobs are not
    touched."""
    fake = tmp_path / "thp"
    (fake / "hugepages-64kB").mkdir(parents=True)
    (fake / "enabled").write_text("always [madvise] never\n")
    (fake / "hugepages-64kB" / "enabled").write_text("[always] inherit madvise never\n")
    monkeypatch.setattr(thp, "THP", fake)
    monkeypatch.setattr(thp, "LOCK", tmp_path / "thp.lock")
    monkeypatch.setattr(thp, "SAVED", tmp_path / "thp.saved")
    monkeypatch.setattr(thp, "OLD_LOCK", tmp_path / "thp-old.lock")
    with pytest.raises(RuntimeError):
        with thp.changed("enabled", "always"):
            assert (fake / "enabled").read_text() == "always"
            assert thp.SAVED.read_text() == "enabled madvise\n"
            raise RuntimeError("the test failed")
    assert (fake / "enabled").read_text() == "madvise" and not thp.SAVED.exists()
    thp.SAVED.write_text("hugepages-64kB/enabled never\n")
    with thp.locked(fcntl.LOCK_SH):
        assert (fake / "hugepages-64kB" / "enabled").read_text() == "never"
        assert not thp.SAVED.exists()
