"""The working-set record and its prefetch as tests see them (issue 11;
format in Documentation/lazy-pages.md), around the zdtm program
lazy_touch_order: it touches one page in each of NTOUCH stretches of
STRIDE pages of its region, in a fixed scattered order."""
import re
import struct
import time

from . import lazy
from .ports import free_port
from .tool import assert_ok
from .zdtm import ZdtmTest

TIMEOUT = 60
PAGE = 4096
NTOUCH, STRIDE = 32, 32			# test/zdtm/lazy_touch_order.c
NAME = "working-set"
MAGIC, VERSION = 0x54455357, 1
FNV_OFFSET, FNV_PRIME = 0xcbf29ce484222325, 0x100000001b3
INSTALLED = "working set installed"	# the daemon's log line (lazy/prefetch.c)


def touched(k):
    return ((k * 7 + 3) % NTOUCH) * STRIDE + k % 5


def fnv1a(data):
    h = FNV_OFFSET
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & 0xffffffffffffffff
    return h


def read_working_set(path):
    """{'identity', 'restores', 'procs': {pid: [(img, ms), ...]}}, checked."""
    data = path.read_bytes()
    assert len(data) >= 32, f"{path}: {len(data)} bytes, too short"
    (sum_,) = struct.unpack_from("<Q", data, len(data) - 8)
    assert fnv1a(data[:-8]) == sum_, f"{path}: checksum mismatch"
    magic, version, identity, restores, nr_procs = struct.unpack_from("<IIQII", data, 0)
    assert (magic, version) == (MAGIC, VERSION), (hex(magic), version)
    off, procs = 24, {}
    for _ in range(nr_procs):
        pid, n = struct.unpack_from("<iI", data, off)
        off += 8
        procs[pid] = [struct.unpack_from("<QI", data, off + 16 * i)[:2] for i in range(n)]
        off += 16 * n
    assert off == len(data) - 8, f"{path}: {len(data) - 8 - off} stray bytes"
    return {"identity": identity, "restores": restores, "procs": procs}


def write_working_set(path, identity, procs, restores=1):
    """A well-formed file: procs {pid: [img, ...]}."""
    body = struct.pack("<IIQII", MAGIC, VERSION, identity, restores, len(procs))
    for pid, pages in procs.items():
        body += struct.pack("<iI", pid, len(pages))
        body += b"".join(struct.pack("<QII", img, 0, 0) for img in pages)
    path.write_bytes(body + struct.pack("<Q", fnv1a(body)))


def region_of(task):
    m = re.search(r"region (0x[0-9a-f]+)", task.output.read_text())
    assert m, f"no region line in {task.output}"
    return int(m.group(1), 16)


def present_before(task):
    """How many touched pages were there before the program's first touch
    (its line 'present before the touches: K'), the last restore's."""
    found = re.findall(r"present before the touches: (\d+)", task.output.read_text())
    assert found, f"no 'present before the touches' line in {task.output}"
    return int(found[-1])


def dump(tool, task, imgdir, workdir):
    imgdir.mkdir()
    assert_ok(tool.dump(task.pid, imgdir, workdir / "dump.log", TIMEOUT), "dump")
    task.expect_gone()


def dumped_touch_order(zdtm, tool, workdir, args):
    """lazy_touch_order with args, dumped into workdir/images: the task, its
    region, its pid (as it sees it), the images directory."""
    task = zdtm(ZdtmTest("lazy_touch_order", args, defer_background=True))
    region = region_of(task)
    pid = task.ns_pid or task.pid
    imgdir = workdir / "images"
    dump(tool, task, imgdir, workdir)
    return task, region, pid, imgdir


def wait_log(daemon, text, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in daemon.log.read_text(errors="replace"):
            return
        time.sleep(0.02)
    raise AssertionError(f"no '{text}' in the daemon's log within {timeout} s\n{daemon.text()}")


def wait_all_installed(daemon, imgdir, timeout=TIMEOUT):
    """Until the daemon has installed the working set of every process the
    record names: it says so task by task, and the first to finish said
    nothing of the others (shmem_lazy_share's child faulted on shared
    memory its own record was still to install: 5 pages of 384 not
    prefetched, 1 run in 15 of test_lazy_shmem.py)."""
    for pid, pages in read_working_set(imgdir / NAME)["procs"].items():
        if pages:
            wait_log(daemon, f"task {pid}: {INSTALLED}", timeout)


def restore_and_run(tool, procs, task, imgdir, workdir, run, *extra, remote=False,
                    wait_installed=False):
    """One lazy restore of the images, the program's touches, the daemon's
    exit; with remote, the pages come from a page server on the images; with
    wait_installed, the touches wait until the daemon has installed the
    working set of every process."""
    server = None
    if remote:
        port = free_port()
        server = lazy.Daemon(procs, tool, ["page-server", "-D", imgdir, "--address",
                                           "127.0.0.1", "--port", port, "--lazy-pages"],
                             workdir / f"page-server-{run}.log",
                             workdir / f"page-server-{run}.out", f"page-server {run}")
        extra = (*extra, "--page-server", "--address", "127.0.0.1", "--port", port)
    daemon = lazy.Daemon(procs, tool, ["lazy-pages", "-D", imgdir, "--no-background-fetch",
                                       *extra],
                         workdir / f"lazy-pages-{run}.log", workdir / f"lazy-pages-{run}.out",
                         f"lazy-pages {run}")
    pidfile = workdir / f"restore-{run}.pid"
    assert_ok(tool.restore(imgdir, workdir / f"restore-{run}.log", TIMEOUT, pidfile=pidfile,
                           extra=["--lazy-pages"]), "restore --lazy-pages")
    task.expect_restored(pidfile)
    if wait_installed:
        wait_all_installed(daemon, imgdir)
    task.check_pass()
    daemon.expect_clean_exit()
    if server:
        server.expect_clean_exit()
    lazy.check_stats(imgdir, daemon.text())
    return daemon


def expected_pages(region):
    return [region + touched(k) * PAGE for k in range(NTOUCH)]


def in_region(entries, region):
    return [img for img, _ in entries if region <= img < region + NTOUCH * STRIDE * PAGE]


def warnings_about(daemon, name=NAME):
    """The daemon's warning lines that name the file."""
    return [line for line in daemon.log.read_text(errors="replace").splitlines()
            if "Warn" in line and name in line]
