"""A task chrooted into a directory of its own (test/zdtm/chroot_root.c;
its success in every mode, that root deleted or not, is in test_zdtm.py):
what the dump refuses there."""
from lib.badinput import dump_must_refuse
from lib.zdtm import ZdtmTest


def test_unix_name_inside_the_root_refused(tool, zdtm, workdir):
    """A unix socket bound to a path inside the task's root: the name is
    the task's, not ours, so the dump refuses it in one line naming the
    fd, the name and the root; the task runs on unharmed."""
    task = zdtm(ZdtmTest("chroot_root", ("--unix",), label="unix"))
    dump_must_refuse(tool, task, workdir, rf"fd 22 of task {task.pid}\b",
                     r"bound to /sock", r"croot \(chroot\)", r"not supported")
    task.check_pass()
