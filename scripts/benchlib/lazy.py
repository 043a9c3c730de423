"""scripts/bench lazy: lazy restore from local images against the raw
userfaultfd limit of the same machine, in one run.

1. Two workloads (build/test/bench/lazy_workload, --size and --small, 1 GiB
   and 1 MiB of patterned memory), each dumped once; every session below
   restores the same images.
2. Fault-driven touch: the baseline (build/test/bench/uffd_raw: per-fault
   round trip with one page per fault, and with the daemon's fault-around
   window, sequential and random order), then a sequential and a random
   touch of every page right after a lazy restore whose daemon runs with
   --no-background-fetch, so that every page arrives by a fault.
3. Restore time: eager and lazy (--no-background-fetch) restores of both
   sizes, interleaved, --reps of each; medians.
4. Background drain: the baseline (large-chunk UFFDIO_COPY from an
   anonymous buffer and from the big workload's own pages image), then lazy
   restores with background delivery, timed until the daemon has sent
   everything and exits.
Each baseline runs right before what it is compared with (this machine
drifts), and every touch checks the pattern of every page.

Placement: on a small VM a wake-up across CPUs can cost more than the whole
fault (an idle vCPU must be woken by the host), so by default the fault
handler and the toucher run on one CPU, in the baseline and in the real
thing alike (daemon and restored task pinned to that CPU): --placement
same.  `split` puts them on two CPUs, `free` lets the scheduler choose.
"""
import json
import os
import re
import signal
import statistics
import time

from .common import (BENCH_BIN, TOOL, BenchError, Suite, header_define, log, need_programs,
                     read_ready, wait_for)
from .common import run as run_cmd

HELP = "lazy restore from local images vs the raw userfaultfd limit"
WORKLOAD = BENCH_BIN / "lazy_workload"
RAW = BENCH_BIN / "uffd_raw"
RANDOM_SEED = 0x5eed

TIMEOUT_START = 60	# the workload has filled its memory
TIMEOUT_DUMP = 300
TIMEOUT_RESTORE = 120
TIMEOUT_DAEMON_READY = 15
TIMEOUT_TOUCH = 300
TIMEOUT_DAEMON_EXIT = 60	# after its task is gone, or its pages delivered
TIMEOUT_DRAIN = 300
TIMEOUT_RAW = 600

EAGER_BIG_REPS = 5
RAW_COPY_REPS = 5	# the limit is the best of them: copies vary by 20% run to run

# targets of issue 3
RESTORE_GROWTH_MAX = 1.2
FAULT_RATE_MIN = 0.6
DRAIN_RATE_MIN = 0.7


def add_arguments(p):
    p.add_argument("--size", default="1G", help="memory of the big workload (default 1G)")
    p.add_argument("--small", default="1M", help="memory of the small workload (default 1M)")
    p.add_argument("--reps", type=int, default=11,
                   help="restores per size and mode for the restore-time medians (default 11;"
                        f" at most {EAGER_BIG_REPS} eager restores of the big workload)")
    p.add_argument("--drain-reps", type=int, default=3,
                   help="lazy restores with background delivery for the drain median (default 3)")
    p.add_argument("--placement", choices=("same", "split", "free"), default="same",
                   help="fault handler and faulting task on one CPU (default), two, or anywhere")


def parse_size(s):
    m = re.fullmatch(r"(\d+)([KMG]?)(iB)?", s.strip(), re.I)
    if not m:
        raise BenchError(f"bad size '{s}' (use e.g. 1G, 64M, 1M)")
    n = int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2).upper()]
    if n < 4096 or n % 4096:
        raise BenchError(f"size '{s}' is not a positive multiple of 4 KiB")
    return n


def human(n):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} B"


def daemon_window_pages():
    """The daemon's fault-around window, from its header (16 if not found)."""
    return header_define("criu-lazy/lazy/lazy-daemon.h", "LAZY_FAULT_WINDOW_PAGES", 16)


