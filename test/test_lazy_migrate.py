"""Lazy migration from the live task (`dump --lazy-pages`), beyond the zdtm
suite's lazy-migrate mode: what the images hold, and what happens to the
source task when the transfer does not complete.

The workload runs as the init of a pid namespace of its own, so that its
copy can be restored (as pid 1 of a new one) while it still holds its pid.
The dump serves the lazy pages from the frozen task on loopback; the
lazy-pages daemon (--no-background-fetch where a transfer must stay
unfinished) feeds the copy.  Every process is ended by its pid; every wait
has a timeout.
"""
import os
import re
import signal
import socket

import pytest

from lib import images, lazy, paths, procs as P
from lib.ports import free_port
from lib.pageserver import GET_REPLY_CMD, PAGE, Client
from lib.selfcheck import expect_fail
from lib.tool import assert_error_line
from lib.zdtm import PIDNS_LAUNCHER, ZdtmTest, ns_tree

ADDR = "127.0.0.1"
TIMEOUT = 60
WORKLOAD = ZdtmTest("mem_anon", ("--size", "64M"), label="64M")
# a reply the dump reads from the frozen task is 4 MiB at the most
# (READ_MAX_PAGES, pageserver/ps-conn.c): a longer GET is answered short
READ_MAX_PAGES = 1024


class Migration:
    """One dump --lazy-pages of task, its daemon and its restore."""

    def __init__(self, tool, procs, workdir, task, *dump_args):
        self.tool, self.procs, self.dir, self.task = tool, procs, workdir, task
        self.imgdir = workdir / "images"
        self.imgdir.mkdir()
        self.port = free_port()
        self.source = task.pid
        self.dump = lazy.Daemon(
            procs, tool, ["dump", "-t", task.pid, "-D", self.imgdir, "--lazy-pages",
                          "--address", ADDR, "--port", self.port, *dump_args],
            workdir / "dump.log", workdir / "dump.out", "dump")
        self.daemon = None
        self.copy = None

    def start_daemon(self, *extra):
        self.daemon = lazy.Daemon(
            self.procs, self.tool, ["lazy-pages", "-D", self.imgdir, "--page-server",
                                    "--address", ADDR, "--port", self.port, *extra],
            self.dir / "lazy-pages.log", self.dir / "lazy-pages.out", "lazy-pages")

    def restore(self):
        pidfile = self.dir / "restore.pid"
        res = self.tool.restore(self.imgdir, self.dir / "restore.log", TIMEOUT,
                                pidfile=pidfile, extra=["--lazy-pages"])
        assert res.rc == 0, f"restore --lazy-pages failed:\n{res.describe()}"
        self.task.expect_restored(pidfile)
        self.copy = self.task.pid

    def run(self, quiet=True):
        """The whole migration: the daemon, the restore, and both exit 0
        (the dump without a word, if quiet)."""
        self.start_daemon()
        self.restore()
        self.daemon.expect_clean_exit()
        self.dump.expect_clean_exit()
        if quiet:
            assert not self.dump_output().strip(), self.dump_output()

    def dump_output(self):
        return self.dump.out.read_text(errors="replace") if self.dump.out.exists() else ""

    def dump_error_line(self, *patterns):
        """The dump failed (exit 1) with exactly one line, matching patterns."""
        rc = self.dump.wait_exit(TIMEOUT)
        lines = [l for l in self.dump_output().splitlines() if l.strip()]
        assert rc == 1 and len(lines) == 1, (
            f"the dump should fail with one error line: exit {rc}\n{self.dump.text()}")
        assert lines[0].startswith("dump: "), lines[0]
        for pat in patterns:
            assert re.search(pat, lines[0]), f"{pat!r} not in the error line:\n{lines[0]}"
        return lines[0]

    def back_to_source(self):
        """Kill the copy (it never wrote the outfile) and follow the source."""
        if self.copy:
            self.procs.kill(self.copy)
        self.task.pid = self.source


def untraced_state(pid):
    assert P.status_field(pid, "TracerPid") == "0", f"still traced: {P.describe(pid)}"
    return P.state(pid)


def lazy_runs(imgdir):
    """The PE_LAZY runs of the pagemap, merged: [(vaddr, nr_pages)]."""
    runs = []
    (pagemap,) = [p for p in imgdir.glob("pagemap-*.img") if "shmem" not in p.name]
    for vaddr, nr, flags in images.pagemap_entries(pagemap)[1]:
        if not flags & images.PE_LAZY:
            continue
        if runs and runs[-1][0] + runs[-1][1] * PAGE == vaddr:
            runs[-1] = (runs[-1][0], runs[-1][1] + nr)
        else:
            runs.append((vaddr, nr))
    return runs


