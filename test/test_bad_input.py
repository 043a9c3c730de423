"""Bad input gets one clear line, a non-zero exit, and nothing left behind.

Restore from damaged images: each case damages one thing in a copy of a
good dump, restore must fail with exactly one stderr line "restore: ..."
naming the file (or pid, or directory) at fault, leave no process behind,
and write no pidfile.  Then the undamaged copy must restore and PASS, so
the failure is known to come from the damage and not from the tool or the
dump being broken anyway.

The damaged entries of one kind of file or task attribute are in
test_bad_input_entries.py, refused dumps in test_bad_input_dump.py, what
the restoring host lacks in test_bad_input_host.py.
"""
import os
import re
import struct

import pytest

from lib import images
from lib.tool import assert_error_line
from lib.badinput import dumped  # noqa: F401 (a fixture)
from lib.badinput import damaged_copy, image_path, restore_must_fail, restore_must_pass


def cut_mid_record(img):
    r = img.records[-1]
    return img.data[:r.payload_offset + max(1, r.length // 2)] if r.length > 1 \
        else img.data[:r.offset + 2]


def cut_in_length(img):
    return img.data[:img.records[0].offset + 2]


def garbage_payload(img):
    r = img.records[0]
    n = min(r.length, 16)
    return img.data[:r.payload_offset] + b"\xff" * n + img.data[r.payload_offset + n:]


def length_past_eof(img):
    r = img.records[-1]
    return img.data[:r.offset] + struct.pack("<I", r.length + 4096) + img.data[r.offset + 4:]


def bad_magic(img):
    return bytes([img.data[0] ^ 0xff]) + img.data[1:]


DAMAGE = [
    *[("truncated", key, cut_mid_record) for key in
      ("inventory", "pstree", "core", "mm", "pagemap", "files", "fdinfo", "fs", "ids")],
    ("cut-length-prefix", "core", cut_in_length),
    ("cut-length-prefix", "mm", cut_in_length),
    *[("garbage-entry", key, garbage_payload) for key in
      ("inventory", "pstree", "core", "mm", "pagemap", "fdinfo")],
    ("length-past-eof", "mm", length_past_eof),
    ("length-past-eof", "pagemap", length_past_eof),
    *[("bad-magic", key, bad_magic) for key in ("inventory", "core", "mm", "pagemap")],
]


@pytest.mark.parametrize("what,key,damage", [pytest.param(*d, id=f"{d[0]}-{d[1]}")
                                             for d in DAMAGE])
def test_damaged_image(what, key, damage, dumped, tool, workdir):
    task, good = dumped
    bad = damaged_copy(good, workdir)
    path = image_path(bad, key, task.pid)
    path.write_bytes(damage(images.load(path)))
    restore_must_fail(tool, workdir, bad, task.pid, path.name.replace(".", r"\."))
    restore_must_pass(tool, workdir, task, good)


@pytest.mark.parametrize("key", ["inventory", "pstree", "core", "mm", "pagemap", "pages"])
def test_missing_image(key, dumped, tool, workdir):
    task, good = dumped
    bad = damaged_copy(good, workdir)
    path = image_path(bad, key, task.pid)
    path.unlink()
    restore_must_fail(tool, workdir, bad, task.pid, path.name.replace(".", r"\."))
    restore_must_pass(tool, workdir, task, good)


def replace_by_non_regular(path, kind):
    """A FIFO (a reader would wait for a writer for ever) or a symlink to
    /dev/zero (a reader would get zeros without end)."""
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path, 0o600)
    else:
        path.symlink_to("/dev/zero")


NON_REGULAR = ["fifo", "dev-zero"]


@pytest.mark.parametrize("kind", NON_REGULAR)
@pytest.mark.parametrize("key", ["inventory", "pstree", "core", "mm", "pagemap", "pages"])
def test_image_not_a_regular_file(key, kind, dumped, tool, workdir):
    task, good = dumped
    bad = damaged_copy(good, workdir)
    path = image_path(bad, key, task.pid)
    replace_by_non_regular(path, kind)
    # the tool's timeout (RESTORE_TIMEOUT) ends the test if the restore blocks
    restore_must_fail(tool, workdir, bad, task.pid, re.escape(path.name) + ": not a regular file")
    restore_must_pass(tool, workdir, task, good)


@pytest.mark.parametrize("kind", NON_REGULAR)
def test_show_and_daemon_refuse_non_regular_images(kind, dumped, tool, workdir):
    task, good = dumped
    bad = damaged_copy(good, workdir)
    for key in ("mm", "pages"):
        path = image_path(bad, key, task.pid)
        replace_by_non_regular(path, kind)
        res = tool.run(["show", path], 20)
        assert_error_line(res, "show", re.escape(path.name) + ": not a regular file")
    replace_by_non_regular(bad / "pstree.img", kind)
    res = tool.run(["lazy-pages", "-D", bad], 20)
    assert_error_line(res, "lazy-pages", r"pstree\.img: not a regular file")
    assert not (bad / "lazy-pages.socket").exists()


def test_pagemap_points_past_pages_file(dumped, tool, workdir):
    task, good = dumped
    bad = damaged_copy(good, workdir)
    pm = image_path(bad, "pagemap", task.pid)
    img = images.load(pm)
    # the last entry with data in the pages file claims 16 pages more
    for i in range(len(img.records) - 1, 0, -1):
        f = images.decode(img.payload(i))
        flags = images.get(f, 4)
        if not flags or flags[0] & images.PE_PRESENT:
            break
    else:
        pytest.fail("the pagemap has no entry with PE_PRESENT")
    nr = (images.get(f, 5) or images.get(f, 2))[0]
    field = 5 if images.get(f, 5) else 2
    pm.write_bytes(images.replace_record(img, i, images.encode(
        images.set_field(f, field, nr + 16))))
    restore_must_fail(tool, workdir, bad, task.pid, r"pagemap-\d+\.img|pages-\d+\.img")
    restore_must_pass(tool, workdir, task, good)


def test_pages_file_shorter_than_pagemap(dumped, tool, workdir):
    task, good = dumped
    bad = damaged_copy(good, workdir)
    pages = image_path(bad, "pages", task.pid)
    size = pages.stat().st_size
    assert size >= 4096, "the dump wrote no pages at all"
    os.truncate(pages, size - 4096)
    restore_must_fail(tool, workdir, bad, task.pid, r"pagemap-\d+\.img|pages-\d+\.img")
    restore_must_pass(tool, workdir, task, good)


def test_vma_end_before_start(dumped, tool, workdir):
    task, good = dumped
    bad = damaged_copy(good, workdir)
    mm = image_path(bad, "mm", task.pid)

    def swap_ends(vma):
        start, end = images.get(vma, 1)[0], images.get(vma, 2)[0]
        return images.set_field(images.set_field(vma, 1, end), 2, start)
    images.edit_record(mm, lambda f: images.set_nested(f, (14,), swap_ends))	# the first VMA
    restore_must_fail(tool, workdir, bad, task.pid, mm.name.replace(".", r"\."))
    restore_must_pass(tool, workdir, task, good)


def test_core_of_another_arch(dumped, tool, workdir):
    task, good = dumped
    bad = damaged_copy(good, workdir)
    core = image_path(bad, "core", task.pid)

    def other_arch(f):
        assert images.get(f, 1) == [1], "core_entry.mtype should be X86_64 (1)"
        return images.set_field(f, 1, 3)
    images.edit_record(core, other_arch)
    restore_must_fail(tool, workdir, bad, task.pid, core.name.replace(".", r"\."))
    restore_must_pass(tool, workdir, task, good)


def test_pid_ns_of_its_own_but_not_init(dumped, tool, workdir):
    """ids-PID.img names a pid namespace other than inventory.root_ids' for
    a task that is not pid 1: only a namespace init can get a new one."""
    task, good = dumped
    bad = damaged_copy(good, workdir)
    ids = image_path(bad, "ids", task.pid)

    def other_pid_ns(f):
        pid_ns = images.get(f, 5)
        assert pid_ns, "ids_entry.pid_ns_id should be there"
        return images.set_field(f, 5, pid_ns[0] + 100)
    images.edit_record(ids, other_pid_ns)
    restore_must_fail(tool, workdir, bad, task.pid, ids.name.replace(".", r"\."),
                      r"pid namespace", r"init")
    restore_must_pass(tool, workdir, task, good)


def test_restore_empty_dir(dumped, tool, workdir):
    task, good = dumped
    empty = workdir / "images-empty"
    empty.mkdir()
    restore_must_fail(tool, workdir, empty, task.pid, r"inventory\.img")
    restore_must_pass(tool, workdir, task, good)


def test_restore_no_such_dir(dumped, tool, workdir):
    task, good = dumped
    missing = workdir / "no-such-dir"
    restore_must_fail(tool, workdir, missing, task.pid, r"no-such-dir")
    restore_must_pass(tool, workdir, task, good)
