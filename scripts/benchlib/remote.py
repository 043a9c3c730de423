"""scripts/bench remote: lazy restore from a page server over loopback TCP
against the raw loopback TCP bandwidth of the same machine, in one run.

1. A workload (build/test/bench/lazy_workload, --size, 1 GiB of patterned
   memory) is dumped once to disk; every session restores those images the
   remote-lazy way: `criu-lazy page-server --lazy-pages` on the images,
   `criu-lazy lazy-pages --page-server` taking pages from it over
   127.0.0.1, `criu-lazy restore --lazy-pages -d`.
2. Baseline: build/test/bench/tcp_raw, a sender and a receiver thread over
   127.0.0.1, --size bytes in 4 MiB sends (the page server's largest
   reply), best of --tcp-reps runs after a warm-up, placed on the CPUs the
   page server and the daemon get.
3. Background drain: --drain-reps sessions with background delivery and
   nothing touching the memory, timed until the daemon has delivered every
   page and exits (bytes / its duration_s); then one sequential touch checks
   every page.  Held against the raw TCP bandwidth: >= 0.70.
4. Fault latency: --latency-reps pairs of sessions, interleaved: one whose
   daemon runs with --no-background-fetch (idle: every page comes by a
   fault), one with background delivery where the touch starts as soon as
   the restore returns, so its faults compete with the drain.  The workload
   touches every page once in random order and times each touch that takes
   a page fault: the wait the task itself sees.  The daemon's own figure
   (fault read to copy done) is reported next to it.  p99 while draining /
   p99 idle, medians over the reps: <= 3.

Placement: `split` (default) gives the page server one CPU, and the daemon
and the restored task another, like a source and a destination host; the
raw sender and receiver get the same two.  `same` puts everything on one
CPU, `free` lets the scheduler choose (see Documentation/benchmarks.md).
"""
import json
import os
import signal
import socket
import statistics
import time

from . import lazy
from .common import BENCH_BIN, TOOL, BenchError, log, need_programs, read_ready
from .common import run as run_cmd

HELP = "lazy restore from a page server over loopback TCP vs raw loopback TCP"
TCP_RAW = BENCH_BIN / "tcp_raw"
ADDRESS = "127.0.0.1"		# loopback only
RANDOM_SEED = lazy.RANDOM_SEED

TIMEOUT_SERVER_READY = 30	# it maps the pages image and indexes the pagemap
TIMEOUT_SERVER_EXIT = 30	# after the daemon's CLOSE
TIMEOUT_TCP_RAW = 600

# targets of issue 4
DRAIN_RATE_MIN = 0.7
P99_GROWTH_MAX = 3.0


def add_arguments(p):
    p.add_argument("--size", default="1G", help="memory of the workload (default 1G)")
    p.add_argument("--drain-reps", type=int, default=3,
                   help="drain sessions for the drain median (default 3)")
    p.add_argument("--latency-reps", type=int, default=3,
                   help="pairs of fault-latency sessions, idle and draining (default 3)")
    p.add_argument("--tcp-reps", type=int, default=5,
                   help="tcp_raw runs, the limit being the best (default 5)")
    p.add_argument("--placement", choices=("split", "same", "free"), default="split",
                   help="page server on one CPU, daemon and task on another (default);"
                        " all on one CPU; or anywhere")
    p.add_argument("--log-level", type=int, choices=range(5), default=3,
                   help="-v of the page server and the daemon (default 3: 4 logs a line"
                        " per fault and per GET, which the latencies would include)")


def free_port():
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((ADDRESS, 0))
        return s.getsockname()[1]


