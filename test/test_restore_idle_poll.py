"""The CPU latency request a lazy restore holds while it runs (--no-idle-poll).

A lazy restore asks the kernel, through /dev/cpu_dma_latency, that idle
CPUs poll instead of sleeping (restore.c, common/cpu-latency.c).  The
request lives as long as the file is open, so who holds it, and until
when, is what these tests check: the restore process itself, from its
start; with -d until it exits; without -d not while it waits for the task
(that can be for days); never a restored task, which inherits the fd at
the fork; never an eager restore, which may copy memory for seconds.
strace watches the restore process only (no -f): the restore seizes its
tasks itself, which a tracer following them would forbid.
"""
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from lib import lazy
from lib import procs as P
from lib.badinput import WORKLOAD, dump_good
from lib.tool import Tool, assert_ok

TIMEOUT = 60
RELEASE_TIMEOUT = 5
DEVICE = "/dev/cpu_dma_latency"
STRACE = "/usr/bin/strace"

pytestmark = pytest.mark.skipif(not os.access(DEVICE, os.W_OK),
                                reason=f"{DEVICE} is not writable here")
needs_strace = pytest.mark.skipif(not Path(STRACE).exists(), reason="strace is not installed")


def holders(pids):
    """The pids among pids with an fd open on the device."""
    found = []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == DEVICE:
                    found.append(pid)
                    break
            except OSError:
                pass
    return found


def dumped(tool, zdtm, workdir):
    task = zdtm(WORKLOAD)
    return task, dump_good(tool, task, workdir, name="images")


def traced_restore(tool, imgdir, workdir, extra=()):
    """restore -d under strace (this process only); the trace's lines."""
    trace = workdir / "restore.strace"
    traced = Tool(tool.binary, prefix=(STRACE, "-qq", "-o", trace, "-e", "signal=none",
                                       "-e", "trace=openat,write,close"))
    pidfile = workdir / "restore.pid"
    # (LeakSanitizer cannot run under a tracer: the sanitizer build's other
    # checks still do)
    env = dict(os.environ)
    if "ASAN_OPTIONS" in env:
        env["ASAN_OPTIONS"] += ":detect_leaks=0"
    res = traced.restore(imgdir, workdir / "restore.log", TIMEOUT, pidfile=pidfile, extra=extra,
                         env=env)
    assert_ok(res, "restore under strace")
    return trace.read_text().splitlines(), pidfile


def opened_device(lines):
    return [l for l in lines if DEVICE in l and "openat(" in l]


@needs_strace
def test_lazy_restore_holds_it_until_it_exits(tool, zdtm, procs, workdir):
    task, imgdir = dumped(tool, zdtm, workdir)
    daemon = lazy.start_daemon(procs, tool, imgdir, workdir)
    lines, pidfile = traced_restore(tool, imgdir, workdir, extra=("--lazy-pages",))
    opened = opened_device(lines)
    assert len(opened) == 1, f"the restore did not open {DEVICE} once:\n" + "\n".join(lines[:40])
    m = re.search(r"O_WRONLY\|O_CLOEXEC\)\s+= (\d+)$", opened[0])
    assert m, f"{DEVICE} not opened write-only, close-on-exec: {opened[0]}"
    fd = m.group(1)
    assert any(re.match(rf"write\({fd}, \"\\0\\0\\0\\0\", 4\)\s+= 4$", l) for l in lines), (
        f"no request of 0 us written to fd {fd}:\n" + "\n".join(lines[:60]))
    first = lines.index(opened[0])
    images = [i for i, l in enumerate(lines) if str(imgdir) in l and "openat(" in l]
    assert images and first < images[0], "the request was made after the images were read"
    assert not any(l.startswith(f"close({fd})") for l in lines), (
        "a detached restore let the request go before its exit")
    task.expect_restored(pidfile)
    assert not holders([task.pid]), f"the restored task holds {DEVICE}"
    task.check_pass()
    daemon.expect_clean_exit()


@needs_strace
def test_no_idle_poll_leaves_the_device_alone(tool, zdtm, procs, workdir):
    task, imgdir = dumped(tool, zdtm, workdir)
    daemon = lazy.start_daemon(procs, tool, imgdir, workdir)
    lines, pidfile = traced_restore(tool, imgdir, workdir,
                                    extra=("--lazy-pages", "--no-idle-poll"))
    assert not opened_device(lines), f"--no-idle-poll, yet the restore opened {DEVICE}"
    task.expect_restored(pidfile)
    task.check_pass()
    daemon.expect_clean_exit()


@needs_strace
def test_eager_restore_leaves_the_device_alone(tool, zdtm, workdir):
    task, imgdir = dumped(tool, zdtm, workdir)
    lines, pidfile = traced_restore(tool, imgdir, workdir)
    assert not opened_device(lines), f"an eager restore opened {DEVICE}"
    task.expect_restored(pidfile)
    task.check_pass()


def test_attached_restore_lets_go_before_it_waits(tool, zdtm, procs, workdir):
    """Without -d the restore stays the task's parent until it exits: it
    must not keep idle CPUs polling all that time, nor pass the request on."""
    task, imgdir = dumped(tool, zdtm, workdir)
    daemon = lazy.start_daemon(procs, tool, imgdir, workdir)
    pidfile = workdir / "restore.pid"
    argv = tool.argv(["restore", "-D", imgdir, "-v4", "-o", workdir / "restore.log",
                      "--lazy-pages", "--pidfile", pidfile])
    restore = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not pidfile.exists() or not pidfile.read_text().strip():
            assert restore.poll() is None, (
                f"the restore ended ({restore.returncode}) before the task ran: "
                f"{restore.stderr.read().decode(errors='replace')}")
            assert time.monotonic() < deadline, "no pidfile from the restore"
            time.sleep(0.01)
        pid = int(pidfile.read_text())
        assert pid == task.pid
        # the pidfile comes just before the resume, the release right after
        deadline = time.monotonic() + RELEASE_TIMEOUT
        while holders([restore.pid]):
            assert time.monotonic() < deadline, (
                f"the restore still holds {DEVICE} {RELEASE_TIMEOUT} s after the task runs")
            time.sleep(0.01)
        assert restore.poll() is None, "the restore did not stay to wait for the task"
        assert not holders([pid]), f"the restored task holds {DEVICE}"
        os.kill(pid, signal.SIGTERM)
        assert restore.wait(TIMEOUT) == 0, (
            f"the restore (the task's parent) exited with {restore.returncode}")
        result = task.outfile.read_text(errors="replace") if task.outfile.exists() else ""
        assert result.strip() == "PASS", f"{task.spec.id}: {result.strip()}"
        daemon.expect_clean_exit()
    finally:
        if restore.poll() is None:
            if P.exists(task.pid):
                os.kill(task.pid, signal.SIGKILL)
            restore.kill()
            restore.wait(TIMEOUT)
