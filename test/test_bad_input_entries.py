"""Bad input: one entry of a dump damaged (a pipe's data, an eventfd counter,
a membarrier mask, a POSIX timer's thread, a pidfd's task, a memfd's
contents): restore fails with one line naming the image and the field,
nothing left behind, and the undamaged copy restores and PASSes."""

import pytest

from lib import images
from lib.zdtm import ZdtmTest
from lib.badinput import dumped  # noqa: F401 (a fixture)
from lib.badinput import (damaged_copy, dump_good, image_path, restore_must_fail,
                          restore_must_pass)


@pytest.fixture
def dumped_pipes(tool, zdtm, workdir):
    """The pipe program dumped into images-good: pipes-data.img has its pipes."""
    task = zdtm(ZdtmTest("pipe"))
    good = dump_good(tool, task, workdir)
    return task, good


def damage_pipe_data(bad, field, value):
    """Set pipe_data_entry field of the first pipe; the data stays as it is."""
    path = bad / "pipes-data.img"
    img = images.load_raw_following(path)
    f = images.set_field(images.decode(img.payload(0)), field, value)
    path.write_bytes(images.replace_record(img, 0, images.encode(f)))
    return path


def test_pipe_larger_than_pipe_max_size(dumped_pipes, tool, workdir):
    task, good = dumped_pipes
    bad = damaged_copy(good, workdir)
    damage_pipe_data(bad, 3, 4 << 20)
    restore_must_fail(tool, workdir, bad, task.pid, r"pipes-data\.img",
                      r"pipe-max-size")
    restore_must_pass(tool, workdir, task, good)


def test_pipe_data_more_than_its_size(dumped_pipes, tool, workdir):
    task, good = dumped_pipes
    bad = damaged_copy(good, workdir)
    damage_pipe_data(bad, 3, 4096)
    restore_must_fail(tool, workdir, bad, task.pid, r"pipes-data\.img", r"more than its size")
    restore_must_pass(tool, workdir, task, good)


def test_pipe_data_cut_short(dumped_pipes, tool, workdir):
    task, good = dumped_pipes
    bad = damaged_copy(good, workdir)
    path = bad / "pipes-data.img"
    img = images.load_raw_following(path)
    r = img.records[0]
    path.write_bytes(img.data[:r.end + 1000])
    restore_must_fail(tool, workdir, bad, task.pid, r"pipes-data\.img", r"cut short")
    restore_must_pass(tool, workdir, task, good)


def damage_file_entry(path, field, sub, value):
    """Set field sub of the payload (field) of the first files.img entry
    that has one to value; False if none has."""
    img = images.load(path)
    for i in range(len(img.records)):
        f = images.decode(img.payload(i))
        payload = images.get(f, field)
        if payload:
            payload = images.set_field(images.decode(payload[0]), sub, value)
            f = images.set_field(f, field, images.encode(payload))
            path.write_bytes(images.replace_record(img, i, images.encode(f)))
            return True
    return False


def test_eventfd_counter_out_of_range(tool, zdtm, workdir):
    """files.img: an eventfd counter no eventfd can hold (2^64 - 1)."""
    task = zdtm(ZdtmTest("eventfd"))
    good = dump_good(tool, task, workdir)
    bad = damaged_copy(good, workdir)
    if not damage_file_entry(bad / "files.img", 8, 4, 2**64 - 1):
        pytest.fail("files.img of the eventfd program has no eventfd entry")
    restore_must_fail(tool, workdir, bad, task.pid, r"files\.img", r"eventfd", r"counter")
    restore_must_pass(tool, workdir, task, good)


def test_membarrier_unknown_registration(dumped, tool, workdir):
    """task_core_entry.membarrier_registration_mask with a command we do not
    know how to register again: refused, naming the core image."""
    task, good = dumped
    bad = damaged_copy(good, workdir)
    core = image_path(bad, "core", task.pid)
    img = images.load(core)
    f = images.decode(img.payload(0))
    tc = images.decode(images.get(f, 3)[0])
    tc = [x for x in tc if x[0] != 22] + [(22, images.VARINT, 1 << 20)]
    f = images.set_field(f, 3, images.encode(tc))
    core.write_bytes(images.replace_record(img, 0, images.encode(f)))
    restore_must_fail(tool, workdir, bad, task.pid, core.name.replace(".", r"\."),
                      r"membarrier")
    restore_must_pass(tool, workdir, task, good)


def test_posix_timer_notifies_foreign_thread(tool, zdtm, workdir):
    """A SIGEV_THREAD_ID timer whose thread is not one of the task's:
    refused before any task exists, naming the core image and the timer."""
    task = zdtm(ZdtmTest("posix_timers"))
    good = dump_good(tool, task, workdir)
    bad = damaged_copy(good, workdir)
    core = image_path(bad, "core", task.pid)
    img = images.load(core)
    f = images.decode(img.payload(0))
    tc = images.decode(images.get(f, 3)[0])
    timers = images.decode(images.get(tc, 7)[0])
    for n, posix in enumerate(images.get(timers, 4)):
        pt = images.decode(posix)
        if images.get(pt, 4) == [4]:		# SIGEV_THREAD_ID
            pt = images.set_field(pt, 11, task.ns_pid + 1000)
            timers = images.set_field(timers, 4, images.encode(pt), nth=n)
            break
    else:
        pytest.fail("the posix_timers program has no SIGEV_THREAD_ID timer in its core")
    tc = images.set_field(tc, 7, images.encode(timers))
    core.write_bytes(images.replace_record(img, 0, images.encode(images.set_field(
        f, 3, images.encode(tc)))))
    restore_must_fail(tool, workdir, bad, task.pid, core.name.replace(".", r"\."),
                      r"POSIX timer \d+", r"thread")
    restore_must_pass(tool, workdir, task, good)


def test_pidfd_of_another_task(tool, zdtm, workdir):
    """files.img: a pidfd naming a task that pstree.img does not list (a
    stranger that may have that pid here): refused before any task exists."""
    task = zdtm(ZdtmTest("pidfd"))
    good = dump_good(tool, task, workdir)
    bad = damaged_copy(good, workdir)
    if not damage_file_entry(bad / "files.img", 22, 4, task.ns_pid + 1000):
        pytest.fail("files.img of the pidfd program has no pidfd entry")
    restore_must_fail(tool, workdir, bad, task.pid, r"files\.img", r"pidfd",
                      rf"\b{task.ns_pid + 1000}\b")
    restore_must_pass(tool, workdir, task, good)


def test_memfd_contents_missing(tool, zdtm, workdir):
    """The pagemap-shmem image of a memfd's contents is gone."""
    task = zdtm(ZdtmTest("memfd"))
    good = dump_good(tool, task, workdir)
    bad = damaged_copy(good, workdir)
    shmem = sorted(bad.glob("pagemap-shmem-*.img"))
    assert shmem, "the memfd program's dump has no pagemap-shmem image"
    shmem[0].unlink()
    restore_must_fail(tool, workdir, bad, task.pid, shmem[0].name.replace(".", r"\."))
    restore_must_pass(tool, workdir, task, good)
