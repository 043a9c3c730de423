"""Running criu-lazy and judging what it says.

Every command runs with a timeout.  A failing command must print exactly
one line on stderr, "<command>: <what failed and why>", and exit with a
positive status (a crash, i.e. death by a signal, is never an acceptable
way to fail).
"""
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from . import paths


@dataclass
class Result:
    argv: list
    rc: int
    stdout: str
    stderr: str
    seconds: float
    log: Path = None

    def describe(self, log_lines=40):
        s = (f"$ {' '.join(map(str, self.argv))}\n"
             f"exit status {self.rc} after {self.seconds:.2f} s\n")
        if self.stdout.strip():
            s += "--- stdout\n" + self.stdout[-4000:]
        if self.stderr.strip():
            s += "--- stderr\n" + self.stderr[-4000:]
        if self.log and Path(self.log).exists():
            lines = Path(self.log).read_text(errors="replace").splitlines()
            s += f"--- last {log_lines} lines of {self.log}\n" + "\n".join(lines[-log_lines:])
        return s


class Tool:
    """The criu-lazy binary; run() never hangs longer than its timeout.

    prefix: a command that runs it somewhere else and then execs it in
    place (e.g. `nsenter --net=...`), so its pid is still the tool's."""

    def __init__(self, binary=paths.TOOL, prefix=()):
        self.binary = Path(binary)
        self.prefix = tuple(str(a) for a in prefix)

    def available(self):
        return self.binary.is_file() and os.access(self.binary, os.X_OK)

    def argv(self, args):
        return [*self.prefix, str(self.binary)] + [str(a) for a in args]

    def run(self, args, timeout, log=None, cwd=None, env=None):
        argv = self.argv(args)
        t0 = time.monotonic()
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=timeout, cwd=cwd, env=env)
        except subprocess.TimeoutExpired as e:
            # subprocess.run has killed and reaped it; its children (if any)
            # were reparented to us and are ended by the process tracker
            raise AssertionError(
                f"$ {' '.join(argv)}\ndid not finish within {timeout} s\n"
                f"--- stderr\n{(e.stderr or b'').decode(errors='replace')[-4000:]}")
        return Result(argv, p.returncode, p.stdout.decode(errors="replace"),
                      p.stderr.decode(errors="replace"), time.monotonic() - t0,
                      Path(log) if log else None)

    def dump(self, pid, imgdir, log, timeout, extra=(), verbosity=4, env=None):
        return self.run(["dump", "-t", pid, "-D", imgdir, f"-v{verbosity}", "-o", log,
                         *extra], timeout, log=log, env=env)

    def restore(self, imgdir, log, timeout, pidfile=None, detached=True, extra=(),
                verbosity=4, env=None):
        args = ["restore", "-D", imgdir, f"-v{verbosity}", "-o", log]
        if detached:
            args.append("-d")
        if pidfile:
            args += ["--pidfile", pidfile]
        return self.run(args + list(extra), timeout, log=log, env=env)


def assert_ok(res, what):
    assert res.rc == 0, f"{what} failed:\n{res.describe()}"


def assert_error_line(res, command, *patterns):
    """res failed cleanly: exit > 0 and exactly one stderr line
    "<command>: ..." matching every regex in patterns (case-insensitive)."""
    assert res.rc != 0, f"{command} was expected to fail but succeeded:\n{res.describe()}"
    assert res.rc > 0, f"{command} crashed (killed by signal {-res.rc}):\n{res.describe()}"
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, (
        f"{command} must print exactly one error line on stderr, it printed "
        f"{len(lines)}:\n{res.describe()}")
    line = lines[0]
    assert line.startswith(f"{command}: "), (
        f"the error line must start with '{command}: ':\n{line}")
    for pat in patterns:
        assert re.search(pat, line, re.IGNORECASE), (
            f"the error line does not name {pat!r}:\n{line}\n{res.describe()}")
    return line
