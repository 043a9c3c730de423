"""--link-remap: files whose name is gone while another link keeps them.
The program is test/zdtm/link_remap.c (its success in every mode is in
test_zdtm.py); here, where it goes wrong or where the links must be:
refused without the flag, the links left for the restore and gone after
it, gone again after a dump -R or a failed dump, a link that cannot be
made, a link gone by the time of the restore.
"""
import os
import re
import signal
import subprocess

import pytest

from lib import images, lazy, procs as P
from lib.badinput import (DUMP_TIMEOUT, damaged_copy, dump_good, dump_must_refuse,
                          restore_must_fail, restore_must_pass)
from lib.ports import free_port
from lib.tool import assert_error_line, assert_ok
from lib.zdtm import ZdtmTest

LINKED = ZdtmTest("link_remap")
FLAG = ("--link-remap",)
LINK_NAME = re.compile(r"link_remap\.\d+$")


def links_in(d):
    """The links the dump made (not the program's link_remap.pid...)."""
    return sorted(p.name for p in d.iterdir() if LINK_NAME.match(p.name))


def made_back(d):
    """Names a restore made again and left behind."""
    return sorted(p.name for p in d.iterdir()
                  if p.name in ("lr-orig", "lr-map", "lr-dir") or p.name.endswith(".cr_link"))


def test_refused_without_the_flag(tool, zdtm, workdir):
    """One line naming the fd, the file and the flag; nothing written, no
    link made, the task as it was."""
    task = zdtm(LINKED)
    dump_must_refuse(tool, task, workdir, r"lr-(orig|map)\b", r"other link", r"--link-remap")
    assert links_in(workdir) == [], "a refused dump made links"
    task.check_pass()


def test_links_kept_for_the_restore(tool, zdtm, workdir):
    """A dump that ends the tree leaves one link per file object (CRIU's
    link_remap.<id>, files of files.img, LINKED in remap-fpath.img); the
    restore removes them once the task holds its files."""
    task = zdtm(LINKED)
    good = dump_good(tool, task, workdir, FLAG)
    # fds 20 and 21, the mapping; fd 22's directory is gone: in ours
    assert len(links_in(workdir)) == 4, links_in(workdir)
    for name in links_in(workdir):
        assert os.stat(workdir / name).st_ino in (
            os.stat(workdir / "lr-keep").st_ino, os.stat(workdir / "lr-map-keep").st_ino,
            os.stat(workdir / "lr-inner-keep").st_ino), f"{name} is another file"
    restore_must_pass(tool, workdir, task, good)
    assert links_in(workdir) == [] and made_back(workdir) == [], os.listdir(workdir)


def test_leave_running_removes_the_links(tool, zdtm, workdir):
    """dump -R: the tree runs on, so the links go again (as in CRIU)."""
    task = zdtm(LINKED)
    before = task.snapshot()
    imgdir = workdir / "images"
    imgdir.mkdir()
    assert_ok(tool.dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT,
                        extra=FLAG + ("-R",)), "dump -R --link-remap")
    assert (imgdir / "remap-fpath.img").exists()
    assert links_in(workdir) == [], "dump -R left its links"
    task.expect_unharmed(before)
    task.check_pass()


def test_failed_dump_removes_the_links(tool, procs, workdir, zdtm):
    """dump --lazy-pages -s, stopped by a signal before any destination
    came: the images and the links made with them go, the tree is left
    stopped (-s) and whole."""
    task = zdtm(LINKED)
    imgdir = workdir / "images"
    imgdir.mkdir()
    dump = lazy.Daemon(procs, tool, ["dump", "-t", task.pid, "-D", imgdir, "--lazy-pages",
                                     "--address", "127.0.0.1", "--port", free_port(), "-s",
                                     *FLAG], workdir / "dump.log", workdir / "dump.out", "dump")
    assert len(links_in(workdir)) == 4, "the links are made with the images"
    os.kill(dump.pid, signal.SIGTERM)
    assert dump.wait_exit(DUMP_TIMEOUT) == 1, dump.text()
    assert links_in(workdir) == [], "the failed dump left its links"
    assert not (imgdir / "remap-fpath.img").exists(), "the failed dump left images"
    assert P.state(task.pid) == "T", P.describe(task.pid)
    os.kill(task.pid, signal.SIGCONT)
    task.check_pass()


