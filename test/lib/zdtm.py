"""One running zdtm program (the catalogue of them: zdtm_catalogue.py).

A program is started with its own session (as CRIU's zdtm tests are), stdin
/dev/null, stdout+stderr to NAME.output in the test's directory, and cwd
that directory (the programs create their files there).  It is ready when
its pidfile appears; SIGTERM makes it check its state and write PASS or
FAIL to its outfile.

With pid_ns=True it runs as the init of a pid namespace of its own (the
lazy-migrate mode: the dumped task keeps its pid while its copy runs), so
it has two pids: `ns_pid`, the one it sees and writes to its pidfile (1),
and `pid`, ours, which everything here uses (/proc, signals, waits, the
dump's -t).  A restore gives the copy a new namespace, so `pid` changes
with every restore while `ns_pid` stays.
"""
import os
import signal
from pathlib import Path

from . import paths, procs, procstate
from .zdtm_catalogue import ZdtmTest  # noqa: F401 (tests take it from here with ZdtmTask)

PIDNS_LAUNCHER = "pidns_launch"		# test/zdtm/pidns_launch.c
PID_LAUNCHER = "pid_launch"		# test/zdtm/pid_launch.c (a squatter of a pid)
LAZY_PREMISE_FILE = "lazy-premise"	# test/zdtm/lib/lazy.h
RESTORE_MODE_FILE = "restore-mode"	# test/zdtm/tree_cow.c

READY_TIMEOUT = 30	# start -> pidfile
EXIT_TIMEOUT = 60	# SIGTERM -> exit (checks of 256 MiB included)
GONE_TIMEOUT = 10	# a successful dump -> the task is gone


def program_env(spec):
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "ZDTM_TEST": spec.id}
    env.update(dict(spec.env))
    return env


def ns_pids(pid):
    """NSpid of /proc/PID/status: its pid in every namespace from ours down."""
    v = procs.status_field(pid, "NSpid")
    return [int(x) for x in v.split()] if v else []


def ns_tree(pid):
    """{pid as its namespace sees it: (its parent's there, 0 for pid; state)}
    of pid and every descendant (state "alive", "Z" or "T"): what a tree
    restored into a new pid namespace must give back."""
    out = {}
    for p in [pid, *procs.descendants(pid)]:
        mine = ns_pids(p)
        if not mine:
            continue
        parent = ns_pids(procs.ppid(p)) if p != pid else []
        st = procs.state(p)
        out[mine[-1]] = (parent[-1] if parent else 0, "alive" if st in ("R", "S", "D") else st)
    return out


