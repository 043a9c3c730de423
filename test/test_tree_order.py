"""The tree's events in the orders the kernel allows (restore.md, stage 3).

The tasks being created write their events to one pipe the restore reads;
events of different tasks come in any order.  A test-only hook makes the
rare orders happen every time:

- CRIU_LAZY_TEST_DELAY_CREATED_MS=N: each parent but the root tells its
  child's pid (EV_CREATED) N ms after the clone, so the child, which goes
  on at once, says EV_READY before.  With early go (every process told to
  rebuild itself as soon as it is ready), a child told to go then, before
  its seize, died of its blob's int3 ('task was killed by signal 5 while
  it was being restored', once in 5 runs of the tree zdtm subset;
  262e752; here 'cannot seize the new task', 10 of 10 restores before
  it).
  The root, told to go meanwhile, reaches its blob's end while the tree
  is still created: that stop was taken for its death ('task N died while
  the tree was being created', every run before check_tasks() skipped
  stops).
"""
import re

import pytest

from lib import modes
from lib.zdtm import ZdtmTest

DELAY_CREATED = "CRIU_LAZY_TEST_DELAY_CREATED_MS"

# the tree the race was seen in (zdtm tree-groups): early go, groups joined
# at the fork
GROUPS_TREE = ZdtmTest("tree", ("--children", "3", "--session", "--group"),
                       label="ready-first", tree=True)


@pytest.mark.parametrize("which", ["eager", "lazy"])
def test_child_ready_before_its_pid(which, tool, zdtm, procs, workdir, monkeypatch):
    """Every child's EV_READY before its EV_CREATED: each is told to go
    only once it is also seized, and the tree comes back whole and passes
    its checks."""
    monkeypatch.setenv(DELAY_CREATED, "300")
    modes.cycle_once(which, zdtm, GROUPS_TREE, tool, procs, workdir)
    log = (workdir / "restore-1.log").read_text(errors="replace")
    assert "as soon as it is ready" in log, (
        "the restore told no process to go early: this tests nothing\n" + log[-3000:])
    early = re.findall(r"task (\d+) is ready before its parent told its pid", log)
    assert early, "no child was ready before its pid came: this tests nothing\n" + log[-3000:]
