"""criu-lazy page-server --lazy-pages, spoken to from Python.

The wire format is CRIU's (spec section 4): 32-byte headers, a GET answered
by ADD_F|PE_PRESENT and the pages, clamped at the end of the lazy run; a
request the server will not serve ends that session only; CLOSE is
answered with 0, and the server exits 0 once a session ended with CLOSE and
no other is open.  Everything runs on loopback; every process is ended by
the test's process tracker, every wait has a timeout.
"""
import json
import re
import signal
import socket
import struct
import subprocess
import time

import pytest

from lib import images as images_mod
from lib import paths
from lib import procs as procs_mod
from lib.pageserver import (BIG_VMA, FILE_VMA, GET_REPLY_CMD, PAGE, PS_IOV_ADD_F,
                            PS_IOV_FORCE_CLOSE, PS_IOV_OPEN2, SMALL_VMA, T2_VMA, ZOMBIE,
                            Client, output_of, pages, recv_exact,
                            start_page_server, stop, write_images)
from lib.pageserver import HDR as HDR_STRUCT
from lib.ports import free_port
from lib.tool import assert_error_line
from lib.zdtm import ZdtmTest

EXIT_TIMEOUT = 10
BIG = 4096


@pytest.fixture
def images(workdir):
    return write_images(workdir / "images", BIG)


@pytest.fixture
def server(tool, procs, workdir, images):
    """A running page server on the standard images: (Popen, port)."""
    port = free_port()
    p = start_page_server(tool, procs, workdir, images, port)
    yield p, port
    stop(procs, p)


def expect_reply(client, pid, vaddr, nr_pages):
    cmd, nr, rvaddr, dst, data = client.reply()
    assert (cmd, nr, rvaddr, dst) == (GET_REPLY_CMD, nr_pages, vaddr, pid)
    assert data == pages(pid, vaddr, nr_pages), f"wrong data for task {pid} at {vaddr:#x}"


def get(client, pid, vaddr, asked, served):
    client.get(pid, vaddr, asked)
    expect_reply(client, pid, vaddr, served)


def expect_running(p):
    assert p.poll() is None, f"the page server exited ({p.returncode})"


def expect_exit(procs, p, workdir, code=0):
    status = procs.reap(p.pid, EXIT_TIMEOUT)
    assert procs_mod.wait_status_str(status) == f"exit code {code}", \
        output_of(workdir, "page-server")


def test_get_one_page(server):
    _, port = server
    c = Client(port)
    get(c, 100, SMALL_VMA + 3 * PAGE, 1, 1)
    get(c, 200, T2_VMA, 1, 1)
    c.close()


@pytest.mark.parametrize("vaddr,asked,served", [
    (SMALL_VMA, 64, 16),			# two adjacent entries are one run; a hole after
    (SMALL_VMA + 4 * PAGE, 4, 4),		# inside, not clamped
    (SMALL_VMA + 12 * PAGE, 100, 4),		# the tail of the second entry
    (SMALL_VMA + 24 * PAGE, 10, 4),		# the run after the hole
    (BIG_VMA, 1024, 1024),			# across four entries of 256 pages
    (BIG_VMA + (BIG - 10) * PAGE, 2000, 10),	# clamped at the end of the VMA
], ids=["adjacent-entries", "inside", "entry-tail", "after-hole", "across-entries", "end"])
def test_get_clamped_to_the_run(server, vaddr, asked, served):
    _, port = server
    c = Client(port)
    get(c, 100, vaddr, asked, served)
    c.close()


