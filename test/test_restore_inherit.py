"""What the restored tasks inherit from the restore process.

Every task is a fork of the restore process, and it leaves alone each
signal action it inherited that is already the dumped one (attrs/
sigactions.c: one rt_sigaction less per signal).  What it inherited is
what the restore process had, not the default: a restore started under
nohup, or by a shell or a service manager that ignores signals, passes
its ignored signals on across exec.  zdtm sigactions records all 64
actions (several left default) and compares them after the restore.
"""
from lib.badinput import dump_good, restore_must_pass
from lib.tool import Tool
from lib.zdtm import ZdtmTest

# default in zdtm sigactions, except SIGHUP (which it ignores too)
IGNORED = ("SIGQUIT", "SIGALRM", "SIGTSTP", "SIGURG", "SIGXCPU", "SIGHUP")
EXEC_IGNORING = (
    "import os, signal, sys\n"
    f"for name in {IGNORED!r}:\n"
    "    signal.signal(getattr(signal, name), signal.SIG_IGN)\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n")


def test_signals_ignored_by_the_restore_are_set_back(tool, zdtm, workdir):
    """The restore runs with six signals ignored (and SIGPIPE, as Python
    leaves it): the task gets its dumped actions back all the same."""
    task = zdtm(ZdtmTest("sigactions"))
    good = dump_good(tool, task, workdir)
    ignoring = Tool(tool.binary, prefix=("/usr/bin/python3", "-c", EXEC_IGNORING))
    restore_must_pass(ignoring, workdir, task, good)
