"""Where the restore's log lines go while a task rebuilds itself.

The task's C part closes every fd it inherited and opens its own at the
dumped numbers; its debug lines must still reach the restore's log (-o)
or the restore's own stderr (no -o), never one of the task's fds: not
the pipe and files at the log's old numbers (zdtm low_fds checks those
itself), not the task's stderr.
"""
from lib.badinput import dump_good
from lib.tool import assert_ok
from lib.zdtm import ZdtmTest

TIMEOUT = 60
LINE = "its 32 fds are in place"


def test_log_without_o_goes_to_our_stderr(tool, zdtm, workdir):
    task = zdtm(ZdtmTest("low_fds"))
    imgdir = dump_good(tool, task, workdir, name="images")
    pidfile = workdir / "restore.pid"
    res = tool.run(["restore", "-D", imgdir, "-v4", "-d", "--pidfile", pidfile], TIMEOUT)
    assert_ok(res, "restore without -o")
    assert LINE in res.stderr, (
        f"the task's debug line is not on the restore's stderr:\n{res.stderr[-2000:]}")
    task.expect_restored(pidfile)
    out = task.output.read_text(errors="replace")
    assert "Debug" not in out and LINE not in out, (
        f"log lines of the restore went to the task's stderr:\n{out[-2000:]}")
    task.check_pass()


def test_log_with_o_holds_the_task_lines(tool, zdtm, workdir):
    task = zdtm(ZdtmTest("low_fds"))
    imgdir = dump_good(tool, task, workdir, name="images")
    pidfile = workdir / "restore.pid"
    log = workdir / "restore.log"
    assert_ok(tool.restore(imgdir, log, TIMEOUT, pidfile=pidfile), "restore")
    assert LINE in log.read_text(errors="replace"), "the task's debug line is not in the log"
    task.expect_restored(pidfile)
    task.check_pass()