class RemoteSession(lazy.Session):
    """A lazy session whose pages come from a page server of its own."""

    def __init__(self, suite, wl, background):
        super().__init__(suite, wl, True, background)
        self.tag = f"{wl.name}-{self.n}-{'drain' if background else 'faults'}"
        self.server = None
        self.server_rc = None

    def spawn_ready(self, argv, what, name, cpu, timeout):
        """Start argv with --status-fd and wait for its ready byte."""
        r, w = os.pipe()
        try:
            p = self.suite.procs.spawn(argv + ["--status-fd", w],
                                       out=self.wl.dir / f"{name}-{self.tag}.out",
                                       pass_fds=(w,), cpu=cpu)
            os.close(w)
            w = -1
            read_ready(r, timeout, p, f"{what} {self.tag}")
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)
        return p

    def start_daemon(self):
        """The page server on the images, then the daemon that takes from it."""
        s, wl = self.suite, self.wl
        port = free_port()
        v = f"-v{s.args.log_level}"
        self.server = self.spawn_ready(
            [TOOL, "page-server", "-D", wl.images, "--address", ADDRESS, "--port", port,
             "--lazy-pages", "-o", wl.dir / f"page-server-{self.tag}.log", v],
            "page server", "page-server", s.server_cpu, TIMEOUT_SERVER_READY)
        argv = [TOOL, "lazy-pages", "-D", wl.images, "--page-server", "--address", ADDRESS,
                "--port", port, "-o", wl.dir / f"lazy-pages-{self.tag}.log", v]
        if not self.background:
            argv.append("--no-background-fetch")
        self.daemon = self.spawn_ready(argv, "lazy-pages daemon", "lazy-pages", s.handler_cpu,
                                       lazy.TIMEOUT_DAEMON_READY)

    def wait_server(self):
        """The page server exits 0 on its own once the daemon has closed."""
        if self.server is None or self.server_rc is not None:
            return
        self.server_rc = self.suite.procs.wait(self.server.pid, TIMEOUT_SERVER_EXIT)
        if self.server_rc:
            raise BenchError(f"page server {self.tag} exited with status {self.server_rc}"
                             f" (see {self.wl.dir}/page-server-{self.tag}.log)")

    def end(self):
        stats = super().end()
        self.wait_server()
        return stats

    def abort(self):
        super().abort()
        if self.server is not None and self.server_rc is None:
            try:
                self.suite.procs.stop(self.server.pid, timeout=5)
            except BenchError:
                pass


