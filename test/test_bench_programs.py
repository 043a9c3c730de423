"""The baseline programs of scripts/bench (build/test/bench/tcp_raw and
uffd_raw), run small: the JSON they print holds what the bench reads, with
values that fit the run, and a bad combination of options is refused.  A
baseline that silently measured nothing would make every ratio a lie.

Needs a build (`scons -j2`); uses nothing from conftest.py.
"""
import json
import os
import subprocess

import pytest

from lib import paths

BENCH = paths.BUILD / "test" / "bench"
SIZE = 8 << 20
TIMEOUT = 120


def run(name, *args):
    prog = BENCH / name
    if not prog.exists():
        pytest.fail(f"{prog} is not built: run scons -j2")
    return subprocess.run([str(prog), "--timeout", "60", *map(str, args)],
                          capture_output=True, text=True, timeout=TIMEOUT)


def run_json(name, *args):
    res = run(name, *args)
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads(res.stdout)


@pytest.mark.parametrize("extra, uffd_copy, copy_thread", [
    ((), False, False),
    (("--uffd-copy", "--recv-chunk", "256K"), True, False),
    (("--copy-thread", "--recv-chunk", "256K"), True, True),
], ids=["raw", "uffd-copy", "copy-thread"])
def test_tcp_raw_stream(extra, uffd_copy, copy_thread):
    d = run_json("tcp_raw", "--size", SIZE, "--reps", 3, *extra)
    assert (d["mode"], d["uffd_copy"], d["copy_thread"]) == ("stream", uffd_copy, copy_thread)
    assert d["bytes"] == SIZE and d["reps"] == 3
    runs = d["runs_mib_s"]
    assert len(runs) == 3 and all(x > 0 for x in runs)
    assert d["best_mib_s"] == max(runs)
    assert d["median_mib_s"] == sorted(runs)[1]
    for side in ("recv", "send"):
        cpu = d[f"{side}_cpu_s"]
        assert len(cpu) == 3 and all(x >= 0 for x in cpu)
        assert d[f"{side}_cpu_median_s"] == pytest.approx(sorted(cpu)[1], abs=1e-4)
    # a run's CPU cannot exceed its wall time by much, threads included
    walls = [SIZE / (1 << 20) / x for x in runs]
    assert all(c <= w * (2 if copy_thread else 1) + 0.05
               for c, w in zip(d["recv_cpu_s"], walls)), (d["recv_cpu_s"], walls)


def test_tcp_raw_rtt():
    # --size: the 1 GiB default source took 26 s to fill at load 14
    d = run_json("tcp_raw", "--mode", "rtt", "--size", SIZE, "--requests", 64,
                 "--reply", "64K", "--uffd-copy")
    assert d["mode"] == "rtt" and d["requests"] == 64 and d["reply"] == 64 << 10
    assert 0 < d["p50_us"] <= d["p99_us"] <= d["max_us"]


@pytest.mark.parametrize("args", [
    ("--mode", "rtt", "--copy-thread"),		# the ring serves streams only
    ("--uffd-copy", "--recv-chunk", "1000"),	# copies are whole pages
    ("--reps", "0"),
    ("--size", "1X"),
], ids=["rtt-copy-thread", "unaligned-chunk", "no-reps", "bad-size"])
def test_tcp_raw_refuses(args):
    res = run("tcp_raw", *args)
    assert res.returncode == 1 and "usage: tcp_raw" in res.stderr, res.stdout + res.stderr
    assert not res.stdout


def test_uffd_raw_copy(tmp_path):
    d = run_json("uffd_raw", "--size", SIZE, "--mode", "copy", "--reps", 2,
                 "--tmpdir", tmp_path)
    c = d["copy"]
    assert c["bytes"] >= SIZE and c["reps"] == 2
    for source in ("anon", "file"):
        assert len(c[source]["runs_mib_s"]) == 2
        assert c[source]["best_mib_s"] == max(c[source]["runs_mib_s"]) > 0


