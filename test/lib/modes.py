"""How each mode checkpoints and restores: the one place that knows.

A Mode runs `cycle(task, n)`: checkpoint the running zdtm task into
images-N, check it is gone, restore it, check it is back.  Tests call only
cycle() (and finish() once the task has exited), so a new mode is a new
subclass here plus its name in MODES; every zdtm test then runs in it.

    eager         dump; restore -d (every page is restored before the task runs)
    lazy          lazy-pages daemon on the images + restore --lazy-pages
    remote-lazy   page-server on the images + daemon --page-server + restore
    lazy-migrate  dump --lazy-pages serves the pages from the frozen task itself
                  + daemon --page-server + restore; the task runs as the init
                  of a pid namespace of its own (pid_ns)

A mode may declare a zdtm test meaningless in it (unsupported(spec)): the
test is then skipped with the mode's reason.
"""
import os
from pathlib import Path

from . import lazy, netlock
from .ports import free_port
from .tool import assert_ok

DUMP_TIMEOUT = 120
RESTORE_TIMEOUT = 120


def check_program_stats(spec, imgdir, daemon_text, ran_checks):
    """The daemon's statistics of one restore of spec; ran_checks: the
    program ran its checks (and its removals) under this daemon."""
    removed = spec.lazy_removed if ran_checks else 0
    exact = spec.lazy_removed_exact and spec.defer_background
    st = lazy.check_stats(imgdir, daemon_text, removed=removed, exact=exact)
    if ran_checks and spec.lazy_inherits and spec.defer_background:
        assert st["pages_inherited"] > 0, (
            f"{spec.id} forked while its pages were lazy, but the daemon counted no "
            f"inherited pages: {st}\n{daemon_text}")
    return st


class Mode:
    name = None
    pid_ns = False		# the task runs as the init of a pid namespace of its own

    def __init__(self, tool, tracker, workdir):
        self.tool = tool
        self.procs = tracker
        self.dir = Path(workdir)
        self.netlock = netlock.Guard(workdir)	# TCP locks a test leaves are removed

    @classmethod
    def unavailable(cls):
        """A reason this mode cannot run on this machine, or None."""
        return None

    def unsupported(self, spec):
        """A reason the zdtm test spec means nothing in this mode, or None."""
        return None

    def imgdir(self, n):
        d = self.dir / f"images-{n}"
        d.mkdir(exist_ok=True)
        return d

    def dump(self, task, imgdir, n):
        task.note_tree()
        res = self.tool.dump(task.pid, imgdir, self.dir / f"dump-{n}.log", DUMP_TIMEOUT,
                             extra=task.spec.cr_opts + task.spec.dump_opts)
        assert_ok(res, f"dump #{n} of {task.spec.id} (pid {task.pid})")
        return res

    def restore(self, task, imgdir, n):
        pidfile = self.dir / f"restore-{n}.pid"
        res = self.tool.restore(imgdir, self.dir / f"restore-{n}.log", RESTORE_TIMEOUT,
                                pidfile=pidfile, extra=task.spec.cr_opts)
        assert_ok(res, f"restore #{n} of {task.spec.id} (pid {task.pid})")
        return pidfile

    def cycle(self, task, n, between=None):
        """Checkpoint task (killing it) and restore it; n counts from 1.
        between(): what the test does while the task is dumped."""
        imgdir = self.imgdir(n)
        self.dump(task, imgdir, n)
        task.expect_gone()
        if between:
            between()
        pidfile = self.restore(task, imgdir, n)
        task.expect_restored(pidfile)
        task.note_mode(self.name)
        return imgdir

    def finish(self):
        """After the task has exited: anything the mode must still check."""

    def cleanup(self):
        """End whatever the mode started (the process tracker kills the rest).
        Returns what the test left that it should not have (network locks)."""
        return self.netlock.end()


class Eager(Mode):
    name = "eager"


