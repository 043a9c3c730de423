"""The image library and `criu-lazy show`, checked against CRIU's own decoder.

build/test/unit/test_images        C unit tests of images/ (framing, errors)
build/test/unit/test_images_pagemap  ... and of the pagemap index and writer
build/test/unit/test_images_sample writes a complete made-up image set
crit (Debian's CRIU image tool)    must decode every one of those images, with
                                   the values the sample writer put in them
build/criu-lazy show               must print the same as crit, plus only the
                                   fields newer than crit's 3.17 schemas

Needs a build (`scons -j2`); uses nothing from conftest.py.
"""
import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from lib import paths
from lib.badinput import dump_good
from lib.crit import crit_decode, need_crit
from lib.tool import assert_ok
from lib.zdtm_catalogue import ZdtmTest

ROOT = Path(__file__).resolve().parents[1]
BUILD = paths.BUILD
UNITS = [BUILD / "test" / "unit" / name for name in ("test_images", "test_images_pagemap",
                                                         "test_images_rewrite")]
SAMPLE = BUILD / "test" / "unit" / "test_images_sample"
TOOL = BUILD / "criu-lazy"
TIMEOUT = 60

PAGE = 4096
# The sample's values (test/unit/test_images_sample/)
SAMPLE_IP = 0x401A2B
SAMPLE_SP = 0x7FFD5E3F1E28
SAMPLE_HEAP = 0x1C5D000
SAMPLE_ANON = 0x7F3A10000000
SAMPLE_STACK = 0x7FFD5E3D2000
SAMPLE_VDSO = 0x7FFD5E3FB000
PE_LAZY, PE_PRESENT = 0x2, 0x4

SAMPLE_IMAGES = {
    "inventory.img": "INVENTORY",
    "pstree.img": "PSTREE",
    "core-1000.img": "CORE",
    "core-1001.img": "CORE",
    "core-1002.img": "CORE",
    "ids-1000.img": "IDS",
    "ids-1002.img": "IDS",
    "mm-1000.img": "MM",
    "mm-1002.img": "MM",
    "pagemap-1000.img": "PAGEMAP",
    "pagemap-1002.img": "PAGEMAP",
    "fs-1000.img": "FS",
    "fs-1002.img": "FS",
    "files.img": "FILES",
    "fdinfo-1.img": "FDINFO",
    "fdinfo-2.img": "FDINFO",
    "pipes-data.img": "PIPES_DATA",
    "tty-info.img": "TTY_INFO",
    "seccomp.img": "SECCOMP",
    "timens-0.img": "TIMENS",
    "stats-dump": "STATS",
    "stats-restore": "STATS",
}

# Fields our schemas have and crit 3.17's do not (spec section 0): the only
# keys `show` may print that crit does not.  Paths are key names from the
# image's entry down, list indices left out.
NEWER_THAN_CRIT = {
    "inventory.img": {"plugins_entry", "dump_criu_run_id"},
    "core-1000.img": {"thread_info.fpregs.xsave.cet",
                      "tc.membarrier_registration_mask",
                      "thread_core.cg_set",
                      "thread_core.creds.no_new_privs",
                      "thread_core.creds.cap_amb"},
    "pagemap-1000.img": {"nr_pages"},
}
NEWER_THAN_CRIT["core-1002.img"] = NEWER_THAN_CRIT["core-1000.img"]
NEWER_THAN_CRIT["core-1001.img"] = NEWER_THAN_CRIT["core-1000.img"] - {
    "tc.membarrier_registration_mask"}
NEWER_THAN_CRIT["pagemap-1002.img"] = NEWER_THAN_CRIT["pagemap-1000.img"]


def need(path):
    if not path.exists():
        pytest.fail(f"{path.relative_to(ROOT)} is not built: run `scons -j2` in {ROOT}")
    return path


def run(args, check=True):
    res = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                         timeout=TIMEOUT)
    if check and res.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited {res.returncode}:\n"
                    f"{res.stdout}\n{res.stderr}")
    return res


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("images") / "sample"
    run([need(SAMPLE), d])
    return d


