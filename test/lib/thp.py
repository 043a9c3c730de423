"""The host's transparent huge page knobs, which every test run on the
machine shares: /sys/kernel/mm/transparent_hugepage is one for the host,
not one per checkout or per pytest.

test_lazy_thp.py sets a knob to `always` for a test.  A run of another
checkout at that moment has its anonymous memory filled by huge pages
where it touched one byte: the holes a test counts become zero pages
(test_lazy.py's test_second_dump_of_lazy_task_keeps_holes), a page
written before a registration brings its neighbours with it
(test_lazy_present.py).  So a test that changes a knob holds LOCK
exclusively while it is changed (`changed()`), and a test whose outcome
depends on the knobs as the host has them holds it shared for its whole
run (`as_host()`, the `thp_as_host` fixture of conftest.py): the two never
overlap, in any checkout, as the lock is the host's (under /run/lock).

A run killed while a knob is changed (SIGKILL: its `finally` never runs)
leaves SAVED, the knob's old value, behind: whoever takes the lock next,
either way, puts the knob back first.
"""
import contextlib
import fcntl
import os
import time
from pathlib import Path

import pytest

THP = Path("/sys/kernel/mm/transparent_hugepage")
LOCK = Path("/run/lock/criu-lazy-thp.lock")
SAVED = Path("/run/lock/criu-lazy-thp.saved")	# "KNOB VALUE" while KNOB is changed
# the lock of test_lazy_thp.py before this one (checkouts older than it
# take only this), taken too by a change
OLD_LOCK = Path("/tmp/criu-lazy-thp.lock")
WAIT_S = 300		# a holder holds it for one test


def current(knob):
    """The knob's setting: the word in brackets ("always [madvise] never")."""
    return (THP / knob).read_text().split("[")[1].split("]")[0]


def holders(lock):
    """Pids holding the lock file, from /proc/locks, for a message."""
    try:
        ino = lock.stat().st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    return [ln.split()[4] for ln in lines
            if ln.split()[1] == "FLOCK" and ln.split()[5].endswith(f":{ino}")]


def put_back_saved():
    """A knob a killed run left changed, as it was before (we hold LOCK)."""
    try:
        knob, value = SAVED.read_text().split()
    except (FileNotFoundError, ValueError):
        return
    (THP / knob).write_text(value)
    SAVED.unlink(missing_ok=True)


@contextlib.contextmanager
def locked(how, old=False):
    """LOCK (OLD_LOCK if old) held with flock `how` (LOCK_EX or LOCK_SH) for
    the block, waited for at most WAIT_S."""
    lock = OLD_LOCK if old else LOCK
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                fcntl.flock(fd, how | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{lock} still held after {WAIT_S} s (by pids "
                                f"{', '.join(holders(lock)) or '?'}): another run changes the "
                                "host's THP knobs, or depends on them", pytrace=False)
                time.sleep(0.05)
        if not old:
            put_back_saved()
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def changed(knob, value):
    """The host's THP knob (a path under THP) at value for the block, then as
    it was; skips where the knob does not exist or cannot be written."""
    path = THP / knob
    if not path.exists():
        pytest.skip(f"{path} does not exist on this kernel")
    with locked(fcntl.LOCK_EX), locked(fcntl.LOCK_EX, old=True):
        old = current(knob)
        SAVED.write_text(f"{knob} {old}\n")
        try:
            path.write_text(value)
        except OSError as e:	# a container's read-only /sys
            SAVED.unlink(missing_ok=True)
            pytest.skip(f"cannot set {path} to {value}: {e.strerror}")
        try:
            yield
        finally:
            path.write_text(old)
            SAVED.unlink(missing_ok=True)


def anon_always():
    """The knobs that give every anonymous fault a huge page (of any size)."""
    top = current("enabled")
    out = ["enabled"] if top == "always" else []
    for d in sorted(THP.glob("hugepages-*kB")):
        if (d / "enabled").exists():
            v = current(f"{d.name}/enabled")
            if v == "always" or (v == "inherit" and top == "always"):
                out.append(f"{d.name}/enabled")
    return out


@contextlib.contextmanager
def as_host():
    """The knobs left as the host has them for the block (no test changes
    them meanwhile); skips when the host itself gives anonymous memory huge
    pages without MADV_HUGEPAGE, which the tests that need this count on
    not happening."""
    with locked(fcntl.LOCK_SH):
        if THP.exists() and anon_always():
            pytest.skip(f"the host's THP is `always` for anonymous memory "
                        f"({', '.join(anon_always())} under {THP}): a touched byte "
                        "would fill pages this test needs left untouched")
        yield
