"""The checks can fail: each zdtm program must say FAIL when its state is
changed behind its back, and the /proc comparison must see a change.

Without this, a PASS after a restore would prove nothing: a program whose
check is broken passes whatever the tool did.  Each case starts a program
(no checkpoint), changes one piece of the state it checks -- memory through
/proc/PID/mem, a file on disk, a register through ptrace, an rlimit, a
pending signal, or, where the state cannot be changed from outside (timers,
sigactions, the memory map), the record the program compares it with --
then sends SIGTERM and expects FAIL naming what changed.  Every program
under test/zdtm has a case (test_every_program_is_covered), and each lazy_*
program one more: told its pages were left lazy when there was no restore
at all, it must fail its premise.
"""
import ctypes
import os
import re
import resource
import signal

import pytest

from lib import procstate
from lib import paths
from lib.zdtm import LAZY_PREMISE_FILE, PIDNS_LAUNCHER, ZdtmTest, missing_cpu_flags

libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]

PTRACE_GETREGS, PTRACE_SETREGS = 12, 13
PTRACE_GETFPREGS, PTRACE_SETFPREGS = 14, 15
PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT = 17, 0x4206, 0x4207

# every program under test/zdtm (the launcher of the lazy-migrate mode
# checks nothing: it only starts the others)
PROGRAMS = sorted(p.stem for p in (paths.ZDTM_SRC).glob("*.c")
                  if p.stem != PIDNS_LAUNCHER)
LAZY_PROGRAMS = [p for p in PROGRAMS if p.startswith("lazy_")]


def ptrace(req, pid, addr=None, data=None):
    if libc.ptrace(req, pid, addr, data) == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"ptrace({req}, {pid}): {os.strerror(err)}")


class Stopped:
    """The task seized and interrupted for the duration of the block."""

    def __init__(self, pid):
        self.pid = pid

    def __enter__(self):
        ptrace(PTRACE_SEIZE, self.pid)
        ptrace(PTRACE_INTERRUPT, self.pid)
        _, status = os.waitpid(self.pid, 0x40000000)	# __WALL
        assert os.WIFSTOPPED(status), f"not stopped: {status:#x}"
        return self

    def __exit__(self, *exc):
        ptrace(PTRACE_DETACH, self.pid)


def poke(pid, addr, data):
    with open(f"/proc/{pid}/mem", "r+b", buffering=0) as f:
        f.seek(addr)
        f.write(data)


def logged(task, pattern):
    """A value the program printed at setup (test_msg) about itself."""
    m = re.search(pattern, task.output.read_text())
    assert m, f"{task.spec.id} did not print {pattern!r}:\n{task.output.read_text()}"
    return m


def addr(task, pattern):
    return int(logged(task, pattern).group(1), 16)


def expect_fail(task, pattern):
    task.stop()
    result = task.outfile.read_text() if task.outfile.exists() else ""
    assert result.startswith("FAIL"), (
        f"{task.spec.id} passed although its state was changed: its check is broken\n"
        f"{task.text(task.output)}")
    assert re.search(pattern, result), f"FAIL for the wrong reason: {result}"


# ------------------------------------------------------------ mutations

def poke_region_page2(task):
    poke(task.pid, addr(task, r"region (0x[0-9a-f]+)") + 2 * 4096 + 100, b"\x00\x01")


def zero_region_page0(task):
    poke(task.pid, addr(task, r"region (0x[0-9a-f]+)"), bytes(4096))


def poke_readonly_part(task):
    poke(task.pid, addr(task, r"span (0x[0-9a-f]+)") + 16 * 4096 + 7, b"\x55\xaa")


def poke_heap(task):
    poke(task.pid, addr(task, r"heap (0x[0-9a-f]+)") + 12345, b"\x01\x02\x03")


def poke_deepest_frame(task):
    poke(task.pid, addr(task, r"deepest frame (0x[0-9a-f]+)") + 17, b"\x00\xff")


def change_unwritten_file_page(task):
    with open(task.dir / "private.data", "r+b") as f:
        f.seek(4096 + 10)
        f.write(b"\xee\xee")


def change_shared_file(task):
    with open(task.dir / "shared.data", "r+b") as f:
        f.seek(30)
        f.write(b"\xee\xee")


def poke_shared_anon(task):
    poke(task.pid, addr(task, r"shared region (0x[0-9a-f]+)") + 5 * 4096, b"\x77")


