"""The restore's pure logic: build/test/unit/test_restore_layout (the hole
free in two layouts, the vdso shape check, the XSAVE buffer built from an
image against made-up and real CPUs), test_restore_place (which VMAs are
mapped at their own address from the start), test_restore_groups (which
tasks join their process group late), test_array (common/array.h),
test_pm_scan (common/pm-scan.c), test_proc (common/proc-stat.c,
proc-status.c, proc-task.c, proc-fd.c) and test_creds_ours
(attrs/creds-ours.c: which dumped credentials a thread has from us).

Needs a build (`scons -j2`); uses nothing from conftest.py.
"""
from lib.unit import run_unit


def test_restore_layout_unit():
    lines, passed = run_unit("test_restore_layout")
    assert passed >= 10, "\n".join(lines)


def test_restore_place_unit():
    """restore/premap-place.c: free of our maps, stack and regions, never two
    neighbours the kernel would merge, a child's inheritance (and a child
    that inherits nothing, forked before its parent maps), the kinds."""
    lines, passed = run_unit("test_restore_place")
    assert passed == 6, "\n".join(lines)


def test_restore_groups_unit():
    """restore/tree-groups.c: a leader and a member led from an ancestor
    join at once, a group a sibling or a descendant leads late, and with
    --shell-job every task late where an early join would move a task of
    the shell's group."""
    lines, passed = run_unit("test_restore_groups")
    assert passed == 5, "\n".join(lines)


def test_array_grow_unit():
    """common/array.h: doubling from the first size, overflow is -ENOMEM,
    a ring grown in order."""
    lines, passed = run_unit("test_array")
    assert passed == 4, "\n".join(lines)


def test_pm_scan_unit():
    """common/pm-scan.c: the present or swapped runs of a range through
    PAGEMAP_SCAN (this process's pagemap) and through the pread fallback
    (made-up entries); a callback's error stops the scan."""
    lines, passed = run_unit("test_pm_scan")
    assert passed == 3, "\n".join(lines)


def test_proc_unit():
    """common/proc-stat.c, proc-status.c, proc-task.c, proc-fd.c: a stat
    text whose name holds ')' and spaces, negative, missing and bad fields;
    a status line's last number; the threads of this process walked and
    stopped, a gone pid's -ENOENT; the processes below it, parents first;
    this process's fds in ascending order, without the walk's own, none
    (and no array) of a process with no fd open, a walk stopped, a gone
    pid's -ENOENT."""
    lines, passed = run_unit("test_proc")
    assert passed == 9, "\n".join(lines)


def test_creds_ours_unit():
    """attrs/creds-ours.c: our credentials as the tasks inherit them; a
    thread's dumped credentials taken for ours only when every id, group,
    capability set (below the last capability), securebits and
    no_new_privs are equal; an ambient set the image lacks not compared;
    unknown credentials never taken for the task's."""
    lines, passed = run_unit("test_creds_ours")
    assert passed == 4, "\n".join(lines)
