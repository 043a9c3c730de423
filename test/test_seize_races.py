"""Freezing a tree that forks, clones and exits while it is seized
(issue 8, point 1; dump/seize-tree.c, dump/threads.c).

The dump reads a list (a frozen task's children, a task's threads) and
then seizes what it names; whatever is not frozen yet may fork, clone or
exit in between.  tree_forker and threads_churn make that happen in most
runs; the test-only CRIU_LAZY_TEST_DELAY_SEIZE_MS=N (criu-lazy.8) makes it
happen in every one: the dump waits N ms after each list that names
something new, before its seizes.

- tree_forker's grandchildren live up to a millisecond: those listed have
  exited by their seize, their parent frozen, and are dumped as zombies;
  each child, once restored, must reap every one with the exit status it
  gave it.
- threads_churn's short-lived threads exit between the list and their
  seize, and its spawners create more meanwhile, found by the next pass;
  the sum of what they did must still add up after the restore.
"""
import re

import pytest

from lib import modes
from lib.zdtm import ZdtmTest

DELAY_SEIZE = "CRIU_LAZY_TEST_DELAY_SEIZE_MS"


def dump_log(workdir):
    log = (workdir / "dump-1.log").read_text(errors="replace")
    assert f"test hook {DELAY_SEIZE}=20" in log, (
        "the dump did not wait between its lists and its seizes: this tests nothing\n"
        + log[-3000:])
    return log


@pytest.mark.parametrize("which", ["eager", "lazy"])
def test_forks_and_exits_between_list_and_seize(which, tool, zdtm, procs, workdir,
                                                 monkeypatch):
    monkeypatch.setenv(DELAY_SEIZE, "20")
    modes.cycle_once(which, zdtm, ZdtmTest("tree_forker", tree=True), tool, procs, workdir)
    log = dump_log(workdir)
    zombies = re.findall(r"task \d+ is a zombie \(exit status", log)
    assert zombies, ("no grandchild exited between its parent's list and its seize: "
                     "this tests nothing\n" + log[-3000:])


@pytest.mark.parametrize("which", ["eager", "lazy"])
def test_threads_come_and_go_between_list_and_seize(which, tool, zdtm, procs, workdir,
                                                     monkeypatch):
    monkeypatch.setenv(DELAY_SEIZE, "20")
    modes.cycle_once(which, zdtm, ZdtmTest("threads_churn", threads_vary=True), tool, procs,
                     workdir)
    log = dump_log(workdir)
    gone = re.findall(r"thread \d+ of task \d+ exited before it could be frozen", log)
    assert gone, ("no thread exited between the list and its seize: this tests nothing\n"
                  + log[-3000:])