def test_uffd_raw_copy_files(tmp_path):
    """--copy-file F1,F2 (a tree's pages images): a pass copies every file,
    its bytes are theirs; --source file runs no anonymous copy; each run has
    its CPU time."""
    sizes = [3 << 20, 5 << 20 | 100]	# the partial page at the end is not copied
    files = []
    for i, size in enumerate(sizes):
        f = tmp_path / f"pages-{i}.img"
        f.write_bytes(os.urandom(size))
        files.append(str(f))
    d = run_json("uffd_raw", "--mode", "copy", "--copy-file", ",".join(files),
                 "--source", "file", "--reps", 3)
    c = d["copy"]
    assert c["files"] == 2 and c["bytes"] == (3 << 20) + (5 << 20) and c["reps"] == 3, c
    assert "anon" not in c
    assert len(c["file"]["runs_mib_s"]) == len(c["file"]["cpu_runs_s"]) == 3
    assert all(x > 0 for x in c["file"]["runs_mib_s"] + c["file"]["cpu_runs_s"]), c
    d = run_json("uffd_raw", "--mode", "copy", "--copy-file", files[0], "--source", "anon",
                 "--reps", 1)
    assert "file" not in d["copy"] and d["copy"]["bytes"] == 3 << 20, d


@pytest.mark.parametrize("args", [
    ("--source", "both,file"),
    ("--copy-file", ","),
], ids=["bad-source", "no-file-named"])
def test_uffd_raw_copy_refuses(args):
    res = run("uffd_raw", "--mode", "copy", "--reps", 1, *args)
    assert res.returncode == 1 and "uffd_raw" in res.stderr, res.stdout + res.stderr


@pytest.mark.parametrize("touchers", [1, 16])
def test_uffd_raw_fault_touchers(touchers):
    """--touchers N: every page faults once and is counted once, whatever
    the number of threads touching them."""
    d = run_json("uffd_raw", "--size", SIZE, "--mode", "fault", "--order", "random",
                 "--touchers", touchers)
    f = d["fault"]["random"]
    assert f["touchers"] == touchers
    assert f["pages"] == f["faults"] == SIZE // 4096, f
    assert f["seconds"] > 0 and f["pages_per_s"] > 0, f


@pytest.mark.parametrize("args", [("--touchers", 0), ("--touchers", 1000)])
def test_uffd_raw_refuses_touchers(args):
    res = run("uffd_raw", "--mode", "fault", "--size", SIZE, *args)
    assert res.returncode != 0 and "usage" in res.stderr, res.stdout + res.stderr


