"""scripts/bench tree: a lazily restored process tree against one process
and against the raw userfaultfd limits of the same machine, in one run.

1. Two workloads, each dumped once: the tree (build/test/bench/tree_workload:
   --size over --procs processes of --threads threads each, 1 GiB over 4
   processes of 4 threads by default) and one single-threaded process with
   the same total memory (build/test/bench/lazy_workload).
2. Restore time: lazy restores (--no-background-fetch) of both,
   interleaved, --reps of each; the ratio of the medians, of the wall
   time (the target) and of the restore's own time (its log's "restored
   in").  Interleaved with them, the floor (build/test/bench/tree_raw): the
   same tree shape brought up with nothing but clone, mmap, userfaultfd
   registration, threads and the uffds handed over, against one process
   of one thread with the same memory.  Among them, five pairs with the
   bench (and so all it starts) confined to one CPU: the tree's own work,
   against the time it takes spread over all of them.
3. Fault-driven touch: the baseline (build/test/bench/uffd_raw --touchers
   N: N toucher threads, one handler, random order; one page per fault and
   the daemon's fault-around window), then a lazy restore of the tree whose
   daemon runs with --no-background-fetch, and all its threads touch every
   page of their process at once, in random order: the tree's pages over
   max(end) - min(start) of the processes' touches.
4. Background drain, --drain-reps pairs: the baseline (uffd_raw: large-chunk
   UFFDIO_COPY of all the tree's pages images, each into a region of its
   own, after one pass that warms the memory and the page cache), then at
   once a lazy restore of the tree with background delivery, timed by the
   daemon until it has sent everything.  Both sides copy the same bytes
   from the same files into memory just freed by the other; each drain is
   held against the raw pass right before it.
Every touch checks the pattern of every page; the daemon's statistics must
add up, per process too.  No pinning by default (--placement free): 16
threads share the CPUs with the daemon.
"""
import contextlib
import json
import os
import random
import re
import signal
import statistics

from . import lazy
from .common import BENCH_BIN, TOOL, BenchError, log, need_programs, wait_for
from .common import run as run_cmd

HELP = "a lazily restored process tree vs one process and the raw userfaultfd limit"
WORKLOAD = BENCH_BIN / "tree_workload"
TREE_RAW = BENCH_BIN / "tree_raw"
TIMEOUT_TOUCH = 600

RESTORE_RATIO_MAX = 1.5
# restores of each shape confined to one CPU, among the others: the tree's
# work against what it takes spread over all the CPUs
ONE_CPU_REPS = 5
FAULT_RATE_MIN = 0.6
DRAIN_RATE_MIN = 0.7


