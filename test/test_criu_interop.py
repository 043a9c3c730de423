"""What crosses between criu-lazy and CRIU 4.2 (spec section 6).

- A CRIU dump carries a CET entry (thread_info.fpregs.xsave.cet) for every
  thread on a CPU with shadow stacks, with cet = 0 when the task has none:
  such images restore, eagerly and lazily; an entry with bit 0 set (an
  enabled shadow stack) is refused with one clear line and nothing left.
- criu-lazy writes at most 44 auxv words (CRIU's bound), ending with the
  AT_NULL pair, and the restored task shows that vector in /proc/PID/auxv.
- The probes tools make: -V / --version, check --feature NAME.
"""
import re
import struct

import pytest

from lib import images, lazy, procs as P
from lib.badinput import dump_good
from lib.crit import crit_decode, need_crit
from lib.procstate import criu_auxv
from lib.tool import assert_error_line, assert_ok
from lib.zdtm import ZdtmTest

TIMEOUT = 60
WORKLOAD = ZdtmTest("mem_anon", ("--size", "256K"), label="256K")
CRIU_AUXV_WORDS = 44
AT_NULL = 0

# field numbers (proto/core.proto, proto/core-x86.proto)
CORE_THREAD_INFO, TI_FPREGS, FP_XSAVE, XSAVE_CET = 2, 3, 13, 9
MM_SAVED_AUXV = 13


def add_cet(imgdir, pid, cet, ssp=0):
    """Give core-PID.img the CET entry CRIU 4.2 writes."""
    entry = images.encode([(1, images.VARINT, cet), (2, images.VARINT, ssp)])

    def with_cet(xsave):
        xsave = [f for f in xsave if f[0] != XSAVE_CET]
        return xsave + [(XSAVE_CET, images.LEN, entry)]

    images.edit_record(imgdir / f"core-{pid}.img", lambda core: images.set_nested(
        core, (CORE_THREAD_INFO, TI_FPREGS, FP_XSAVE), with_cet))


def saved_auxv(imgdir, pid):
    img = images.load(imgdir / f"mm-{pid}.img")
    words = []
    for v in images.get(images.decode(img.payload(0)), MM_SAVED_AUXV):
        if isinstance(v, bytes):	# packed
            i = 0
            while i < len(v):
                x, i = images._varint(v, i)
                words.append(x)
        else:
            words.append(v)
    return words


def read_auxv(pid):
    data = open(f"/proc/{pid}/auxv", "rb").read()
    return list(struct.unpack(f"<{len(data) // 8}Q", data))


@pytest.mark.parametrize("lazy_restore", [False, True], ids=["eager", "lazy"])
def test_cet_entry_off_restores(lazy_restore, tool, zdtm, procs, workdir):
    task = zdtm(WORKLOAD)
    imgdir = dump_good(tool, task, workdir, name="images")
    add_cet(imgdir, task.pid, cet=0)
    extra = []
    daemon = None
    if lazy_restore:
        daemon = lazy.Daemon(procs, tool, ["lazy-pages", "-D", imgdir], workdir / "lp.log",
                             workdir / "lp.out", "lazy-pages")
        extra = ["--lazy-pages"]
    pidfile = workdir / "restore.pid"
    assert_ok(tool.restore(imgdir, workdir / "restore.log", TIMEOUT, pidfile=pidfile,
                           extra=extra), "restore of images with a CET entry, cet = 0")
    task.expect_restored(pidfile)
    task.check_pass()
    if daemon:
        daemon.expect_clean_exit()
        lazy.check_stats(imgdir, daemon.text())


def test_cet_shadow_stack_on_refused(tool, zdtm, workdir):
    task = zdtm(WORKLOAD)
    imgdir = dump_good(tool, task, workdir, name="images")
    add_cet(imgdir, task.pid, cet=1, ssp=0x7fff0000)
    children = P.children_of_me()
    pidfile = workdir / "restore.pid"
    res = tool.restore(imgdir, workdir / "restore.log", TIMEOUT, pidfile=pidfile)
    assert_error_line(res, "restore", rf"core-{task.pid}\.img", "shadow stack")
    assert not P.exists(task.pid), f"a task was left behind: {P.describe(task.pid)}"
    assert P.children_of_me() == children, "the failed restore left processes behind"
    assert not pidfile.exists()