def change_xmm5(task):
    buf = ctypes.create_string_buffer(512)
    with Stopped(task.pid):
        ptrace(PTRACE_GETFPREGS, task.pid, None, buf)
        buf[160 + 5 * 16] = bytes([buf[160 + 5 * 16][0] ^ 0xff])
        ptrace(PTRACE_SETFPREGS, task.pid, None, buf)


def change_r12(task):
    regs = (ctypes.c_ulonglong * 27)()
    with Stopped(task.pid):
        ptrace(PTRACE_GETREGS, task.pid, None, regs)
        regs[3] ^= 1	# r15, r14, r13, r12, ...
        ptrace(PTRACE_SETREGS, task.pid, None, regs)


def queue_blocked_sighup(task):
    os.kill(task.pid, signal.SIGHUP)


def lower_nofile(task):
    soft, hard = resource.prlimit(task.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(task.pid, resource.RLIMIT_NOFILE, (soft - 1, hard))


def change_ro_data(task):
    with open(task.dir / "ro.data", "r+b") as f:
        f.seek(1050)
        f.write(b"\x00\x00\x00")


def change_cmdline(task):
    with open(f"/proc/{task.pid}/stat") as f:
        arg_start = int(f.read().rsplit(")", 1)[1].split()[48 - 3])
    poke(task.pid, arg_start + 1, b"#")


def forge_first_log_line(task):
    with open(task.dir / "counter.log", "r+b") as f:
        assert f.read(7) == b"tick 1 "
        f.seek(5)
        f.write(b"7")


def poke_busyloop_step(task):
    poke(task.pid, addr(task, r"step (0x[0-9a-f]+)"), (5).to_bytes(8, "little"))


def poke_expected_itimer_interval(task):
    # struct itimerval starts with it_interval.tv_sec (500 s)
    poke(task.pid, addr(task, r"expected ITIMER_VIRTUAL (0x[0-9a-f]+)"),
         (501).to_bytes(8, "little"))


def poke_recorded_rseq_size(task):
    poke(task.pid, addr(task, r"recorded at (0x[0-9a-f]+)"), (64).to_bytes(4, "little"))


def poke_recorded_vdso_line(task):
    poke(task.pid, addr(task, r"recorded lines (0x[0-9a-f]+)"), b"0")


def poke_recorded_sigusr1_flags(task):
    # struct ksigaction: handler, flags, restorer, mask (8 bytes each)
    at = addr(task, r"recorded actions (0x[0-9a-f]+)") + signal.SIGUSR1 * 32 + 8
    poke(task.pid, at, b"\x5a")


def poke_recorded_maps(task):
    poke(task.pid, addr(task, r"recorded maps (0x[0-9a-f]+)"), b"0")


def stop_the_thread(task):
    poke(task.pid, addr(task, r"stop flag (0x[0-9a-f]+)"), (1).to_bytes(4, "little"))


def poke_expected_uname_errno(task):
    poke(task.pid, addr(task, r"expected uname errno at (0x[0-9a-f]+)"),
         (7).to_bytes(4, "little"))


def poke_expected_reply(task):
    poke(task.pid, addr(task, r"expected reply at (0x[0-9a-f]+)"), b"c")


def poke_t2_getpriority_errno(task):
    poke(task.pid, addr(task, r"t2's expected getpriority errno at (0x[0-9a-f]+)"),
         (7).to_bytes(4, "little"))


def poke_child_getpriority_errno(task):
    child = int(open(f"/proc/{task.pid}/task/{task.pid}/children").read().split()[0])
    poke(child, addr(task, r"the child's expected getpriority errno at (0x[0-9a-f]+)"),
         (7).to_bytes(4, "little"))


def poke_recorded_worker_tid(task):
    poke(task.pid, addr(task, r"recorded tid of the second thread at (0x[0-9a-f]+)"),
         (1).to_bytes(4, "little"))


def poke_t1_creds(task):
    poke(task.pid, addr(task, r"t1's recorded creds at (0x[0-9a-f]+)"), b"Uid:\t7")


def poke_min_wait(task):
    poke(task.pid, addr(task, r"shortest acceptable wait \(ms\) at (0x[0-9a-f]+)"),
         (60000).to_bytes(8, "little"))


def poke_expected_exit_status(task):
    poke(task.pid, addr(task, r"expected exit status at (0x[0-9a-f]+)"),
         (9).to_bytes(4, "little"))


def poke_recorded_nice(task):
    poke(task.pid, addr(task, r"recorded nice of thread 0 at (0x[0-9a-f]+)"),
         (7).to_bytes(4, "little"))


def poke_expected_byte(task):
    poke(task.pid, addr(task, r"expected byte at (0x[0-9a-f]+)"), b"y")


def poke_stress_page5(task):
    poke(task.pid, addr(task, r"area (0x[0-9a-f]+)") + 5 * 4096 + 100, b"\x00\x01")


def poke_expected_sum(task):
    a = addr(task, r"expected sum at (0x[0-9a-f]+)")
    with open(f"/proc/{task.pid}/mem", "r+b", buffering=0) as f:
        f.seek(a)
        v = int.from_bytes(f.read(8), "little")
        f.seek(a)
        f.write((v + (1 << 40)).to_bytes(8, "little"))


def write_more_into_pipe(task):
    with open(f"/proc/{task.pid}/fd/43", "wb") as f:
        f.write(b"!")


def send_to_netlink_22(task):
    """A message more into fd 22's queue, from a NETLINK_USERSOCK socket of ours."""
    import socket
    port = addr(task, r"port22 (0x[0-9a-f]+)")
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 2) as s:	# NETLINK_USERSOCK
        s.sendto(b"!", (port, 0))


