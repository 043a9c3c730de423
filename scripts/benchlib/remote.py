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
   page server and the daemon get.  Also, for reference, the same with the
   receiver copying what it reads into a userfaultfd-registered region
   (UFFDIO_COPY of each 256 KiB read, as the daemon does): the like-for-like
   limit of a drain.
3. Background drain: --drain-reps sessions with background delivery and
   nothing touching the memory, timed until the daemon has delivered every
   page and exits (bytes / its duration_s); then one sequential touch checks
   every page.  Held against the raw TCP bandwidth: >= 0.70; and, like for
   like, against TCP + UFFDIO_COPY: >= 0.70 as well.  Then raw TCP and a
   receiver that copies on a second thread, both unpinned.  The CPU time of
   every side (tcp_raw's threads, the daemon's and the page server's from
   wait4()) per GiB gives the bound: the most a destination that must
   receive and copy every byte on its one CPU can reach against raw TCP.
4. Fault latency: first the raw round trip of a 64 KiB GET over the same
   loopback (tcp_raw --mode rtt, with and without the copy into a
   userfaultfd region), then --latency-reps pairs of sessions, interleaved:
   one whose daemon runs with --no-background-fetch (idle: every page comes
   by a fault), one with background delivery where the touch starts as soon
   as the restore returns, so its faults compete with the drain.  The
   workload touches every page once in random order and times each touch
   that takes a page fault: the wait the task itself sees.  The daemon's own
   figure (fault read to copy done) is reported next to it.  p99 while
   draining / p99 idle, medians over the reps: <= 3.

With --tls every session is run twice, interleaved: over plain TCP and
over TLS (page server and daemon with --tls and certificates made in the
work dir, scripts/benchlib/remote_tls.py): drain rate and fault latency
side by side; drain with TLS / plain >= 0.6.

The page server and the daemon each run in a session of their own, as a
daemon started with -d and a page server on another host would: one
scheduler autogroup each (see Documentation/benchmarks.md for what
happens to the restored task on one CPU otherwise).

