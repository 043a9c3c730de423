"""What every benchmark suite of scripts/bench shares.

- paths of the tree and of the built programs, and the build itself;
- Procs: every process a suite starts or adopts, ended by pid (never by
  name) when the run ends, whatever happened; the bench is a child
  subreaper, so restored tasks (whose parent, `restore -d`, exits) become
  its children and are reaped like them;
- run(): a command with a timeout and its wall-clock time;
- Report: figures and ratios, printed as they come with their target and
  PASS/MISS, and kept for the JSON summary.  A MISS is a finding, not an
  error: only a broken pipeline (a command failed, a page held the wrong
  data) makes the bench exit non-zero.
"""
import ctypes
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"
TOOL = BUILD / "criu-lazy"
BENCH_BIN = BUILD / "test" / "bench"

PR_SET_CHILD_SUBREAPER = 36


def header_define(header, name, default):
    """The number a #define of one of the tool's headers (a path under the
    tree) gives name, so that a baseline does what the daemon does;
    default if the header or the line is not there."""
    try:
        text = (ROOT / header).read_text()
    except OSError:
        return default
    m = re.search(rf"#define\s+{name}\s+(\d+)", text)
    return int(m.group(1)) if m else default


class BenchError(Exception):
    """The pipeline is broken: the figures of this run cannot be trusted."""


def log(msg):
    print(msg, flush=True)


def build(skip):
    """scripts/setup if it is there (installs what is missing, builds), else scons."""
    if skip:
        return
    setup = ROOT / "scripts" / "setup"
    argv = [str(setup)] if setup.is_file() else ["scons", "-j2", "-Q"]
    log(f"bench: building ({' '.join(argv)})")
    p = subprocess.run(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=1800)
    if p.returncode:
        sys.stdout.write(p.stdout.decode(errors="replace")[-4000:])
        raise BenchError(f"the build failed (exit status {p.returncode})")


def free_port(address):
    """A TCP port of address for a server to bind: the tests' choice
    (test/lib/ports.py: below the ephemeral range, so that no connect()
    takes it before the server binds it, and locked against other runs)."""
    if str(ROOT / "test") not in sys.path:
        sys.path.insert(0, str(ROOT / "test"))
    from lib.ports import free_port as test_port
    return test_port(address)


def need_programs(*paths):
    missing = [str(p) for p in paths if not os.access(p, os.X_OK)]
    if missing:
        raise BenchError("not built: " + ", ".join(missing))


def make_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0):
        err = ctypes.get_errno()
        raise OSError(err, "prctl(PR_SET_CHILD_SUBREAPER): " + os.strerror(err))