@pytest.mark.parametrize("threads", [1, 4])
def test_tree_workload(tmp_path, threads):
    """The tree of scripts/bench tree: 4 processes of --threads threads each,
    the main thread among them (1: it alone touches); SIGUSR1 to the root
    has every process touch and check its pages and write its result;
    SIGTERM ends them all."""
    import os
    import signal
    import time

    pidfile, result = tmp_path / "pid", tmp_path / "touch"
    p = subprocess.Popen([str(BENCH / "tree_workload"), "--size", str(SIZE), "--pidfile",
                          str(pidfile), "--result", str(result), "--threads", str(threads)],
                         stdin=subprocess.DEVNULL)
    kids = []
    try:
        deadline = time.monotonic() + 30
        while not pidfile.exists() and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pidfile.exists(), f"no pidfile (exit {p.poll()})"
        kids = open(f"/proc/{p.pid}/task/{p.pid}/children").read().split()
        assert len(kids) == 3, kids
        assert all(len(os.listdir(f"/proc/{k}/task")) == threads for k in [p.pid, *kids])
        p.send_signal(signal.SIGUSR1)
        files = [tmp_path / f"touch.{i}" for i in range(4)]
        while not all(f.exists() for f in files) and time.monotonic() < deadline:
            time.sleep(0.02)
        res = [json.loads(f.read_text()) for f in files]
        assert all(r["ok"] and r["pages"] == SIZE // 4 // 4096 and r["t1_ns"] > r["t0_ns"]
                   for r in res), res
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0
        assert not any(os.path.exists(f"/proc/{k}") for k in kids)
    finally:
        if p.poll() is None:
            # while the root lives its children's pids cannot be reused
            for k in kids:
                try:
                    os.kill(int(k), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            p.kill()
            p.wait(10)


# the checksums of variants 0 and 1 of the private function (--shared must match)
FUNCTION_SUMS = {}


@pytest.mark.parametrize("shared", [False, True], ids=["private", "shared"])
def test_function_workload(tmp_path, shared):
    """The function of scripts/bench prefetch: each SIGUSR1 reads a tenth of
    its pages (variant 0 and 1: the same count, half of them shared) and
    writes a checksum that does not change between calls of one variant.
    --shared: the memory is MAP_SHARED and a forked worker reads half of
    each call's pages: the same checksums as the private function's, and
    SIGTERM ends both processes."""
    import signal
    import time

    pidfile, result, variant = tmp_path / "pid", tmp_path / "call", tmp_path / "variant"
    p = subprocess.Popen([str(BENCH / "function_workload"), "--size", str(SIZE), "--pidfile",
                          str(pidfile), "--result", str(result), "--variant-file",
                          str(variant), *(["--shared"] if shared else [])],
                         stdin=subprocess.DEVNULL)
    worker = None
    try:
        deadline = time.monotonic() + 30
        while not pidfile.exists() and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pidfile.exists(), f"no pidfile (exit {p.poll()})"
        children = open(f"/proc/{p.pid}/task/{p.pid}/children").read().split()
        assert len(children) == (1 if shared else 0), children
        worker = int(children[0]) if shared else None
        if shared:
            maps = open(f"/proc/{worker}/maps").read().splitlines()
            assert any(" rw-s " in m and m.endswith("/dev/zero (deleted)") for m in maps), maps
        calls = []
        for v in (0, 1, 0):
            variant.write_text(f"{v}\n")
            if result.exists():
                result.unlink()
            t0 = time.monotonic_ns()
            p.send_signal(signal.SIGUSR1)
            while not result.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            calls.append(json.loads(result.read_text()))
            assert calls[-1]["ok"] and calls[-1]["done_ns"] > t0, calls
        pages = SIZE // 4096 // 10
        assert [c["pages"] for c in calls] == [pages] * 3
        assert [c["first"] for c in calls] == [0, SIZE // 4096 // 20, 0]
        assert calls[0]["checksum"] == calls[2]["checksum"] != calls[1]["checksum"]
        sums = (calls[0]["checksum"], calls[1]["checksum"])
        if shared and FUNCTION_SUMS:
            assert sums == FUNCTION_SUMS["private"], (sums, FUNCTION_SUMS)
        FUNCTION_SUMS["shared" if shared else "private"] = sums
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0
        if worker:
            deadline = time.monotonic() + 30
            while os.path.exists(f"/proc/{worker}") and time.monotonic() < deadline:
                time.sleep(0.01)
            assert not os.path.exists(f"/proc/{worker}"), "the worker outlived its process"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
        if worker:
            try:
                os.kill(worker, signal.SIGKILL)
            except ProcessLookupError:
                pass


def run_tree_raw(*args):
    prog = BENCH / "tree_raw"
    if not prog.exists():
        pytest.fail(f"{prog} is not built: run scons -j2")
    return subprocess.run([str(prog), *map(str, args)], capture_output=True, text=True,
                          timeout=TIMEOUT)


def test_tree_raw():
    """The raw floor of the tree's restore time: every run brings a tree up
    (each process's uffd received) and reaps it before the next."""
    res = run_tree_raw("--size", SIZE, "--procs", 3, "--threads", 2, "--reps", 2)
    assert res.returncode == 0, res.stdout + res.stderr
    out = json.loads(res.stdout)
    assert (out["procs"], out["threads"], out["size"], out["reps"]) == (3, 2, SIZE, 2), out
    assert len(out["ready_us"]) == 2 and all(us > 0 for us in out["ready_us"]), out
    assert out["best_us"] == min(out["ready_us"]) <= out["median_us"], out


@pytest.mark.parametrize("args", [("--procs", 0), ("--threads", 65), ("--reps", 0),
                                  ("--size", "4K", "--procs", 2), ("extra",)])
def test_tree_raw_refuses(args):
    res = run_tree_raw(*args)
    assert res.returncode != 0 and res.stderr.startswith("tree_raw: bad arguments"), (
        res.stdout + res.stderr)


def test_touch_raw():
    """The reads of scripts/bench prefetch's function on pages the process
    wrote, pages copied in before, and pages copied in beside other copies:
    a tenth of the pages each time, every figure measured."""
    d = run_json("touch_raw", "--size", SIZE)
    assert d["pages"] == SIZE // 4096 // 10, d
    assert all(d[k] > 0 for k in ("self_s", "uffd_s", "uffd_bg_s")), d


@pytest.mark.parametrize("args", [("--size", "4K"), ("--size", "5000"), ("extra",)])
def test_touch_raw_refuses(args):
    res = run("touch_raw", *args)
    assert res.returncode != 0 and res.stderr.startswith("touch_raw: bad arguments"), (
        res.stdout + res.stderr)