def test_link_cannot_be_made(tool, zdtm, workdir):
    """The directory is read-only by the time of the dump: linkat fails,
    the dump says where and why in one line, leaves no image and no link,
    and the task runs on unharmed."""
    task = zdtm(ZdtmTest("link_remap", ("--dir", str(workdir / "ro"))))
    ro = workdir / "ro"
    before = task.snapshot()
    imgdir = workdir / "images"
    imgdir.mkdir()
    subprocess.run(["mount", "--bind", ro, ro], check=True, timeout=10)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", ro], check=True, timeout=10)
        res = tool.dump(task.pid, imgdir, workdir / "dump.log", DUMP_TIMEOUT, extra=FLAG)
    finally:
        subprocess.run(["umount", ro], check=True, timeout=10)
    assert_error_line(res, "dump", r"ro/link_remap\.\d+", r"cannot link", r"lr-(orig|map)",
                      r"--link-remap", r"(Read-only file system|Invalid cross-device link)")
    assert not [p for p in imgdir.iterdir() if p.name != "dump.log"], "images were left"
    assert links_in(ro) == [], "a failed dump left links"
    task.expect_unharmed(before)
    task.check_pass()


def test_link_gone_at_restore(tool, zdtm, workdir):
    """A link the dump made was removed: the restore names it and the file
    it stands for, and leaves nothing made; once it is there again (a new
    link of the same file), the same images restore."""
    task = zdtm(LINKED)
    good = dump_good(tool, task, workdir, FLAG)
    keep_ino = os.stat(workdir / "lr-keep").st_ino
    victim = next(n for n in links_in(workdir) if os.stat(workdir / n).st_ino == keep_ino)
    os.unlink(workdir / victim)
    restore_must_fail(tool, workdir, good, task.pid, re.escape(victim),
                      r"--link-remap made at the dump for .*lr-orig is gone",
                      r"No such file")
    assert made_back(workdir) == [], f"the failed restore left {made_back(workdir)}"
    assert len(links_in(workdir)) == 3, "a failed restore must leave the other links"
    os.link(workdir / "lr-keep", workdir / victim)
    restore_must_pass(tool, workdir, task, good)
    assert links_in(workdir) == [] and made_back(workdir) == [], os.listdir(workdir)


def damage_remap(bad, field, value):
    """Set a field of the first LINKED entry of remap-fpath.img."""
    path = bad / "remap-fpath.img"
    img = images.load(path)
    for i in range(len(img.records)):
        f = images.decode(img.payload(i))
        if images.get(f, 3) == [0]:		# remap_type LINKED
            path.write_bytes(images.replace_record(
                img, i, images.encode(images.set_field(f, field, value))))
            return
    raise AssertionError("remap-fpath.img has no LINKED entry")


@pytest.mark.parametrize("field,value,patterns", [
    (3, 2, (r"remap-fpath\.img", r"dead process's /proc file", r"only ghost files and links")),
    (2, 9999, (r"remap-fpath\.img", r"linked to file 9999", r"not a regular file")),
], ids=["procfs-remap", "link-not-in-files"])
def test_bad_remap_entry(tool, zdtm, workdir, field, value, patterns):
    """A remap entry CRIU's images may hold but we do not restore (a dead
    process's /proc file), or one whose link is no file of files.img: one
    line, nothing made; the links stay for the good copy, which restores."""
    task = zdtm(LINKED)
    good = dump_good(tool, task, workdir, FLAG)
    bad = damaged_copy(good, workdir)
    damage_remap(bad, field, value)
    restore_must_fail(tool, workdir, bad, task.pid, *patterns)
    assert made_back(workdir) == [] and len(links_in(workdir)) == 4, os.listdir(workdir)
    restore_must_pass(tool, workdir, task, good)
    assert links_in(workdir) == [] and made_back(workdir) == [], os.listdir(workdir)