def add_arguments(p):
    p.add_argument("--size", default="1G", help="memory of the tree, in all (default 1G)")
    p.add_argument("--procs", type=int, default=4, help="processes of the tree (default 4)")
    p.add_argument("--threads", type=int, default=4,
                   help="threads of each process, its main thread among them, all touching "
                        "(default 4)")
    p.add_argument("--reps", type=int, default=15,
                   help="lazy restores of each workload for the restore-time medians (default 15: "
                        "the ratio of medians of 5 moved by 0.1 - 0.3 from one run to the next)")
    p.add_argument("--drain-reps", type=int, default=5,
                   help="pairs of a raw copy and a lazy restore of the tree with background"
                        " delivery (default 5)")
    p.add_argument("--placement", choices=("free", "same", "split"), default="free",
                   help="daemon and tasks anywhere (default), or the daemon pinned to one CPU")


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    kids = [int(x) for x in f.read().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


class TreeWorkload(lazy.Workload):
    """One tree_workload tree, dumped once (its processes' pids noted)."""

    def __init__(self, suite, name, size, procs, threads):
        super().__init__(suite, name, size)
        self.nprocs = procs
        self.threads = threads
        self.kids = []

    def start_and_dump(self):
        procs = self.suite.procs
        p = procs.spawn([WORKLOAD, "--size", self.size, "--procs", self.nprocs, "--threads",
                         self.threads, "--pidfile", self.pidfile, "--result", self.result],
                        cwd=self.dir, new_session=True)
        wait_for(lambda: self.pidfile.exists() or p.poll() is not None, lazy.TIMEOUT_START,
                 f"the {self.name} workload to fill {lazy.human(self.size)}")
        if p.poll() is not None:
            raise BenchError(f"the {self.name} workload exited with status {p.returncode}")
        self.pid = int(self.pidfile.read_text())
        self.kids = descendants(self.pid)
        if self.pid != p.pid or len(self.kids) != self.nprocs - 1:
            raise BenchError(f"the {self.name} workload: root {self.pid} (started {p.pid}), "
                             f"children {self.kids}, expected {self.nprocs - 1}")
        _, secs, _ = run_cmd([TOOL, "dump", "-t", self.pid, "-D", self.images,
                              "-o", self.dir / "dump.log", "-v4"], lazy.TIMEOUT_DUMP,
                             f"dump of the {self.name} workload (pid {self.pid})")
        procs.wait(self.pid, 10)
        for kid in self.kids:		# reparented to us (a subreaper) by the kill
            procs.wait(kid, 10)
        log(f"  dumped the {lazy.human(self.size)} tree (pid {self.pid}, {self.nprocs} "
            f"processes of {self.threads} threads) in {secs:.2f} s")

    def results(self):
        return [self.dir / f"{self.result.name}.{i}" for i in range(self.nprocs)]


class TreeSession(lazy.Session):
    """A restore of the tree; its touch is every thread of every process."""

    def touch(self, order):
        wl, procs = self.wl, self.suite.procs
        for f in wl.results():
            if f.exists():
                f.unlink()
        procs.send(self.pid, signal.SIGUSR1)
        wait_for(lambda: all(f.exists() for f in wl.results()) or lazy.not_alive(self.pid),
                 TIMEOUT_TOUCH, f"the touch of {self.tag}")
        res = [json.loads(f.read_text()) for f in wl.results() if f.exists()]
        if len(res) != wl.nprocs:
            raise BenchError(f"{self.tag}: the tree died during its touch")
        bad = [r for r in res if not r.get("ok")]
        if bad:
            raise BenchError(f"{self.tag}: process {bad[0]['proc']}: a page does not hold "
                             f"its pattern (offset {bad[0]['bad_offset']})")
        pages = sum(r["pages"] for r in res)
        secs = (max(r["t1_ns"] for r in res) - min(r["t0_ns"] for r in res)) / 1e9
        return {"pages": pages, "seconds": secs, "procs": res}

    def abort(self):
        kids = descendants(self.pid) if self.pid else []
        super().abort()
        for kid in kids:
            try:
                os.kill(kid, signal.SIGKILL)
                self.suite.procs.wait(kid, 10)
            except (OSError, BenchError):
                pass


@contextlib.contextmanager
def one_cpu(cpu):
    """This process (and all it starts meanwhile) on @cpu alone."""
    mask = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, mask)