class Lazy(Mode):
    """A lazy-pages daemon on the images, then restore --lazy-pages.

    Before a second dump every page of the first restore must have arrived
    (the daemon has exited): a task is dumped again only when whole.
    """
    name = "lazy"
    restore_args = ("--lazy-pages",)

    def __init__(self, tool, tracker, workdir):
        super().__init__(tool, tracker, workdir)
        self.daemons = []	# (imgdir, Daemon)
        self.task = None

    def start_daemon(self, task, imgdir, n):
        args = ["lazy-pages", "-D", imgdir]
        if task.spec.defer_background:
            args.append("--no-background-fetch")
        return lazy.Daemon(self.procs, self.tool, args, self.dir / f"lazy-pages-{n}.log",
                           self.dir / f"lazy-pages-{n}.out", f"lazy-pages #{n}")

    def restore(self, task, imgdir, n):
        pidfile = self.dir / f"restore-{n}.pid"
        res = self.tool.restore(imgdir, self.dir / f"restore-{n}.log", RESTORE_TIMEOUT,
                                pidfile=pidfile, extra=self.restore_args + task.spec.cr_opts)
        assert_ok(res, f"restore #{n} of {task.spec.id} (pid {task.pid})")
        return pidfile

    def wait_daemons(self, final=False):
        """final: the task has run its checks under the last daemon."""
        for i, (imgdir, daemon) in enumerate(self.daemons):
            daemon.expect_clean_exit()
            check_program_stats(self.task.spec, imgdir, daemon.text(),
                                final and i == len(self.daemons) - 1)
        self.daemons = []

    def cycle(self, task, n, between=None):
        self.task = task
        if n > 1 and not task.spec.defer_background:
            self.wait_daemons()
        imgdir = self.imgdir(n)
        self.dump(task, imgdir, n)
        task.expect_gone()
        if between:
            between()
        self.prepare_source(task, imgdir, n)
        self.daemons.append((imgdir, self.start_daemon(task, imgdir, n)))
        pidfile = self.restore(task, imgdir, n)
        task.expect_restored(pidfile)
        task.note_mode(self.name)
        if task.spec.defer_background:
            task.expect_lazy_faults()
        return imgdir

    def prepare_source(self, task, imgdir, n):
        """Where the daemon's pages come from: the images themselves."""

    def finish(self):
        self.wait_daemons(final=True)


class RemoteLazy(Lazy):
    """The pages stay with a page server; the daemon fetches them over TCP
    (loopback here; the two-host test uses network namespaces)."""
    name = "remote-lazy"

    def __init__(self, tool, tracker, workdir):
        super().__init__(tool, tracker, workdir)
        self.servers = []

    def prepare_source(self, task, imgdir, n):
        self.port = free_port()
        self.servers.append(lazy.Daemon(
            self.procs, self.tool,
            ["page-server", "-D", imgdir, "--address", "127.0.0.1", "--port", self.port,
             "--lazy-pages"],
            self.dir / f"page-server-{n}.log", self.dir / f"page-server-{n}.out",
            f"page-server #{n}"))

    def start_daemon(self, task, imgdir, n):
        args = ["lazy-pages", "-D", imgdir, "--page-server", "--address", "127.0.0.1",
                "--port", self.port]
        if task.spec.defer_background:
            args.append("--no-background-fetch")
        return lazy.Daemon(self.procs, self.tool, args, self.dir / f"lazy-pages-{n}.log",
                           self.dir / f"lazy-pages-{n}.out", f"lazy-pages #{n}")

    def wait_daemons(self, final=False):
        super().wait_daemons(final)
        for server in self.servers:
            server.expect_clean_exit()
        self.servers = []


