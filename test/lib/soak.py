"""The soak test of lazy restore (issue 12, point 5): Documentation/soak.md.

Rounds, until the time is up: every round checkpoints a set of workloads
(lanes), restores all of them lazily at once, each with a daemon of its
own (half from the images, half through a page server), lets them run
their stress on pages still lazy, and judges each lane's outcome.  Page
servers are killed meanwhile: most come back on the same port (the daemon
reconnects), some never do.

Every lane ends in one outcome, defined in Documentation/soak.md; anything
else fails the soak:
  ok       the program says PASS, its daemon exits 0, its statistics add up
           with pages_lost 0 and pages_dropped_event within what the
           program removed, its page server (if any) exits 0
  gone-sigbus    (only where the server was killed for good) the daemon
           exits 1 with the line naming the page server and the pages left,
           writes no statistics, and the program dies of SIGBUS (a poisoned
           page): never wrong data, never a FAIL, never a hang
  gone-unneeded  the same daemon failure, but the program PASSes: it had
           every page it touched (the rest was poisoned and never read)
"""
import json
import os
import random
import re
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import lazy, procs as procs_mod
from .ports import free_port
from .tlscerts import Certs
from .tool import assert_ok
from .zdtm import ZdtmTask, ZdtmTest

SECONDS_ENV = "CRIU_LAZY_SOAK_SECONDS"
DEFAULT_SECONDS = 150
DUMP_TIMEOUT = 120
RESTORE_TIMEOUT = 120
EXIT_TIMEOUT = 120		# SIGTERM -> the program's verdict, stress included
RECONNECT_S = 30		# the daemons' --page-server-reconnect
GONE_RECONNECT_S = 2		# ... in a lane whose server never comes back
CHURN_S = 3			# lazy_churn's --seconds

# (spec, its pages_dropped_event bound parsed from its output, or None)
WORKLOADS = [
    ZdtmTest("lazy_churn", ("--pages", "8192", "--threads", "12", "--seconds", str(CHURN_S)),
             label="faults", tree=True, defer_background=True, lazy_removed=8192,
             lazy_removed_exact=False),
    ZdtmTest("tree_lazy_stress", label="faults", tree=True, defer_background=True,
             lazy_removed=32 * 2048, lazy_removed_exact=False),
    ZdtmTest("lazy_churn", ("--pages", "4096", "--threads", "8", "--seconds", str(CHURN_S)),
             label="background", tree=True, lazy_removed=4096, lazy_removed_exact=False),
    ZdtmTest("threads_lazy_stress", label="faults", defer_background=True,
             lazy_removed=16 * 2048, lazy_removed_exact=False),
]
SAMPLE_S = 0.25		# how often the load is counted while the programs run


def soak_seconds():
    v = os.environ.get(SECONDS_ENV, "")
    return int(v) if v.strip() else DEFAULT_SECONDS


@dataclass
class Lane:
    spec: ZdtmTest
    dir: Path
    remote: bool
    kill: str = ""		# "", "restart" or "gone"
    tls: bool = False		# the page-server connections over --tls
    task: ZdtmTask = None
    imgdir: Path = None
    port: int = 0
    server: lazy.Daemon = None
    daemon: lazy.Daemon = None
    kills: int = 0
    events: list = field(default_factory=list)
    outcome: str = ""
    stats: dict = None


def child_poisoned(status, result):
    """lazy_churn's own outcome of a poisoned page in one of the children
    it forks to check a chunk: the child dies of SIGBUS (or SIGSEGV), and
    the program exits 1 naming its wait status ('child N checking chunk C:
    status 0x7'); nothing read wrong, a process of the tree killed by it."""
    m = re.fullmatch(r"FAIL: thread \d+: child \d+ checking chunk \d+: status (0x[0-9a-f]+|0)",
                     result)
    if not m or status is None or not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 1:
        return False
    child = int(m.group(1), 16)
    return os.WIFSIGNALED(child) and os.WTERMSIG(child) in (signal.SIGBUS, signal.SIGSEGV)