def read_mem(pid, vaddr, nr):
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as f:
        f.seek(vaddr)
        return f.read(nr * PAGE)


@pytest.fixture
def task(zdtm):
    return zdtm(WORKLOAD, pid_ns=True)


def test_migration_images_and_end(tool, procs, workdir, task):
    """Success: the images hold the in-namespace pids and no lazy data, the
    copy gets every page, the dump exits 0 silently and kills the source."""
    m = Migration(tool, procs, workdir, task)
    m.run()
    task.expect_gone(pid=m.source)

    show = lambda name: tool.run(["show", m.imgdir / name], TIMEOUT).stdout
    assert re.search(r'"pid": 1,', show("pstree.img")), show("pstree.img")
    root_ns = re.search(r'"root_ids": \{[^}]*"pid_ns_id": (\d+)', show("inventory.img"), re.S)
    task_ns = re.search(r'"pid_ns_id": (\d+)', show("ids-1.img"))
    assert root_ns and task_ns and root_ns.group(1) != task_ns.group(1), (
        "ids-1.img must name a pid namespace other than inventory.root_ids'")

    pages_id, entries = images.pagemap_entries(m.imgdir / "pagemap-1.img")
    lazy_pages = sum(nr for _, nr, fl in entries if fl & images.PE_LAZY)
    present = sum(nr for _, nr, fl in entries if fl & images.PE_PRESENT)
    assert all(fl in (images.PE_LAZY, images.PE_PRESENT) for _, _, fl in entries), (
        f"a migration writes 0x2 (lazy, no data) or 0x4 entries: {entries[:8]}")
    assert lazy_pages > 8192, f"only {lazy_pages} lazy pages for 64 MiB"
    assert (m.imgdir / f"pages-{pages_id}.img").stat().st_size == present * 4096, (
        "the pages file must hold the present pages only")
    stats = show("stats-dump")
    assert re.search(rf'"pages_lazy": {lazy_pages}\b', stats), stats
    lazy.check_stats(m.imgdir, m.daemon.text())
    task.check_pass()


def test_leave_stopped_after_migration(tool, procs, workdir, task):
    """-s: every page taken, the dump exits 0 and leaves the source stopped."""
    m = Migration(tool, procs, workdir, task, "--leave-stopped")
    m.run(quiet=False)
    assert untraced_state(m.source) == "T", P.describe(m.source)
    task.check_pass()
    procs.kill(m.source)


@pytest.mark.parametrize("flags,fate,state", [
    ((), r"left stopped, since its copy may have run.*kill -CONT", "T"),
    (("--leave-stopped",), r"left stopped", "T"),
    (("--leave-running",), r"resumed", None),
], ids=["default", "leave-stopped", "leave-running"])
def test_destination_killed_mid_transfer(tool, procs, workdir, task, flags, fate, state):
    """The daemon dies with pages still at the source: the dump says so in
    one line, exits 1, and the source is not lost -- left stopped (its copy
    may have run) unless -R, and whole: resumed, it passes its checks."""
    m = Migration(tool, procs, workdir, task, *flags)
    m.start_daemon("--no-background-fetch")
    m.restore()
    procs.kill(m.daemon.pid)
    m.dump_error_line(rf"the destination {re.escape(ADDR)}:\d+ (closed|reset) the connection "
                      r"without CLOSE", r"\d+ of \d+ lazy pages served",
                      rf"task {m.source} \(pid 1 in its pid namespace\)", fate)
    st = untraced_state(m.source)
    if state:
        assert st == state, P.describe(m.source)
    else:
        assert st in ("R", "S"), P.describe(m.source)
    assert not (m.imgdir / "pagemap-1.img").exists(), "a failed dump leaves no images"
    m.back_to_source()
    if state == "T":
        os.kill(m.source, signal.SIGCONT)
    task.check_pass()


def test_signal_before_the_destination_came(tool, procs, workdir, task):
    """SIGTERM while nobody has connected: no copy can have run, so the
    source is resumed as after any failed dump, unharmed."""
    before = task.snapshot()
    m = Migration(tool, procs, workdir, task)
    os.kill(m.dump.pid, signal.SIGTERM)
    m.dump_error_line(r"stopped by signal 15", r"0 of \d+ lazy pages served",
                      rf"task {m.source} \(pid 1 in its pid namespace\) resumed$")
    task.expect_unharmed(before)
    task.check_pass()