class LazyMigrate(Mode):
    """Lazy migration from the live task: `dump --lazy-pages` writes every
    image but the lazy pages, keeps the task frozen and serves those pages
    from its memory to a lazy-pages daemon --page-server; the restore runs
    at once; the dump kills the task when the daemon has taken every page.

    On one machine the source still holds its pid while its copy runs, so
    the task runs as the init of a pid namespace of its own and its copy is
    restored as the init of a new one (CRIU's zdtm does the same).

    A transfer is over when the daemon has exited 0 (every lazy page
    delivered or dropped), the dump has exited 0 saying nothing, and the
    source is gone, killed.  That is waited for at the end of the cycle, or
    in finish() for the tests that defer background delivery (their copy
    takes its last pages when it runs its checks).
    """
    name = "lazy-migrate"
    pid_ns = True

    def __init__(self, tool, tracker, workdir, hosts=None, own_devpts=False):
        """hosts: a lib.hosts.TwoHosts: the dump (and its page server) in
        hosts.src, the daemon and the restore in hosts.dst, the pages over
        their link; the task must run in hosts.src.  own_devpts: the
        restore with a devpts instance of its own there (new pty numbers)."""
        super().__init__(tool, tracker, workdir)
        self.transfers = []	# (imgdir, dump, daemon, source pid)
        self.task = None
        self.hosts = hosts
        self.own_devpts = bool(hosts) and own_devpts
        self.src_tool = hosts.src.tool() if hosts else tool
        self.dst_tool = hosts.dst.tool(own_devpts=own_devpts) if hosts else tool
        # with hosts: prepare_destination(imgdir) -> the Tool that restores
        # there (files of its own, ...), or None for dst_tool
        self.prepare_destination = None
        self.own_files = False	# the test gives the destination its files
        self.address = hosts.src.addr if hosts else "127.0.0.1"

    @classmethod
    def unavailable(cls):
        if not os.path.exists("/proc/self/ns/pid"):
            return "this kernel has no pid namespaces"
        return None

    def unsupported(self, spec):
        if spec.host_names and not self.hosts:
            return ("its copy cannot bind the abstract unix names or ports the dumped "
                    "task holds until the migration ends (one host, one network namespace; "
                    "test_two_hosts.py::test_migrate_zdtm runs it between two)")
        # two network namespaces still share the file system and devpts
        if spec.host_locks and not self.own_files:
            return ("its copy cannot take the write locks the dumped task holds until the "
                    "migration ends (one file system; test_two_hosts.py::test_migrate_zdtm "
                    "gives the destination its own copies); file_locks-read-only runs here")
        if spec.host_ptys and not self.own_devpts:
            return ("its copy cannot have the pty numbers the dumped task holds until the "
                    "migration ends (one devpts; test_two_hosts.py::test_migrate_zdtm "
                    "gives the destination a devpts of its own)")
        return None

    def cycle(self, task, n, between=None):
        assert between is None, "a lazy migration has no time between dump and restore"
        self.task = task
        imgdir = self.imgdir(n)
        port = free_port()
        source = task.pid
        dump = lazy.Daemon(
            self.procs, self.src_tool,
            ["dump", "-t", source, "-D", imgdir, "--lazy-pages", "--address", self.address,
             "--port", port, *task.spec.cr_opts, *task.spec.dump_opts],
            self.dir / f"dump-{n}.log", self.dir / f"dump-{n}.out", f"dump #{n}",
            ready_timeout=DUMP_TIMEOUT)	# ready = every image written, as a plain dump
        if self.hosts:
            # what the orchestrator of a migration does: the connections
            # locked in the destination too, under the dump's names
            netlock.lock_like_dump(self.hosts.dst.enter(), imgdir)
        args = ["lazy-pages", "-D", imgdir, "--page-server", "--address", self.address,
                "--port", port]
        if task.spec.defer_background:
            args.append("--no-background-fetch")
        daemon = lazy.Daemon(self.procs, self.dst_tool, args, self.dir / f"lazy-pages-{n}.log",
                             self.dir / f"lazy-pages-{n}.out", f"lazy-pages #{n}")
        pidfile = self.dir / f"restore-{n}.pid"
        rst_tool = (self.prepare_destination and self.prepare_destination(imgdir)) or \
            self.dst_tool
        res = rst_tool.restore(imgdir, self.dir / f"restore-{n}.log", RESTORE_TIMEOUT,
                               pidfile=pidfile, extra=("--lazy-pages", *task.spec.cr_opts))
        assert_ok(res, f"restore #{n} of {task.spec.id} (dumped as pid {source})")
        task.expect_restored(pidfile)
        task.note_mode(self.name)
        if task.spec.defer_background:
            task.expect_lazy_faults()
        self.transfers.append((imgdir, dump, daemon, source))
        if not task.spec.defer_background:
            self.wait_transfers(copy_ran=False)
        return imgdir

    def wait_transfers(self, copy_ran):
        for i, (imgdir, dump, daemon, source) in enumerate(self.transfers):
            daemon.expect_clean_exit()
            check_program_stats(self.task.spec, imgdir, daemon.text(),
                                copy_ran and i == len(self.transfers) - 1)
            dump.expect_clean_exit()
            said = dump.out.read_text(errors="replace") if dump.out.exists() else ""
            assert not said.strip(), f"{dump.what} succeeded but said:\n{said}"
            self.task.expect_gone(pid=source, copy_ran=copy_ran)
        self.transfers = []

    def finish(self):
        self.wait_transfers(copy_ran=True)


MODES = {m.name: m for m in (Eager, Lazy, RemoteLazy, LazyMigrate)}


def cycle_once(which, zdtm, spec, tool, tracker, workdir):
    """Start spec, checkpoint and restore it once in the mode which (its
    name, or a Mode class), and let it pass; the images directory (images-1)."""
    mode = (MODES[which] if isinstance(which, str) else which)(tool, tracker, workdir)
    try:
        task = zdtm(spec)
        imgdir = mode.cycle(task, 1)
        task.check_pass()
        mode.finish()
    finally:
        mode.cleanup()
    return imgdir
