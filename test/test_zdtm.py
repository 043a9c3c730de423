"""The zdtm suite: every program, checkpointed and restored, in every mode.

test_zdtm     start, checkpoint+restore once or twice, compare what /proc
              shows before and after each restore, SIGTERM, expect PASS.
test_sanity   the same program with no checkpoint at all must PASS too
              (else a FAIL above would say nothing about the tool), and two
              /proc snapshots of an idle task must agree (else a difference
              above would say nothing either).
"""
import os
import time

import pytest

from lib import procstate
from lib.zdtm_catalogue import REFUSED_KINDS, ZDTM_TESTS, ZdtmTest

SPECS = [pytest.param(s, id=s.id) for s in ZDTM_TESTS]
# the programs test_bad_input.py expects a dump to refuse
REFUSED = [ZdtmTest("unsupported_fd", ("--kind", k), label=k) for k in REFUSED_KINDS] + [
    ZdtmTest("thread_seccomp", ("--user-notif",), label="user-notif"),
    ZdtmTest("pidfd_child", ("--outsider",), label="outsider", tree=True),
    ZdtmTest("pidfd_child", ("--reaped",), label="reaped", tree=True),
    ZdtmTest("vma_flags", ("--state", "mlock-onfault"), label="mlock-onfault"),
    ZdtmTest("epoll", ("--in-flight",), label="in-flight"),
    ZdtmTest("tree", ("--children", "1", "--vfork"), label="vfork", tree=True),
    ZdtmTest("tree", ("--children", "1", "--vfork-thread"), label="vfork-thread", tree=True)]


@pytest.mark.parametrize("spec", SPECS + [pytest.param(s, id=s.id) for s in REFUSED])
def test_sanity(spec, zdtm):
    task = zdtm(spec)
    before = procstate.settled_snapshot(task.pid, spec.ignore_fd_pos,
                                        threads_vary=spec.threads_vary)
    time.sleep(0.2)
    after = procstate.snapshot(task.pid, spec.ignore_fd_pos, spec.threads_vary)
    assert not procstate.diff(before, after), (
        "the /proc snapshot of an untouched task changed:\n" +
        "\n".join(procstate.diff(before, after)))
    task.check_pass()


@pytest.mark.parametrize("cycles", [1, 2], ids=["once", "twice"])
@pytest.mark.parametrize("spec", SPECS)
def test_zdtm(spec, cycles, mode, zdtm):
    why = mode.unsupported(spec)
    if why:
        pytest.skip(f"{mode.name}: {why}")
    if spec.known_bug and os.environ.get("CRIU_LAZY_KNOWN_BUGS") != "1":
        pytest.skip(f"known bug (CRIU_LAZY_KNOWN_BUGS=1 runs it): {spec.known_bug}")
    # a plain dump of a task whose pages are still arriving (lazy-migrate
    # dumps with --lazy-pages, which reads no lazy page)
    if cycles > 1 and spec.once_only and spec.defer_background and mode.name in (
            "lazy", "remote-lazy"):
        pytest.skip(f"{mode.name}, twice: {spec.once_only}")
    # a second checkpoint that cannot work in any mode
    if cycles > 1 and spec.once_only and not spec.defer_background:
        pytest.skip(f"twice: {spec.once_only}")
    task = zdtm(spec, pid_ns=mode.pid_ns)
    before = procstate.settled_snapshot(task.pid, spec.ignore_fd_pos,
                                        threads_vary=spec.threads_vary)
    for n in range(1, cycles + 1):
        mode.cycle(task, n)
        changes = procstate.settled_diff(task.pid, before, spec.ignore_fd_pos,
                                         threads_vary=spec.threads_vary)
        assert not changes, (f"after restore #{n}, /proc/{task.pid} differs from "
                             "before the first dump:\n" + "\n".join(changes))
    task.check_pass()
    mode.finish()