@pytest.fixture(scope="module")
def shown(sample_dir):
    return json.loads(run([need(TOOL), "show", sample_dir]).stdout)


# ---- the C unit tests --------------------------------------------------------

@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_tests_pass(unit):
    res = run([need(unit)], check=False)
    lines = res.stdout.splitlines()
    failed = [line for line in lines if line.startswith("FAIL")]
    assert res.returncode == 0 and not failed, res.stdout + res.stderr
    assert sum(line.startswith("ok - ") for line in lines) >= 5, res.stdout
    assert lines[-1].startswith("0 of "), res.stdout
    assert res.stderr == "", "every error line is captured and checked"


# ---- crit reads what the image library writes --------------------------------

def test_sample_has_every_image(sample_dir):
    names = {p.name for p in sample_dir.iterdir()}
    assert names == set(SAMPLE_IMAGES) | {"pages-1.img", "pages-2.img"}


@pytest.mark.parametrize("name", sorted(SAMPLE_IMAGES))
def test_crit_decodes(sample_dir, name):
    img = crit_decode(sample_dir / name)
    assert img["magic"] == SAMPLE_IMAGES[name]
    assert img["entries"], f"{name}: no entries"
    # the pretty printer goes through crit's field-specific formatting too
    res = run([need_crit(), "show", sample_dir / name])
    assert json.loads(res.stdout)["magic"] == SAMPLE_IMAGES[name]


def test_crit_core_values(sample_dir):
    (leader,) = crit_decode(sample_dir / "core-1000.img")["entries"]
    ti = leader["thread_info"]
    assert leader["mtype"] == "X86_64"
    assert ti["gpregs"]["ip"] == SAMPLE_IP
    assert ti["gpregs"]["sp"] == SAMPLE_SP
    assert ti["gpregs"]["ax"] == 2**64 - 512
    assert (ti["gpregs"]["cs"], ti["gpregs"]["ss"]) == (0x33, 0x2B)
    assert ti["gpregs"]["mode"] == "NATIVE"
    assert ti["fpregs"]["st_space"] == list(range(32))
    assert ti["fpregs"]["xmm_space"][63] == 0x11110000 + 63
    assert ti["fpregs"]["xsave"]["xstate_bv"] == 0x2A2
    assert len(ti["fpregs"]["xsave"]["ymmh_space"]) == 64
    assert [t["entry_number"] for t in ti["tls"]] == [12, 13, 14]
    assert all(t["read_exec_only"] and t["seg_not_present"] for t in ti["tls"])

    tc = leader["tc"]
    assert tc["comm"] == "sample" and tc["task_state"] == 1
    assert tc["blk_sigset"] == 1 << 9
    assert len(tc["sigactions"]) == 62
    assert tc["sigactions"][8]["sigaction"] == 0x401B00
    assert tc["sigactions"][8]["flags"] == 0x14000000
    assert len(tc["rlimits"]["rlimits"]) == 16
    assert tc["rlimits"]["rlimits"][7] == {"cur": 1024, "max": 1048576}
    assert tc["rlimits"]["rlimits"][0]["cur"] == 2**64 - 1
    assert tc["timers"]["real"] == {"isec": 1, "iusec": 0, "vsec": 0, "vusec": 250000}
    assert tc["timers"]["posix"][0]["sival_ptr"] == 0xDEADBEEF
    assert tc["oom_score_adj"] == -100
    siginfo = base64.b64decode(tc["signals_s"]["signals"][0]["siginfo"])
    assert len(siginfo) == 128 and siginfo[0] == 10

    thc = leader["thread_core"]
    assert thc["futex_rla_len"] == 24 and thc["sched_nice"] == -3
    assert thc["creds"]["uid"] == 1000 and thc["creds"]["groups"] == [4, 27, 100]
    assert thc["creds"]["cap_bnd"] == [0xFFFFFFFF, 0x1FF]
    assert thc["sas"]["ss_flags"] == 2
    assert thc["rseq_entry"]["signature"] == 0x53053053
    assert thc["seccomp_mode"] == "disabled"

    (thread,) = crit_decode(sample_dir / "core-1001.img")["entries"]
    assert "tc" not in thread
    assert thread["thread_core"]["blk_sigset"] == 1 << 14
    assert thread["thread_core"]["comm"] == "sample-worker"
    assert thread["thread_info"]["gpregs"]["sp"] == SAMPLE_SP - 0x100000


