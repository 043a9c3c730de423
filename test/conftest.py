"""Fixtures of the criu-lazy test suite.

- pytest becomes a child subreaper, so restored tasks (whose parent,
  `criu-lazy restore -d`, exits) are reparented to it and can be reaped.
- `procs`   a ProcessTracker: every process a test starts or adopts is
            killed and reaped by pid when the test ends, whatever happened.
- `workdir` the test's own directory (pytest's tmp_path); on failure every
            log in it (tool logs, program output, outfile) is shown.
- `tool`    build/criu-lazy.
- `zdtm`    zdtm(spec) starts a zdtm program there and waits until it is ready
            (zdtm(spec, pid_ns=True): as the init of a new pid namespace).
- `mode`    a Mode (test/lib/modes.py), one test per selected mode:
            `--modes eager,lazy` (default: every mode in MODES).
- `thp_as_host` the host's THP knobs left as the host has them for the
            test: no run of any checkout changes them meanwhile (lib/thp.py).
"""
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lib import modes as modes_mod  # noqa: E402
from lib import procs as procs_mod  # noqa: E402
from lib import thp  # noqa: E402
from lib.tool import Tool  # noqa: E402
from lib.zdtm import ZdtmTask  # noqa: E402
from lib.zdtm_catalogue import missing_cpu_flags  # noqa: E402

LOG_SUFFIXES = (".log", ".output", ".outfile")
LOG_TAIL = 80


def pytest_addoption(parser):
    parser.addoption("--modes", default=",".join(modes_mod.MODES),
                     help="comma-separated checkpoint/restore modes to run "
                          f"(known: {', '.join(modes_mod.MODES)})")
    parser.addoption("--keep-images", action="store_true",
                     help="keep image directories of passing tests")


def pytest_configure(config):
    procs_mod.make_subreaper()


def selected_modes(config):
    names = [m.strip() for m in config.getoption("--modes").split(",") if m.strip()]
    unknown = [m for m in names if m not in modes_mod.MODES]
    if unknown:
        raise pytest.UsageError(f"unknown mode(s) {unknown}; known: {list(modes_mod.MODES)}")
    return names


def pytest_generate_tests(metafunc):
    if "mode_name" in metafunc.fixturenames:
        metafunc.parametrize("mode_name", selected_modes(metafunc.config))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
    logdir = getattr(item, "zdtm_logdir", None)
    if rep.failed and logdir is not None and Path(logdir).is_dir():
        for path in sorted(Path(logdir).rglob("*")):
            if path.is_file() and path.suffix in LOG_SUFFIXES:
                lines = path.read_text(errors="replace").splitlines()
                cut = f" (last {LOG_TAIL} of {len(lines)} lines)" if len(lines) > LOG_TAIL else ""
                rep.sections.append((f"{path.relative_to(logdir)}{cut}",
                                     "\n".join(lines[-LOG_TAIL:])))


def _passed(node):
    rep = getattr(node, "rep_call", None)
    return rep is not None and rep.passed


@pytest.fixture
def workdir(request, tmp_path):
    request.node.zdtm_logdir = tmp_path
    yield tmp_path
    if _passed(request.node) and not request.config.getoption("--keep-images"):
        # image directories of passing tests only cost disk space
        for d in tmp_path.glob("images*"):
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def procs(request):
    tracker = procs_mod.ProcessTracker()
    yield tracker
    left = tracker.kill_all()
    if left and _passed(request.node):
        pytest.fail("processes were left behind (killed now):\n" + "\n".join(left),
                    pytrace=False)


@pytest.fixture
def tool():
    t = Tool()
    if not t.available():
        pytest.fail(f"{t.binary} is missing: build with `scons -j2`", pytrace=False)
    return t


@pytest.fixture
def zdtm(workdir, procs):
    """zdtm(spec, pid_ns=False) -> a started ZdtmTask (skips if the CPU lacks
    what it needs); pid_ns: as the init of a pid namespace of its own."""
    def start(spec, pid_ns=False):
        missing = missing_cpu_flags(spec)
        if missing:
            pytest.skip(f"this CPU lacks {', '.join(missing)}")
        return ZdtmTask(spec, workdir, procs, pid_ns=pid_ns).start()
    return start


@pytest.fixture
def mode(request, mode_name, tool, procs, workdir):
    cls = modes_mod.MODES[mode_name]
    why = cls.unavailable()
    if why:
        pytest.skip(f"mode {mode_name}: {why}")
    m = cls(tool, procs, workdir)
    yield m
    left = m.cleanup()
    if left and _passed(request.node):
        pytest.fail("the network lock of TCP connections was left behind (removed now):\n" +
                    "\n".join(left), pytrace=False)


@pytest.fixture
def thp_as_host():
    """For a test that counts on the memory it never touched staying empty:
    test_lazy_thp.py (in this run or another checkout's) sets THP to
    `always` only when no such test runs."""
    with thp.as_host():
        yield