def write_more_into_pipe_b(task):
    with open(f"/proc/{task.pid}/fd/31", "wb") as f:
        f.write(b"!")


def write_more_into_fifo_a(task):
    fd = os.open(task.dir / "fifo.a", os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, b"!")
    finally:
        os.close(fd)


def steal_fd(pid, fd):
    """A copy of the task's descriptor fd here (pidfd_getfd)."""
    pidfd = os.pidfd_open(pid)
    try:
        got = libc.syscall(438, pidfd, fd, 0)	# pidfd_getfd
        if got < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"pidfd_getfd({pid}, {fd}): {os.strerror(err)}")
        return got
    finally:
        os.close(pidfd)


def add_to_eventfd_20(task):
    fd = steal_fd(task.pid, 20)
    try:
        os.write(fd, (1).to_bytes(8, "little"))
    finally:
        os.close(fd)


def unwatch_inotify_30_wd4(task):
    fd = steal_fd(task.pid, 30)
    try:
        assert libc.inotify_rm_watch(fd, 4) == 0, "inotify_rm_watch"
    finally:
        os.close(fd)


def unmark_fanotify_30_file(task):
    fd = steal_fd(task.pid, 30)
    try:
        mark = libc.fanotify_mark
        mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int,
                         ctypes.c_char_p]
        # FAN_MARK_REMOVE, FAN_MODIFY | FAN_CLOSE_WRITE, AT_FDCWD
        assert mark(fd, 2, 0x2 | 0x8, -100, str(task.dir / "fan.file").encode()) == 0, \
            "fanotify_mark(FAN_MARK_REMOVE)"
    finally:
        os.close(fd)


def unlock_flock_23(task):
    fd = steal_fd(task.pid, 23)
    try:
        assert libc.flock(fd, 8) == 0, "flock(LOCK_UN)"
    finally:
        os.close(fd)


def resize_pty_21(task):
    fd = steal_fd(task.pid, 21)
    try:
        import fcntl
        import struct
        import termios
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    finally:
        os.close(fd)


def send_sigusr2(task):
    os.kill(task.pid, signal.SIGUSR2)


def arm_timerfd_23(task):
    fd = steal_fd(task.pid, 23)
    try:
        # struct itimerspec: interval 0, value 1000 s
        spec = (ctypes.c_long * 4)(0, 0, 1000, 0)
        assert libc.syscall(286, fd, 0, spec, None) == 0, "timerfd_settime"
    finally:
        os.close(fd)


def raise_oom_score_adj(task):
    with open(f"/proc/{task.pid}/oom_score_adj", "w") as f:
        f.write("600")


def poke_expected_loginuid(task):
    poke(task.pid, addr(task, r"expected loginuid at (0x[0-9a-f]+)"), (4).to_bytes(4, "little"))


def poke_expected_subreaper(task):
    poke(task.pid, addr(task, r"expected flag at (0x[0-9a-f]+)"), (0).to_bytes(4, "little"))


def poke_recorded_membarrier(task):
    poke(task.pid, addr(task, r"recorded at (0x[0-9a-f]+)"), (0).to_bytes(8, "little"))


