"""Self-check mutations of a task's open files: pipes and FIFOs, sockets,
eventfds, inotify and fanotify marks, locks, ptys, timerfds, memfds and
ghost files, seeks -- each through a copy of the fd or the file itself."""
import ctypes
import os
import signal

from .selfcheck import libc, poke, logged, addr, steal_fd, stolen_fd


def write_stolen(task, fd, data):
    """data written into the task's fd fd, through a copy of it."""
    with stolen_fd(task.pid, fd) as copy:
        os.write(copy, data)


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


def add_to_eventfd_20(task):
    write_stolen(task, 20, (1).to_bytes(8, "little"))


def unwatch_inotify_30_wd4(task):
    with stolen_fd(task.pid, 30) as fd:
        assert libc.inotify_rm_watch(fd, 4) == 0, "inotify_rm_watch"


def unmark_fanotify_30_file(task):
    with stolen_fd(task.pid, 30) as fd:
        mark = libc.fanotify_mark
        mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int,
                         ctypes.c_char_p]
        # FAN_MARK_REMOVE, FAN_MODIFY | FAN_CLOSE_WRITE, AT_FDCWD
        assert mark(fd, 2, 0x2 | 0x8, -100, str(task.dir / "fan.file").encode()) == 0, \
            "fanotify_mark(FAN_MARK_REMOVE)"


def unlock_flock_23(task):
    with stolen_fd(task.pid, 23) as fd:
        assert libc.flock(fd, 8) == 0, "flock(LOCK_UN)"


def resize_pty_21(task):
    with stolen_fd(task.pid, 21) as fd:
        import fcntl
        import struct
        import termios
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))


def send_sigusr2(task):
    os.kill(task.pid, signal.SIGUSR2)


def arm_timerfd_23(task):
    with stolen_fd(task.pid, 23) as fd:
        # struct itimerspec: interval 0, value 1000 s
        spec = (ctypes.c_long * 4)(0, 0, 1000, 0)
        assert libc.syscall(286, fd, 0, spec, None) == 0, "timerfd_settime"


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
    write_stolen(task, 30, b"!")


def watch_more_in_epoll_30(task):
    with stolen_fd(task.pid, 30) as efd, stolen_fd(task.pid, 20) as tfd:
        # a watch of the pipe under our copy's number: it lives on, since
        # the task keeps the file open
        ev = (ctypes.c_uint32 * 3)(1, 0, 0)	# EPOLLIN, data
        assert libc.syscall(233, efd, 1, tfd, ev) == 0, "epoll_ctl ADD"


def send_to_abstract_dgram(task):
    """A datagram more to fd 22 of unix_named, by its abstract name."""
    import socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(b"!", f"\0zdtm-dgram-{task.pid}")


def send_to_chain_z(task):
    """A datagram more to chain-z.sock (C's fd 30 in unix_chain), ahead of
    what B and A sent."""
    import socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(b"!", str(task.dir / "chain-z.sock"))


def seek_fd30_to_0(task):
    """The offset of the root's fd 30 moved (an open file it shares with
    its child, so the child's moves too)."""
    with stolen_fd(task.pid, 30) as fd:
        os.lseek(fd, 0, os.SEEK_SET)


def seek_child_fd30_to_0(task):
    """The offset of the child's fd 30 moved (a file the root has in flight
    too, one open file with it)."""
    child = int(open(f"/proc/{task.pid}/task/{task.pid}/children").read().split()[0])
    with stolen_fd(child, 30) as fd:
        os.lseek(fd, 0, os.SEEK_SET)


def write_more_into_pipe_31(task):
    """A byte more into pipe A through the root's write end, before the
    root's own: the child finds it where the root's bytes should be."""
    with open(f"/proc/{task.pid}/fd/31", "wb") as f:
        f.write(b"!")


def write_into_pipe_43(task):
    """A byte into the pipe of the table root and child share, before the
    root's "ping": the child reads it first."""
    with open(f"/proc/{task.pid}/fd/43", "wb") as f:
        f.write(b"!")


def send_datagram_through_32(task):
    """A datagram more into the child's fd 33 through the root's fd 32."""
    write_stolen(task, 32, b"!")


def add_to_eventfd_30(task):
    """One more on the eventfd the root and its child share."""
    write_stolen(task, 30, (1).to_bytes(8, "little"))


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


def link_lr_keep_again(task):
    """One more name for the file behind fd 20 of link_remap."""
    os.link(task.dir / "lr-keep", task.dir / "lr-extra")


def chmod_croot(task):
    """Another mode for the root chroot_root runs in."""
    os.chmod(task.dir / "croot", 0o755)


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


def poke_sysv_a(task):
    """A byte of sysv_ipc's segment A, through its whole attachment."""
    with open(f"/proc/{task.pid}/maps") as f:
        a = [l for l in f if "/SYSV5a170001" in l and l.split()[2] == "00000000" and
             int(l.split()[0].split("-")[1], 16) - int(l.split()[0].split("-")[0], 16) == 4 * 4096]
    assert a, "no whole attachment of A"
    poke(task.pid, int(a[0].split("-")[0], 16) + 5, b"\x00\x42")


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


def shut_writing_of_22(task):
    """tcp_closing: fd 22 shuts its writing down, so its FIN reaches 21,
    whose own FIN waits behind its data: 21 goes from FIN_WAIT1 to CLOSING."""
    import socket
    fd = steal_fd(task.pid, 22)
    with socket.socket(fileno=fd) as ours:
        ours.shutdown(socket.SHUT_WR)


def write_into_low_fd_pipe(task):
    """A line into the pipe at fds 3/4, as a stray log line of a restore would."""
    write_stolen(task, 3, b"stray\n")


def raise_netns_dgram_qlen(task):
    """net.unix.max_dgram_qlen of netns_own's namespace set to 78, from inside it."""
    import subprocess
    subprocess.run(["nsenter", f"--net=/proc/{task.pid}/ns/net", "sh", "-c",
                    "echo 78 > /proc/sys/net/unix/max_dgram_qlen"], check=True, timeout=10)
