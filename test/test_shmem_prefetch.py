"""The working set's shared memory from a page server (issue 11;
Documentation/lazy-pages.md, "Shared memory" and "Working set").

A first lazy restore of test/zdtm/shmem_lazy_share (a root and its child
sharing a MAP_SHARED|MAP_ANONYMOUS region, /dev/zero and a memfd) records
every page: its checks read them all.  Then, from a page server that
serves shared memory (our own, GET_SHMEM):

- both processes write the objects at the same moment while the working
  set's requests are out and held (a proxy holds the background
  connection's replies until a fault on the shared region has come):
  every page right (the daemon's own shmem pages files are garbage, so a
  page read from them fails the checks), each object page delivered once,
  and counted as prefetched or by fault;
- the page server stopped with the prefetch asked for and killed then:
  the daemon fails, the pages that cannot arrive are poisoned, and the
  processes die of SIGBUS at their first touch, never read garbage;
- a server that takes one connection, as CRIU's does (a proxy in front of
  ours): no FEATURES, shared memory prefetched from the daemon's images.

Every process is ended by its pid; every wait has a timeout.
"""
import os
import re
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

from lib import images, lazy, procs as P
from lib.tool import assert_ok
from lib.ports import free_port
from lib.workingset import (INSTALLED, NAME as WS_NAME, dump as ws_dump, read_working_set,
                            restore_and_run, wait_all_installed, wait_log, write_working_set)
from lib.zdtm import ZdtmTest

TIMEOUT = 60
PROXY_TIMEOUT = 60


def recorded(zdtm, tool, procs, workdir, size):
    """shmem_lazy_share dumped and restored once (locally) with its checks:
    the task (its output as dumped put back), the images with a working
    set, the pages of shared memory in them."""
    task = zdtm(ZdtmTest("shmem_lazy_share", ("--size", size), label="wsps", tree=True,
                         defer_background=True))
    imgdir = workdir / "images"
    task.note_tree()
    ws_dump(tool, task, imgdir, workdir)
    as_dumped = task.output.read_bytes()
    restore_and_run(tool, procs, task, imgdir, workdir, 1)
    task.output.write_bytes(as_dumped)
    task.outfile.unlink()		# the next run's verdict only
    return task, imgdir, lazy.shmem_pages_in_images(imgdir)


def server_copy(imgdir, srvdir):
    """The page server's images: a copy; the daemon's shmem pages files are
    then garbage (0xa5), which no check passes on."""
    shutil.copytree(imgdir, srvdir)
    for path in Path(imgdir).glob("pagemap-shmem-*.img"):
        pages_id, _ = images.pagemap_entries(path)
        f = Path(imgdir) / f"pages-{pages_id}.img"
        f.write_bytes(b"\xa5" * f.stat().st_size)


def start_server(tool, procs, workdir, srvdir, port, run):
    return lazy.Daemon(procs, tool, ["page-server", "-D", srvdir, "--address", "127.0.0.1",
                                     "--port", port, "--lazy-pages"],
                       workdir / f"page-server-{run}.log", workdir / f"page-server-{run}.out",
                       f"page-server {run}")


def start_daemon(tool, procs, workdir, imgdir, port, run):
    return lazy.Daemon(procs, tool, ["lazy-pages", "-D", imgdir, "--no-background-fetch",
                                     "--page-server", "--address", "127.0.0.1", "--port", port],
                       workdir / f"lazy-pages-{run}.log", workdir / f"lazy-pages-{run}.out",
                       f"lazy-pages {run}")


def restore(tool, task, imgdir, workdir, run):
    pidfile = workdir / f"restore-{run}.pid"
    assert_ok(tool.restore(imgdir, workdir / f"restore-{run}.log", TIMEOUT, pidfile=pidfile,
                           extra=["--lazy-pages"]), "restore --lazy-pages")
    task.expect_restored(pidfile)


def shared_region(task):
    """[start, end) of the program's MAP_SHARED|MAP_ANONYMOUS region."""
    m = re.search(r"shared region (0x[0-9a-f]+) \((\d+) pages\)", task.output.read_text())
    assert m, task.output.read_text()
    return int(m.group(1), 16), int(m.group(1), 16) + int(m.group(2)) * 4096