def send_one_more_datagram(task):
    """A datagram more into fd 31's queue, sent through fd 30 (its peer)."""
    fd = steal_fd(task.pid, 30)
    try:
        os.write(fd, b"!")
    finally:
        os.close(fd)


def watch_more_in_epoll_30(task):
    efd, tfd = steal_fd(task.pid, 30), steal_fd(task.pid, 20)
    try:
        # a watch of the pipe under our copy's number: it lives on, since
        # the task keeps the file open
        ev = (ctypes.c_uint32 * 3)(1, 0, 0)	# EPOLLIN, data
        assert libc.syscall(233, efd, 1, tfd, ev) == 0, "epoll_ctl ADD"
    finally:
        os.close(efd)
        os.close(tfd)


def send_to_abstract_dgram(task):
    """A datagram more to fd 22 of unix_named, by its abstract name."""
    import socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(b"!", f"\0zdtm-dgram-{task.pid}")


def seek_fd30_to_0(task):
    """The offset of the root's fd 30 moved (an open file it shares with
    its child, so the child's moves too)."""
    fd = steal_fd(task.pid, 30)
    try:
        os.lseek(fd, 0, os.SEEK_SET)
    finally:
        os.close(fd)


def write_more_into_pipe_31(task):
    """A byte more into pipe A through the root's write end, before the
    root's own: the child finds it where the root's bytes should be."""
    with open(f"/proc/{task.pid}/fd/31", "wb") as f:
        f.write(b"!")


def send_datagram_through_32(task):
    """A datagram more into the child's fd 33 through the root's fd 32."""
    fd = steal_fd(task.pid, 32)
    try:
        os.write(fd, b"!")
    finally:
        os.close(fd)


def add_to_eventfd_30(task):
    """One more on the eventfd the root and its child share."""
    fd = steal_fd(task.pid, 30)
    try:
        os.write(fd, (1).to_bytes(8, "little"))
    finally:
        os.close(fd)


def poke_expected_umask(task):
    poke(task.pid, addr(task, r"expected umask at (0x[0-9a-f]+)"), (0o22).to_bytes(4, "little"))


def poke_recorded_timer_id(task):
    """The id recorded for the SIGEV_NONE timer (ids[2]) becomes the
    deleted one: a timer that did not come back."""
    gap = int(logged(task, r"gap (\d+)").group(1))
    poke(task.pid, addr(task, r"recorded at (0x[0-9a-f]+)") + 2 * 4, gap.to_bytes(4, "little"))


def send_sigusr1(task):
    os.kill(task.pid, signal.SIGUSR1)


def change_memfd_23(task):
    with open(f"/proc/{task.pid}/fd/23", "r+b") as f:
        f.write(b"J")


def change_ghost_20(task):
    """A byte of the deleted file behind fd 20, written through /proc."""
    with open(f"/proc/{task.pid}/fd/20", "r+b", buffering=0) as f:
        f.seek(4000)
        f.write(b"\x00\x42")


def change_memfd_map_20(task):
    """A byte of the mapped memfd "shared", written through its fd 20."""
    with open(f"/proc/{task.pid}/fd/20", "r+b", buffering=0) as f:
        f.seek(100)
        f.write(b"\x00\x42")


def poke_devzero_a_page3(task):
    """A byte of page 3 of the /dev/zero mapping "a" (its 16 pages)."""
    with open(f"/proc/{task.pid}/maps") as f:
        a = [l for l in f if "/dev/zero" in l and
             int(l.split()[0].split("-")[1], 16) - int(l.split()[0].split("-")[0], 16) == 16 * 4096]
    assert len(a) == 1, a
    poke(task.pid, int(a[0].split("-")[0], 16) + 3 * 4096 + 7, b"\x00\x42")


def send_to_udp_22(task):
    """A datagram more to fd 22 of inet_sockets, at its address."""
    import socket
    fd = steal_fd(task.pid, 22)
    with socket.socket(fileno=fd) as ours:
        addr = ours.getsockname()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"!", addr)


def send_one_more_byte_on_21(task):
    """A byte more from fd 21 of tcp_established, behind what it queued."""
    import socket
    fd = steal_fd(task.pid, 21)
    with socket.socket(fileno=fd) as ours:
        ours.send(b"!")


def poke_lazy_region_page5(task):
    poke(task.pid, addr(task, r"region (0x[0-9a-f]+)") + 5 * 4096 + 9, b"\x00\x5a")


