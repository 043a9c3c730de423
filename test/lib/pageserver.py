"""The page-server protocol from Python, and the made-up images it serves.

The images are written by build/test/unit/test_page_server_images (layout
in test/unit/test_page_server_layout.h, whose numbers are copied here):
every 8-byte word of a dumped page holds (pid << 48) | its own address.
"""
import array
import os
import select
import socket
import struct
import subprocess
import threading
from pathlib import Path

from . import paths

PAGE = 4096
HDR = struct.Struct("<IIQQQ")		# cmd, pad, nr_pages, vaddr, dst_id

PS_IOV_ADD, PS_IOV_OPEN2, PS_IOV_ADD_F, PS_IOV_GET = 1, 4, 6, 7
PS_IOV_CLOSE, PS_IOV_FORCE_CLOSE = 0x1023, 0x1024
GET_REPLY_CMD = 0x00040006		# ADD_F | PE_PRESENT << 16

BASE = 0x5a0000000000
FILE_VMA = BASE				# task 100: 4 present pages, not lazy
SMALL_VMA = BASE + 0x100000		# task 100: lazy 0-16 (two entries), 24-28
BIG_VMA = BASE + 0x1000000		# task 100: big_pages lazy, entries of 256
T2_VMA = BASE + 0x40000000		# task 200: 32 lazy pages
ZOMBIE = 300

IMAGES_TOOL = paths.BUILD / "test" / "unit" / "test_page_server_images"
RESTORE_TOOL = paths.BUILD / "test" / "unit" / "test_page_server_restore"
IO_TIMEOUT = 10


def lazy_runs(big_pages):
    """pid -> [(vaddr, nr_pages)] of lazy pages with data, merged."""
    return {
        100: [(SMALL_VMA, 16), (SMALL_VMA + 24 * PAGE, 4), (BIG_VMA, big_pages)],
        200: [(T2_VMA, 32)],
    }


def pages(pid, vaddr, nr):
    """The dumped contents of nr pages at vaddr of task pid."""
    first = (pid << 48) + vaddr
    return array.array("Q", range(first, first + nr * PAGE, 8)).tobytes()


def write_images(dirpath, big_pages=4096, lazy_not_present=False):
    argv = [str(IMAGES_TOOL), str(dirpath), str(big_pages)]
    if lazy_not_present:
        argv.append("--lazy-not-present")
    subprocess.run(argv, check=True, timeout=60)
    return Path(dirpath)


def daemon_images(src, dst):
    """The lazy-pages daemon's directory: every image but the pages files."""
    dst = Path(dst)
    dst.mkdir()
    for f in Path(src).iterdir():
        if f.name.endswith(".img") and not f.name.startswith("pages-"):
            (dst / f.name).write_bytes(f.read_bytes())
    return dst


def spawn_ready(procs, workdir, name, argv):
    """Start a criu-lazy command with --status-fd; return once it says it
    is ready (one zero byte).  Its stdout+stderr go to NAME.output."""
    r, w = os.pipe()
    try:
        p = procs.spawn([*argv, "--status-fd", w], stdout=Path(workdir) / f"{name}.output",
                        pass_fds=(w,))
    finally:
        os.close(w)
    try:
        ready, _, _ = select.select([r], [], [], IO_TIMEOUT)
        byte = os.read(r, 1) if ready else b""
    finally:
        os.close(r)
    assert byte == b"\0", (f"{name} did not say it was ready within {IO_TIMEOUT} s:\n" +
                           output_of(workdir, name))
    return p


def start_page_server(tool, procs, workdir, imgdir, port, name="page-server", extra=()):
    """criu-lazy page-server on 127.0.0.1:port, listening when this returns."""
    return spawn_ready(procs, workdir, name, [
        tool.binary, "page-server", "-D", imgdir, "--address", "127.0.0.1", "--port", port,
        "--lazy-pages", "-v4", "-o", Path(workdir) / f"{name}.log", *extra])


def start_daemon(tool, procs, workdir, imgdir, port, name="lazy-pages", extra=()):
    """criu-lazy lazy-pages --page-server, connected and listening when this returns."""
    return spawn_ready(procs, workdir, name, [
        tool.binary, "lazy-pages", "-D", imgdir, "--page-server", "--address", "127.0.0.1",
        "--port", port, "-v4", "-o", Path(workdir) / f"{name}.log", *extra])


def stop(procs, p, timeout=10):
    """End a server or daemon the test no longer needs: SIGTERM, reap."""
    if procs.owns(p.pid) and p.poll() is None:
        p.terminate()
    if procs.owns(p.pid):
        procs.reap(p.pid, timeout)


def output_of(workdir, name):
    out = Path(workdir) / f"{name}.output"
    return out.read_text(errors="replace") if out.exists() else ""


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


class Client:
    """One session with a page server."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)

    def send(self, cmd, nr_pages=0, vaddr=0, dst_id=0):
        self.sock.sendall(HDR.pack(cmd, 0, nr_pages, vaddr, dst_id))

    def get(self, pid, vaddr, nr_pages):
        self.send(PS_IOV_GET, nr_pages, vaddr, pid)

    def reply(self):
        """(cmd, nr_pages, vaddr, dst_id, data) of the next reply."""
        cmd, _, nr, vaddr, dst = HDR.unpack(recv_exact(self.sock, HDR.size))
        return cmd, nr, vaddr, dst, recv_exact(self.sock, nr * PAGE)

    def close_session(self):
        """CLOSE: returns the int32 status."""
        self.send(PS_IOV_CLOSE)
        return struct.unpack("<i", recv_exact(self.sock, 4))[0]

    def dropped(self):
        """True if the server closes the connection (without sending more)."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


class OneConnectionServer(threading.Thread):
    """A page server that behaves like CRIU's: it accepts one connection,
    closes its listening socket, serves GETs from the pattern (clamped at
    the end of each lazy run), answers CLOSE with 0 and ends on EOF."""

    def __init__(self, port, big_pages):
        super().__init__(daemon=True)
        self.runs = lazy_runs(big_pages)
        self.listener = socket.create_server(("127.0.0.1", port))
        self.gets = 0
        self.closed_ok = False
        self.error = None

    def clamp(self, pid, vaddr, n):
        for start, nr in self.runs.get(pid, ()):
            end = start + nr * PAGE
            if start <= vaddr < end:
                return min(n, (end - vaddr) // PAGE)
        return 0

    def run(self):
        try:
            self.listener.settimeout(60)
            conn, _ = self.listener.accept()
            self.listener.close()
            conn.settimeout(60)
            with conn:
                self.serve(conn)
        except Exception as e:		# reported by the test through .error
            self.error = repr(e)
        finally:
            self.listener.close()

    def serve(self, conn):
        while True:
            try:
                hdr = recv_exact(conn, HDR.size)
            except EOFError:
                return
            cmd, _, n, vaddr, pid = HDR.unpack(hdr)
            if cmd == PS_IOV_CLOSE:
                conn.sendall(struct.pack("<i", 0))
                self.closed_ok = conn.recv(1) == b""
                return
            m = self.clamp(pid, vaddr, n) if cmd == PS_IOV_GET else 0
            if not m:
                self.error = f"bad request cmd {cmd:#x} pid {pid} {vaddr:#x} +{n}"
                return
            self.gets += 1
            conn.sendall(HDR.pack(GET_REPLY_CMD, 0, m, vaddr, pid) + pages(pid, vaddr, m))
