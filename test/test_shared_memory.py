"""Shared memory where it goes wrong: SysV shared memory of the host's IPC
namespace is refused by the dump (one line, the task unharmed), and a mapped memfd whose images are
missing fails the restore naming the image, leaving nothing behind.  The
programs are test/zdtm/mmap_devzero.c and memfd_map.c (their success in
every mode is in test_zdtm.py).
"""
import json

from lib.tool import assert_ok
from lib.zdtm import ZdtmTest
from lib.badinput import (damaged_copy, dump_good, dump_must_refuse, restore_must_fail,
                          restore_must_pass)


def test_sysv_shm_refused(tool, zdtm, workdir):
    task = zdtm(ZdtmTest("mmap_devzero", ("--sysv",), label="sysv"))
    dump_must_refuse(tool, task, workdir, r"SysV shared memory", rf"task {task.pid}\b")
    task.check_pass()


def test_kernel_shmem_fd_refused(tool, zdtm, workdir):
    """An fd on the kernel's own shmem file behind a /dev/zero mapping looks
    like a deleted file, but is no file to recreate: refused, not a ghost."""
    task = zdtm(ZdtmTest("mmap_devzero", ("--shmem-fd",), label="shmem-fd"))
    dump_must_refuse(tool, task, workdir, r"fd 30\b", rf"task {task.pid}\b", r"kernel's own",
                     r"/dev/zero")	# and no ghost written for it
    task.check_pass()


def dumped_memfd_map(tool, zdtm, workdir):
    task = zdtm(ZdtmTest("memfd_map"))
    return task, dump_good(tool, task, workdir)


def test_memfd_inodes_missing(tool, zdtm, workdir):
    task, good = dumped_memfd_map(tool, zdtm, workdir)
    bad = damaged_copy(good, workdir)
    (bad / "memfd.img").unlink()
    restore_must_fail(tool, workdir, bad, task.pid, r"memfd\.img", r"missing")
    restore_must_pass(tool, workdir, task, good)


def test_mapped_memfd_contents_missing(tool, zdtm, workdir):
    """The memfd "nofd" is only mapped: its pagemap-shmem image is gone."""
    task, good = dumped_memfd_map(tool, zdtm, workdir)
    res = tool.run(["show", good / "memfd.img"], 30)
    assert_ok(res, "show memfd.img")
    nofd = [e for e in json.loads(res.stdout)["entries"] if e["name"] == "nofd"]
    assert len(nofd) == 1, res.stdout
    bad = damaged_copy(good, workdir)
    name = f"pagemap-shmem-{nofd[0]['shmid']}.img"
    (bad / name).unlink()
    restore_must_fail(tool, workdir, bad, task.pid, name.replace(".", r"\."))
    restore_must_pass(tool, workdir, task, good)
