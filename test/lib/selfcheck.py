"""What the zdtm self-check needs to change a task behind its back:
ptrace (registers), /proc/PID/mem, a copy of one of its fds, and what the
program printed about itself; and the expectation that it then FAILs."""
import contextlib
import ctypes
import os
import re



libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]

PTRACE_GETREGS, PTRACE_SETREGS = 12, 13
PTRACE_GETFPREGS, PTRACE_SETFPREGS = 14, 15
PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT = 17, 0x4206, 0x4207


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


@contextlib.contextmanager
def stolen_fd(pid, fd):
    """steal_fd() for a with block, closed at its end."""
    got = steal_fd(pid, fd)
    try:
        yield got
    finally:
        os.close(got)