def _stat(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    return data[data.rindex(")") + 2:].split()	# fields from 3 (state) on


def start_time(pid):
    st = _stat(pid)
    return int(st[19]) if st else None


def alive(pid):
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def wait_for(cond, timeout, what):
    """Poll cond() until it returns something true; BenchError after timeout s."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise BenchError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.05)


def run(argv, timeout, what, out=None, cwd=None, check=True, cpu=None):
    """Run argv to completion (on cpu if given); (exit status, seconds, output)."""
    argv = [str(a) for a in argv]
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout, cwd=cwd,
                           preexec_fn=pin(cpu))
    except subprocess.TimeoutExpired:
        raise BenchError(f"{what}: did not finish within {timeout} s: {' '.join(argv)}")
    except OSError as e:	# e.g. the binary is being rebuilt
        raise BenchError(f"{what}: cannot run {argv[0]}: {e.strerror}")
    secs = time.monotonic() - t0
    text = p.stdout.decode(errors="replace")
    if out:
        Path(out).write_text(text)
    if check and p.returncode:
        raise BenchError(f"{what}: exit status {p.returncode}: {' '.join(argv)}\n"
                         + text[-2000:].rstrip())
    return p.returncode, secs, text


def pin(cpu):
    """preexec_fn for Popen: run on cpu (None: anywhere)."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


class Procs:
    """The processes of one bench run, ended by pid in end_all()."""

    def __init__(self):
        self._popen = {}	# pid -> Popen: our children
        self._adopted = {}	# pid -> start time: restored tasks
        self._ru = {}		# pid -> its rusage, once reaped

    def spawn(self, argv, out=None, cwd=None, new_session=False, pass_fds=(), cpu=None):
        """Start argv with stdin /dev/null, stdout and stderr to the file out."""
        f = open(out, "ab") if out else subprocess.DEVNULL
        try:
            p = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=f,
                                 stderr=subprocess.STDOUT, cwd=cwd, pass_fds=pass_fds,
                                 start_new_session=new_session, preexec_fn=pin(cpu))
        except OSError as e:
            raise BenchError(f"cannot run {argv[0]}: {e.strerror}")
        finally:
            if out:
                f.close()
        self._popen[p.pid] = p
        return p

    def adopt(self, pid):
        """Own a process we did not start (a restored task)."""
        self._adopted[pid] = start_time(pid)

    def wait(self, pid, timeout):
        """Wait for pid to exit and reap it; returns its exit status (negative:
        killed by that signal), None if it was not our child.  Exact to the
        moment it exits (a pidfd, no polling), so callers can time it."""
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            fd = None		# gone and reaped already
        if fd is not None:
            try:
                ready, _, _ = select.select([fd], [], [], timeout)
            finally:
                os.close(fd)
            if not ready:
                raise BenchError(f"pid {pid} did not exit within {timeout} s")
        p = self._popen.pop(pid, None)
        self._adopted.pop(pid, None)
        try:
            _, status, ru = os.wait4(pid, 0)
        except ChildProcessError:	# reaped already (by Popen.poll)
            return p.returncode if p is not None else None
        code = os.waitstatus_to_exitcode(status)
        self._ru[pid] = ru
        if p is not None:
            p.returncode = code
        return code

    def cpu_s(self, pid):
        """CPU seconds (user + system) a process reaped by wait() used; None
        if unknown."""
        ru = self._ru.get(pid)
        return ru.ru_utime + ru.ru_stime if ru else None

    def majflt(self, pid):
        """Major page faults (pages read from disk) of a process reaped by
        wait(); None if unknown."""
        ru = self._ru.get(pid)
        return ru.ru_majflt if ru else None

    def send(self, pid, sig):
        """Send sig to pid if it is still the process we own."""
        p = self._popen.get(pid)
        if p is not None:
            if p.poll() is None:
                p.send_signal(sig)
            return
        if pid in self._adopted and start_time(pid) == self._adopted[pid]:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, pid, timeout=10, sig=signal.SIGTERM):
        """sig, then SIGKILL if it did not exit within timeout s; reaped."""
        self.send(pid, sig)
        try:
            return self.wait(pid, timeout)
        except BenchError:
            self.send(pid, signal.SIGKILL)
            self.wait(pid, 10)
            raise

    def end_all(self):
        """SIGKILL and reap everything still ours; the pids it had to end."""
        left = []
        for pid in list(self._popen) + list(self._adopted):
            if (pid in self._popen and self._popen[pid].poll() is None) or \
               (pid in self._adopted and alive(pid)):
                left.append(pid)
            try:
                self.send(pid, signal.SIGKILL)
                self.wait(pid, 10)
            except BenchError:
                pass
        return left