class Workload:
    """One lazy_workload process, dumped once into its images directory."""

    def __init__(self, suite, name, size):
        self.suite = suite
        self.name = name
        self.size = size
        self.pages = size // 4096
        self.dir = suite.workdir / name
        self.images = self.dir / "images"
        self.pidfile = self.dir / "workload.pid"
        self.result = self.dir / "touch.json"
        self.order_file = self.dir / "order"
        self.pid = None
        self.images.mkdir(parents=True, exist_ok=True)

    def start_and_dump(self):
        procs = self.suite.procs
        p = procs.spawn([WORKLOAD, "--size", self.size, "--pidfile", self.pidfile,
                         "--result", self.result, "--order-file", self.order_file],
                        cwd=self.dir, new_session=True)
        wait_for(lambda: self.pidfile.exists() or p.poll() is not None, TIMEOUT_START,
                 f"the {self.name} workload to fill {human(self.size)}")
        if p.poll() is not None:
            raise BenchError(f"the {self.name} workload exited with status {p.returncode}")
        self.pid = int(self.pidfile.read_text())
        if self.pid != p.pid:
            raise BenchError(f"{self.pidfile} says {self.pid}, the workload is {p.pid}")
        _, secs, _ = run_cmd([TOOL, "dump", "-t", self.pid, "-D", self.images,
                              "-o", self.dir / "dump.log", "-v4"], TIMEOUT_DUMP,
                             f"dump of the {self.name} workload (pid {self.pid})")
        # dump ends the task; reap it so that its pid is free for the restores
        procs.wait(self.pid, 10)
        log(f"  dumped the {human(self.size)} workload (pid {self.pid}) in {secs:.2f} s")

    def remove_pages(self):
        for f in self.images.glob("pages-*.img"):
            f.unlink()


class Session:
    """One restore of a workload's images, eager or lazy, and what follows."""

    def __init__(self, suite, wl, lazy, background=False):
        suite.nr_sessions += 1
        self.suite = suite
        self.wl = wl
        self.lazy = lazy
        self.background = background
        self.n = suite.nr_sessions
        self.tag = f"{wl.name}-{self.n}-{'lazy' if lazy else 'eager'}"
        self.daemon = None
        self.pid = None
        self.restore_s = None
        self.restored_at = None
        self.stats = None	# the daemon's, once it has exited

    def run_restore(self):
        s, wl = self.suite, self.wl
        stats = wl.images / "lazy-pages-stats.json"
        for f in (stats, wl.result, wl.dir / f"{self.tag}.pid"):
            if f.exists():
                f.unlink()
        if self.lazy:
            self.start_daemon()
        pidfile = wl.dir / f"{self.tag}.pid"
        argv = [TOOL, "restore", "-D", wl.images, "-d", "--pidfile", pidfile,
                "-o", wl.dir / f"restore-{self.tag}.log", "-v4"]
        if self.lazy:
            argv.append("--lazy-pages")
        _, self.restore_s, _ = run_cmd(argv, TIMEOUT_RESTORE, f"restore {self.tag}")
        self.restored_at = time.monotonic()
        self.pid = int(pidfile.read_text())
        s.procs.adopt(self.pid)
        if self.pid != wl.pid:
            raise BenchError(f"restore {self.tag}: restored pid {self.pid}, dumped {wl.pid}")
        if s.toucher_cpu is not None:
            os.sched_setaffinity(self.pid, {s.toucher_cpu})
        return self.restore_s

    def start_daemon(self):
        s, wl = self.suite, self.wl
        argv = [TOOL, "lazy-pages", "-D", wl.images, "-o", wl.dir / f"lazy-pages-{self.tag}.log",
                "-v4",
                # every rep restores the same images: no prefetch of what the last one recorded
                "--no-working-set"]
        if not self.background:
            argv.append("--no-background-fetch")
        r, w = os.pipe()
        try:
            argv += ["--status-fd", w]
            self.daemon = s.procs.spawn(argv, out=wl.dir / f"lazy-pages-{self.tag}.out",
                                        pass_fds=(w,), cpu=s.handler_cpu)
            os.close(w)
            w = -1
            read_ready(r, TIMEOUT_DAEMON_READY, self.daemon, f"lazy-pages daemon {self.tag}")
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)

    def touch(self, order):
        """SIGUSR1: the workload touches every page in order; its result."""
        wl = self.wl
        wl.order_file.write_text(order + "\n")
        if wl.result.exists():
            wl.result.unlink()
        self.suite.procs.send(self.pid, signal.SIGUSR1)
        wait_for(lambda: wl.result.exists() or not_alive(self.pid), TIMEOUT_TOUCH,
                 f"the {order} touch of {self.tag}")
        if not wl.result.exists():
            raise BenchError(f"{self.tag}: the workload died during the {order} touch")
        res = json.loads(wl.result.read_text())
        if not res.get("ok"):
            raise BenchError(f"{self.tag}: {order} touch: {res.get('error', 'failed')}")
        return res

    def wait_daemon(self, timeout):
        """Wait for the daemon to exit on its own; its statistics."""
        rc = self.suite.procs.wait(self.daemon.pid, timeout)
        if rc:
            raise BenchError(f"lazy-pages daemon {self.tag} exited with status {rc}"
                             f" (see {self.wl.dir}/lazy-pages-{self.tag}.log)")
        stats = self.wl.images / "lazy-pages-stats.json"
        if not stats.exists():
            raise BenchError(f"lazy-pages daemon {self.tag} wrote no {stats.name}")
        self.stats = json.loads(stats.read_text())
        return self.stats

    def abort(self):
        """After a failure: end what this session started, by pid (the
        daemon with SIGTERM first, so that its log says why it stopped)."""
        for pid, sig in ((self.pid, signal.SIGKILL),
                         (self.daemon.pid if self.daemon else None, signal.SIGTERM)):
            if pid is None:
                continue
            try:
                self.suite.procs.stop(pid, timeout=5, sig=sig)
            except BenchError:
                pass

    def end(self):
        """SIGTERM to the workload; for a lazy session, the daemon's statistics."""
        rc = self.suite.procs.stop(self.pid)
        if rc not in (0, None):
            raise BenchError(f"{self.tag}: the restored workload exited with status {rc}")
        if self.lazy and self.stats is None:
            self.wait_daemon(TIMEOUT_DAEMON_EXIT)
        return self.stats