def ratio_interval(tree, single, rounds=2000):
    """The 10th and 90th percentiles of median(tree) / median(single) over
    resamples of both lists (with replacement, a fixed seed): the spread
    one run's noise gives its ratio of medians."""
    rng = random.Random(8)
    v = sorted(statistics.median(rng.choices(tree, k=len(tree))) /
               statistics.median(rng.choices(single, k=len(single))) for _ in range(rounds))
    return v[rounds // 10], v[rounds * 9 // 10]


class TreeSuite(lazy.LazySuite):
    def new_session(self, wl, lazy_, background):
        cls = TreeSession if isinstance(wl, TreeWorkload) else lazy.Session
        self.last_session = cls(self, wl, lazy_, background)
        return self.last_session

    def run(self):
        a, r = self.args, self.report
        size = lazy.parse_size(a.size)
        touchers = a.procs * a.threads
        log(f"tree: {lazy.human(size)} over {a.procs} processes of {a.threads} threads, "
            f"placement {self.placement}, daemon fault window {self.window} pages, "
            f"work dir {self.workdir}")
        r.section("workloads: start and dump")
        tree = TreeWorkload(self, "tree", size, a.procs, a.threads)
        single = lazy.Workload(self, "single", size)
        self.workloads = (tree, single)
        tree.start_and_dump()
        single.start_and_dump()
        os.sync()

        r.section("restore time: lazy restores of the tree and of one process, interleaved, "
                  "and the raw floor of each shape")
        res = {"tree": [], "single": [], "raw_tree": [], "raw_single": [], "tree_1cpu": [],
               "single_1cpu": []}
        reps, cpus = max(a.reps, 1), sorted(os.sched_getaffinity(0))
        for i in range(reps):
            res["raw_tree"].append(self.tree_raw(size, a.procs, a.threads))
            res["tree"].append(self.session(tree, True))
            res["raw_single"].append(self.tree_raw(size, 1, 1))
            res["single"].append(self.session(single, True))
            if len(cpus) > 1 and i % max(reps // ONE_CPU_REPS, 1) == 0:
                with one_cpu(cpus[0]):
                    res["tree_1cpu"].append(self.session(tree, True))
                    res["single_1cpu"].append(self.session(single, True))
        for key, wl in (("tree", tree), ("single", single), ("tree_1cpu", tree),
                        ("single_1cpu", single)):
            for x in res[key]:
                if x:
                    x["internal_s"] = self.restored_in(wl, x["tag"])

        r.section(f"fault-driven touch: uffd_raw with {touchers} touchers, then the tree")
        raw1 = self.raw(f"{touchers} touchers, 1 page per fault",
                        ["--mode", "fault", "--order", "random", "--size", size,
                         "--touchers", touchers])
        raww = self.raw(f"{touchers} touchers, {self.window} pages per fault",
                        ["--mode", "fault", "--order", "random", "--size", size,
                         "--touchers", touchers, "--window", self.window])
        touch = self.session(tree, True, touch="random")

        r.section("background drain: pairs of a raw copy of the tree's pages files and a lazy "
                  "restore of the tree with background delivery")
        rawc = self.raw_copy_files(tree, "anon", 3)
        drains = [d for d in (self.drain_pair(tree) for _ in range(max(a.drain_reps, 1))) if d]
        self.ctx.extra.update(restores=res, raw_fault=raw1, raw_fault_window=raww,
                              touch=touch, raw_copy_anon=rawc, drains=drains)
        self.tree_figures(tree, res, raw1, raww, touch, rawc, drains, touchers)

    def raw_copy_files(self, wl, source, reps):
        """uffd_raw's large-chunk copies of every pages file of wl (file: from
        the files, anon: from as much anonymous memory), after its warm-up."""
        files = sorted(wl.images.glob("pages-*.img"))
        if not files:
            raise BenchError(f"no pages-*.img in {wl.images}")
        c = self.raw(f"large copies from {source}",
                     ["--mode", "copy", "--copy-file", ",".join(str(f) for f in files),
                      "--source", source, "--reps", reps])["copy"]
        log(f"  raw copy of {c['bytes']:,} bytes ({len(files)} pages files) from {source}:"
            f" {' '.join(f'{x:.0f}' for x in c[source]['runs_mib_s'])} MiB/s")
        return c

    def drain_pair(self, wl):
        """A raw copy of wl's pages files, then at once a drain of wl: the
        same bytes from the same page cache into memory the other just freed."""
        raw = self.raw_copy_files(wl, "file", 1)
        d = self.session(wl, True, background=True, drain=True)
        if d:
            d["raw_mib_s"] = raw["file"]["runs_mib_s"][0]
            d["raw_cpu_s"] = raw["file"]["cpu_runs_s"][0]
            d["raw_bytes"] = raw["bytes"]
            d["daemon_cpu_s"] = d["stats"].get("cpu_after_restore_s")
            d["daemon_majflt"] = self.procs.majflt(self.last_session.daemon.pid)
        return d

    def tree_raw(self, size, procs, threads):
        """The raw bring-up time of one tree shape (median of 3), in s."""
        _, _, out = run_cmd([TREE_RAW, "--size", size, "--procs", procs, "--threads", threads,
                             "--reps", 3], 60, f"tree_raw ({procs} x {threads})")
        try:
            return json.loads(out)["median_us"] / 1e6
        except (ValueError, KeyError) as e:
            raise BenchError(f"tree_raw: not its JSON ({e}):\n{out[-2000:]}")

    @staticmethod
    def restored_in(wl, tag):
        """The restore's own time, from its log (without exec and exit)."""
        try:
            m = re.search(r"task\(s\) restored in (\d+) us",
                          (wl.dir / f"restore-{tag}.log").read_text())
        except OSError:
            return None
        return int(m.group(1)) / 1e6 if m else None

    def tree_figures(self, tree, res, raw1, raww, touch, rawc, drains, touchers):
        r, S = self.report, lazy.human(tree.size)
        r.section("lazy restore -d return time (median)")
        med, runs = {}, {}
        for key, label in (("tree", f"tree of {tree.nprocs} processes, {S}"),
                           ("single", f"one process, {S}")):
            v = runs[key] = [x["restore_s"] for x in res[key] if x]
            if v:
                med[key] = statistics.median(v) * 1000
                r.figure(f"restore_ms_{key}", f"lazy restore time, {label}", med[key], "ms",
                         "runs: " + " ".join(f"{x * 1000:.1f}" for x in v))
        if len(med) == 2:
            r.ratio("restore_tree_ratio", "lazy restore time, tree / one process",
                    med["tree"] / med["single"], "<=", RESTORE_RATIO_MAX,
                    note=f"{med['tree']:.1f} / {med['single']:.1f} ms")
            lo, hi = ratio_interval(runs["tree"], runs["single"])
            r.ratio("restore_tree_ratio_p10", "the same, 10th percentile of the resampled runs",
                    lo, note="bootstrap: how far the noise of this run moves the ratio")
            r.ratio("restore_tree_ratio_p90", "the same, 90th percentile of the resampled runs",
                    hi)
        inner = self.own_time_figures(res, "", "restore's own time ({}, its log)")
        if len(inner) == 2:
            r.ratio("restore_tree_ratio_internal", "restore's own time, tree / one process",
                    inner["tree"] / inner["single"])
        self.one_cpu_figures(res, med, inner)
        raw = {k: statistics.median(res[f"raw_{k}"]) * 1000 for k in ("tree", "single")
               if res.get(f"raw_{k}")}
        if len(raw) == 2:
            r.figure("raw_bringup_ms_tree", f"raw bring-up, {tree.nprocs} processes of "
                     f"{tree.threads} threads", raw["tree"], "ms",
                     "clone, mmap, uffd, threads, uffd handover; medians")
            r.figure("raw_bringup_ms_single", "raw bring-up, one process of one thread",
                     raw["single"], "ms")
            r.ratio("raw_tree_ratio", "raw bring-up, tree / one process (the kernel's floor)",
                    raw["tree"] / raw["single"])
            if len(med) == 2:
                # what the tree's shape costs us over one process, and what
                # it costs the kernel: the ratio if ours were only the latter
                r.figure("restore_tree_extra_ms", "tree's restore - one process's",
                         med["tree"] - med["single"], "ms",
                         f"the kernel's floor: {raw['tree'] - raw['single']:.1f} ms")
                r.ratio("restore_tree_ratio_bound", "lazy restore time, tree / one process, "
                        "if the tree cost only the floor more",
                        (med["single"] + raw["tree"] - raw["single"]) / med["single"])

        if touch:
            tr, st = touch["touch"], touch["stats"]
            rate = tr["pages"] / tr["seconds"]
            r.section(f"{touchers} threads touching every page at once, random ({S})")
            r.figure("touch_s", "touch time of the tree", tr["seconds"], "s")
            r.figure("touch_pages_s", "touch rate of the tree", round(rate), "pages/s",
                     f"{st['faults']:,} faults, {st['pages_fault']:,} pages by fault")
            for raw, key, label, note in (
                    (raw1, "fault_rate", "1 page per fault", ""),
                    (raww, "fault_rate_window", f"{self.window}-page window", "like for like")):
                f = raw["fault"]["random"]
                r.figure(f"raw_pages_s_{key}", f"raw limit, {touchers} touchers, {label}",
                         round(f["pages_per_s"]), "pages/s",
                         f"round trip p50 {f['rtt_p50_us']:.0f} us")
                r.ratio(key, f"touch rate / raw ({label})", rate / f["pages_per_s"], ">=",
                        FAULT_RATE_MIN, note=note)
            self.check_tree_stats(touch, tree, background=False)

        if drains:
            self.drain_figures(tree, rawc, drains)

    def own_time_figures(self, res, suffix, label):
        """Each shape's median own time (its log's "restored in") over the
        restores res[shape + suffix], in ms, and a figure of it."""
        out = {}
        for key in ("tree", "single"):
            v = [x["internal_s"] for x in res[key + suffix] if x and x.get("internal_s")]
            if v:
                out[key] = statistics.median(v) * 1000
                self.report.figure(f"restore_internal_ms_{key}{suffix}", label.format(key),
                                   out[key], "ms",
                                   "runs: " + " ".join(f"{x * 1000:.1f}" for x in v))
        return out

    def one_cpu_figures(self, res, med, inner):
        """The restores confined to one CPU: how much the tree's own time
        gains from the others, and the ratio if its work split evenly over
        them (no less than one process's own time: the chain every restore
        walks).  What the tree's time owes to its work, what to its spread."""
        r, ncpu = self.report, len(os.sched_getaffinity(0))
        one = self.own_time_figures(res, "_1cpu", "restore's own time ({}), all on one CPU")
        if len(one) < 2 or len(inner) < 2 or len(med) < 2:
            return
        r.ratio("restore_tree_speedup", f"the tree's own time, one CPU / {ncpu} CPUs",
                one["tree"] / inner["tree"], note=f"{ncpu} at best")
        split = max(one["tree"] / ncpu, inner["single"])
        r.ratio("restore_tree_ratio_split", "lazy restore time, tree / one process, if the "
                "tree's own work split evenly over the CPUs",
                (med["tree"] - inner["tree"] + split) / med["single"])

    def drain_figures(self, tree, rawc, drains):
        """Each drain against the raw copy right before it; runs in their order."""
        r, S = self.report, lazy.human(tree.size)

        # background delivery starts when the restore has finished: the
        # daemon's duration_s also holds the restore of four processes
        def rate_of(d):
            st = d["stats"]
            return st["bytes"] / (st["duration_s"] - st["restore_finished_s"]) / (1 << 20)

        def med(v):
            return statistics.median(v)

        rates = [rate_of(d) for d in drains]
        raws = [d["raw_mib_s"] for d in drains]
        ratios = [x / y for x, y in zip(rates, raws)]
        mid = sorted(drains, key=rate_of)[len(drains) // 2]
        r.section(f"background drain of the tree ({S}), {len(drains)} pairs: a raw copy of the "
                  "same pages files, then the drain")
        r.figure("drain_mib_s", "drain rate, bytes / (daemon end - restore finished)",
                 med(rates), "MiB/s", "median; runs: " + " ".join(f"{x:.0f}" for x in rates))
        r.figure("drain_whole_mib_s", "drain rate, bytes / daemon duration_s",
                 mid["stats"]["bytes"] / mid["stats"]["duration_s"] / (1 << 20), "MiB/s",
                 f"restore finished at {mid['stats']['restore_finished_s']:.3f} s")
        r.figure("raw_copy_file_mib_s", "raw large-chunk copy of the same pages files",
                 med(raws), "MiB/s", f"median, {mid['raw_bytes']:,} bytes; runs: "
                 + " ".join(f"{x:.0f}" for x in raws))
        r.ratio("drain_rate", "drain rate / raw copy right before it", med(ratios), ">=",
                DRAIN_RATE_MIN, note="median of the pairs: "
                + " ".join(f"{x:.2f}" for x in ratios))
        r.ratio("drain_rate_medians", "drain rate / raw copy, medians", med(rates) / med(raws))
        r.ratio("drain_rate_best", "drain rate / raw copy, best of each", max(rates) / max(raws))
        r.ratio("drain_rate_anon", "drain rate / raw copy from anonymous memory (best)",
                med(rates) / rawc["anon"]["best_mib_s"])
        # CPU time tells a slower drain from one that got less of the CPUs
        cpu = [d for d in drains if d.get("daemon_cpu_s")]
        if cpu:
            def per_gib(secs, nbytes):
                return secs / (nbytes / (1 << 30))

            daemon = med([per_gib(d["daemon_cpu_s"], d["stats"]["bytes"]) for d in cpu])
            raw = med([per_gib(d["raw_cpu_s"], d["raw_bytes"]) for d in cpu])
            share = [d["daemon_cpu_s"] / (d["stats"]["duration_s"] -
                                          d["stats"]["restore_finished_s"]) for d in cpu]
            raw_share = [d["raw_cpu_s"] / (d["raw_bytes"] / (1 << 20) / d["raw_mib_s"])
                         for d in cpu]
            r.figure("drain_cpu_s_per_gib", "daemon's CPU per GiB, from the restore's end",
                     daemon, "s", f"raw copy's {raw:.3f} s (medians)")
            r.ratio("drain_cpu_ratio", "raw copy's CPU per GiB / the daemon's", raw / daemon,
                    note="share of a CPU, daemon: " + " ".join(f"{x:.2f}" for x in share)
                    + "; raw: " + " ".join(f"{x:.2f}" for x in raw_share))
            r.figure("drain_majflt", "pages files read from disk while draining",
                     sum(d["daemon_majflt"] or 0 for d in cpu), "faults",
                     "major faults of the daemons: "
                     + " ".join(str(d["daemon_majflt"]) for d in cpu))
        for d in drains:
            self.check_tree_stats(d, tree, background=True)

    def check_tree_stats(self, ses, wl, background):
        """Counts that must add up, for the tree and for each process."""
        self.check_stats(ses, wl, background)
        st = ses["stats"]
        for p in st.get("processes", []):
            done = p["pages_fault"] + p["pages_background"] + p["pages_dropped_event"] + \
                p["pages_dropped_exit"] + p["pages_lost"]
            if p["pages_lazy"] + p["pages_inherited"] != done:
                self.report.error(f"{ses['tag']}: process {p['pid']}: {p['pages_lazy']} lazy "
                                  f"+ {p['pages_inherited']} inherited != {done} accounted")
        if len(st.get("processes", [])) != wl.nprocs:
            self.report.error(f"{ses['tag']}: statistics of {len(st.get('processes', []))} "
                              f"processes, the tree has {wl.nprocs}")


def run(ctx):
    need_programs(TOOL, WORKLOAD, TREE_RAW, lazy.WORKLOAD, lazy.RAW)
    lazy.run_suite(ctx, TreeSuite(ctx))
