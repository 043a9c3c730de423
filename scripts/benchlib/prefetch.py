"""scripts/bench prefetch: a function's cold start from its recorded working set.

The workload (build/test/bench/function_workload) holds --size of memory
(1 GiB); on SIGUSR1 it reads a fixed, scattered tenth of its pages in a
fixed pseudo-random order and sums them (the checksum), then checks every
page it read.  The figure of a restore is the time from the start of
`restore` to the checksum (CLOCK_MONOTONIC, the workload's own reading).
The signal goes the moment `restore` returns.

Compared in one run, each the median of --reps restores of the same images,
interleaved:
  eager            restore without --lazy-pages
  lazy             lazy-pages --no-working-set (no record: every page the
                   function reads is a fault), background delivery on
  lazy+ws          lazy-pages with the working set recorded by --record-runs
                   earlier lazy restores with --no-background-fetch (with
                   background delivery on, the pages it delivers before the
                   function reads them are never faults, so never recorded;
                   and a fault-around window delivers neighbours of a
                   faulting page that are then not recorded either, so the
                   second recording adds what the first missed)
  remote, remote+ws  the same two over a page server on the images
Targets: lazy / lazy+ws >= 3, eager / lazy+ws >= 1, remote / remote+ws >= 3.
The bound, measured in the same run: a restore and then the function with
every page already there (the eager restore's call, signal to checksum:
the first touch of each page, which in a VM with shadow page tables is a
trap to the hypervisor, is all it pays).  lazy / bound is the best ratio a
prefetch could reach here; bound / lazy+ws says how close it comes.

The same comparison for shared memory (--shared-size, default --size; 0
skips it): the workload with --shared maps its memory MAP_SHARED |
MAP_ANONYMOUS and forks a worker, and each call's pages are read half by
each process at the same time; its working set is recorded, and its
ratios printed, the same way (the targets are the private workload's,
shown for comparison, not asked of this one by the issue).  A fault on
shared memory fills its whole 16-page fault-around window into the object,
and the record names each window once: the prefetch installs whole
windows too, most of the object for a tenth of its pages read scattered.

Also measured (issue 11, point 1): the refinement rule of the record, union
(the daemon's) against newest (CRIU_LAZY_WS_MERGE=newest: only the last
restore's faults), over four restores from no record at all (with
--no-background-fetch: every page the function reads is prefetched or a
fault, and the record sees every fault), of the same
function (variants 0 0 0 0) and of one whose input changes (0 1 0 1:
variant 1 reads half of variant 0's pages and half new ones); the figure is
the mean of the last two restores.
"""
import json
import os
import shutil
import signal
import statistics
import time

from .common import (BENCH_BIN, TOOL, BenchError, CpuWatch, Suite, free_port, log,
                     need_programs, read_ready, wait_for)
from .common import run as run_cmd
from .lazy import human, not_alive, parse_size

HELP = "a function's cold start: eager, lazy, lazy with its working set (local, remote)"

WORKLOAD = BENCH_BIN / "function_workload"
TOUCH_RAW = BENCH_BIN / "touch_raw"
ADDRESS = "127.0.0.1"
TIMEOUT_START = 120
TIMEOUT_DUMP = 300
TIMEOUT_RESTORE = 120
TIMEOUT_READY = 30
TIMEOUT_CALL = 120
TIMEOUT_EXIT = 120
TIMEOUT_TOUCH = 300
WS = "working-set"


def add_arguments(p):
    p.add_argument("--size", default="1G", help="memory of the workload (default 1G)")
    p.add_argument("--reps", type=int, default=3, help="restores per mode (median; default 3)")
    p.add_argument("--record-runs", type=int, default=3,
                   help="lazy restores that record the working set first (default 3)")
    p.add_argument("--placement", choices=("free",), default="free",
                   help="CPUs: anywhere (the function and the daemon share the machine)")
    p.add_argument("--no-merge", action="store_true",
                   help="skip the union-against-newest measurement")
    p.add_argument("--shared-size", default=None,
                   help="shared memory of the second workload (default --size; 0: skip it)")


def installed(st):
    """When the working set was in, after the restore finished, and the
    faults meanwhile (the daemon's statistics), or nothing without one."""
    if not st.get("working_set_installed_s"):
        return ""
    return (f", installed {st['working_set_installed_s'] - st['restore_finished_s']:.3f} s "
            f"after the restore ({st['faults_installing']:,} faults meanwhile)")