def test_crit_tree_values(sample_dir):
    tree = crit_decode(sample_dir / "pstree.img")["entries"]
    assert tree == [
        {"pid": 1000, "ppid": 0, "pgid": 1000, "sid": 1000, "threads": [1000, 1001]},
        {"pid": 1002, "ppid": 1000, "pgid": 1000, "sid": 1000, "threads": [1002]},
    ]
    (inv,) = crit_decode(sample_dir / "inventory.img")["entries"]
    assert inv["img_version"] == 2 and inv["fdinfo_per_id"] and inv["ns_per_id"]
    assert inv["lsmtype"] == "NO_LSM" and inv["root_ids"]["mnt_ns_id"] == 5
    (ids,) = crit_decode(sample_dir / "ids-1002.img")["entries"]
    assert ids["files_id"] == 2 and ids["vm_id"] == 2


def test_crit_mm_values(sample_dir):
    (mm,) = crit_decode(sample_dir / "mm-1000.img")["entries"]
    starts = [v["start"] for v in mm["vmas"]]
    assert starts == [0x400000, 0x401000, 0x403000, SAMPLE_HEAP, SAMPLE_ANON,
                      SAMPLE_STACK, SAMPLE_VDSO - 4 * PAGE, SAMPLE_VDSO]
    assert [v["status"] for v in mm["vmas"]] == [0x41, 0x41, 0x41, 0x221, 0x201,
                                                 0x201, 0x1201, 0x209]
    assert all(v["fd"] == -1 for v in mm["vmas"])
    assert mm["vmas"][4]["madv"] == 1 << 14
    assert mm["mm_brk"] == SAMPLE_HEAP + 33 * PAGE
    assert mm["mm_saved_auxv"][:2] == [33, SAMPLE_VDSO]
    assert mm["exe_file_id"] == 1


def pagemap_runs(entries):
    """(vaddr, flags) of crit's pagemap entries, after the head."""
    return [(e["vaddr"], e["flags"]) for e in entries[1:]]


def test_crit_pagemap_and_pages(sample_dir):
    entries = crit_decode(sample_dir / "pagemap-1000.img")["entries"]
    assert entries[0] == {"pages_id": 1}
    # contiguous runs with equal flags were merged into one entry
    assert pagemap_runs(entries) == [
        (0x403000, PE_PRESENT),
        (SAMPLE_HEAP, PE_LAZY | PE_PRESENT),
        (SAMPLE_HEAP + 8 * PAGE, PE_LAZY | PE_PRESENT),
        (SAMPLE_ANON, PE_LAZY | PE_PRESENT),
        (SAMPLE_STACK + 30 * PAGE, PE_LAZY | PE_PRESENT),
        (SAMPLE_VDSO, PE_PRESENT),
    ]
    # crit 3.17 calls field 2 nr_pages; CRIU 4.2 writes 0 there
    assert all(e["nr_pages"] == 0 for e in entries[1:])

    entries = crit_decode(sample_dir / "pagemap-1002.img")["entries"]
    assert entries[0] == {"pages_id": 2}
    assert pagemap_runs(entries) == [(0x403000, PE_PRESENT), (SAMPLE_HEAP, PE_LAZY)]