class Soak:
    def __init__(self, tool, tracker, workdir, seconds, seed=None, kills=True):
        self.kills = kills
        self.tool = tool
        self.procs = tracker
        self.dir = Path(workdir)
        self.seconds = seconds
        self.rng = random.Random(seed if seed is not None else time.time_ns())
        self.lanes_done = []
        self.rounds = 0
        self.churn_ops = self.forks = 0
        self.peak_procs = self.peak_threads = 0
        self.certs = None	# made for the first TLS lane
        self.t0 = time.monotonic()

    # ---------------------------------------------------------------- a lane

    def start_lane(self, lane):
        lane.dir.mkdir(parents=True)
        lane.task = ZdtmTask(lane.spec, lane.dir, self.procs).start()
        lane.imgdir = lane.dir / "images"
        lane.imgdir.mkdir()
        lane.task.note_tree()
        res = self.tool.dump(lane.task.pid, lane.imgdir, lane.dir / "dump.log", DUMP_TIMEOUT,
                             verbosity=2)
        assert_ok(res, f"dump of {lane.spec.id} (pid {lane.task.pid})")
        lane.task.expect_gone()
        args = ["lazy-pages", "-D", lane.imgdir]
        if lane.remote:
            lane.port = free_port()
            self.start_server(lane)
            args += ["--page-server", "--address", "127.0.0.1", "--port", lane.port,
                     *self.tls_args(lane, "client")]
            if self.kills:
                window = GONE_RECONNECT_S if lane.kill == "gone" else RECONNECT_S
                args += ["--page-server-reconnect", window]
        if lane.spec.defer_background:
            args.append("--no-background-fetch")
        lane.daemon = lazy.Daemon(self.procs, self.tool, args, lane.dir / "lazy-pages.log",
                                  lane.dir / "lazy-pages.out", f"lazy-pages of {lane.dir.name}")

    def start_server(self, lane):
        n = lane.kills
        lane.server = lazy.Daemon(
            self.procs, self.tool,
            ["page-server", "-D", lane.imgdir, "--address", "127.0.0.1", "--port", lane.port,
             "--lazy-pages", *self.tls_args(lane, "server")],
            lane.dir / f"page-server-{n}.log", lane.dir / f"page-server-{n}.out",
            f"page server #{n} of {lane.dir.name}")

    def tls_args(self, lane, who):
        if not lane.tls:
            return []
        if self.certs is None:
            self.certs = Certs(self.dir / "pki")
        return self.certs.args(who)

    def restore_lane(self, lane):
        pidfile = lane.dir / "restore.pid"
        res = self.tool.restore(lane.imgdir, lane.dir / "restore.log", RESTORE_TIMEOUT,
                                pidfile=pidfile, extra=("--lazy-pages",), verbosity=2)
        assert_ok(res, f"lazy restore of {lane.spec.id} (pid {lane.task.pid})"
                       f"{self.pid_holder(res.stderr)}")
        lane.task.expect_restored(pidfile)
        if lane.spec.defer_background:
            lane.task.expect_lazy_faults()

    @staticmethod
    def pid_holder(stderr):
        """For 'pid N is already in use': who holds N (a rare failure of
        the soak whose cause is not known yet: the holder tells)."""
        m = re.search(r"(?:thread id|pid) (\d+) is already in use", stderr)
        if not m:
            return ""
        tid = m.group(1)
        try:
            status = Path(f"/proc/{tid}/status").read_text()
        except OSError as e:
            return f"\n(pid {tid} is free now: {e})"
        keep = ("Name", "State", "Tgid", "PPid", "NSpid")
        lines = [l for l in status.splitlines() if l.split(":")[0] in keep]
        return f"\n(pid {tid} is held by: {'; '.join(lines)})"

    def killer(self, lane, errors):
        """Kill the lane's page server once its task is at work; bring it
        back on the same port (restart) or not (gone)."""
        try:
            time.sleep(self.rng.uniform(0.05, 1.5))
            if not procs_mod.alive(lane.server.pid):
                lane.events.append("server done before the kill")
                return
            self.procs.kill(lane.server.pid)
            lane.kills += 1
            lane.events.append(f"server killed at {time.monotonic() - self.t0:.1f} s")
            if lane.kill == "gone":
                lane.server = None
                return
            time.sleep(self.rng.uniform(0.1, 2.0))
            self.start_server(lane)
            lane.events.append("server restarted")
        except Exception as e:		# noqa: BLE001 (reported by the main thread)
            errors.append(f"{lane.dir.name}: killer: {e!r}")

    def judge(self, lane):
        status = self.wait_task(lane)
        result = (lane.task.outfile.read_text(errors="replace").strip()
                  if lane.task.outfile.exists() else "")
        rc = lane.daemon.wait_exit(lazy.EXIT_TIMEOUT)
        what = f"{lane.dir.name} ({', '.join(lane.events) or 'no kill'})"
        passed = (status is not None and os.WIFEXITED(status) and
                  os.WEXITSTATUS(status) == 0 and result == "PASS")
        poisoned = (status is not None and os.WIFSIGNALED(status) and
                    os.WTERMSIG(status) in (signal.SIGBUS, signal.SIGSEGV)) or \
            child_poisoned(status, result)
        if lane.kill != "gone" or rc == 0:
            assert passed, (
                f"{what}: the program ended with {procs_mod.wait_status_str(status)}, "
                f"outfile {result!r}, daemon exit {rc}\n{lane.task.text(lane.task.output)}"
                f"{lane.daemon.text()}")
            assert rc == 0, (f"{what}: the program passed but its daemon exited {rc}\n"
                             f"{lane.daemon.text()}")
            lane.stats = lazy.check_stats(lane.imgdir, lane.daemon.text(),
                                          removed=self.removed_bound(lane), exact=False)
            if lane.server is not None:
                self.wait_server(lane)
            lane.outcome = "ok"
            self.count_churn(lane)
            shutil.rmtree(lane.imgdir, ignore_errors=True)	# a long soak fills no disk
            return
        # the server is gone for good: the daemon failed, saying so
        assert passed or poisoned, (
            f"{what}: a program whose page server is gone must PASS (it had every page it "
            f"touched) or die of SIGBUS (a poisoned page), it ended with "
            f"{procs_mod.wait_status_str(status)}, outfile {result!r}\n"
            f"{lane.task.text(lane.task.output)}{lane.daemon.text()}")
        assert rc == 1, f"{what}: its daemon exited {rc}, expected 1\n{lane.daemon.text()}"
        out = lane.daemon.out.read_text(errors="replace")
        assert re.search(rf"lazy-pages: page server 127\.0\.0\.1:{lane.port}:? .*\d+ pages",
                         out), f"{what}: no error line naming the page server:\n{out}"
        assert not (lane.imgdir / "lazy-pages-stats.json").exists(), what
        lane.outcome = "gone-unneeded" if passed else "gone-sigbus"

    def wait_task(self, lane):
        try:
            status = self.procs.reap(lane.task.pid, EXIT_TIMEOUT)
        except TimeoutError:
            raise AssertionError(f"{lane.dir.name}: {lane.spec.id} did not end within "
                                 f"{EXIT_TIMEOUT} s of SIGTERM: "
                                 f"{procs_mod.describe(lane.task.pid)}\n"
                                 f"{lane.task.text(lane.task.output)}{lane.daemon.text()}")
        self.reap_orphans(lane)
        return status

    def reap_orphans(self, lane):
        """Children a program left when it died (a poisoned page killed it
        while it waited for them) are reparented to us: each must end too."""
        for pid in procs_mod.children_of_me():
            st = procs_mod.read_stat(pid)
            if not st or int(st[6]) != lane.task.pid:	# not of the program's session
                continue
            self.procs.adopt(pid)
            try:
                self.procs.reap(pid, EXIT_TIMEOUT)
            except TimeoutError:
                raise AssertionError(f"{lane.dir.name}: a child its program left does not "
                                     f"end: {procs_mod.describe(pid)}")

    def wait_server(self, lane):
        """A server the daemon closed its sessions with exits 0; a restarted
        one the daemon never needed (it had every page) is ended here."""
        reconnected = "reconnected to page server" in lane.daemon.log.read_text(errors="replace")
        if lane.kills and not reconnected:
            self.procs.kill(lane.server.pid)
            return
        lane.server.expect_clean_exit(30)

    def count_churn(self, lane):
        out = lane.task.output.read_text(errors="replace")
        m = re.search(r"churn: (\d+) ops .*, (\d+) forks", out)
        if m:
            self.churn_ops += int(m.group(1))
            self.forks += int(m.group(2))

    def removed_bound(self, lane):
        out = lane.task.output.read_text(errors="replace")
        m = re.search(r"churn: .* (\d+) pages removed", out)
        return int(m.group(1)) if m else lane.spec.lazy_removed

    # ---------------------------------------------------------------- rounds

    def plan(self):
        lanes = []
        for i, spec in enumerate(WORKLOADS):
            remote = (i + self.rounds) % 2 == 1
            kill = ""
            if remote and self.kills:
                kill = "gone" if (self.rounds % 4 == 3 and spec.name == "lazy_churn") \
                    else "restart"
            lanes.append(Lane(spec, self.dir / f"round{self.rounds}" / f"{i}-{spec.id}",
                              remote, kill, tls=remote and self.rounds % 4 in (1, 2)))
        return lanes

    def round(self):
        lanes = self.plan()
        for lane in lanes:
            self.start_lane(lane)
        for lane in lanes:
            self.restore_lane(lane)
        errors = []
        killers = [threading.Thread(target=self.killer, args=(lane, errors))
                   for lane in lanes if lane.kill]
        stop = threading.Event()
        sampler = threading.Thread(target=self.sample, args=({l.task.pid for l in lanes}, stop))
        sampler.start()
        try:
            for lane in lanes:
                os.kill(lane.task.pid, signal.SIGTERM)
            for k in killers:
                k.start()
            for k in killers:
                k.join(10)
                assert not k.is_alive(), "a killer thread hangs"
            assert not errors, errors
            for lane in lanes:
                self.judge(lane)
        finally:
            stop.set()
            sampler.join(10)
        self.lanes_done += lanes
        self.rounds += 1

    def sample(self, sessions, stop):
        """The most processes and threads the programs ran at once (their
        sessions: every fork child included), counted every SAMPLE_S."""
        while not stop.wait(SAMPLE_S):
            nproc = nthreads = 0
            for d in os.listdir("/proc"):
                if not d.isdigit():
                    continue
                st = procs_mod.read_stat(int(d))
                if not st or st[3] in ("Z", "X") or int(st[6]) not in sessions:
                    continue
                nproc += 1
                nthreads += int(st[20])		# num_threads
            self.peak_procs = max(self.peak_procs, nproc)
            self.peak_threads = max(self.peak_threads, nthreads)

    def run(self):
        self.t0 = time.monotonic()
        rounds_s = []
        while True:
            t = time.monotonic()
            self.round()
            rounds_s.append(time.monotonic() - t)
            left = self.seconds - (time.monotonic() - self.t0)
            if left < max(rounds_s) * 1.2:
                break
        return self.summary(time.monotonic() - self.t0)

    def summary(self, elapsed):
        ok = [l for l in self.lanes_done if l.outcome == "ok"]
        st = [l.stats for l in ok]
        pages = sum(s["pages_fault"] + s["pages_background"] for s in st)
        faults = sum(s["faults"] for s in st)
        busy = sum(max(p.get("last_page_s", 0) for p in s["processes"]) for s in st
                   if s["processes"])
        out = {
            "seconds": round(elapsed, 1),
            "rounds": self.rounds,
            "restores": len(self.lanes_done),
            "restores_at_once": len(WORKLOADS),
            "remote_restores": sum(l.remote for l in self.lanes_done),
            "tls_restores": sum(l.tls for l in self.lanes_done),
            "processes_at_once_max": self.peak_procs,
            "threads_at_once_max": self.peak_threads,
            "tasks_served": sum(s["tasks"] for s in st),
            "outcomes": {k: sum(l.outcome == k for l in self.lanes_done)
                         for k in ("ok", "gone-sigbus", "gone-unneeded")},
            "server_kills": sum(l.kills for l in self.lanes_done),
            "reconnects": sum(l.daemon.log.read_text(errors="replace").count(
                "reconnected to page server") for l in self.lanes_done),
            "churn_ops": self.churn_ops,
            "churn_forks": self.forks,
            "faults": faults,
            "pages_fault": sum(s["pages_fault"] for s in st),
            "pages_background": sum(s["pages_background"] for s in st),
            "pages_dropped_event": sum(s["pages_dropped_event"] for s in st),
            "pages_dropped_exit": sum(s["pages_dropped_exit"] for s in st),
            "pages_lost": sum(s["pages_lost"] for s in st),
            "faults_per_s": round(faults / elapsed, 1),
            "pages_per_s": round(pages / elapsed, 1),
            "daemon_busy_s": round(busy, 1),
        }
        (self.dir / "soak-summary.json").write_text(json.dumps(out, indent=1) + "\n")
        return out