def poke_sparse_page1(task):
    poke(task.pid, addr(task, r"span (0x[0-9a-f]+)") + 4096 + 33, b"\x00\x5a")


def poke_tree_inherited_page3(task):
    poke(task.pid, addr(task, r"inherited region (0x[0-9a-f]+)") + 3 * 4096 + 1, b"\x00\x42")


def poke_forker_child_memory(task):
    m = logged(task, r"child (\d+) memory (0x[0-9a-f]+)")
    poke(int(m.group(1)), int(m.group(2), 16) + 4096 + 3, b"\x00\x42")


def poke_shared_page20(task):
    poke(task.pid, addr(task, r"shared region (0x[0-9a-f]+)") + 20 * 4096 + 5, b"\x00\x42")


def poke_cow_page3_same(task):
    """Write child A's page 3 with the bytes it holds: its contents stay
    right, but the write gives A a copy of its own."""
    m = logged(task, r"region (0x[0-9a-f]+), child A (\d+)")
    at = int(m.group(1), 16) + 3 * 4096
    with open(f"/proc/{m.group(2)}/mem", "r+b", buffering=0) as f:
        f.seek(at)
        data = f.read(16)
        f.seek(at)
        f.write(data)


def poke_region_page2_vma(task):
    poke(task.pid, addr(task, r"region (0x[0-9a-f]+), state") + 2 * 4096 + 1, b"\x00\x42")


def poke_own_page5(task):
    poke(task.pid, addr(task, r"own region (0x[0-9a-f]+)") + 5 * 4096 + 9, b"\x00\x42")


def claim_lazy_without_restore(task):
    """The premise check: told the pages were left lazy when no restore
    ever happened, the program must refuse to pass."""
    (task.dir / LAZY_PREMISE_FILE).write_text("faults\n")