def test_auxv_within_criu_bound(tool, zdtm, workdir):
    task = zdtm(WORKLOAD)
    live = read_auxv(task.pid)
    imgdir = dump_good(tool, task, workdir, name="images")
    words = saved_auxv(imgdir, task.pid)
    assert len(words) <= CRIU_AUXV_WORDS, f"{len(words)} auxv words, CRIU takes {CRIU_AUXV_WORDS}"
    assert len(words) % 2 == 0 and words[-2] == AT_NULL, f"no AT_NULL pair at the end: {words}"
    assert words == criu_auxv(live), "the saved auxv is not the live one fitted by the rule"
    # every pair kept is the live one
    live_pairs = dict(zip(live[::2], live[1::2]))
    for t, v in zip(words[:-2:2], words[1:-2:2]):
        assert live_pairs.get(t) == v, f"auxv type {t}: saved {v:#x}, live {live_pairs.get(t)}"

    pidfile = workdir / "restore.pid"
    assert_ok(tool.restore(imgdir, workdir / "restore.log", TIMEOUT, pidfile=pidfile), "restore")
    task.expect_restored(pidfile)
    got = read_auxv(task.pid)
    assert got[:len(words)] == words, "the restored task's /proc/PID/auxv is not the saved one"
    task.check_pass()


def test_criu_auxv_rule():
    """The rule itself, on vectors of the kernel's shape (the Python mirror of
    images/auxv.c that the /proc comparisons use)."""
    six18 = [33, 1, 51, 2, 16, 3, 6, 4096, 17, 100, 3, 5, 4, 56, 5, 13, 7, 6, 8, 0, 9, 7,
             11, 0, 12, 0, 13, 0, 14, 0, 23, 0, 25, 8, 26, 2, 31, 9, 15, 10, 27, 32, 28, 32,
             0, 0]
    assert len(six18) == 46
    fitted = criu_auxv(six18)
    assert len(fitted) == 44 and fitted[-2:] == [0, 0]
    assert 28 not in fitted[::2], "AT_RSEQ_ALIGN is the first pair left out"
    assert fitted[:-2] == [w for i in range(0, 44, 2) for w in six18[i:i + 2] if six18[i] != 28][:42]
    short = [6, 4096, 0, 0]
    assert criu_auxv(short) == short
    # CRIU's own dumps hold 44 words without an AT_NULL pair
    criu44 = six18[:44]
    assert criu_auxv(criu44)[-2:] == [0, 0] and len(criu_auxv(criu44)) == 44


def test_version(tool):
    for flag in ("-V", "--version"):
        res = tool.run([flag], TIMEOUT)
        assert res.rc == 0, f"{flag}: exit {res.rc}\n{res.stderr}"
        assert re.fullmatch(r"Version: \d+\.\d+(\.\d+)?\n", res.stdout), repr(res.stdout)


@pytest.mark.parametrize("feature", ["uffd", "uffd-noncoop", "lazy_pages"])
def test_check_feature(feature, tool):
    res = tool.run(["check", "--feature", feature], TIMEOUT)
    assert res.rc == 0, f"check --feature {feature}: exit {res.rc}\n{res.stderr}"
    assert res.stdout == f"{feature} is supported\n"


def test_check_unknown_feature(tool):
    res = tool.run(["check", "--feature", "no_such_thing"], TIMEOUT)
    assert_error_line(res, "check", "Unknown feature no_such_thing")


def test_restore_side_bounds(tool, zdtm, workdir):
    """The other fields CRIU 4.2's restore checks (spec sections 2-3), read
    back with CRIU's own decoder."""
    need_crit()
    task = zdtm(WORKLOAD)
    imgdir = dump_good(tool, task, workdir, name="images")

    def decode(name):
        return crit_decode(imgdir / name)["entries"]

    inv = decode("inventory.img")[0]
    assert inv.get("fdinfo_per_id") is True, "CRIU restores only fdinfo keyed by files_id"
    assert inv.get("root_cg_set", 1) != 0, "root_cg_set, when present, must be non-zero"
    core = decode(f"core-{task.pid}.img")[0]
    assert len(core["tc"]["comm"].encode()) <= 15, core["tc"]["comm"]
    mm = decode(f"mm-{task.pid}.img")[0]
    assert len(mm["mm_saved_auxv"]) <= CRIU_AUXV_WORDS