def test_backlog_read_then_no_destination(tool, procs, workdir, zdtm):
    """dump --lazy-pages of a listener with data waiting in connections not
    yet accepted: the images must hold that data before any destination
    can restore them, so the dump accepts them before it is ready.  Stopped
    by a signal before a destination came, it resumes the tree without
    them (they cannot be put back): its one line is the cause and what is
    lost, and the program's own accept then finds them gone."""
    task = zdtm(ZdtmTest("unix_backlog"))
    m = Migration(tool, procs, workdir, task)
    os.kill(m.dump.pid, signal.SIGTERM)
    m.dump_error_line(r"stopped by signal 15", r"cannot be put back", r"lost",
                      r"the listening unix socket at fd 20 of task \d+: 4 ")
    assert untraced_state(task.pid) in ("S", "R"), P.describe(task.pid)
    expect_fail(task, r"connection 1 \(fd 21\): nothing to accept on fd 20")


def test_needs_a_port(tool, workdir, task):
    before = task.snapshot()
    res = tool.dump(task.pid, workdir, workdir / "dump.log", TIMEOUT, extra=["--lazy-pages"])
    assert_error_line(res, "dump", r"--port")
    task.expect_unharmed(before)
    task.check_pass()


def test_port_in_use(tool, workdir, task):
    """The port is taken before the task is touched: it never even stops."""
    before = task.snapshot()
    with socket.socket() as s:
        s.bind((ADDR, 0))
        s.listen(1)
        port = s.getsockname()[1]
        res = tool.dump(task.pid, workdir, workdir / "dump.log", TIMEOUT,
                        extra=["--lazy-pages", "--address", ADDR, "--port", port])
    assert_error_line(res, "dump", str(port), r"in use")
    assert not list(workdir.glob("*.img")), "a refused dump wrote images"
    task.expect_unharmed(before)
    task.check_pass()


@pytest.mark.parametrize("pid_ns", [True, False], ids=["pidns-init", "our-pidns"])
def test_one_connection_as_criu(tool, procs, workdir, zdtm, pid_ns):
    """CRIU's daemon speaks on one connection: a GET (dst_id: the pid of
    the images) is clamped at the end of its lazy run and brings the frozen
    task's memory; CLOSE is answered with 0; then the dump exits 0 and
    kills the task.  Also for a task in our pid namespace (a migration to
    another host), whose images keep its pid."""
    task = zdtm(WORKLOAD, pid_ns=pid_ns)
    m = Migration(tool, procs, workdir, task)
    runs = lazy_runs(m.imgdir)
    vaddr, nr = max(runs, key=lambda r: r[1])
    if nr > READ_MAX_PAGES:		# the run's last pages: its end within one reply
        vaddr, nr = vaddr + (nr - READ_MAX_PAGES) * PAGE, READ_MAX_PAGES
    me = task.ns_pid
    assert (m.imgdir / f"pagemap-{me}.img").exists()
    c = Client(m.port)
    c.get(me, vaddr, nr + 8)
    c.get(me, vaddr + PAGE, 1)
    cmd, got, rvaddr, dst, data = c.reply()
    assert (cmd, got, rvaddr, dst) == (GET_REPLY_CMD, nr, vaddr, me)
    assert data == read_mem(m.source, vaddr, nr), "the pages are not the task's"
    cmd, got, rvaddr, dst, data = c.reply()
    assert (got, rvaddr, dst) == (1, vaddr + PAGE, me)
    assert c.close_session() == 0
    c.close()
    m.dump.expect_clean_exit()
    assert not m.dump_output().strip(), m.dump_output()
    task.expect_gone(pid=m.source)


def test_bad_request_fails_the_migration(tool, procs, workdir, task):
    """A GET where the task has no lazy page ends that session, and with it
    the migration: one line, and the task is left stopped, whole."""
    m = Migration(tool, procs, workdir, task)
    c = Client(m.port)
    c.get(1, PAGE, 1)
    assert c.dropped(), "the dump did not drop the session of a bad GET"
    c.close()
    m.dump_error_line(r"GET for task 1 at 0x1000, where it has no lazy page",
                      r"its session was dropped", rf"task {m.source} .* left stopped")
    assert untraced_state(m.source) == "T", P.describe(m.source)
    os.kill(m.source, signal.SIGCONT)
    task.check_pass()