CASES = [
    (ZdtmTest("mem_anon", ("--size", "1M")), poke_region_page2, r"page 2 "),
    (ZdtmTest("mem_anon", ("--size", "1M")), zero_region_page0, r"page 0 .*all zeros"),
    (ZdtmTest("mem_holes"), poke_readonly_part, r"read-only"),
    (ZdtmTest("heap_brk"), poke_heap, r"heap"),
    (ZdtmTest("stack_deep"), poke_deepest_frame, r"frame at depth 3000"),
    (ZdtmTest("mmap_file_private"), change_unwritten_file_page, r"page 1 .*differs"),
    (ZdtmTest("mmap_file_shared"), change_shared_file, r"page 0"),
    (ZdtmTest("mmap_anon_shared"), poke_shared_anon, r"shared page 5"),
    (ZdtmTest("fpu", ("--isa", "sse"), label="sse"), change_xmm5, r"xmm register 5"),
    (ZdtmTest("fpu", ("--isa", "avx"), cpu_flags=("avx",), label="avx"), change_xmm5,
     r"ymm register 5"),
    (ZdtmTest("fpu", ("--isa", "avx512"), cpu_flags=("avx512f", "avx512bw"),
              label="avx512"), change_xmm5, r"zmm register 5"),
    (ZdtmTest("fpu", ("--isa", "avx"), cpu_flags=("avx",), label="avx"), change_r12, r"r12"),
    (ZdtmTest("sigpending"), queue_blocked_sighup, r"pending"),
    (ZdtmTest("cwd_umask_rlimit"), lower_nofile, r"RLIMIT_NOFILE"),
    (ZdtmTest("files"), change_ro_data, r"ro\.data"),
    (ZdtmTest("argv_environ"), change_cmdline, r"cmdline"),
    (ZdtmTest("counter", ("--log", "counter.log", "--size", "1M", "--interval-ms", "20")),
     forge_first_log_line, r"counter\.log"),
    (ZdtmTest("busyloop"), poke_busyloop_step, r"accumulator"),
    (ZdtmTest("itimer"), poke_expected_itimer_interval, r"ITIMER_VIRTUAL interval"),
    (ZdtmTest("rseq"), poke_recorded_rseq_size, r"registration changed"),
    (ZdtmTest("vdso"), poke_recorded_vdso_line, r"vdso/vvar maps lines changed"),
    (ZdtmTest("sigactions"), poke_recorded_sigusr1_flags, rf"signal {int(signal.SIGUSR1)}: sa_flags"),
    (ZdtmTest("maps"), poke_recorded_maps, r"maps lines differ"),
    (ZdtmTest("thread_seccomp"), stop_the_thread, r"stopped counting after SIGTERM"),
    (ZdtmTest("seccomp_filter"), poke_expected_uname_errno,
     r"uname is not refused with the expected errno"),
    (ZdtmTest("seccomp_filter_threads"), poke_t2_getpriority_errno,
     r"after SIGTERM, t2: getpriority failed with 18, expected 7"),
    (ZdtmTest("seccomp_filter_inherit", tree=True), poke_child_getpriority_errno,
     r"after SIGTERM: the child's getpriority is not refused as expected"),
    (ZdtmTest("posix_timers_thread"), poke_recorded_worker_tid,
     r"after SIGTERM: 0 ticks reached the second thread and \d+ another one"),
    (ZdtmTest("threads_creds"), poke_t1_creds, r"t1: creds now:"),
    (ZdtmTest("threads_sleep_restart"), poke_min_wait, r"rel: the wait took \d+ ms, less than 60000"),
    (ZdtmTest("pidfd_child", tree=True), poke_expected_exit_status,
     r"the running child: waitid says pid \d+ code 1 status 7, expected pid \d+ exit 9"),
    (ZdtmTest("seccomp_strict"), poke_expected_reply, r"answered 0x62 to 'a', expected 'c'"),
    (ZdtmTest("thread"), poke_recorded_nice, r"thread 0 .*nice 0, was 7"),
    (ZdtmTest("threads_state"), poke_expected_byte, r"byte 'z', expected 1 byte 'y'"),
    (ZdtmTest("threads_lazy_stress"), poke_stress_page5, r"page 5 byte"),
    (ZdtmTest("threads_churn"), poke_expected_sum, r"numbers add up to"),
    (ZdtmTest("unsupported_fd", ("--kind", "pipe"), label="pipe"), write_more_into_pipe,
     r"fd 42: read 6 bytes"),
    (ZdtmTest("pipe"), write_more_into_pipe_b, r"fd 30: 5001 bytes in the pipe"),
    (ZdtmTest("fifo"), write_more_into_fifo_a, r"fd 20: 3001 bytes in the FIFO"),
    (ZdtmTest("eventfd"), add_to_eventfd_20, r"counters 43 3 0"),
    (ZdtmTest("signalfd"), send_sigusr2, r"fd 21: a signal was there"),
    (ZdtmTest("timerfd"), arm_timerfd_23, r"fd 23: armed after the restore"),
    (ZdtmTest("oom_score_adj"), raise_oom_score_adj, r"oom_score_adj is 600"),
    (ZdtmTest("loginuid"), poke_expected_loginuid, r"loginuid is 3 after the restore, expected 4"),
    (ZdtmTest("child_subreaper"), poke_expected_subreaper, r"child subreaper is 1"),
    (ZdtmTest("membarrier"), poke_recorded_membarrier, r"membarrier registrations are"),
    (ZdtmTest("unix_socketpair"), send_one_more_datagram, r"fd 31: expected an empty queue"),
    (ZdtmTest("epoll"), watch_more_in_epoll_30, r"fd 30 watches"),
    (ZdtmTest("inotify"), unwatch_inotify_30_wd4, r"fd 30 watches"),
    (ZdtmTest("fanotify"), unmark_fanotify_30_file, r"fd 30 marks"),
    (ZdtmTest("file_locks"), unlock_flock_23, r"fd 23 locks"),
    (ZdtmTest("pty"), resize_pty_21, r"fd 21: window size 24x80"),
    (ZdtmTest("unix_named"), send_to_abstract_dgram, r"fd 22: expected an empty queue"),
    # fd 31 is the write end of the pipe whose read end is in flight
    (ZdtmTest("unix_scm"), write_more_into_pipe_b, r"pipe read end: 3001 bytes"),
    (ZdtmTest("netlink"), send_to_netlink_22, r"fd 22: expected an empty queue"),
    (ZdtmTest("posix_timers"), poke_recorded_timer_id, r"timer_gettime\(none"),
    (ZdtmTest("pidfd"), send_sigusr1, r"SIGUSR1 in all"),
    (ZdtmTest("memfd"), change_memfd_23, r"fd 23: not"),
    (ZdtmTest("ghost_files"), change_ghost_20, r"fd 20: contents"),
    (ZdtmTest("memfd_map"), change_memfd_map_20, r"shared: the mapping differs"),
    (ZdtmTest("mmap_devzero"), poke_devzero_a_page3, r"parent: a page 3"),
    (ZdtmTest("tree", ("--children", "1")), poke_tree_inherited_page3,
     r"inherited page 3 is wrong"),
    (ZdtmTest("tree_forker"), poke_forker_child_memory, r"child \d+ ended with status 0x100"),
    (ZdtmTest("tree_shmem"), poke_shared_page20, r"shared page 20 is wrong"),
    (ZdtmTest("tree_stress", ("--pages", "64")), poke_own_page5, r"root: page 5 of its own"),
    (ZdtmTest("tree_lazy_stress", ("--pages", "64", "--child-pages", "64", "--inherited-pages",
                                    "16")), poke_stress_page5, r"root: .*own page 5 byte"),
    (ZdtmTest("share_files"), seek_fd30_to_0, r"root after the restore: fd 30: offset 0"),
    (ZdtmTest("share_pipes"), write_more_into_pipe_31, r"pipe A: fd 30: byte 3000 "),
    (ZdtmTest("share_sockets"), send_datagram_through_32,
     r"datagram 3: fd 33: a message of 1 bytes"),
    (ZdtmTest("vma_flags", ("--state", "dontdump"), label="dontdump"), poke_region_page2_vma,
     r"after the restore: page 2 byte"),
    (ZdtmTest("tree_cow"), poke_cow_page3_same, r"page 3 is not shared between the root and child A"),
    (ZdtmTest("share_kobj"), add_to_eventfd_30, r"fd 30: the eventfd reads 8, expected 7"),
    (ZdtmTest("share_fs"), poke_expected_umask, r"root after the restore: umask is 027, expected 022"),
    (ZdtmTest("inet_sockets"), send_to_udp_22, r"fd 22: expected an empty queue"),
    (ZdtmTest("tcp_established", ("--small",)), send_one_more_byte_on_21,
     r"fd 22: expected nothing to read"),
    (ZdtmTest("lazy_fork"), poke_lazy_region_page5, r"parent: first read: page 5 "),
    (ZdtmTest("lazy_mremap"), poke_lazy_region_page5, r"moved region"),
    (ZdtmTest("lazy_madvise"), poke_lazy_region_page5, r"part before"),
    (ZdtmTest("lazy_munmap"), poke_lazy_region_page5, r"part before the hole"),
    (ZdtmTest("lazy_sighandler"), poke_lazy_region_page5, r"wrong data"),
    (ZdtmTest("lazy_split"), poke_lazy_region_page5, r"beside the splits: page 5:"),
    (ZdtmTest("lazy_split_thread"), poke_lazy_region_page5, r"reader: page 5 "),
    (ZdtmTest("lazy_sparse_fork"), poke_sparse_page1, r"lazy page 1 \(offset 0x1000\)"),
] + [(ZdtmTest(name), claim_lazy_without_restore, r"premise: .*not registered")
     for name in LAZY_PROGRAMS]


