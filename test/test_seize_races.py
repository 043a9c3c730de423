"""Freezing a tree that forks, clones and exits while it is seized
(issue 8, point 1; dump/seize-tree.c, dump/threads.c).

The dump reads a list (a frozen task's children, a task's threads) and
then seizes what it names, and interrupts each task or thread it seized;
whatever is not frozen yet may fork, clone or exit in between.
tree_forker and threads_churn make that happen in most runs; two
test-only hooks (criu-lazy.8) make it happen in every one:

- CRIU_LAZY_TEST_DELAY_SEIZE_MS=N: the dump waits N ms after each list
  that names something new, before its seizes.  tree_forker's
  grandchildren live up to a millisecond: those listed have exited by
  their seize, their parent frozen, and are dumped as zombies; each
  child, once restored, must reap every one with the exit status it gave
  it.  threads_churn's short-lived threads (15 ms each here) exit between
  the list and their seize, and its spawners create more meanwhile, found
  by the next pass; the sum of what they did must still add up after the
  restore.
- CRIU_LAZY_TEST_DELAY_INTERRUPT_MS=N: the dump waits N ms between each
  PTRACE_SEIZE and its PTRACE_INTERRUPT.  The short-lived thread a
  spawner still waited for when it was frozen is seized alive in the next
  pass and exits, traced, before its interrupt: the dump reaps it, leaves
  it out and goes on.  tree_forker --shy's grandchildren exit as soon as
  they see a tracer: seized, each exits before its interrupt, and is
  dumped as the zombie its parent then reaps (with the exit code it
  checks).  (Its usual ones never meet this one: a seized child stops at
  its first SIGCHLD, a traced task stopping for every signal, even one it
  ignores, and its grandchildren are zombies by the time its list is
  read.)  And
  itimer's SIGALRM, every 10 ms, comes between the seize and the
  interrupt: the task stops for it first, and the dump passes it on and
  interrupts the task again (dump_freeze_stop()); the program
  counts its ticks on after the restore.
"""
import re

import pytest

from lib import modes
from lib.zdtm import ZdtmTest

DELAY_SEIZE = "CRIU_LAZY_TEST_DELAY_SEIZE_MS"
DELAY_INTERRUPT = "CRIU_LAZY_TEST_DELAY_INTERRUPT_MS"

# each short-lived thread lives 15 ms: one is alive whenever the dump lists
# a spawner's threads, and gone after a wait of 20 ms
LINGERING = ZdtmTest("threads_churn", ("--linger-ms", "15"), threads_vary=True, label="linger")

# each grandchild leaves as soon as it is traced
SHY_TREE = ZdtmTest("tree_forker", ("--shy",), tree=True, label="shy")

# each program with each hook that makes its race happen every time, and
# the line of the dump's log that says it did
CASES = [
    pytest.param(ZdtmTest("tree_forker", tree=True), DELAY_SEIZE,
                 r"task \d+ is a zombie \(exit status", id="tree_forker-seize"),
    pytest.param(SHY_TREE, DELAY_INTERRUPT, r"task \d+ exited while the tree was being frozen",
                 id="tree_forker_shy-interrupt"),
    pytest.param(ZdtmTest("itimer"), DELAY_INTERRUPT,
                 r"task \d+: passing signal 14 on while freezing", id="itimer-interrupt"),
    pytest.param(LINGERING, DELAY_SEIZE,
                 r"thread \d+ of task \d+ exited before it could be frozen",
                 id="threads_churn-seize"),
    pytest.param(LINGERING, DELAY_INTERRUPT,
                 r"thread \d+ of task \d+ exited while it was being frozen",
                 id="threads_churn-interrupt"),
]


@pytest.mark.parametrize("spec,hook,seen", CASES)
@pytest.mark.parametrize("which", ["eager", "lazy"])
def test_freeze_races_every_time(which, spec, hook, seen, tool, zdtm, procs, workdir,
                                 monkeypatch):
    """One dump and restore of spec in the mode which with the hook at 20
    ms: the program passes its checks, and the dump's log shows the race
    the hook makes."""
    monkeypatch.setenv(hook, "20")
    modes.cycle_once(which, zdtm, spec, tool, procs, workdir)
    log = (workdir / "dump-1.log").read_text(errors="replace")
    assert f"test hook {hook}=20" in log, (
        f"the dump did not wait: this tests nothing\n{log[-3000:]}")
    assert re.search(seen, log), f"the race did not happen: this tests nothing\n{log[-3000:]}"
