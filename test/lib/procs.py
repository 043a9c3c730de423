"""Processes owned by a test, always handled by pid, never by name.

pytest runs as a child subreaper (make_subreaper), so a restored task,
whose parent `criu-lazy restore -d` exits, is reparented to pytest and can
be waited for like a child.  A ProcessTracker records every process a test
starts or adopts, with its start time so that a recycled pid is never
mistaken for ours, and kills and reaps whatever is left when the test ends.

Never waitpid(-1): subprocess reaps its own children by pid, and a stray
wait would steal their status.
"""
import ctypes
import os
import signal
import subprocess
import time

PR_SET_CHILD_SUBREAPER = 36
FOLLOWER_TIMEOUT = 30


def make_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "prctl(PR_SET_CHILD_SUBREAPER): " + os.strerror(err))


def read_stat(pid):
    """/proc/PID/stat as a list where index n is field n of proc(5); None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    lpar, rpar = data.index("("), data.rindex(")")
    return [None, data[:lpar].strip(), data[lpar + 1:rpar]] + data[rpar + 2:].split()


def state(pid):
    """One-letter state (R, S, D, T, t, Z, ...) or None if there is no such pid."""
    st = read_stat(pid)
    return st[3] if st else None


def exists(pid):
    s = state(pid)
    return s is not None


def alive(pid):
    s = state(pid)
    return s is not None and s not in ("Z", "X")


def start_time(pid):
    st = read_stat(pid)
    return int(st[22]) if st else None


def ppid(pid):
    st = read_stat(pid)
    return int(st[4]) if st else None


def status_field(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return line.split(":", 1)[1].strip()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def children_of_me():
    """Pids whose parent is this process (children and adopted orphans)."""
    me = os.getpid()
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and ppid(int(d)) == me:
            out.append(int(d))
    return sorted(out)


def descendants(pid):
    """Every process below pid (children of each of its threads, recursively)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except (FileNotFoundError, ProcessLookupError):
            continue
        for tid in tids:
            try:
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    kids = [int(x) for x in f.read().split()]
            except (FileNotFoundError, ProcessLookupError):
                continue
            out.extend(kids)
            todo.extend(kids)
    return out


def describe(pid):
    st = read_stat(pid)
    if not st:
        return f"pid {pid}: gone"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        cmd = "?"
    return f"pid {pid} ({st[2]}) state {st[3]} ppid {st[4]}: {cmd}"


def wait_status_str(status):
    if status is None:
        return "unknown (not our child)"
    if os.WIFEXITED(status):
        return f"exit code {os.WEXITSTATUS(status)}"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return f"killed by {signal.Signals(sig).name}"
    return f"status {status:#x}"


def wait_for(cond, timeout, interval=0.01):
    """Poll cond() until it is true or timeout seconds passed; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)
        interval = min(interval * 1.5, 0.1)


class ProcessTracker:
    """Every process a test owns; kill_all() ends what is left, by pid."""

    def __init__(self):
        self._popen = {}	# pid -> Popen (our direct children)
        self._ident = {}	# pid -> start time, for pids we own
        self._followers = set()	# end by themselves once their leader is gone

    def spawn(self, argv, *, cwd=None, env=None, stdout=None, new_session=True,
              pass_fds=()):
        """Start a process with stdin /dev/null and stdout+stderr to the
        file `stdout` (a path), in its own session by default; pass_fds
        stay open in it (e.g. a --status-fd pipe)."""
        out = open(stdout, "ab") if stdout else subprocess.DEVNULL
        try:
            p = subprocess.Popen([str(a) for a in argv], cwd=cwd, env=env,
                                 stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT,
                                 start_new_session=new_session, pass_fds=pass_fds)
        finally:
            if stdout:
                out.close()
        self._popen[p.pid] = p
        self._ident[p.pid] = start_time(p.pid)
        return p

    def adopt(self, pid):
        """Own a process we did not spawn (a restored task, a daemon's child)."""
        self._ident[pid] = start_time(pid)

    def adopt_follower(self, pid):
        """Own a process that ends by itself after the one it serves (the
        lazy-pages daemon's guardian): at the end of the test it gets
        FOLLOWER_TIMEOUT s to do so before it counts as left behind."""
        self.adopt(pid)
        self._followers.add(pid)

    def forget(self, pid):
        self._ident.pop(pid, None)
        self._popen.pop(pid, None)
        self._followers.discard(pid)

    def owns(self, pid):
        return pid in self._ident

    def reap(self, pid, timeout):
        """Wait up to timeout s for pid to exit and reap it.

        Returns its wait status (None if it was not our child, so only its
        disappearance could be seen).  Raises TimeoutError if it did not exit.
        """
        p = self._popen.get(pid)
        if p is not None and p.returncode is None:
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                raise TimeoutError(f"{describe(pid)} did not exit within {timeout} s")
            self._popen.pop(pid)
            self._ident.pop(pid, None)
            rc = p.returncode
            # back to a raw wait status, to treat both kinds alike
            return (-rc) & 0x7f if rc < 0 else (rc & 0xff) << 8
        self._popen.pop(pid, None)
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            try:
                got, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                # not our child: we can only watch it go away
                if not alive(pid):
                    self._ident.pop(pid, None)
                    return None
            else:
                if got == pid:
                    self._ident.pop(pid, None)
                    return status
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{describe(pid)} did not exit within {timeout} s")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.05)

    def kill(self, pid, timeout=10):
        """SIGKILL pid if it is still the process we own, then reap it."""
        p = self._popen.get(pid)
        ident = self._ident.get(pid)
        if p is not None and p.returncode is None:
            # a direct child not yet reaped: its pid cannot have been reused
            if p.poll() is None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    p.wait(timeout)
                except subprocess.TimeoutExpired:
                    pass
        elif ident is not None and start_time(pid) == ident:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.reap(pid, timeout)
            except TimeoutError:
                pass
        self.forget(pid)

    def kill_all(self):
        """End every process we own, then any child or adopted orphan left."""
        left = []
        followers = self._followers & set(self._ident)
        for pid in (set(self._ident) | set(self._popen)) - followers:
            if alive(pid) and start_time(pid) == self._ident.get(pid):
                left.append(describe(pid))
            self.kill(pid)
        for pid in followers:
            if start_time(pid) != self._ident.get(pid):
                self.forget(pid)
                continue
            try:
                self.reap(pid, FOLLOWER_TIMEOUT)
            except TimeoutError:
                left.append(describe(pid))
            self.kill(pid)
        for pid in children_of_me():
            left.append(describe(pid))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self._ident[pid] = start_time(pid)
                self.reap(pid, 10)
            except TimeoutError:
                pass
        return left
