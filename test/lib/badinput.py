"""Helpers of the bad-input tests: a good dump and its damaged copy, a
restore that must fail leaving nothing behind, and its control restore;
a dump that must be refused leaving the task as it was."""
import os
import shutil
import subprocess
import time

import pytest

from . import procs as P
from .tool import assert_error_line, assert_ok
from .zdtm import ZdtmTest

DUMP_TIMEOUT = 60
RESTORE_TIMEOUT = 60
WORKLOAD = ZdtmTest("mem_anon", ("--size", "256K"), label="256K")


def image_path(imgdir, key, pid):
    names = {
        "inventory": "inventory.img", "pstree": "pstree.img",
        "core": f"core-{pid}.img", "mm": f"mm-{pid}.img",
        "pagemap": f"pagemap-{pid}.img", "fs": f"fs-{pid}.img",
        "ids": f"ids-{pid}.img", "files": "files.img",
    }
    if key == "fdinfo":
        found = sorted(imgdir.glob("fdinfo-*.img"))
    elif key == "pages":
        found = sorted(imgdir.glob("pages-*.img"))
    else:
        found = [imgdir / names[key]] if (imgdir / names[key]).exists() else []
    assert len(found) == 1, (f"the dump should have written exactly one {key} image, "
                             f"found {[p.name for p in found]} in {sorted(os.listdir(imgdir))}")
    return found[0]


def expect_nothing_left(pid, children_before, pidfile):
    """No process with the dumped pid, no new child or adopted orphan."""
    for _ in range(2):	# now, and once more after stragglers had time to reparent
        assert not P.exists(pid), f"a task was left behind: {P.describe(pid)}"
        new = [c for c in P.children_of_me() if c not in children_before]
        assert not new, "processes were left behind:\n" + "\n".join(map(P.describe, new))
        time.sleep(0.2)
    assert not pidfile.exists(), f"a failed restore wrote its pidfile ({pidfile.read_text()!r})"


@pytest.fixture
def dumped(tool, zdtm, workdir):
    """A small task dumped (and so killed) into images-good."""
    task = zdtm(WORKLOAD)
    good = dump_good(tool, task, workdir)
    return task, good


def restore_must_fail(tool, workdir, imgdir, pid, *patterns):
    children = P.children_of_me()
    pidfile = workdir / "bad.pid"
    res = tool.restore(imgdir, workdir / "restore-bad.log", RESTORE_TIMEOUT, pidfile=pidfile)
    line = assert_error_line(res, "restore", *patterns)
    expect_nothing_left(pid, children, pidfile)
    return line


def restore_must_pass(tool, workdir, task, good):
    pidfile = workdir / "good.pid"
    res = tool.restore(good, workdir / "restore-good.log", RESTORE_TIMEOUT, pidfile=pidfile)
    assert_ok(res, "restore of the undamaged images (the control)")
    task.expect_restored(pidfile)
    task.check_pass()


def damaged_copy(good, workdir):
    bad = workdir / "images-bad"
    shutil.copytree(good, bad)
    return bad


def free_pid():
    """A pid that existed a moment ago and does not now."""
    p = subprocess.Popen(["/bin/true"])
    p.wait(10)
    assert not P.exists(p.pid)
    return p.pid


def dump_good(tool, task, workdir, extra=(), name="images-good", timeout=DUMP_TIMEOUT):
    """Dump task (and so end it, its tree too) with the flags extra into
    workdir/name (by default images-good, the undamaged copy)."""
    imgdir = workdir / name
    imgdir.mkdir()
    task.note_tree()
    assert_ok(tool.dump(task.pid, imgdir, workdir / "dump.log", timeout, extra=extra),
              " ".join(("dump",) + tuple(extra)))
    task.expect_gone()
    return imgdir


def dump_must_refuse(tool, task, workdir, *patterns, extra=(), env=None):
    """A dump of task (with the flags extra, in the environment env if
    given) refused with one line matching patterns, the task left as it
    was, no image written; the images directory it was given."""
    before = task.snapshot()
    imgdir = workdir / "images"
    imgdir.mkdir()
    res = tool.dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT, extra=extra, env=env)
    assert_error_line(res, "dump", *patterns)
    task.expect_unharmed(before)
    left = sorted(p.name for p in imgdir.iterdir())
    assert not left, f"a refused dump left images: {left}"
    return imgdir