def not_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


class LazySuite(Suite):
    def __init__(self, ctx):
        super().__init__(ctx)
        cpus = self.cpus
        if self.placement == "same":
            self.handler_cpu = self.toucher_cpu = cpus[-1]
        elif self.placement == "split" and len(cpus) > 1:
            self.handler_cpu, self.toucher_cpu = cpus[-1], cpus[0]
        else:
            self.handler_cpu = self.toucher_cpu = None
        self.window = daemon_window_pages()
        self.lazy_broken = None

    # -- the baseline -------------------------------------------------------

    def raw(self, what, args):
        """One uffd_raw run on the handler CPU; its JSON."""
        argv = [RAW, "--seed", RANDOM_SEED, "--timeout", TIMEOUT_RAW] + args
        if self.handler_cpu is not None:
            argv += ["--handler-cpu", self.handler_cpu, "--toucher-cpu", self.toucher_cpu]
        _, _, out = self.run_pinned(argv, f"uffd_raw ({what})")
        try:
            return json.loads(out)
        except ValueError as e:
            raise BenchError(f"uffd_raw ({what}): not JSON ({e}):\n{out[-2000:]}")

    def raw_faults(self, size):
        """Per-fault limit, one page and the daemon's window per fault."""
        one = self.raw("1 page per fault", ["--mode", "fault", "--size", size])
        win = self.raw(f"{self.window} pages per fault",
                       ["--mode", "fault", "--size", size, "--window", self.window])
        for order in ("seq", "random"):
            f = one["fault"][order]
            log(f"  raw {order:<6}: {f['faults_per_s']:,.0f} faults/s, round trip p50"
                f" {f['rtt_p50_us']:.1f} us p99 {f['rtt_p99_us']:.1f} us; window {self.window}:"
                f" {win['fault'][order]['pages_per_s']:,.0f} pages/s")
        return one, win

    def raw_copy(self, wl):
        """Large-chunk copies, the file source being the workload's pages image."""
        pages = max(wl.images.glob("pages-*.img"), key=lambda f: f.stat().st_size, default=None)
        if pages is None:
            raise BenchError(f"no pages-*.img in {wl.images}")
        res = self.raw("large copies", ["--mode", "copy", "--copy-file", pages,
                                        "--reps", RAW_COPY_REPS])
        c = res["copy"]
        log(f"  raw copy of {c['bytes']:,} bytes, best of {RAW_COPY_REPS}: anon"
            f" {c['anon']['best_mib_s']:,.0f} MiB/s, {pages.name} {c['file']['best_mib_s']:,.0f}"
            f" MiB/s (runs {' '.join(f'{x:.0f}' for x in c['file']['runs_mib_s'])})")
        return c

    def run_pinned(self, argv, what):
        return run_cmd(argv, TIMEOUT_RAW + 30, what, cpu=self.handler_cpu)

    # -- sessions -------------------------------------------------------------

    def new_session(self, wl, lazy, background):
        return Session(self, wl, lazy, background)

    def session(self, wl, lazy, background=False, touch=None, drain=False):
        """Restore, touch or drain, end; a dict of what was measured."""
        if lazy and self.lazy_broken:
            return None
        s = self.new_session(wl, lazy, background)
        out = {"tag": s.tag}
        try:
            out["restore_s"] = s.run_restore()
            if drain:
                out["stats"] = s.wait_daemon(TIMEOUT_DRAIN)
                out["drain_wall_s"] = time.monotonic() - s.restored_at
            if touch:
                out["touch"] = s.touch(touch if touch == "seq" else f"random {RANDOM_SEED}")
            stats = s.end()
            if stats:
                out["stats"] = stats
        except BenchError as e:
            s.abort()
            if lazy:
                self.lazy_broken = str(e)
                self.report.error(f"lazy session {s.tag} failed; no more lazy sessions: {e}")
                return None
            raise
        what = [f"restore {out['restore_s'] * 1000:.1f} ms"]
        if touch:
            what.append(f"{touch} touch {out['touch']['seconds'] * 1000:.1f} ms")
        if drain:
            what.append(f"drained in {out['stats']['duration_s']:.3f} s")
        log(f"  {s.tag}: " + ", ".join(what))
        return out

    def run(self):
        a, r = self.args, self.report
        size, small = parse_size(a.size), parse_size(a.small)
        reps = max(a.reps, 1)
        log(f"lazy: workloads {human(size)} and {human(small)}, placement {self.placement}"
            f" (handler CPU {self.handler_cpu}, toucher CPU {self.toucher_cpu}),"
            f" daemon fault window {self.window} pages, work dir {self.workdir}")

        r.section("workloads: start and dump")
        big = Workload(self, "big", size)
        little = Workload(self, "small", small)
        self.workloads = (big, little)
        big.start_and_dump()
        little.start_and_dump()
        os.sync()	# no writeback of the images during the measurements

        # each baseline right before what it is compared with: this machine drifts
        r.section("fault-driven touch: uffd_raw, then touches after a lazy restore")
        raw1, raww = self.raw_faults(size)
        touch = {order: self.session(big, True, touch=order) for order in ("seq", "random")}

        r.section("restore time: eager and lazy, interleaved")
        res = {"lazy_big": [], "lazy_small": [], "eager_big": [], "eager_small": []}
        for i in range(reps):
            res["lazy_small"].append(self.session(little, True))
            res["lazy_big"].append(self.session(big, True))
        for i in range(reps):
            res["eager_small"].append(self.session(little, False))
            if i < EAGER_BIG_REPS:	# the slow one, and no target depends on it
                res["eager_big"].append(self.session(big, False, touch="seq" if i == 0 else None))

        r.section("background drain: uffd_raw, then lazy restores with background delivery")
        rawc = self.raw_copy(big)
        drains = [self.session(big, True, background=True, drain=True, touch="seq")
                  for _ in range(max(a.drain_reps, 1))]
        drains = [d for d in drains if d]
        self.ctx.extra.update(raw_fault=raw1, raw_fault_window=raww, raw_copy=rawc,
                              touch=touch, restores=res, drains=drains)

        self.figures(big, little, raw1, raww, rawc, touch, res, drains)

    # -- figures ---------------------------------------------------------------

    def figures(self, big, little, raw1, raww, rawc, touch, res, drains):
        r = self.report
        B, S = human(big.size), human(little.size)

        def median_ms(key):
            v = [x["restore_s"] for x in res[key] if x]
            return (statistics.median(v) * 1000, v) if v else (None, v)

        r.section("restore -d return time (median)")
        t = {}
        for key, label in (("eager_big", f"eager, {B}"), ("lazy_big", f"lazy, {B}"),
                           ("eager_small", f"eager, {S}"), ("lazy_small", f"lazy, {S}")):
            t[key], v = median_ms(key)
            if t[key] is not None:
                r.figure(f"restore_ms_{key}", f"restore time, {label}", t[key], "ms",
                         "runs: " + " ".join(f"{x * 1000:.1f}" for x in v))
        if t["lazy_big"] and t["lazy_small"]:
            r.ratio("restore_growth", f"lazy restore time {B} / {S}",
                    t["lazy_big"] / t["lazy_small"], "<=", RESTORE_GROWTH_MAX)
        if t["lazy_big"] and t["eager_big"]:
            r.ratio("restore_speedup", f"eager / lazy restore time, {B}",
                    t["eager_big"] / t["lazy_big"])

        eager_touch = res["eager_big"][0]["touch"] if res["eager_big"][0] else None
        r.section(f"touch every page once after a lazy restore ({B}, {big.pages:,} pages)")
        for order in ("seq", "random"):
            ses = touch[order]
            if not ses:
                continue
            tr, st = ses["touch"], ses["stats"]
            rate = tr["pages"] / tr["seconds"]
            rawf, rawf_w = raw1["fault"][order], raww["fault"][order]
            r.figure(f"touch_s_{order}", f"{order} touch time", tr["seconds"], "s")
            r.figure(f"touch_pages_s_{order}", f"{order} touch rate", round(rate), "pages/s",
                     f"{st['faults']:,} faults, {st['pages_fault']:,} pages by fault")
            r.figure(f"raw_pages_s_{order}", f"raw per-fault limit, {order} (1 page/fault)",
                     round(rawf["pages_per_s"]), "pages/s")
            r.ratio(f"fault_rate_{order}", f"{order}: touch rate / raw per-fault limit",
                    rate / rawf["pages_per_s"], ">=", FAULT_RATE_MIN)
            # the daemon answers a fault with a window of pages: held to the
            # same 60% against a raw handler that does the same, so the
            # target measures its per-fault cost, not the window's gain
            r.ratio(f"fault_rate_window_{order}",
                    f"{order}: touch rate / raw with {self.window}-page window",
                    rate / rawf_w["pages_per_s"], ">=", FAULT_RATE_MIN, note="like for like")
            r.figure(f"fault_p50_us_{order}", f"{order}: daemon fault latency p50",
                     st["fault_latency_p50_us"], "us",
                     f"raw handler {rawf_w['service_p50_us']:.1f} us (window), "
                     f"{rawf['service_p50_us']:.1f} us (1 page)")
            r.figure(f"fault_p99_us_{order}", f"{order}: daemon fault latency p99",
                     st["fault_latency_p99_us"], "us",
                     f"raw handler {rawf_w['service_p99_us']:.1f} us (window), "
                     f"{rawf['service_p99_us']:.1f} us (1 page)")
            self.check_stats(ses, big, background=False)
        if eager_touch:
            r.figure("touch_s_eager", "seq touch time after an eager restore (reference)",
                     eager_touch["seconds"], "s")

        if drains:
            def rate_of(d):
                return d["stats"]["bytes"] / d["stats"]["duration_s"] / (1 << 20)

            drains = sorted(drains, key=rate_of)
            drain = drains[len(drains) // 2]
            st = drain["stats"]
            r.section(f"background drain ({B}, median of {len(drains)})")
            rate = rate_of(drain)
            wall = st["bytes"] / drain["drain_wall_s"] / (1 << 20)
            r.figure("drain_mib_s", "drain rate, bytes / daemon duration_s", rate, "MiB/s",
                     f"{st['bytes']:,} bytes in {st['duration_s']:.3f} s; runs: "
                     + " ".join(f"{rate_of(d):.0f}" for d in drains))
            r.figure("drain_wall_mib_s", "drain rate, bytes / (daemon exit - restore return)",
                     wall, "MiB/s", f"{drain['drain_wall_s']:.3f} s")
            r.figure("raw_copy_file_mib_s", "raw large-chunk copy from the pages file",
                     rawc["file"]["best_mib_s"], "MiB/s", f"best of {rawc['reps']}")
            r.figure("raw_copy_anon_mib_s", "raw large-chunk copy from anonymous memory",
                     rawc["anon"]["best_mib_s"], "MiB/s", f"best of {rawc['reps']}")
            r.ratio("drain_rate", "drain rate / raw copy (pages file)",
                    rate / rawc["file"]["best_mib_s"], ">=", DRAIN_RATE_MIN)
            r.ratio("drain_rate_anon", "drain rate / raw copy (anonymous source)",
                    rate / rawc["anon"]["best_mib_s"])
            if drain.get("touch"):
                r.figure("touch_s_drained", "seq touch time after the drain (reference)",
                         drain["touch"]["seconds"], "s")
            for d in drains:
                self.check_stats(d, big, background=True)

    def check_stats(self, ses, wl, background):
        """The daemon's counts must add up: these are errors, not misses."""
        st, r = ses["stats"], self.report
        got = st["pages_fault"] + st["pages_background"]
        if got < wl.pages:
            r.error(f"{ses['tag']}: daemon delivered {got} pages, the workload has {wl.pages}")
        if not background and st["pages_background"]:
            r.error(f"{ses['tag']}: {st['pages_background']} pages delivered in the background"
                    " despite --no-background-fetch")


def run_suite(ctx, suite):
    """suite.run(), then its workloads' pages go unless the run is kept: a
    failed run keeps its logs, not gigabytes of pages."""
    try:
        suite.run()
    finally:
        ctx.cleanup_hooks.append(lambda keep: [w.remove_pages() for w in
                                               getattr(suite, "workloads", ()) if not keep])


def run(ctx):
    need_programs(TOOL, WORKLOAD, RAW)
    run_suite(ctx, LazySuite(ctx))
