"""The lazy-pages daemon learns each task's pid in its own namespace (its
"host pid", for the task's /proc: the check at the handover, shared
memory, the guardian) from the credentials the restore attaches to the
uffd's message (Documentation/lazy-pages.md, "Which process here";
criu-lazy/lazy/host-pid.c).

- Two restores of the same images at once, each into a pid namespace of
  its own, both done before either daemon reads a uffd: by /proc alone
  the two roots are alike (pid 1 there, started since both daemons, the
  same heap start, a userfaultfd each), the credentials tell them apart;
  each daemon's guardian poisons its own tree.
- The debug line (-v4) says which way the daemon learnt the pid: the
  credentials, or (a restore that sent none) the search in /proc.
- Credentials naming another process (any process may send a task's uffd:
  CRIU's restore sends each from the task, our page server tests' stand-in
  from a child of another pid): they say nothing of the task, which the
  daemon looks for in /proc as without credentials, says so and serves.

The last two play the restore with test/helpers/lazy_present (--cred-pid).
Every process is ended by its pid; every wait has a timeout.
"""
import concurrent.futures
import os
import re
import shutil
import signal

from lib import lazy, paths, procs as P
from lib.badinput import dump_good
from lib.tool import assert_ok
from lib.zdtm import ZdtmTest

TIMEOUT = 60
SIGBUS_SPEC = ZdtmTest("mem_sigbus", ("--pages", "2048"), defer_background=True)
ANON_SPEC = ZdtmTest("mem_anon", ("--size", "1M"), label="1M")
HELPER = paths.BUILD / "test" / "helpers" / "lazy_present"
# the daemon's debug line for a task found in /proc below the restore
SEARCHED = r"Debug: task (\d+) is pid \1 here: no credentials, it descends from the restore"
FROM_CREDS = r"task {pid} is pid {here} here: the restore's credentials say so"


def start_daemon(procs, tool, imgdir, logdir, extra=()):
    return lazy.Daemon(procs, tool, ["lazy-pages", "-D", imgdir, *extra],
                       logdir / "lazy-pages.log", logdir / "lazy-pages.out", "lazy-pages")


def test_two_restores_of_the_same_images_at_once(zdtm, tool, procs, workdir):
    """Both daemons stopped until both restores have returned (their
    processes gone, the trees reparented): host-pid.c's search in /proc
    alone would find two processes for pid 1 and warn, and each guardian
    would read the host's init (pid 1 here).  With the credentials each
    daemon names its own restore's root, and its guardian poisons it."""
    task = zdtm(SIGBUS_SPEC, pid_ns=True)
    images = dump_good(tool, task, workdir, name="images")
    runs = []
    for name in ("a", "b"):
        d = workdir / name
        d.mkdir()
        shutil.copytree(images, d / "images")
        runs.append({"dir": d, "daemon": start_daemon(procs, tool, d / "images", d,
                                                      ["--no-background-fetch"])})
    for r in runs:
        os.kill(r["daemon"].pid, signal.SIGSTOP)
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(tool.restore, r["dir"] / "images", r["dir"] / "restore.log",
                                   TIMEOUT, pidfile=r["dir"] / "restore.pid",
                                   extra=["--lazy-pages"]) for r in runs]
            results = [f.result(timeout=TIMEOUT * 2) for f in futures]
    finally:
        for r in runs:
            os.kill(r["daemon"].pid, signal.SIGCONT)
    for r, res in zip(runs, results):
        if (r["dir"] / "restore.pid").exists():
            r["root"] = int((r["dir"] / "restore.pid").read_text())
            procs.adopt(r["root"])
        assert_ok(res, f"restore --lazy-pages of copy {r['dir'].name}")
    roots = [r["root"] for r in runs]
    assert roots[0] != roots[1] and all(P.alive(p) for p in roots), roots
    for r in runs:
        daemon = r["daemon"]
        assert P.wait_for(lambda: "got uffd" in daemon.log.read_text(), TIMEOUT), daemon.text()
        log = daemon.log.read_text()
        assert re.search(FROM_CREDS.format(pid=1, here=r["root"]), log), daemon.text()
        assert "no process below the restore" not in log, daemon.text()
    for r in runs:
        daemon = r["daemon"]
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait_exit()
        lines = [l for l in daemon.out.read_text().splitlines() if "guardian: " in l]
        assert len(lines) == 1 and re.search(
            rf": task 1 \(pid {r['root']} here\): [1-9][0-9]* missing pages poisoned "
            r"\(SIGBUS when touched\)$", lines[0]), daemon.text()
    for root in roots:
        procs.kill(root)


def play_restore(zdtm, tool, procs, workdir, args):
    """mem_anon dumped; a daemon on its images; lazy_present playing the
    restore with the extra args.  (daemon's exit code, daemon, helper's
    wait status, helper's output: stdout and stderr)."""
    task = zdtm(ANON_SPEC)
    imgdir = dump_good(tool, task, workdir, name="images")
    daemon = start_daemon(procs, tool, imgdir, workdir)
    out = workdir / "lazy_present.out"
    helper = procs.spawn([HELPER, "-D", imgdir, "-p", task.pid, *args],
                         stdout=out)
    status = procs.reap(helper.pid, TIMEOUT)
    rc = daemon.wait_exit()
    return rc, daemon, status, out.read_text(errors="replace")


def play_restore_served(zdtm, tool, procs, workdir, args):
    """play_restore() that must end well: every page right, the helper and
    the daemon exit 0; (the daemon's log, what to show on failure)."""
    rc, daemon, status, out = play_restore(zdtm, tool, procs, workdir, args)
    text = out + daemon.text()
    assert status == 0 and re.search(r"^checked \d+ pages, 0 wrong$", out, re.M), text
    assert rc == 0, text
    return daemon.log.read_text(), text


def test_debug_line_says_credentials(zdtm, tool, procs, workdir):
    """The restore's way (lazy_present sends what the restore sends): the
    pid here from the credentials, every page right, exit 0."""
    log, text = play_restore_served(zdtm, tool, procs, workdir, [])
    pid = int(re.search(r"task (\d+): got uffd", log).group(1))
    assert re.search(r"Debug: " + FROM_CREDS.format(pid=pid, here=pid), log), text


def test_debug_line_says_search_without_credentials(zdtm, tool, procs, workdir):
    """Credentials naming the sender itself are what the kernel gives for
    a restore that attached none (one without CAP_SYS_ADMIN): the daemon
    looks for the process in /proc, says so, and serves it."""
    log, text = play_restore_served(zdtm, tool, procs, workdir, ["--cred-pid", "self"])
    assert re.search(SEARCHED, log), text
    assert "credentials say so" not in log, text


def test_credentials_naming_another_process_fall_back(zdtm, tool, procs, workdir):
    """Credentials naming pid 1 here (init, pid 1 in its namespace, not the
    dumped pid), as a sender other than the task gives: the daemon says
    they name another process, finds the task in /proc as without
    credentials, and every page is right."""
    log, text = play_restore_served(zdtm, tool, procs, workdir, ["--cred-pid", "1"])
    assert re.search(r"Debug: task (\d+): the credentials name pid 1 here, another pid in its "
                     r"namespace: not the task", log), text
    assert re.search(SEARCHED, log), text
    assert "credentials say so" not in log, text