def wait_shared_fault(daemon, region, timeout=TIMEOUT):
    """Until the daemon has read a fault in the region (its debug line)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for a in re.findall(r"faults at (0x[0-9a-f]+)", daemon.log.read_text(errors="replace")):
            if region[0] <= int(a, 16) < region[1]:
                return
        time.sleep(0.01)
    raise AssertionError(f"no fault in the shared region within {timeout} s")


def keep_shared_only(imgdir):
    """The working set without its private pages: the prefetch asks for
    shared memory only (a private fault is asked on the fault connection)."""
    ws = read_working_set(imgdir / WS_NAME)
    shared = {}
    for pid, pages in ws["procs"].items():
        _, entries = images.pagemap_entries(Path(imgdir) / f"pagemap-{pid}.img")
        private = {v + i * 4096 for v, nr, flags in entries if flags & images.PE_LAZY
                   for i in range(nr)}
        shared[pid] = [img for img, _ in pages if img not in private]
    assert sum(map(len, shared.values())), ws
    write_working_set(imgdir / WS_NAME, ws["identity"], shared, ws["restores"])


class BackgroundHeld(threading.Thread):
    """A proxy in front of the page server for the daemon's two connections
    (the fault one first, the background one second) that, once hold() is
    called, passes nothing more from the server on the background one until
    release(): the working set's replies wait, the faults' do not."""

    def __init__(self, port, upstream):
        super().__init__(daemon=True)
        self.listener = socket.create_server(("127.0.0.1", port))
        self.upstream = upstream
        self.flowing = threading.Event()
        self.flowing.set()
        self.error = None
        self.pumps = []

    def hold(self):
        self.flowing.clear()

    def release(self):
        self.flowing.set()

    def pump(self, src, dst, gated):
        try:
            while True:
                if gated and not self.flowing.wait(PROXY_TIMEOUT):
                    raise TimeoutError("held for too long")
                data = src.recv(1 << 16)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        except Exception as e:		# reported by the test through .error
            self.error = repr(e)
        finally:
            for sk in (src, dst):
                try:
                    sk.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def run(self):
        try:
            self.listener.settimeout(PROXY_TIMEOUT)
            for i in range(2):
                conn, _ = self.listener.accept()
                up = socket.create_connection(("127.0.0.1", self.upstream),
                                              timeout=PROXY_TIMEOUT)
                conn.settimeout(None)
                up.settimeout(None)
                for args in ((conn, up, False), (up, conn, i == 1)):
                    t = threading.Thread(target=self.pump, args=args, daemon=True)
                    t.start()
                    self.pumps.append(t)
        except Exception as e:		# reported by the test through .error
            self.error = repr(e)
        finally:
            self.listener.close()

    def finish(self):
        self.release()
        self.join(PROXY_TIMEOUT)
        for t in self.pumps:
            t.join(PROXY_TIMEOUT)
        return not self.is_alive() and not any(t.is_alive() for t in self.pumps)


def test_two_writers_while_the_working_set_arrives(zdtm, tool, procs, workdir):
    """The working set's replies are held (a proxy) from the restore until a
    fault on the shared region has come: the two processes write while the
    set's GET_SHMEM are out and unanswered, their faults served meanwhile
    (a page not asked for yet on the fault connection, one in flight
    waited for); then the set arrives under their writes."""
    task, imgdir, shmem = recorded(zdtm, tool, procs, workdir, "16M")
    assert shmem == 4096 + 64 + 64, shmem
    region = shared_region(task)
    keep_shared_only(imgdir)
    server_copy(imgdir, workdir / "server-images")
    port, proxy_port = free_port(), free_port()
    server = start_server(tool, procs, workdir, workdir / "server-images", port, 2)
    proxy = BackgroundHeld(proxy_port, port)
    proxy.start()
    errors = []

    def release_on_fault():
        try:
            wait_shared_fault(daemon, region)
        except AssertionError as e:
            errors.append(e)
        finally:
            proxy.release()

    waiter = threading.Thread(target=release_on_fault, daemon=True)
    try:
        daemon = start_daemon(tool, procs, workdir, imgdir, proxy_port, 2)
        wait_log(daemon, "shared memory from it (GET_SHMEM)")
        proxy.hold()
        restore(tool, task, imgdir, workdir, 2)
        wait_log(daemon, "asked for")
        waiter.start()
        task.check_pass()	# SIGTERM: both write while the set is held
        waiter.join(TIMEOUT)
        assert not errors, errors
        daemon.expect_clean_exit()
        server.expect_clean_exit()
    finally:
        proxy_done = proxy.finish()
    assert proxy_done and proxy.error is None, proxy.error
    st = lazy.check_stats(imgdir, daemon.text())
    log = daemon.log.read_text()
    assert re.search(r"page server \S+: shared memory from it \(GET_SHMEM\)", log), log[-3000:]
    assert re.search(r"shared memory \d+: asked for \d+ pages", log), log[-3000:]
    # every object page once, none eagerly: prefetched, or by a fault that
    # came first (background delivery is off)
    assert st["pages_shmem"] == shmem, st
    assert st["pages_background"] == 0, st
    assert 0 < st["pages_prefetched"] <= st["pages_lazy"], st
    assert st["pages_fault"] + st["pages_prefetched"] + st["pages_dropped_exit"] == \
        st["pages_lazy"] + st["pages_inherited"], st
    # a touch of the shared region came before any page (waited for above):
    # it waited for the working set's page in flight or asked for its own
    assert st["faults"] > 0, st


def test_page_server_killed_mid_prefetch(zdtm, tool, procs, workdir):
    """The server is stopped once the daemon is connected, so the working
    set's GET_SHMEM go out and stay unanswered; it is killed then."""
    task, imgdir, shmem = recorded(zdtm, tool, procs, workdir, "1M")
    server_copy(imgdir, workdir / "server-images")
    port = free_port()
    server = start_server(tool, procs, workdir, workdir / "server-images", port, 2)
    daemon = start_daemon(tool, procs, workdir, imgdir, port, 2)
    wait_log(daemon, "shared memory from it (GET_SHMEM)")
    os.kill(server.pid, signal.SIGSTOP)
    restore(tool, task, imgdir, workdir, 2)
    tree = P.descendants(task.pid)
    assert len(tree) == 1, f"the restored tree: {tree}"
    procs.adopt(tree[0])
    wait_log(daemon, "asked for")
    os.kill(server.pid, signal.SIGKILL)
    procs.reap(server.pid, TIMEOUT)
    assert daemon.wait_exit() != 0, "the daemon exited 0 although pages were lost"
    log = daemon.log.read_text()
    assert INSTALLED not in log, log[-3000:]
    assert re.search(r"page server \S+ (closed|reset) the connection with \d+ pages still "
                     r"to deliver", log), log[-3000:]
    assert re.search(r"pages of shared memory that can no longer arrive will raise SIGBUS",
                     log), log[-3000:]
    lazy.expect_shmem_tree_poisoned(procs, task, tree[0], TIMEOUT)


