"""Deleted files (ghost files) where they go wrong: a file over --ghost-limit,
ghost images missing at restore, and a path taken again by the time of the
restore.  The program is test/zdtm/ghost_files.c (its success in every mode
is in test_zdtm.py).
"""
import os

from lib.tool import assert_ok
from lib.zdtm import ZdtmTest
from lib.badinput import (DUMP_TIMEOUT, RESTORE_TIMEOUT, damaged_copy, dump_good,
                          dump_must_refuse, restore_must_fail, restore_must_pass)

GHOSTS = ZdtmTest("ghost_files")
BIG = ZdtmTest("ghost_files", ("--big", "2M"), label="big")


def ghost_leftovers(workdir):
    """Files a restore made for the ghosts and left behind."""
    return sorted(p.name for p in workdir.iterdir() if p.name.startswith("ghost-"))


def test_ghost_over_limit_refused(tool, zdtm, workdir):
    """A deleted file of 2 MiB is over the default limit (1 MiB, as CRIU):
    one line naming the file and --ghost-limit, no image left, the task
    unharmed; with --ghost-limit 3M the same task dumps and comes back."""
    task = zdtm(BIG)
    imgdir = dump_must_refuse(tool, task, workdir, r"ghost-big", r"--ghost-limit",
                              r"\b2097152\b", rf"fd 24 of task {task.pid}\b")
    res = tool.dump(task.pid, imgdir, workdir / "dump-3M.log", DUMP_TIMEOUT,
                    extra=("--ghost-limit", "3M"))
    assert_ok(res, "dump with --ghost-limit 3M")
    task.expect_gone()
    restore_must_pass(tool, workdir, task, imgdir)
    assert ghost_leftovers(workdir) == [], "the restore left its ghosts in place"


def test_ghost_limit_bad_value(tool, workdir):
    res = tool.run(["dump", "-t", "1", "-D", workdir, "--ghost-limit", "12Q"], 10)
    assert res.rc != 0 and "ghost limit" in res.stderr and "12Q" in res.stderr, res.describe()


def dumped_ghosts(tool, zdtm, workdir):
    task = zdtm(GHOSTS)
    return task, dump_good(tool, task, workdir)


def test_ghost_image_missing(tool, zdtm, workdir):
    """A ghost-file image is gone: the restore names it, and the ghosts it
    had made already are deleted again."""
    task, good = dumped_ghosts(tool, zdtm, workdir)
    bad = damaged_copy(good, workdir)
    ghosts = sorted(bad.glob("ghost-file-*.img"))
    assert len(ghosts) == 7, f"expected 7 ghost images, found {[p.name for p in ghosts]}"
    ghosts[-1].unlink()
    restore_must_fail(tool, workdir, bad, task.pid, ghosts[-1].name.replace(".", r"\."),
                      r"missing")
    assert ghost_leftovers(workdir) == [], "the failed restore left ghosts behind"
    restore_must_pass(tool, workdir, task, good)


def test_ghost_chunk_truncated(tool, zdtm, workdir):
    """The sparse ghost's image lost its last bytes: named, nothing left."""
    task, good = dumped_ghosts(tool, zdtm, workdir)
    bad = damaged_copy(good, workdir)
    big = max(bad.glob("ghost-file-*.img"), key=lambda p: p.stat().st_size)
    with open(big, "r+b") as f:
        f.truncate(big.stat().st_size - 10)
    restore_must_fail(tool, workdir, bad, task.pid, big.name.replace(".", r"\."))
    assert ghost_leftovers(workdir) == [], "the failed restore left ghosts behind"
    restore_must_pass(tool, workdir, task, good)


def test_remap_image_missing(tool, zdtm, workdir):
    """Without remap-fpath.img the deleted files are just paths that are
    not there: the restore names one."""
    task, good = dumped_ghosts(tool, zdtm, workdir)
    bad = damaged_copy(good, workdir)
    (bad / "remap-fpath.img").unlink()
    restore_must_fail(tool, workdir, bad, task.pid,
                      r"ghost-(small|sparse|shared|private|cwd|gone)",
                      r"No such file")
    restore_must_pass(tool, workdir, task, good)


def test_ghost_path_taken(tool, zdtm, workdir):
    """A new ghost-small is there at restore time: the deleted one comes
    back beside it (CRIU's "<path>.cr.<id>.ghost"), with its contents; the
    new file is untouched and nothing is left behind.  (The program's own
    check of its fd links fails then, so it is killed, not asked to pass.)"""
    task, good = dumped_ghosts(tool, zdtm, workdir)
    taken = workdir / "ghost-small"
    taken.write_bytes(b"someone else's file\n")
    pidfile = workdir / "taken.pid"
    res = tool.restore(good, workdir / "restore.log", RESTORE_TIMEOUT, pidfile=pidfile)
    assert_ok(res, "restore with ghost-small taken")
    task.expect_restored(pidfile)
    link = os.readlink(f"/proc/{task.pid}/fd/20")
    assert link.startswith(f"{taken}.cr.") and link.endswith(".ghost (deleted)"), link
    assert os.readlink(f"/proc/{task.pid}/fd/21") == link, "fd 21 is another file"
    with open(f"/proc/{task.pid}/fd/20", "rb") as f:
        data = f.read()
    assert len(data) == 5000, f"the deleted file has {len(data)} bytes, not 5000"
    assert taken.read_bytes() == b"someone else's file\n", "the new file was changed"
    assert ghost_leftovers(workdir) == ["ghost-small"], ghost_leftovers(workdir)
    task.stop()