class RemoteSuite:
    def __init__(self, ctx):
        self.ctx = ctx
        self.args = ctx.args
        self.procs = ctx.procs
        self.report = ctx.report
        self.workdir = ctx.workdir
        self.nr_sessions = 0
        cpus = sorted(os.sched_getaffinity(0))
        self.placement = self.args.placement
        if self.placement == "split" and len(cpus) > 1:
            self.server_cpu, self.handler_cpu = cpus[0], cpus[-1]
        elif self.placement in ("split", "same"):
            self.server_cpu = self.handler_cpu = cpus[-1]
        else:
            self.server_cpu = self.handler_cpu = None
        self.toucher_cpu = self.handler_cpu	# the restored task, next to its daemon

    # -- the baseline -----------------------------------------------------------

    def tcp_raw(self, size):
        argv = [TCP_RAW, "--size", size, "--chunk", "4M", "--reps", max(self.args.tcp_reps, 1),
                "--timeout", TIMEOUT_TCP_RAW]
        if self.server_cpu is not None:
            argv += ["--sender-cpu", self.server_cpu, "--receiver-cpu", self.handler_cpu]
        _, _, out = run_cmd(argv, TIMEOUT_TCP_RAW + 30, "tcp_raw")
        try:
            res = json.loads(out)
        except ValueError as e:
            raise BenchError(f"tcp_raw: not JSON ({e}):\n{out[-2000:]}")
        log(f"  raw loopback TCP, {res['bytes']:,} bytes in {res['chunk'] >> 20} MiB sends,"
            f" best of {res['reps']}: {res['best_mib_s']:,.0f} MiB/s"
            f" (runs {' '.join(f'{x:.0f}' for x in res['runs_mib_s'])})")
        return res

    # -- sessions ------------------------------------------------------------------

    def drain_session(self, wl):
        """Background delivery, nothing touched until the daemon is done."""
        s = RemoteSession(self, wl, background=True)
        out = {"tag": s.tag}
        try:
            out["restore_s"] = s.run_restore()
            out["stats"] = s.wait_daemon(lazy.TIMEOUT_DRAIN)
            out["drain_wall_s"] = time.monotonic() - s.restored_at
            s.wait_server()
            out["touch"] = s.touch("seq")	# every page must hold the pattern
            s.end()
        except BenchError:
            s.abort()
            raise
        st = out["stats"]
        log(f"  {s.tag}: restore {out['restore_s'] * 1000:.1f} ms, drained"
            f" {st['bytes']:,} bytes in {st['duration_s']:.3f} s"
            f" ({st['bytes'] / st['duration_s'] / (1 << 20):,.0f} MiB/s)")
        return out

    def latency_session(self, wl, background):
        """A random touch of every page, timed per faulting touch, right
        after the restore; with background delivery or without."""
        s = RemoteSession(self, wl, background=background)
        out = {"tag": s.tag, "background": background}
        try:
            out["restore_s"] = s.run_restore()
            out["touch"] = s.touch(f"random {RANDOM_SEED} latency")
            out["stats"] = s.end()
        except BenchError:
            s.abort()
            raise
        lat, st = out["touch"]["latency"], out["stats"]
        log(f"  {s.tag}: {lat['faulted']:,} of {lat['touches']:,} touches faulted, p50"
            f" {lat['fault_p50_us']:.1f} us p99 {lat['fault_p99_us']:.1f} us max"
            f" {lat['fault_max_us']:.0f} us; daemon: {st['faults']:,} faults, p50"
            f" {st['fault_latency_p50_us']:.1f} us p99 {st['fault_latency_p99_us']:.1f} us,"
            f" {st['pages_background']:,} pages in the background")
        return out

    def run(self):
        a, r = self.args, self.report
        size = lazy.parse_size(a.size)
        log(f"remote: workload {lazy.human(size)}, placement {self.placement} (page server"
            f" CPU {self.server_cpu}, daemon and task CPU {self.handler_cpu}), over {ADDRESS},"
            f" tool log level {a.log_level}, work dir {self.workdir}")

        r.section("workload: start and dump")
        wl = lazy.Workload(self, "big", size)
        self.workloads = (wl,)
        wl.start_and_dump()
        os.sync()	# no writeback of the images during the measurements

        # the baseline right before what it is compared with: this machine drifts
        r.section("background drain: tcp_raw, then lazy restores from the page server")
        raw = self.tcp_raw(size)
        drains = [self.drain_session(wl) for _ in range(max(a.drain_reps, 1))]

        r.section("fault latency: random touch, idle daemon and daemon draining, interleaved")
        idle, busy = [], []
        for _ in range(max(a.latency_reps, 1)):
            idle.append(self.latency_session(wl, background=False))
            busy.append(self.latency_session(wl, background=True))
        self.ctx.extra.update(tcp_raw=raw, drains=drains, latency_idle=idle,
                              latency_draining=busy)

        self.figures(wl, raw, drains, idle, busy)

    # -- figures ---------------------------------------------------------------------

    def figures(self, wl, raw, drains, idle, busy):
        r = self.report
        B = lazy.human(wl.size)

        def rate_of(d):
            return d["stats"]["bytes"] / d["stats"]["duration_s"] / (1 << 20)

        drains = sorted(drains, key=rate_of)
        drain = drains[len(drains) // 2]
        st = drain["stats"]
        rate = rate_of(drain)
        r.section(f"background drain over {ADDRESS} ({B}, median of {len(drains)})")
        r.figure("drain_mib_s", "drain rate, bytes / daemon duration_s", rate, "MiB/s",
                 f"{st['bytes']:,} bytes in {st['duration_s']:.3f} s; runs: "
                 + " ".join(f"{rate_of(d):.0f}" for d in drains))
        r.figure("drain_wall_mib_s", "drain rate, bytes / (daemon exit - restore return)",
                 st["bytes"] / drain["drain_wall_s"] / (1 << 20), "MiB/s",
                 f"{drain['drain_wall_s']:.3f} s")
        r.figure("tcp_raw_mib_s", "raw loopback TCP (tcp_raw, 4 MiB sends)",
                 raw["best_mib_s"], "MiB/s", f"best of {raw['reps']}, median"
                 f" {raw['median_mib_s']:.0f}")
        r.ratio("drain_rate", "drain rate / raw loopback TCP", rate / raw["best_mib_s"],
                ">=", DRAIN_RATE_MIN)
        r.ratio("drain_rate_median", "drain rate / raw loopback TCP median",
                rate / raw["median_mib_s"])
        for d in drains:
            self.check_stats(d, wl)

        def med(sessions, get):
            return statistics.median(get(x) for x in sessions)

        def task(key):
            return lambda x: x["touch"]["latency"][key]

        def daemon(key):
            return lambda x: x["stats"][key]

        n = len(idle)
        r.section(f"fault latency, random touch of {wl.pages:,} pages (median of {n})")
        for what, sessions in (("idle", idle), ("draining", busy)):
            faulted = med(sessions, task("faulted"))
            r.figure(f"task_fault_p50_us_{what}", f"{what}: task's wait per fault, p50",
                     med(sessions, task("fault_p50_us")), "us",
                     f"{faulted:,.0f} of {wl.pages:,} touches faulted")
            r.figure(f"task_fault_p99_us_{what}", f"{what}: task's wait per fault, p99",
                     med(sessions, task("fault_p99_us")), "us", "runs: " + " ".join(
                         f"{task('fault_p99_us')(x):.0f}" for x in sessions))
            r.figure(f"daemon_fault_p50_us_{what}", f"{what}: daemon fault latency p50",
                     med(sessions, daemon("fault_latency_p50_us")), "us",
                     f"{med(sessions, daemon('faults')):,.0f} faults")
            r.figure(f"daemon_fault_p99_us_{what}", f"{what}: daemon fault latency p99",
                     med(sessions, daemon("fault_latency_p99_us")), "us", "runs: " + " ".join(
                         f"{daemon('fault_latency_p99_us')(x):.0f}" for x in sessions))
        r.ratio("fault_p99_growth", "task's p99 wait, draining / idle",
                med(busy, task("fault_p99_us")) / med(idle, task("fault_p99_us")),
                "<=", P99_GROWTH_MAX)
        r.ratio("daemon_p99_growth", "daemon's p99 fault latency, draining / idle",
                med(busy, daemon("fault_latency_p99_us"))
                / med(idle, daemon("fault_latency_p99_us")))
        r.ratio("fault_p50_growth", "task's p50 wait, draining / idle",
                med(busy, task("fault_p50_us")) / med(idle, task("fault_p50_us")))
        for x in idle + busy:
            self.check_stats(x, wl)

    def check_stats(self, ses, wl):
        """The daemon's counts must add up: these are errors, not misses."""
        st, r = ses["stats"], self.report
        got = st["pages_fault"] + st["pages_background"]
        if got < wl.pages:
            r.error(f"{ses['tag']}: daemon delivered {got} pages, the workload has {wl.pages}")
        if not ses.get("background", True) and st["pages_background"]:
            r.error(f"{ses['tag']}: {st['pages_background']} pages delivered in the background"
                    " despite --no-background-fetch")


def run(ctx):
    need_programs(TOOL, lazy.WORKLOAD, TCP_RAW)
    suite = RemoteSuite(ctx)
    try:
        suite.run()
    finally:
        # a failed run keeps its logs, not gigabytes of pages
        ctx.cleanup_hooks.append(lambda keep: [w.remove_pages() for w in
                                               getattr(suite, "workloads", ()) if not keep])