def test_pipelined_gets_answered_in_order(server):
    _, port = server
    c = Client(port)
    reqs = [(100, BIG_VMA + i * 37 * PAGE, 1 + i % 20) for i in range(100)]
    reqs += [(200, T2_VMA + i * PAGE, 32) for i in range(0, 32, 4)]
    for pid, vaddr, n in reqs:
        c.get(pid, vaddr, n)
    for pid, vaddr, n in reqs:
        run_end = BIG_VMA + BIG * PAGE if pid == 100 else T2_VMA + 32 * PAGE
        expect_reply(c, pid, vaddr, min(n, (run_end - vaddr) // PAGE))
    c.close()


def test_requests_beyond_a_full_queue(server):
    """Two buffers' worth of requests in one segment: 128 GETs of 8 pages,
    15 of 4 MiB and 113 of 8 pages again.  The queue of replies is full
    (64 MiB) after the fifteenth big one, with 113 requests read and waiting
    in the server's buffer and nothing more on the socket; the first
    replies sent make room at once.  Those 113 are answered then (they used
    to wait for some other request to come: a daemon waiting for their
    replies before it sent more hung)."""
    _, port = server
    c = Client(port)
    small = [(100, BIG_VMA + (i % 512) * 8 * PAGE, 8) for i in range(128)]
    big = [(100, BIG_VMA + (i % 4) * 1024 * PAGE, 1024) for i in range(15)]
    reqs = small + big + small[:113]
    c.sock.sendall(b"".join(HDR_STRUCT.pack(7, 0, n, vaddr, pid) for pid, vaddr, n in reqs))
    for pid, vaddr, n in reqs:
        expect_reply(c, pid, vaddr, n)
    c.close()


def test_split_header(server):
    """A request may arrive in pieces."""
    _, port = server
    c = Client(port)
    hdr = struct.pack("<IIQQQ", 7, 0, 2, SMALL_VMA, 100)
    for i in range(0, 32, 5):
        c.sock.sendall(hdr[i:i + 5])
        time.sleep(0.01)
    expect_reply(c, 100, SMALL_VMA, 2)
    c.close()


BAD_REQUESTS = {
    "unknown-command": ((0x99, 1, SMALL_VMA, 100), r"unknown command 0x99"),
    "zero-pages": ((7, 0, SMALL_VMA, 100), r"GET of 0 pages"),
    "absurd-count": ((7, 1 << 40, SMALL_VMA, 100), r"GET of 1099511627776 pages"),
    "unaligned": ((7, 1, SMALL_VMA + 5, 100), r"bad address"),
    "no-such-pid": ((7, 1, SMALL_VMA, 4242), r"task 4242, which has no memory"),
    "zombie": ((7, 1, SMALL_VMA, ZOMBIE), r"task 300, which has no memory"),
    "not-a-pid": ((7, 1, SMALL_VMA, 1 << 40), r"which is no pid"),
    "hole": ((7, 1, SMALL_VMA + 16 * PAGE, 100), r"no lazy page"),
    "not-lazy": ((7, 1, FILE_VMA, 100), r"no lazy page"),
    "receiver-command": ((PS_IOV_OPEN2, 0, 0, (100 << 8) | 1), r"OPEN2 .* not served"),
    "add-f": ((PS_IOV_ADD_F | (4 << 16), 1, SMALL_VMA, (100 << 8) | 1), r"ADD_F .* not served"),
}


@pytest.mark.parametrize("name", BAD_REQUESTS)
def test_bad_request_drops_only_that_session(server, procs, workdir, name):
    """Replies owed before the bad request still come, then the connection
    closes; another session, open meanwhile, goes on; so do new ones."""
    p, port = server
    (cmd, n, vaddr, dst), reason = BAD_REQUESTS[name]
    other = Client(port)
    get(other, 100, SMALL_VMA, 1, 1)

    c = Client(port)
    c.get(100, BIG_VMA, 8)
    c.send(cmd, n, vaddr, dst)
    expect_reply(c, 100, BIG_VMA, 8)
    assert c.dropped(), "the server did not close the session after a bad request"
    c.close()

    get(other, 100, SMALL_VMA + PAGE, 1, 1)
    fresh = Client(port)
    get(fresh, 200, T2_VMA, 32, 32)
    assert fresh.close_session() == 0
    fresh.close()
    assert other.close_session() == 0
    other.close()
    expect_exit(procs, p, workdir, 0)
    out = output_of(workdir, "page-server")
    assert re.search(reason, out), f"no logged reason matching {reason!r}:\n{out}"
    assert "dropping the connection" in out


def test_lazy_but_not_present(tool, procs, workdir):
    """Pages flagged lazy without data (a dump --lazy-pages pagemap) cannot
    be served: that GET ends the session, with the reason."""
    imgdir = write_images(workdir / "images", 256, lazy_not_present=True)
    port = free_port()
    p = start_page_server(tool, procs, workdir, imgdir, port)
    c = Client(port)
    c.get(100, SMALL_VMA + 40 * PAGE, 4)
    assert c.dropped()
    c.close()
    stop(procs, p)
    assert "whose data is not in the images" in output_of(workdir, "page-server")


def test_close_exits_when_last_session_ends(server, procs, workdir):
    p, port = server
    a, b = Client(port), Client(port)
    get(a, 100, SMALL_VMA, 1, 1)
    get(b, 100, SMALL_VMA, 1, 1)
    assert a.close_session() == 0
    a.close()
    time.sleep(0.2)
    expect_running(p)		# b is still open
    get(b, 200, T2_VMA, 1, 1)
    b.send(PS_IOV_FORCE_CLOSE)
    assert b.sock.recv(4) == b"\0\0\0\0"
    b.close()
    expect_exit(procs, p, workdir, 0)


def test_eof_without_close_keeps_serving(server, procs, workdir):
    p, port = server
    c = Client(port)
    get(c, 100, SMALL_VMA, 1, 1)
    c.close()
    time.sleep(0.2)
    expect_running(p)
    c = Client(port)
    get(c, 100, SMALL_VMA, 1, 1)
    assert c.close_session() == 0
    c.close()
    expect_exit(procs, p, workdir, 0)


def test_slow_reader_does_not_block_others(server):
    """A session that asks for 80 MiB and reads nothing (the server stops
    taking its requests at 64 MiB queued) does not hold up another
    session's one page; once it reads, it gets everything, in order."""
    _, port = server
    hog = Client(port)
    for i in range(20):
        hog.get(100, BIG_VMA + i * PAGE, 1024)
    c = Client(port)
    t0 = time.monotonic()
    get(c, 100, SMALL_VMA, 1, 1)
    assert time.monotonic() - t0 < 2
    c.close()
    for i in range(20):
        expect_reply(hog, 100, BIG_VMA + i * PAGE, 1024)
    get(hog, 200, T2_VMA, 1, 1)
    hog.close()


def test_sigterm_is_a_clean_exit(server, procs, workdir):
    p, port = server
    c = Client(port)
    get(c, 100, SMALL_VMA, 1, 1)
    p.send_signal(signal.SIGTERM)
    expect_exit(procs, p, workdir, 0)
    assert c.dropped()
    c.close()


def test_sample_images(tool, procs, workdir):
    """The image library's own sample set: data byte = (vaddr / 4096) & 0xff."""
    imgdir = workdir / "sample"
    subprocess.run([str(paths.BUILD / "test" / "unit" / "test_images_sample"), str(imgdir)],
                   check=True, timeout=30)
    port = free_port()
    p = start_page_server(tool, procs, workdir, imgdir, port)
    anon = 0x7f3a10000000
    c = Client(port)
    c.get(1000, anon + 8 * PAGE, 64)
    cmd, nr, vaddr, dst, data = c.reply()
    assert (cmd, nr, vaddr, dst) == (GET_REPLY_CMD, 24, anon + 8 * PAGE, 1000)
    assert data == b"".join(bytes([((anon >> 12) + i) & 0xff]) * PAGE for i in range(8, 32))
    c.get(1002, 0x1c5d000, 1)		# lazy, served remotely: no data in this dump
    assert c.dropped()
    c.close()
    stop(procs, p)


def test_refuses_receiver_mode(tool, workdir, images):
    res = tool.run(["page-server", "-D", images, "--port", free_port()], timeout=10)
    assert_error_line(res, "page-server", r"--lazy-pages", r"not supported")


def test_port_in_use(tool, workdir, images):
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
        res = tool.run(["page-server", "-D", images, "--address", "127.0.0.1", "--port", port,
                        "--lazy-pages"], timeout=10)
    assert_error_line(res, "page-server", r"listen", str(port), r"in use")


def test_missing_images(tool, workdir):
    (workdir / "empty").mkdir()
    res = tool.run(["page-server", "-D", workdir / "empty", "--port", free_port(),
                    "--lazy-pages"], timeout=10)
    assert_error_line(res, "page-server", r"pstree\.img")


def test_serves_a_real_dump(tool, procs, zdtm, workdir):
    """A dump of a running task: every lazy run comes back byte for byte as
    pages-N.img holds it, clamped at the run's end (adjacent entries merged)."""
    task = zdtm(ZdtmTest("mem_anon", ("--size", "2M"), label="2M"))
    imgdir = workdir / "images"
    imgdir.mkdir()
    res = tool.dump(task.pid, imgdir, workdir / "dump.log", 60)
    assert res.rc == 0, res.describe()
    task.expect_gone()

    shown = tool.run(["show", imgdir / f"pagemap-{task.pid}.img"], timeout=30)
    assert shown.rc == 0, shown.describe()
    head, *entries = json.loads(shown.stdout)["entries"]
    pages_file = (imgdir / f"pages-{head['pages_id']}.img").read_bytes()
    runs, off = [], 0		# merged lazy+present runs: [vaddr, nr_pages, offset]
    for e in entries:
        if e["flags"] & 4 and e["flags"] & 2:
            if runs and runs[-1][0] + runs[-1][1] * PAGE == e["vaddr"]:
                runs[-1][1] += e["nr_pages"]
            else:
                runs.append([e["vaddr"], e["nr_pages"], off])
        if e["flags"] & 4:
            off += e["nr_pages"] * PAGE
    assert sum(r[1] for r in runs) > 256, runs

    port = free_port()
    p = start_page_server(tool, procs, workdir, imgdir, port)
    c = Client(port)
    for vaddr, n, off in runs:
        for skip in sorted({0, n // 2, n - 1}):
            c.get(task.pid, vaddr + skip * PAGE, n + 7)
            cmd, m, rvaddr, dst, data = c.reply()
            assert (cmd, m, rvaddr, dst) == (GET_REPLY_CMD, n - skip, vaddr + skip * PAGE,
                                             task.pid)
            want = pages_file[off + skip * PAGE:off + n * PAGE]
            assert data == want, f"wrong data at {vaddr + skip * PAGE:#x}"
    assert c.close_session() == 0
    c.close()
    expect_exit(procs, p, workdir, 0)


PS_IOV_FEATURES, PS_IOV_GET_SHMEM, PS_FEAT_SHMEM = 0x4c01, 0x4c02, 1


def shmem_runs(imgdir):
    """shmid -> [(offset, nr_pages, data)] of each pagemap-shmem image."""
    out = {}
    for path in imgdir.glob("pagemap-shmem-*.img"):
        shmid = int(path.name[len("pagemap-shmem-"):-len(".img")])
        pages_id, entries = images_mod.pagemap_entries(path)
        data = (imgdir / f"pages-{pages_id}.img").read_bytes()
        off, runs = 0, []
        for vaddr, nr, flags in entries:
            if flags & images_mod.PE_PRESENT:
                runs.append((vaddr, nr, data[off:off + nr * PAGE]))
                off += nr * PAGE
        out[shmid] = runs
    return out


def test_serves_shared_memory_by_offset(tool, procs, zdtm, workdir):
    """Our own GET_SHMEM (asked for only after FEATURES says it is served):
    every dumped page of every object comes back as its pages file holds
    it, clamped at the end of its run; an object the images do not have
    drops that session only (Documentation/lazy-pages.md)."""
    task = zdtm(ZdtmTest("shmem_lazy_share", ("--size", "1M"), label="1M", tree=True))
    imgdir = workdir / "images"
    imgdir.mkdir()
    task.note_tree()
    res = tool.dump(task.pid, imgdir, workdir / "dump.log", 60)
    assert res.rc == 0, res.describe()
    task.expect_gone()
    objs = shmem_runs(imgdir)
    assert len(objs) == 3 and all(objs.values()), objs.keys()

    port = free_port()
    p = start_page_server(tool, procs, workdir, imgdir, port)
    c = Client(port)
    c.send(PS_IOV_FEATURES, 0, 0xff)
    cmd, _, nr, bits, dst = HDR_STRUCT.unpack(recv_exact(c.sock, HDR_STRUCT.size))
    assert (cmd, nr, bits, dst) == (PS_IOV_FEATURES, 0, PS_FEAT_SHMEM, 0)
    for shmid, runs in objs.items():
        dst_id = (shmid << 8) | 2
        for off, n, data in runs:
            for skip in sorted({0, n // 2, n - 1}):
                c.send(PS_IOV_GET_SHMEM, n + 5, off + skip * PAGE, dst_id)
                cmd, m, roff, rdst, got = c.reply()
                assert (cmd, m, roff, rdst) == (GET_REPLY_CMD, n - skip, off + skip * PAGE,
                                                dst_id)
                assert got == data[skip * PAGE:], f"object {shmid} at {off + skip * PAGE:#x}"
    other = Client(port)
    other.send(PS_IOV_GET_SHMEM, 1, 0, ((max(objs) + 1000) << 8) | 2)
    assert other.dropped(), "GET_SHMEM of an unknown object was served"
    other.close()
    assert c.close_session() == 0
    c.close()
    expect_exit(procs, p, workdir, 0)
    log = output_of(workdir, "page-server")
    assert re.search(r"GET_SHMEM for shared memory \d+, which is not in these images", log), log