Placement: `split` (default) gives the page server one CPU, and the daemon
and the restored task another, like a source and a destination host; the
raw sender and receiver get the same two.  `same` puts everything on one
CPU, `free` lets the scheduler choose (see Documentation/benchmarks.md).
"""
import json
import os
import statistics
import time

from . import lazy, remote_tls
from .common import (BENCH_BIN, TOOL, BenchError, CpuWatch, Suite, free_port, header_define,
                     log, need_programs, read_ready)
from .common import run as run_cmd

HELP = "lazy restore from a page server over loopback TCP vs raw loopback TCP"
TCP_RAW = BENCH_BIN / "tcp_raw"
ADDRESS = "127.0.0.1"		# loopback only
RANDOM_SEED = lazy.RANDOM_SEED

TIMEOUT_SERVER_READY = 30	# it maps the pages image and indexes the pagemap
TIMEOUT_SERVER_EXIT = 30	# after the daemon's CLOSE
TIMEOUT_TCP_RAW = 600
RTT_REQUESTS = 4096

BUSY_WARN = 0.05	# others used more of the machine than this: say so

# targets of issue 4
DRAIN_RATE_MIN = 0.7
P99_GROWTH_MAX = 3.0


def add_arguments(p):
    p.add_argument("--size", default="1G", help="memory of the workload (default 1G)")
    p.add_argument("--drain-reps", type=int, default=5,
                   help="drain sessions for the drain median (default 5)")
    p.add_argument("--latency-reps", type=int, default=5,
                   help="pairs of fault-latency sessions, idle and draining (default 5)")
    p.add_argument("--tcp-reps", type=int, default=5,
                   help="tcp_raw runs, the limit being the best (default 5)")
    p.add_argument("--placement", choices=("split", "same", "free"), default="split",
                   help="page server on one CPU, daemon and task on another (default);"
                        " all on one CPU; or anywhere")
    p.add_argument("--tls", action="store_true",
                   help="every drain and latency session also over TLS, interleaved with"
                        " the plain ones (target: drain with TLS >= 0.6 of plain)")
    p.add_argument("--log-level", type=int, choices=range(5), default=3,
                   help="-v of the page server and the daemon (default 3: 4 logs a line"
                        " per fault and per GET, which the latencies would include)")


def daemon_slice_pages():
    """Pages the daemon reads and copies at a time, from remote-conn.h (64)."""
    return header_define("criu-lazy/lazy/remote-conn.h", "RC_SLICE_PAGES", 64)


def loadavg():
    try:
        return [float(x) for x in open("/proc/loadavg").read().split()[:3]]
    except (OSError, ValueError):
        return None


def warm_page_cache(images):
    """Read the pages images once: the server maps them, the page cache holds them."""
    for f in images.glob("pages-*.img"):
        with open(f, "rb", buffering=0) as fp:
            while fp.read(4 << 20):
                pass


class RemoteSession(lazy.Session):
    """A lazy session whose pages come from a page server of its own."""

    def __init__(self, suite, wl, background, tls=False):
        super().__init__(suite, wl, True, background)
        self.tls = tls
        self.tag = (f"{wl.name}-{self.n}-{'drain' if background else 'faults'}"
                    + ("-tls" if tls else ""))
        self.server = None
        self.server_rc = None

    def spawn_ready(self, argv, what, name, cpu, timeout):
        """Start argv in a session of its own with --status-fd; wait for its
        ready byte."""
        r, w = os.pipe()
        try:
            p = self.suite.procs.spawn(argv + ["--status-fd", w],
                                       out=self.wl.dir / f"{name}-{self.tag}.out",
                                       new_session=True, pass_fds=(w,), cpu=cpu)
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
        port = free_port(ADDRESS)
        v = f"-v{s.args.log_level}"
        self.server = self.spawn_ready(
            [TOOL, "page-server", "-D", wl.images, "--address", ADDRESS, "--port", port,
             "--lazy-pages", "-o", wl.dir / f"page-server-{self.tag}.log", v]
            + (s.tls_args("server") if self.tls else []),
            "page server", "page-server", s.server_cpu, TIMEOUT_SERVER_READY)
        argv = [TOOL, "lazy-pages", "-D", wl.images, "--page-server", "--address", ADDRESS,
                "--port", port, "-o", wl.dir / f"lazy-pages-{self.tag}.log", v,
                # every rep restores the same images: no prefetch of what the last one recorded
                "--no-working-set"]
        if self.tls:
            argv += s.tls_args("client")
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


class RemoteSuite(Suite):
    def __init__(self, ctx):
        super().__init__(ctx)
        cpus = self.cpus
        if self.placement == "split" and len(cpus) > 1:
            self.server_cpu, self.handler_cpu = cpus[0], cpus[-1]
        elif self.placement in ("split", "same"):
            self.server_cpu = self.handler_cpu = cpus[-1]
        else:
            self.server_cpu = self.handler_cpu = None
        self.toucher_cpu = self.handler_cpu	# the restored task, next to its daemon
        self.certs = remote_tls.make_certs(self.workdir) if ctx.args.tls else None

    def tls_args(self, name):
        return remote_tls.args(self.certs, name)

    # -- the baseline -----------------------------------------------------------

    def tcp_raw(self, what, args, pin=True):
        """One tcp_raw run, sender on the server's CPU, receiver on the daemon's
        (pin=False: wherever the scheduler puts them)."""
        argv = [TCP_RAW, "--timeout", TIMEOUT_TCP_RAW] + args
        if pin and self.server_cpu is not None:
            argv += ["--sender-cpu", self.server_cpu, "--receiver-cpu", self.handler_cpu]
        _, _, out = run_cmd(argv, TIMEOUT_TCP_RAW + 30, f"tcp_raw ({what})")
        try:
            return json.loads(out)
        except ValueError as e:
            raise BenchError(f"tcp_raw ({what}): not JSON ({e}):\n{out[-2000:]}")

    def tcp_streams(self, size, copy_flag, pin, where):
        """Raw loopback TCP, then the same with the copy into a uffd region
        (copy_flag: --uffd-copy, or --copy-thread for a copier of its own)."""
        base = ["--size", size, "--chunk", "4M", "--reps", max(self.args.tcp_reps, 1)]
        slice_ = daemon_slice_pages() * 4096
        raw = self.tcp_raw(f"stream{where}", base, pin)
        copy = self.tcp_raw(f"stream + {copy_flag}{where}",
                            base + ["--recv-chunk", slice_, copy_flag], pin)
        how = " on a second thread" if copy_flag == "--copy-thread" else ""
        for res, label in ((raw, f"raw loopback TCP{where}"),
                           (copy, f"same + UFFDIO_COPY of each {slice_ >> 10} KiB{how}")):
            log(f"  {label}, {res['bytes']:,} bytes in {res['chunk'] >> 20} MiB sends, best of"
                f" {res['reps']}: {res['best_mib_s']:,.0f} MiB/s"
                f" (runs {' '.join(f'{x:.0f}' for x in res['runs_mib_s'])}); CPU-s, median:"
                f" receiver {res['recv_cpu_median_s']:.3f}, sender {res['send_cpu_median_s']:.3f}")
        return raw, copy

    def tcp_stream(self, size):
        """Raw loopback TCP, and the same with the copy into a uffd region,
        pinned as the page server and the daemon are."""
        return self.tcp_streams(size, "--uffd-copy", True, "")

    def tcp_spread(self, size):
        """Whether a destination gains from copying on a second thread: raw
        TCP and a receiver that hands the UFFDIO_COPYs to a thread of its
        own, both unpinned (the copier can only run on the sender's CPU)."""
        return self.tcp_streams(size, "--copy-thread", False, ", unpinned")

    def tcp_rtt(self):
        """Round trips of a fault-sized GET, with and without the uffd copy."""
        reply = lazy.daemon_window_pages() * 4096
        args = ["--mode", "rtt", "--reply", reply, "--requests", RTT_REQUESTS]
        out = {"tcp": self.tcp_raw("rtt", args),
               "uffd": self.tcp_raw("rtt + UFFDIO_COPY", args + ["--uffd-copy"])}
        for key, label in (("tcp", "TCP"), ("uffd", "TCP + UFFDIO_COPY")):
            x = out[key]
            log(f"  raw GET round trip, {x['reply'] >> 10} KiB reply, {label}: p50"
                f" {x['p50_us']:.1f} us p99 {x['p99_us']:.1f} us ({x['requests']:,} requests)")
        return out

    # -- sessions ------------------------------------------------------------------

    def drain_session(self, wl, tls=False):
        """Background delivery, nothing touched until the daemon is done."""
        s = RemoteSession(self, wl, background=True, tls=tls)
        out = {"tag": s.tag}
        try:
            out["restore_s"] = s.run_restore()
            out["stats"] = s.wait_daemon(lazy.TIMEOUT_DRAIN)
            out["drain_wall_s"] = time.monotonic() - s.restored_at
            s.wait_server()
            out["daemon_cpu_s"] = self.procs.cpu_s(s.daemon.pid)
            out["server_cpu_s"] = self.procs.cpu_s(s.server.pid)
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

    def latency_session(self, wl, background, tls=False):
        """A random touch of every page, timed per faulting touch, right
        after the restore; with background delivery or without."""
        s = RemoteSession(self, wl, background=background, tls=tls)
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
        load = loadavg()
        log(f"remote: workload {lazy.human(size)}, placement {self.placement} (page server"
            f" CPU {self.server_cpu}, daemon and task CPU {self.handler_cpu}), over {ADDRESS},"
            f" tool log level {a.log_level}, work dir {self.workdir}; load average {load}")

        r.section("workload: start and dump")
        wl = lazy.Workload(self, "big", size)
        self.workloads = (wl,)
        wl.start_and_dump()
        os.sync()	# no writeback of the images during the measurements
        warm_page_cache(wl.images)

        # each baseline right before what it is compared with: this machine drifts
        r.section("background drain: tcp_raw, then lazy restores from the page server")
        watch = CpuWatch().start()
        raw, raw_copy = self.tcp_stream(size)
        drains, drains_tls = [], []
        for _ in range(max(a.drain_reps, 1)):
            drains.append(self.drain_session(wl))
            if a.tls:
                drains_tls.append(self.drain_session(wl, tls=True))
        spread = self.tcp_spread(size)
        others = {"drain": self.others(watch)}

        r.section("fault latency: tcp_raw round trips, then a random touch after restores"
                  " (idle daemon and draining daemon, interleaved)")
        watch = CpuWatch().start()
        rtt = self.tcp_rtt()
        idle, busy, idle_tls, busy_tls = [], [], [], []
        for _ in range(max(a.latency_reps, 1)):
            idle.append(self.latency_session(wl, background=False))
            busy.append(self.latency_session(wl, background=True))
            if a.tls:
                idle_tls.append(self.latency_session(wl, background=False, tls=True))
                busy_tls.append(self.latency_session(wl, background=True, tls=True))
        others["latency"] = self.others(watch)
        self.ctx.extra.update(tcp_raw=raw, tcp_raw_uffd_copy=raw_copy, tcp_spread=spread,
                              tcp_rtt=rtt,
                              drains=drains, latency_idle=idle, latency_draining=busy,
                              loadavg_start=load, others_cpu=others)

        self.figures(wl, raw, raw_copy, spread, rtt, drains, idle, busy, others)
        if a.tls:
            self.ctx.extra.update(drains_tls=drains_tls, latency_idle_tls=idle_tls,
                                  latency_draining_tls=busy_tls)
            remote_tls.figures(self, wl, drains, drains_tls, idle, busy, idle_tls, busy_tls)

    def others(self, watch):
        """What other processes (and the host) took of the machine in a phase."""
        o = watch.read()
        log(f"  other processes used {o['cpu_s']:.2f} CPU-s in these {o['wall_s']:.1f} s"
            f" ({o['share'] * 100:.1f}% of the machine), steal {o['steal_s']:.2f} s"
            + ("; the figures of this phase are disturbed"
               if o["share"] + o["steal_share"] > BUSY_WARN else ""))
        return o

    # -- figures ---------------------------------------------------------------------

    def figures(self, wl, raw, raw_copy, spread, rtt, drains, idle, busy, others):
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
        r.figure("tcp_raw_uffd_mib_s", "raw loopback TCP + UFFDIO_COPY (like for like)",
                 raw_copy["best_mib_s"], "MiB/s", f"best of {raw_copy['reps']}, median"
                 f" {raw_copy['median_mib_s']:.0f}")
        r.ratio("drain_rate", "drain rate / raw loopback TCP", rate / raw["best_mib_s"],
                ">=", DRAIN_RATE_MIN)
        # held to the same 70% like for like, so that the target also
        # measures the daemon's own cost, not only the copy it cannot avoid
        r.ratio("drain_rate_like", "drain rate / raw TCP + UFFDIO_COPY",
                rate / raw_copy["best_mib_s"], ">=", DRAIN_RATE_MIN, note="like for like")
        r.ratio("drain_rate_median", "drain rate / raw loopback TCP median",
                rate / raw["median_mib_s"])
        self.cpu_figures(raw, raw_copy, drains)
        free_raw, free_spread = spread
        two = free_spread["best_mib_s"] / free_raw["best_mib_s"]
        one = raw_copy["best_mib_s"] / raw["best_mib_s"]
        r.ratio("two_thread_limit", "receive + copy on two threads / raw TCP, unpinned", two,
                note=f"bests {free_spread['best_mib_s']:.0f} / {free_raw['best_mib_s']:.0f}"
                     f" MiB/s; on one thread, pinned: {one:.3f}")
        self.others_figure("drain", others["drain"])
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
        for key, label in (("tcp", "TCP"), ("uffd", "TCP + UFFDIO_COPY")):
            x = rtt[key]
            r.figure(f"raw_rtt_p50_us_{key}", f"raw GET round trip, {label}, p50", x["p50_us"],
                     "us", f"{x['reply'] >> 10} KiB reply, p99 {x['p99_us']:.1f} us")
        self.others_figure("latency", others["latency"])
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

    def cpu_figures(self, raw, raw_copy, drains):
        """Where the CPU goes, per GiB moved: what bounds the drain here.

        On loopback both ends share this machine's CPUs, and TCP is bound by
        its sender.  A destination that lands the bytes in the task must
        also UFFDIO_COPY each of them into a fresh page on its own CPU (the
        daemon's and the task's, with split placement): the receiver's CPU
        time of tcp_raw --uffd-copy is that floor, and the rate it allows
        against raw TCP is the most a drain on one destination CPU can
        reach on this machine, whatever the daemon does."""
        r = self.report
        gib = 1 << 30

        def per_gib(cpu_s, nbytes):
            return cpu_s * gib / nbytes

        recv = per_gib(raw["recv_cpu_median_s"], raw["bytes"])
        send = per_gib(raw["send_cpu_median_s"], raw["bytes"])
        # the cheapest run: fresh memory on this VM is sometimes far dearer
        floor = per_gib(min(raw_copy["recv_cpu_s"]), raw_copy["bytes"])
        r.figure("tcp_raw_recv_cpu_s_gib", "CPU-s per GiB, raw TCP receiver", recv, "s",
                 f"median; sender {send:.3f} s")
        r.figure("tcp_raw_uffd_recv_cpu_s_gib", "CPU-s per GiB, receiver + UFFDIO_COPY", floor,
                 "s", "least of the runs: what a destination cannot do without")
        measured = [d for d in drains
                    if d.get("daemon_cpu_s") is not None and d.get("server_cpu_s") is not None]
        if measured:
            def med(key):
                return statistics.median(per_gib(d[key], d["stats"]["bytes"])
                                         for d in measured)

            daemon = med("daemon_cpu_s")
            busy = statistics.median(d["daemon_cpu_s"] / d["stats"]["duration_s"]
                                     for d in measured)
            r.figure("daemon_cpu_s_gib", "CPU-s per GiB, lazy-pages daemon draining", daemon,
                     "s", f"busy {busy * 100:.0f}% of its duration; page server"
                     f" {med('server_cpu_s'):.3f} s")
            r.ratio("daemon_cpu_over_floor", "daemon CPU / receiver + UFFDIO_COPY CPU",
                    daemon / floor)
        # the rate of a destination that does nothing but receive and copy,
        # bound by its one CPU, against the raw TCP bandwidth
        r.ratio("one_cpu_limit", "one-CPU destination's limit / raw loopback TCP",
                gib / floor / (1 << 20) / raw["best_mib_s"],
                note="the most a drain can reach on one destination CPU"
                     if self.placement == "split" else
                     f"placement {self.placement}: the receiver's CPU is not the destination's own")

    def others_figure(self, phase, o):
        disturbed = o["share"] + o["steal_share"] > BUSY_WARN
        self.report.figure(f"others_{phase}", "CPU share of other processes, this phase",
                           o["share"] * 100, "%", f"steal {o['steal_share'] * 100:.1f}%"
                           + (", disturbed" if disturbed else ""))

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
    lazy.run_suite(ctx, RemoteSuite(ctx))