class OneConnectionProxy(threading.Thread):
    """In front of our page server, a server that behaves like CRIU's: it
    accepts one connection and closes its listening socket (a second
    connection is refused or reset), then passes bytes both ways until
    either side closes."""

    def __init__(self, port, upstream):
        super().__init__(daemon=True)
        self.listener = socket.create_server(("127.0.0.1", port))
        self.upstream = upstream
        self.error = None
        self.bytes = [0, 0]

    def pump(self, src, dst, i):
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                dst.sendall(data)
                self.bytes[i] += len(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def run(self):
        try:
            self.listener.settimeout(PROXY_TIMEOUT)
            conn, _ = self.listener.accept()
            self.listener.close()
            up = socket.create_connection(("127.0.0.1", self.upstream), timeout=PROXY_TIMEOUT)
            conn.settimeout(PROXY_TIMEOUT)
            back = threading.Thread(target=self.pump, args=(up, conn, 1), daemon=True)
            back.start()
            self.pump(conn, up, 0)
            back.join(PROXY_TIMEOUT)
            conn.close()
            up.close()
        except Exception as e:		# reported by the test through .error
            self.error = repr(e)
        finally:
            self.listener.close()


def test_one_connection_server_prefetches_from_the_images(zdtm, tool, procs, workdir):
    task, imgdir, shmem = recorded(zdtm, tool, procs, workdir, "1M")
    port, proxy_port = free_port(), free_port()
    server = start_server(tool, procs, workdir, imgdir, port, 2)
    proxy = OneConnectionProxy(proxy_port, port)
    proxy.start()
    daemon = start_daemon(tool, procs, workdir, imgdir, proxy_port, 2)
    restore(tool, task, imgdir, workdir, 2)
    wait_all_installed(daemon, imgdir)
    task.check_pass()
    daemon.expect_clean_exit()
    proxy.join(TIMEOUT)
    assert not proxy.is_alive() and proxy.error is None, proxy.error
    server.expect_clean_exit()
    st = lazy.check_stats(imgdir, daemon.text())
    log = daemon.log.read_text()
    assert re.search(r"background transfers share the fault connection", log), log[-3000:]
    assert "GET_SHMEM" not in log and "asked for" not in log, log[-3000:]
    # shared memory from the images, installed before the touches
    assert st["pages_shmem"] == shmem, st
    assert st["pages_prefetched"] >= shmem, st
    assert proxy.bytes[1] > 0, "no private page came through the proxy"