class PrefetchSuite(Suite):
    def __init__(self, ctx, shared=False):
        super().__init__(ctx)
        self.shared = shared
        self.prefix = "shm_" if shared else ""
        self.size = parse_size(self.args.size if not shared or self.args.shared_size is None
                               else self.args.shared_size)
        self.dir = self.workdir / ("function-shared" if shared else "function")
        self.images = self.dir / "images"
        self.pidfile = self.dir / "workload.pid"
        self.result = self.dir / "call.json"
        self.variant_file = self.dir / "variant"
        self.recorded = self.dir / "working-set.recorded"
        self.pid = None
        self.n = 0

    # -- processes --------------------------------------------------------------

    def start_and_dump(self):
        self.images.mkdir(parents=True)
        p = self.procs.spawn([WORKLOAD, "--size", self.size, "--pidfile", self.pidfile,
                              "--result", self.result, "--variant-file", self.variant_file,
                              *(["--shared"] if self.shared else [])],
                             cwd=self.dir, new_session=True)
        wait_for(lambda: self.pidfile.exists() or p.poll() is not None, TIMEOUT_START,
                 f"the workload to fill {human(self.size)}")
        if p.poll() is not None:
            raise BenchError(f"the workload exited with status {p.returncode}")
        self.pid = p.pid
        with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
            workers = [int(w) for w in f.read().split()]	# --shared: its worker
        _, secs, _ = run_cmd([TOOL, "dump", "-t", self.pid, "-D", self.images,
                          "-o", self.dir / "dump.log", "-v4"], TIMEOUT_DUMP, "dump")
        self.procs.wait(self.pid, 10)
        # the dump killed the worker too; reaped here (we are the subreaper),
        # or its zombie keeps the pid of its session, which the restore needs
        for w in workers:
            self.procs.adopt(w)
            self.procs.wait(w, 10)
        log(f"  dumped the {human(self.size)} {'shared ' if self.shared else ''}workload "
            f"(pid {self.pid}) in {secs:.2f} s")

    def spawn_ready(self, argv, what, tag, env=None):
        r, w = os.pipe()
        old = {k: os.environ.get(k) for k in (env or {})}
        try:
            os.environ.update(env or {})
            p = self.procs.spawn([*argv, "--status-fd", w], out=self.dir / f"{tag}.out",
                                 new_session=True, pass_fds=(w,))
            os.close(w)
            w = -1
            read_ready(r, TIMEOUT_READY, p, what)
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            os.close(r)
            if w >= 0:
                os.close(w)
        return p

    def call(self, mode, variant=0, ws=False, remote=False, merge=None, background=True):
        """One restore of the images and one call of the function: the seconds
        from the start of the restore to the checksum, and the daemon's stats."""
        self.n += 1
        tag = f"{self.n}-{mode}"
        stats = self.images / "lazy-pages-stats.json"
        for f in (stats, self.result):
            if f.exists():
                f.unlink()
        self.variant_file.write_text(f"{variant}\n")
        server = daemon = None
        lazy = mode != "eager"
        if remote:
            port = free_port(ADDRESS)
            server = self.spawn_ready(
                [TOOL, "page-server", "-D", self.images, "--address", ADDRESS, "--port", port,
                 "--lazy-pages", "-o", self.dir / f"page-server-{tag}.log", "-v2"],
                f"page server {tag}", f"page-server-{tag}")
        if lazy:
            argv = [TOOL, "lazy-pages", "-D", self.images, "-o",
                    self.dir / f"lazy-pages-{tag}.log", "-v4"]
            if remote:
                argv += ["--page-server", "--address", ADDRESS, "--port", port]
            if not ws:
                argv.append("--no-working-set")
            if not background:
                argv.append("--no-background-fetch")
            daemon = self.spawn_ready(argv, f"lazy-pages {tag}", f"lazy-pages-{tag}",
                                      {"CRIU_LAZY_WS_MERGE": merge} if merge else None)
        pidfile = self.dir / f"restore-{tag}.pid"
        argv = [TOOL, "restore", "-D", self.images, "-d", "--pidfile", pidfile,
                "-o", self.dir / f"restore-{tag}.log", "-v4"]
        if lazy:
            argv.append("--lazy-pages")
        t0 = time.monotonic()
        _, restore_s, _ = run_cmd(argv, TIMEOUT_RESTORE, f"restore {tag}")
        pid = int(pidfile.read_text())
        self.procs.adopt(pid)
        t_signal = time.monotonic()
        self.procs.send(pid, signal.SIGUSR1)
        wait_for(lambda: self.result.exists() or not_alive(pid), TIMEOUT_CALL,
                 f"the call of {tag}")
        if not self.result.exists():
            raise BenchError(f"{tag}: the restored workload died in its call")
        res = json.loads(self.result.read_text())
        if not res.get("ok"):
            raise BenchError(f"{tag}: {res.get('error', 'the call failed')}")
        figure = res["done_ns"] / 1e9 - t0
        rc = self.procs.stop(pid)
        if rc not in (0, None):
            raise BenchError(f"{tag}: the restored workload exited with status {rc}")
        st = None
        if daemon:
            rc = self.procs.wait(daemon.pid, TIMEOUT_EXIT)
            if rc:
                raise BenchError(f"lazy-pages {tag} exited with status {rc} "
                                 f"(see {self.dir}/lazy-pages-{tag}.log)")
            st = json.loads(stats.read_text())
        if server:
            rc = self.procs.wait(server.pid, TIMEOUT_EXIT)
            if rc:
                raise BenchError(f"page server {tag} exited with status {rc}")
        extra = ""
        if st:
            extra = (f", {st['faults']:,} faults, {st['pages_prefetched']:,} prefetched, "
                     f"{st['faults_avoided']:,} faults avoided{installed(st)}")
        log(f"    {tag}: {figure:.3f} s (restore {restore_s:.3f} s{extra})")
        return {"s": figure, "restore_s": restore_s, "call_s": res["done_ns"] / 1e9 - t_signal,
                "stats": st}

    # -- the comparison -----------------------------------------------------------

    def record(self):
        ws = self.images / WS
        if ws.exists():
            ws.unlink()
        for _ in range(self.args.record_runs):
            self.call("record", ws=True, background=False)
        if not ws.exists():
            raise BenchError("the recording restores wrote no working set")
        shutil.copyfile(ws, self.recorded)

    def use_record(self):
        shutil.copyfile(self.recorded, self.images / WS)

    def compare(self):
        r, x = self.report, self.prefix
        what = "on shared memory, two processes reading" if self.shared else "reading"
        sh = " (shared)" if self.shared else ""
        modes = {
            "eager": dict(mode="eager"),
            "lazy": dict(mode="lazy"),
            "lazy+ws": dict(mode="lazy+ws", ws=True),
            "remote": dict(mode="remote", remote=True),
            "remote+ws": dict(mode="remote+ws", ws=True, remote=True),
        }
        runs = {k: [] for k in modes}
        touches = []
        watch = CpuWatch().start()
        for rep in range(self.args.reps):
            log(f"  round {rep + 1} of {self.args.reps}")
            for k, kw in modes.items():
                if kw.get("ws"):
                    self.use_record()
                runs[k].append(self.call(**kw))
            if not self.shared:
                touches.append(self.touch_raw())
        med = {k: statistics.median(c["s"] for c in v) for k, v in runs.items()}
        others = watch.read()
        r.section(f"cold start of a function {what} 10% of {human(self.size)}, "
                  f"median of {self.args.reps}")
        r.figure(f"{x}others_cpu_share", "CPU the rest of the machine took meanwhile",
                 100 * others["share"], "%", f"steal {100 * others['steal_share']:.0f}%, "
                 f"load average {os.getloadavg()[0]:.1f}")
        for k in modes:
            st = runs[k][-1]["stats"]
            note = ""
            if st:
                note = (f"{st['faults']:,} faults, {st['pages_prefetched']:,} prefetched, "
                        f"{st['prefetch_hits']:,} hits, {st['prefetch_filled']:,} filled, "
                        f"{st['faults_avoided']:,} avoided{installed(st)}")
            r.figure(f"{x}{k}_s", f"restore to checksum: {k}", med[k], "s", note)
        r.ratio(f"{x}lazy_over_ws", f"lazy / lazy+ws{sh}", med["lazy"] / med["lazy+ws"],
                ">=", 3)
        r.ratio(f"{x}eager_over_ws", f"eager / lazy+ws{sh}", med["eager"] / med["lazy+ws"],
                ">=", 1)
        r.ratio(f"{x}remote_over_ws", f"remote / remote+ws{sh}",
                med["remote"] / med["remote+ws"], ">=", 3)
        r.ratio(f"{x}eager_over_remote_ws", f"eager / remote+ws{sh}",
                med["eager"] / med["remote+ws"])

        # The bound: the restore, then the function with every page of the
        # image already in place (the eager restore's call: the first touch
        # of each page is all it pays).  No prefetch can do better.
        r.section("the bound on this machine: restore + the function with every page there")
        call = statistics.median(c["call_s"] for c in runs["eager"])
        r.figure(f"{x}function_s", "the function alone (eager restore, signal to checksum)",
                 call, "s")
        for k, base in (("lazy+ws", "lazy"), ("remote+ws", "remote")):
            bound = statistics.median(c["restore_s"] for c in runs[k]) + call
            r.figure(f"{x}bound_{k}_s", f"bound for {k}: its restore + the function", bound,
                     "s")
            r.ratio(f"{x}bound_{base}_over", f"{base} / bound: the best ratio possible here{sh}",
                    med[base] / bound)
            r.ratio(f"{x}bound_{k}_close", f"bound / {k}: how close {k} comes{sh}",
                    bound / med[k])
        self.ctx.extra[f"{x}runs"] = runs
        if self.shared:
            return

        # The floor under the bound: the same reads in a process of our own,
        # by who put the pages there (test/bench/touch_raw.c).
        r.section("the function's reads alone, by who put the pages there (touch_raw)")
        t = {k: statistics.median(x[k] for x in touches)
             for k in ("self_s", "uffd_s", "uffd_bg_s")}
        us = 1e6 / touches[0]["pages"]
        r.figure("touch_self_s", "written by the process itself", t["self_s"], "s",
                 f"{t['self_s'] * us:.1f} us a page")
        r.figure("touch_uffd_s", "copied in by UFFDIO_COPY before the reads", t["uffd_s"], "s",
                 f"{t['uffd_s'] * us:.1f} us a page")
        r.figure("touch_uffd_bg_s", "the same, other pages copied in meanwhile", t["uffd_bg_s"],
                 "s", f"{t['uffd_bg_s'] * us:.1f} us a page")
        r.ratio("touch_uffd_over_self", "installed / self-written: the first-touch cost",
                t["uffd_s"] / t["self_s"])
        r.ratio("touch_bg_over_uffd", "with copies beside / without", t["uffd_bg_s"] / t["uffd_s"])
        self.ctx.extra["touches"] = touches

    def touch_raw(self):
        _, _, out = run_cmd([TOUCH_RAW, "--size", self.size], TIMEOUT_TOUCH, "touch_raw")
        try:
            res = json.loads(out)
        except ValueError as e:
            raise BenchError(f"touch_raw: not JSON ({e}):\n{out[-2000:]}")
        log(f"    touch_raw: self {res['self_s']:.3f} s, installed {res['uffd_s']:.3f} s, "
            f"with copies beside {res['uffd_bg_s']:.3f} s")
        return res

    def merge_rules(self):
        """Union against newest, four restores from no record each."""
        r = self.report
        r.section("refinement of the record: union (ours) against newest")
        out = {}
        for name, variants in (("same", (0, 0, 0, 0)), ("changing", (0, 1, 0, 1))):
            for rule in ("union", "newest"):
                ws = self.images / WS
                if ws.exists():
                    ws.unlink()
                calls = [self.call(f"{rule}-{name}", variant=v, ws=True, merge=rule,
                                   background=False) for v in variants]
                last = calls[-2:]
                secs = statistics.mean(c["s"] for c in last)
                faults = statistics.mean(c["stats"]["faults"] for c in last)
                out[f"{rule}-{name}"] = {"s": secs, "faults": faults}
                r.figure(f"merge_{rule}_{name}_s", f"{rule}, {name} function: last two",
                         secs, "s", f"{faults:,.0f} faults")
            r.ratio(f"merge_{name}", f"newest / union, {name} function",
                    out[f"newest-{name}"]["s"] / out[f"union-{name}"]["s"])
        self.ctx.extra["merge"] = out


def run(ctx):
    skip_shared = ctx.args.shared_size is not None and ctx.args.shared_size.strip() == "0"
    if ctx.args.shared_size is not None and not skip_shared:
        parse_size(ctx.args.shared_size)	# a bad size fails now, not after the first part
    s = PrefetchSuite(ctx)
    need_programs(TOOL, WORKLOAD, TOUCH_RAW)
    log(f"prefetch: a {human(s.size)} function, {s.args.reps} round(s)")
    s.start_and_dump()
    s.record()
    s.compare()
    if not s.args.no_merge:
        s.merge_rules()
    if skip_shared:
        return
    sh = PrefetchSuite(ctx, shared=True)
    log(f"prefetch: a {human(sh.size)} function on shared memory, two processes, "
        f"{sh.args.reps} round(s)")
    sh.start_and_dump()
    sh.record()
    sh.compare()