def test_refuses_a_pid_ns_task_that_is_not_its_init(tool, procs, workdir):
    """Only the init of a pid namespace can be dumped from outside it: a
    task that is pid 2 there is refused, one line, and left running."""
    prog = WORKLOAD.binary()
    pidfile, realpid = workdir / "prog.pid", workdir / "sh.realpid"
    launcher = procs.spawn([paths.zdtm_binary(PIDNS_LAUNCHER), realpid, "/bin/sh", "-c",
                            f"{prog} --pidfile {pidfile} --outfile {workdir}/o --size 1M & wait"],
                           cwd=workdir, stdout=workdir / "sh.output")
    assert procs.reap(launcher.pid, TIMEOUT) == 0
    init = int(realpid.read_text())
    procs.adopt(init)
    assert P.wait_for(pidfile.exists, TIMEOUT), "the program never got ready"
    assert pidfile.read_text().strip() == "2"
    (pid,) = [int(x) for x in open(f"/proc/{init}/task/{init}/children").read().split()]
    res = tool.dump(pid, workdir, workdir / "dump.log", TIMEOUT)
    assert_error_line(res, "dump", rf"task {pid} is pid 2 in a pid namespace of its own",
                      r"only the init")
    assert untraced_state(pid) in ("R", "S"), P.describe(pid)
    procs.kill(init)


TREE = ZdtmTest("tree", ("--children", "2", "--zombie", "--session"), label="migrate", tree=True)


def test_tree_migration(tool, procs, workdir, zdtm):
    """A tree rooted at a pid namespace init: every process's lazy pages are
    served from the frozen tree, the copy is the same tree with the same
    pids in its new namespace, and the dump kills the whole source tree."""
    task = zdtm(TREE, pid_ns=True)
    before = ns_tree(task.pid)
    assert len(before) == 7, f"the tree should have 7 processes: {before}"
    task.note_tree()
    m = Migration(tool, procs, workdir, task)
    lazy_by_pid = {int(p.name[8:-4]): sum(nr for _, nr, fl in images.pagemap_entries(p)[1]
                                          if fl & images.PE_LAZY)
                   for p in m.imgdir.glob("pagemap-*.img") if "shmem" not in p.name}
    assert sorted(lazy_by_pid) == sorted(k for k, (_, st) in before.items() if st != "Z"), (
        f"pagemaps of {sorted(lazy_by_pid)}, tree {before}")
    assert all(n > 0 for n in lazy_by_pid.values()), f"a process has no lazy page: {lazy_by_pid}"
    m.run()
    task.expect_gone(pid=m.source)
    after = ns_tree(task.pid)
    assert after == before, f"the copy's tree {after} is not the source's {before}"
    st = lazy.check_stats(m.imgdir, m.daemon.text())
    assert st["pages_lazy"] == sum(lazy_by_pid.values())
    task.check_pass()


@pytest.mark.parametrize("flags,fate,state", [
    ((), r"left stopped, since its copy may have run: resume each", "T"),
    (("--leave-running",), r"resumed", None),
], ids=["default", "leave-running"])
def test_tree_destination_killed(tool, procs, workdir, zdtm, flags, fate, state):
    """The daemon dies with pages of the tree still at the source: one line
    naming the tree, and every task of it left stopped (or resumed with -R),
    whole: resumed, the tree passes its checks."""
    task = zdtm(ZdtmTest("tree", ("--children", "3"), label="migrate-kill", tree=True),
                pid_ns=True)
    kids = P.descendants(task.pid)
    m = Migration(tool, procs, workdir, task, *flags)
    m.start_daemon("--no-background-fetch")
    m.restore()
    procs.kill(m.daemon.pid)
    m.dump_error_line(r"\d+ of \d+ lazy pages served",
                      rf"task {m.source} \(pid 1 in its pid namespace\) with the 3 other "
                      r"task\(s\) of its tree", fate)
    for pid in [m.source, *kids]:
        st = untraced_state(pid)
        if state:
            assert st == state, P.describe(pid)
        else:
            assert st in ("R", "S"), P.describe(pid)
    m.back_to_source()
    if state == "T":
        for pid in [m.source, *kids]:
            os.kill(pid, signal.SIGCONT)
    task.check_pass()