def test_pages_follow_the_offset_rule(sample_dir, shown):
    """pages-1.img is the data of the present entries, in entry order."""
    entries = shown["pagemap-1000.img"]["entries"][1:]
    data = (sample_dir / "pages-1.img").read_bytes()
    off = 0
    for e in entries:
        assert e["compat_nr_pages"] == 0
        if not e["flags"] & PE_PRESENT:
            continue
        for i in range(e["nr_pages"]):
            page = data[off:off + PAGE]
            assert page == bytes([(e["vaddr"] // PAGE + i) & 0xFF]) * PAGE, hex(e["vaddr"])
            off += PAGE
    assert off == len(data) == 42 * PAGE
    assert (sample_dir / "pages-2.img").stat().st_size == PAGE


def test_crit_files_values(sample_dir):
    files = {f["id"]: f for f in crit_decode(sample_dir / "files.img")["entries"]}
    assert files[1]["type"] == "REG" and files[1]["reg"]["name"] == "/usr/bin/sample"
    assert files[1]["reg"]["mode"] == 0o100755
    assert files[4]["reg"]["name"] == "/dev/null"
    assert files[5]["type"] == "PIPE" and files[5]["pipe"]["flags"] == 0
    assert files[6]["pipe"]["pipe_id"] == files[5]["pipe"]["pipe_id"] == 51234
    assert files[7]["type"] == "TTY" and files[7]["tty"]["regf_id"] == 8

    fds = crit_decode(sample_dir / "fdinfo-1.img")["entries"]
    assert [(f["fd"], f["id"], f["type"]) for f in fds] == [
        (0, 4, "REG"), (1, 6, "PIPE"), (2, 7, "TTY"), (3, 5, "PIPE")]
    (fs,) = crit_decode(sample_dir / "fs-1000.img")["entries"]
    assert fs == {"cwd_id": 2, "root_id": 3, "umask": 0o22}

    (pd,) = crit_decode(sample_dir / "pipes-data.img")["entries"]
    assert pd["pipe_id"] == 51234 and pd["bytes"] == 11
    assert base64.b64decode(pd["extra"]) == b"hello pipe!"

    (tty,) = crit_decode(sample_dir / "tty-info.img")["entries"]
    assert tty["type"] == "PTY" and tty["pty"] == {"index": 0}
    assert tty["winsize"]["ws_col"] == 132 and len(tty["termios"]["c_cc"]) == 19


def test_crit_misc_values(sample_dir):
    assert crit_decode(sample_dir / "seccomp.img")["entries"] == [{}]
    (tn,) = crit_decode(sample_dir / "timens-0.img")["entries"]
    assert tn["monotonic"] == {"tv_sec": 86400, "tv_nsec": 123456789}
    (st,) = crit_decode(sample_dir / "stats-dump")["entries"]
    assert st["dump"]["pages_written"] == 42 and st["dump"]["pages_lazy"] == 39
    (st,) = crit_decode(sample_dir / "stats-restore")["entries"]
    assert st["restore"]["pages_restored"] == 3


# ---- `criu-lazy show` prints what crit prints ---------------------------------

def compare(crit, ours, path, extra):
    """Assert every value crit shows is in ours; collect our extra keys."""
    if isinstance(crit, dict):
        assert isinstance(ours, dict), path
        for key, value in crit.items():
            assert key in ours, f"{path}.{key} missing"
            compare(value, ours[key], f"{path}.{key}", extra)
        extra.update(f"{path}.{k}".lstrip(".") for k in ours.keys() - crit.keys())
    elif isinstance(crit, list):
        assert isinstance(ours, list) and len(ours) == len(crit), path
        for c, o in zip(crit, ours):
            compare(c, o, path, extra)
    elif isinstance(crit, str) and crit.endswith("\n"):
        # crit's base64 is MIME-style, with line breaks
        assert base64.b64decode(crit) == base64.b64decode(ours), path
    else:
        assert crit == ours, f"{path}: crit {crit!r}, show {ours!r}"


@pytest.mark.parametrize("name", sorted(SAMPLE_IMAGES))
def test_show_matches_crit(sample_dir, shown, name):
    crit = crit_decode(sample_dir / name)
    ours = shown[name]
    assert ours["magic"] == crit["magic"]
    assert len(ours["entries"]) == len(crit["entries"])
    extra = set()
    for i, (c, o) in enumerate(zip(crit["entries"], ours["entries"])):
        if name.startswith("pagemap-") and i > 0:
            # field 2: crit's nr_pages is our compat_nr_pages
            c = dict(c, compat_nr_pages=c.pop("nr_pages"))
        if name == "pipes-data.img":
            c.pop("extra")  # the raw pipe contents: show skips them
        compare(c, o, "", extra)
    assert extra == NEWER_THAN_CRIT.get(name, set())


def test_show_dir_skips_non_images(sample_dir, shown):
    assert set(shown) == set(SAMPLE_IMAGES)


def test_show_one_file(sample_dir, shown):
    one = json.loads(run([need(TOOL), "show", sample_dir / "mm-1000.img"]).stdout)
    assert one == shown["mm-1000.img"]
    pages = json.loads(run([need(TOOL), "show", sample_dir / "pages-1.img"]).stdout)
    assert pages == {"magic": "PAGES", "size": 42 * PAGE, "nr_pages": 42}


@pytest.fixture
def broken_dir(sample_dir, tmp_path):
    d = tmp_path / "broken"
    shutil.copytree(sample_dir, d)
    return d


def show_fails(path):
    res = run([need(TOOL), "show", path], check=False)
    assert res.returncode != 0
    assert res.stdout == "", "no partial output"
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_show_truncated(broken_dir):
    mm = broken_dir / "mm-1000.img"
    os.truncate(mm, mm.stat().st_size - 3)
    assert show_fails(broken_dir) == "show: mm-1000.img: truncated entry at offset 8"
    assert show_fails(mm) == "show: mm-1000.img: truncated entry at offset 8"


def test_show_bad_magic(broken_dir):
    core = broken_dir / "core-1001.img"
    data = bytearray(core.read_bytes())
    data[4:8] = (0x57492820).to_bytes(4, "little")  # MM's magic
    core.write_bytes(bytes(data))
    assert show_fails(broken_dir) == \
        "show: core-1001.img: bad magic 0x57492820 (expected 0x55053847)"


def test_show_corrupted(broken_dir):
    fs = broken_dir / "fs-1002.img"
    data = bytearray(fs.read_bytes())
    data[12] = 0xFF  # first tag of the record: an invalid wire type
    fs.write_bytes(bytes(data))
    assert show_fails(broken_dir) == "show: fs-1002.img: corrupted entry at offset 8"


def test_show_pipe_data_truncated(broken_dir):
    pd = broken_dir / "pipes-data.img"
    os.truncate(pd, pd.stat().st_size - 1)
    assert "pipes-data.img: truncated data at offset" in show_fails(broken_dir)


# ---- images written over older ones --------------------------------------------

def test_dump_over_an_older_tree(tool, zdtm, workdir):
    """A process dumped into the directory of an older dump of a bigger
    tree: each image of the same name written over the older one (not
    truncated at open, images/image-write.c) ends where the new dump's
    does; the restore brings back the one process, nothing of the tree."""
    tree = zdtm(ZdtmTest("tree", ("--children", "3"), label="older", tree=True))
    imgdir = dump_good(tool, tree, workdir, name="images")
    older = {p.name: p.stat().st_size for p in imgdir.iterdir()}
    task = zdtm(ZdtmTest("mem_anon"))
    task.note_tree()
    assert_ok(tool.dump(task.pid, imgdir, workdir / "dump-2.log", TIMEOUT), "the second dump")
    task.expect_gone()
    shorter = [p.name for p in imgdir.iterdir()
               if p.name in older and p.stat().st_size < older[p.name]]
    assert "pstree.img" in shorter, f"pstree.img not shorter: {sorted(shorter)}"
    shown = json.loads(run([need(TOOL), "show", imgdir / "pstree.img"]).stdout)
    assert len(shown["entries"]) == 1, shown
    pidfile = workdir / "restore.pid"
    assert_ok(tool.restore(imgdir, workdir / "restore.log", TIMEOUT, pidfile=pidfile), "restore")
    task.expect_restored(pidfile)
    task.check_pass()