class ZdtmTask:
    """One running zdtm program, followed across checkpoints by its pid."""

    def __init__(self, spec, workdir, tracker, pid_ns=False, prefix=()):
        """prefix: a command that execs the program in place somewhere else
        (`nsenter --net=...`), so the pid is still the program's."""
        self.spec = spec
        self.prefix = tuple(str(a) for a in prefix)
        self.dir = Path(workdir)
        self.procs = tracker
        self.pid_ns = pid_ns
        base = spec.id
        self.pidfile = self.dir / f"{base}.pid"
        self.outfile = self.dir / f"{base}.outfile"
        self.output = self.dir / f"{base}.output"
        self.pid = None		# ours
        self.tree = []		# its descendants when it was last dumped
        self.ns_pid = None	# its own (= pid without pid_ns)
        self.restores = 0

    def start(self, timeout=READY_TIMEOUT):
        binary = self.spec.binary()
        if not binary.is_file():
            raise AssertionError(f"{binary} is missing: build with `scons -j2`")
        argv = [*self.prefix, binary, "--pidfile", self.pidfile, "--outfile", self.outfile,
                *self.spec.args]
        if self.pid_ns:
            pid, alive = self._start_in_pid_ns(argv, timeout)
        else:
            p = self.procs.spawn(argv, cwd=self.dir, env=program_env(self.spec),
                                 stdout=self.output)
            pid, alive = p.pid, lambda: p.poll() is None
        ready = procs.wait_for(lambda: self.pidfile.exists() or not alive(), timeout)
        if not self.pidfile.exists():
            if not alive():
                raise AssertionError(
                    f"{self.spec.id} exited before it was ready:\n"
                    f"{self.text(self.outfile)}{self.text(self.output)}")
            raise AssertionError(f"{self.spec.id} not ready within {timeout} s "
                                 f"(ready={ready})\n{self.text(self.output)}")
        self.ns_pid = int(self.pidfile.read_text())
        if self.pid_ns:
            assert self.ns_pid == 1, (f"pidfile says {self.ns_pid}: the program is not "
                                      "the init of its pid namespace")
            assert ns_pids(pid)[-1:] == [1], f"NSpid of {pid} is {ns_pids(pid)}"
        else:
            assert self.ns_pid == pid, f"pidfile says {self.ns_pid}, but we started {pid}"
        self.pid = pid
        return self

    def _start_in_pid_ns(self, argv, timeout):
        """The launcher starts the program as pid 1 of a new pid namespace
        and exits; the program is reparented to us (a child subreaper) and
        adopted.  Returns (our pid of it, is-it-alive)."""
        realpid = self.dir / f"{self.spec.id}.realpid"
        launcher = self.procs.spawn([paths.zdtm_binary(PIDNS_LAUNCHER), realpid, *argv],
                                    cwd=self.dir, env=program_env(self.spec),
                                    stdout=self.output)
        try:
            status = self.procs.reap(launcher.pid, timeout)
        except TimeoutError:
            raise AssertionError(f"{PIDNS_LAUNCHER} did not exit within {timeout} s")
        assert status == 0 and realpid.exists(), (
            f"{PIDNS_LAUNCHER} failed ({procs.wait_status_str(status)})\n"
            f"{self.text(self.output)}")
        pid = int(realpid.read_text())
        self.procs.adopt(pid)
        return pid, lambda: procs.alive(pid)

    @staticmethod
    def text(path):
        try:
            return f"--- {path.name}\n{path.read_text(errors='replace')}\n"
        except FileNotFoundError:
            return f"--- {path.name}: missing\n"

    def note_mode(self, name):
        """Tell the program how it was last restored (file RESTORE_MODE_FILE
        in its directory: eager, lazy, ...), for checks that hold only in
        some modes (tree_cow: pages shared copy-on-write after an eager
        restore)."""
        (self.dir / RESTORE_MODE_FILE).write_text(name + "\n")

    def expect_lazy_faults(self):
        """Tell a lazy_* program (test/zdtm/lib/lazy.h) that this restore
        left its pages lazy, to arrive only through its faults."""
        (self.dir / LAZY_PREMISE_FILE).write_text("faults\n")

    def note_tree(self):
        """Before a dump: its descendants, which the dump kills too."""
        self.tree = procs.descendants(self.pid)

    def reap_tree(self, timeout=GONE_TIMEOUT):
        """The killed descendants were reparented to us (a subreaper): reap
        them, so that their pids (and the groups and sessions they kept
        alive) are free for the restore: the ones noted before the dump,
        and any child of ours in a session or group of the tree (a tree
        that forks while it is dumped has more than we noted)."""
        for pid in self.tree:
            try:
                self.procs.reap(pid, timeout)
            except TimeoutError:
                raise AssertionError(f"the dump succeeded but a task of the tree is still "
                                     f"there: {procs.describe(pid)}")
        ours = {self.pid, *self.tree}
        for pid in procs.children_of_me():
            st = procs.read_stat(pid)
            if st and (int(st[5]) in ours or int(st[6]) in ours) and st[3] in ("Z", "X"):
                self.procs.reap(pid, timeout)

    def expect_gone(self, timeout=GONE_TIMEOUT, pid=None, copy_ran=False):
        """After a dump without -R: the task (pid, default the current one)
        was killed (SIGKILL, no chance to run its checks) and is reaped, so
        its pid is free again.  copy_ran: its restored copy has run its
        checks meanwhile (a lazy migration's source lives until its copy
        has every page), so the outfile is the copy's."""
        pid = self.pid if pid is None else pid
        try:
            status = self.procs.reap(pid, timeout)
        except TimeoutError:
            raise AssertionError(
                f"the dump succeeded but the task is still there: {procs.describe(pid)}")
        assert status is None or (os.WIFSIGNALED(status) and
                                  os.WTERMSIG(status) == signal.SIGKILL), (
            f"the dumped task ended with {procs.wait_status_str(status)}, "
            f"expected SIGKILL\n{self.text(self.outfile)}{self.text(self.output)}")
        self.reap_tree(timeout)
        assert not procs.exists(pid), f"pid {pid} still exists after reaping"
        assert copy_ran or not self.outfile.exists(), (
            f"the dumped task wrote its outfile: it ran its checks before dying\n"
            f"{self.text(self.outfile)}")

    def expect_restored(self, pidfile=None):
        """After a restore: the same pid, running, not traced, ours.  In a
        pid namespace of its own: the same pid there (ns_pid), and the one
        here is the new one the restore wrote to its pidfile."""
        if pidfile is not None:
            assert Path(pidfile).exists(), f"restore did not write --pidfile {pidfile}"
            got = int(Path(pidfile).read_text().strip())
            if self.pid_ns:
                assert ns_pids(got)[-1:] == [self.ns_pid], (
                    f"restore --pidfile says {got}, whose NSpid is {ns_pids(got)}: "
                    f"expected pid {self.ns_pid} in a pid namespace of its own")
                self.pid = got
            else:
                assert got == self.pid, f"restore --pidfile says {got}, expected {self.pid}"
        st = procs.state(self.pid)
        assert st is not None, f"pid {self.pid} does not exist after the restore"
        assert st not in ("Z", "X"), (
            f"the restored task is dead ({procs.describe(self.pid)})\n"
            f"{self.text(self.outfile)}{self.text(self.output)}")
        assert st not in ("t", "T"), f"the restored task is stopped: {procs.describe(self.pid)}"
        tracer = procs.status_field(self.pid, "TracerPid")
        assert tracer == "0", f"the restored task is still traced by {tracer}"
        assert procs.ppid(self.pid) == os.getpid(), (
            f"the restored task is not reparented to the test (a subreaper): "
            f"{procs.describe(self.pid)}")
        self.procs.adopt(self.pid)
        self.restores += 1

    def snapshot(self):
        return procstate.settled_snapshot(self.pid, self.spec.ignore_fd_pos,
                                           threads_vary=self.spec.threads_vary)

    def expect_unharmed(self, before):
        """Still running as if nothing happened: alive, not stopped, not
        traced, and /proc shows the same state as the snapshot `before`."""
        st = procs.state(self.pid)
        assert st is not None and st not in ("Z", "X"), (
            f"the task died: {procs.describe(self.pid)}\n"
            f"{self.text(self.outfile)}{self.text(self.output)}")
        assert st not in ("t", "T"), f"the task was left stopped: {procs.describe(self.pid)}"
        tracer = procs.status_field(self.pid, "TracerPid")
        assert tracer == "0", f"the task was left traced by {tracer}"
        changes = procstate.settled_diff(self.pid, before, self.spec.ignore_fd_pos,
                                         threads_vary=self.spec.threads_vary)
        assert not changes, "the task's state changed:\n" + "\n".join(changes)

    def stop(self, timeout=EXIT_TIMEOUT):
        """SIGTERM, wait for the exit; returns the wait status (None if unknown)."""
        assert procs.alive(self.pid), (
            f"the task is gone before SIGTERM: {procs.describe(self.pid)}\n"
            f"{self.text(self.outfile)}{self.text(self.output)}")
        os.kill(self.pid, signal.SIGTERM)
        try:
            return self.procs.reap(self.pid, timeout)
        except TimeoutError:
            raise AssertionError(
                f"{self.spec.id} did not exit within {timeout} s of SIGTERM: "
                f"{procs.describe(self.pid)}\n{self.text(self.output)}")

    def check_pass(self, timeout=EXIT_TIMEOUT):
        """SIGTERM, then the program must say PASS and exit 0."""
        status = self.stop(timeout)
        result = self.outfile.read_text(errors="replace") if self.outfile.exists() else None
        assert result is not None, (
            f"{self.spec.id} exited ({procs.wait_status_str(status)}) without "
            f"writing its outfile\n{self.text(self.output)}")
        assert result.strip() == "PASS", (
            f"{self.spec.id}: {result.strip()}\n{self.text(self.output)}")
        assert status is None or (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0), (
            f"{self.spec.id} wrote PASS but ended with {procs.wait_status_str(status)}")