def read_ready(fd, timeout, proc, what):
    """Wait for one byte on fd (a --status-fd pipe) from proc."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BenchError(f"{what}: not ready within {timeout} s")
        r, _, _ = select.select([fd], [], [], min(left, 0.1))
        if r:
            if os.read(fd, 1) == b"\0":
                return
            raise BenchError(f"{what}: closed its status fd without saying it is ready"
                             f" (exit status {proc.poll()})")
        if proc.poll() is not None:
            raise BenchError(f"{what}: exited with status {proc.returncode} before it was ready")


class CpuWatch:
    """CPU time that processes other than this bench and its reaped
    children used since start(): other tests on the machine, say.  Busy
    time from /proc/stat minus our own (os.times(), children once reaped),
    so read() it after the phase's processes have been reaped.  Also the
    steal time: a VM's vCPUs that wanted to run while the host ran others."""

    def __init__(self):
        self.t0 = self.busy0 = self.steal0 = self.ours0 = None

    @staticmethod
    def _stat():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        hz = os.sysconf("SC_CLK_TCK")
        # user nice system idle iowait irq softirq steal: busy is all but
        # idle, iowait and steal
        return (sum(v[:7]) - v[3] - v[4]) / hz, v[7] / hz

    @staticmethod
    def _ours():
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def start(self):
        self.t0, self.ours0 = time.monotonic(), self._ours()
        self.busy0, self.steal0 = self._stat()
        return self

    def read(self):
        """{cpu_s, steal_s, wall_s, share, steal_share}: others' CPU seconds,
        and their share of the machine's CPUs over the wall time."""
        wall = time.monotonic() - self.t0
        busy, steal = self._stat()
        other = max(0.0, (busy - self.busy0) - (self._ours() - self.ours0))
        cap = wall * len(os.sched_getaffinity(0)) or 1
        return {"cpu_s": other, "steal_s": steal - self.steal0, "wall_s": wall,
                "share": other / cap, "steal_share": (steal - self.steal0) / cap}


def fmt(v):
    """A figure with as many decimals as its size deserves."""
    if isinstance(v, int) or abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}" if abs(v) >= 1 else f"{v:.4f}"


class Suite:
    """What every suite keeps from the run context, and its CPUs."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.args = ctx.args
        self.procs = ctx.procs
        self.report = ctx.report
        self.workdir = ctx.workdir
        self.nr_sessions = 0
        self.placement = self.args.placement
        self.cpus = sorted(os.sched_getaffinity(0))


class Report:
    """Figures and ratios of one suite, printed as they are measured."""

    def __init__(self, suite):
        self.suite = suite
        self.items = []
        self.errors = []

    def section(self, title):
        log(f"\n== {title}")

    def figure(self, key, label, value, unit, note=""):
        self.items.append({"key": key, "label": label, "value": value, "unit": unit,
                           "note": note})
        shown = fmt(value)
        log(f"  {label:<52} {shown:>14} {unit:<8}{('  ' + note) if note else ''}")
        return value

    def ratio(self, key, label, value, op=None, target=None, note=""):
        """value compared with target by op ('>=' or '<='); no op: informative."""
        if op is None:
            verdict = "info"
            want = ""
        else:
            ok = value >= target if op == ">=" else value <= target
            verdict = "PASS" if ok else "MISS"
            want = f"target {op} {target:g}"
        self.items.append({"key": key, "label": label, "value": value, "target": target,
                           "op": op, "verdict": verdict, "note": note})
        log(f"  {label:<52} {value:>14.3f} {want:<14} {verdict}"
            f"{('  ' + note) if note else ''}")
        return verdict

    def error(self, msg):
        self.errors.append(msg)
        log(f"  ERROR: {msg}")

    def summary(self):
        ratios = [i for i in self.items if i.get("verdict") in ("PASS", "MISS")]
        passed = sum(1 for i in ratios if i["verdict"] == "PASS")
        log(f"\n{self.suite}: {passed} of {len(ratios)} targets met"
            + (f"; {len(self.errors)} error(s)" if self.errors else ""))
        for i in ratios:
            log(f"  {i['verdict']}: {i['label']}: {i['value']:.3f} (target {i['op']} "
                f"{i['target']:g}){('  ' + i['note']) if i.get('note') else ''}")

    def to_json(self, extra):
        return json.dumps({"suite": self.suite, "items": self.items, "errors": self.errors,
                           **extra}, indent=2) + "\n"
