"""How each mode checkpoints and restores: the one place that knows.

A Mode runs `cycle(task, n)`: checkpoint the running zdtm task into
images-N, check it is gone, restore it, check it is back.  Tests call only
cycle() (and finish() once the task has exited), so a new mode is a new
subclass here plus its name in MODES; every zdtm test then runs in it.

    eager        dump; restore -d (every page is restored before the task runs)

Later issues add, as subclasses:
    lazy         lazy-pages daemon on the images + restore --lazy-pages
    remote-lazy  page-server on the images + daemon --page-server + restore
"""
from pathlib import Path

from .tool import assert_ok

DUMP_TIMEOUT = 120
RESTORE_TIMEOUT = 120


class Mode:
    name = None

    def __init__(self, tool, tracker, workdir):
        self.tool = tool
        self.procs = tracker
        self.dir = Path(workdir)

    @classmethod
    def unavailable(cls):
        """A reason this mode cannot run on this machine, or None."""
        return None

    def imgdir(self, n):
        d = self.dir / f"images-{n}"
        d.mkdir(exist_ok=True)
        return d

    def dump(self, task, imgdir, n):
        res = self.tool.dump(task.pid, imgdir, self.dir / f"dump-{n}.log", DUMP_TIMEOUT)
        assert_ok(res, f"dump #{n} of {task.spec.id} (pid {task.pid})")
        return res

    def restore(self, task, imgdir, n):
        pidfile = self.dir / f"restore-{n}.pid"
        res = self.tool.restore(imgdir, self.dir / f"restore-{n}.log", RESTORE_TIMEOUT,
                                pidfile=pidfile)
        assert_ok(res, f"restore #{n} of {task.spec.id} (pid {task.pid})")
        return pidfile

    def cycle(self, task, n):
        """Checkpoint task (killing it) and restore it; n counts from 1."""
        imgdir = self.imgdir(n)
        self.dump(task, imgdir, n)
        task.expect_gone()
        pidfile = self.restore(task, imgdir, n)
        task.expect_restored(pidfile)
        return imgdir

    def finish(self):
        """After the task has exited: anything the mode must still check."""

    def cleanup(self):
        """End whatever the mode started (the process tracker kills the rest)."""


class Eager(Mode):
    name = "eager"


MODES = {m.name: m for m in (Eager,)}