@pytest.mark.parametrize("spec,mutate,reason",
                         [pytest.param(*c, id=f"{c[0].id}-{c[1].__name__}") for c in CASES])
def test_check_fails_on_change(spec, mutate, reason, zdtm):
    task = zdtm(spec)
    mutate(task)
    expect_fail(task, reason)


def test_every_program_is_covered():
    """Each zdtm program has at least one case above (its check can fail),
    and each lazy_* program one more for its premise."""
    covered = {spec.name for spec, _, _ in CASES}
    missing = [p for p in PROGRAMS if p not in covered]
    assert not missing, f"no self-check case for {missing}"
    premise = {spec.name for spec, mutate, _ in CASES if mutate is claim_lazy_without_restore}
    assert premise == set(LAZY_PROGRAMS), (premise, LAZY_PROGRAMS)


def test_procstate_sees_changes(zdtm):
    """The /proc comparison of test_zdtm notices what it is meant to."""
    task = zdtm(ZdtmTest("sigpending"))
    before = task.snapshot()
    lower_nofile(task)
    os.kill(task.pid, signal.SIGHUP)
    changes = procstate.diff(before, task.snapshot())
    assert any(c.startswith("limits") for c in changes), changes
    assert any(c.startswith("status ShdPnd") for c in changes), changes
    task.stop()


def test_skipped_cpu_flags_are_real():
    """A sanity check of the skip logic: this machine has SSE2 for sure."""
    assert not missing_cpu_flags(ZdtmTest("x", cpu_flags=("sse2",)))
