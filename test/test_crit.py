"""Images of a real dump decode with CRIU's own tool and tell the truth.

A zdtm program is dumped with -R (so it keeps running, and must keep
running unharmed: it passes its checks afterwards).  Then:
- every protobuf image (all *.img but the raw pages-N.img) decodes with
  Debian's `crit decode` and `crit show`, and with `criu-lazy show`;
- what the images say matches what /proc said just before the dump: the VMA
  list and each VMA's protection, sharing, file and offset; the mm fields;
  auxv; exe, cwd, root, umask; every fd with its file, offset and flags;
  comm, blocked mask, sigactions, rlimits, credentials; pgid/sid; and the
  registers point into the right mappings;
- the pagemap covers only dumpable memory, flags lazy only private
  anonymous memory, and the pages file holds exactly its present pages,
  each byte for byte what /proc/PID/mem shows at its address (the task
  runs on after -R, and waits quietly);
- for the timer and pending-signal programs, the timers and queued signals.
"""
import base64
import json

import pytest

from lib.crit import TIMEOUT, crit_decode, entries, mark_ghosts, need_crit, only, run
from lib.crit_fds import check_fds, check_pipes_data
from lib.crit_memory import check_page_contents, check_pagemap
from lib.crit_sockets import (check_netlink_queues, check_unix_names, check_unix_queues,
                              check_unix_scm)
from lib.crit_task import (check_core, check_fs, check_inventory_pstree, check_itimers,
                           check_mm, check_pending)
from lib.procfacts import is_zero_page, proc_facts
from lib.tool import assert_ok
from lib.zdtm import ZdtmTest

PROGRAMS = [
    ZdtmTest("maps"), ZdtmTest("files"), ZdtmTest("sigpending"), ZdtmTest("itimer"),
    ZdtmTest("heap_brk"), ZdtmTest("cwd_umask_rlimit"), ZdtmTest("mmap_anon_shared"),
    ZdtmTest("mmap_file_private"), ZdtmTest("pipe"), ZdtmTest("fifo"),
    ZdtmTest("eventfd"), ZdtmTest("signalfd"), ZdtmTest("timerfd"), ZdtmTest("epoll"),
    ZdtmTest("unix_socketpair"), ZdtmTest("unix_named"), ZdtmTest("inet_sockets"), ZdtmTest("memfd"),
    ZdtmTest("unix_scm"), ZdtmTest("netlink"),
    ZdtmTest("ghost_files"), ZdtmTest("memfd_map"),
    ZdtmTest("link_remap", cr_opts=("--link-remap",)),
]


@pytest.mark.parametrize("spec", [pytest.param(s, id=s.id) for s in PROGRAMS])
def test_images_match_proc(spec, tool, zdtm, workdir):
    need_crit()
    task = zdtm(spec)
    pid = task.pid
    facts = proc_facts(pid)
    before = task.snapshot()
    imgdir = workdir / "images"
    imgdir.mkdir()
    assert_ok(tool.dump(pid, imgdir, workdir / "dump.log", TIMEOUT,
                        extra=["-R", *spec.cr_opts]), "dump -R")
    task.expect_unharmed(before)

    # Everything decodes, with crit and with our own show.
    names = sorted(p.name for p in imgdir.iterdir() if p.name.endswith(".img"))
    protobuf = [n for n in names if not n.startswith("pages-")]
    for required in ("inventory.img", "pstree.img", f"core-{pid}.img", f"mm-{pid}.img",
                     f"pagemap-{pid}.img", f"ids-{pid}.img", f"fs-{pid}.img", "files.img"):
        assert required in names, f"{required} was not written; the dump wrote {names}"
    decoded = {}
    for n in protobuf:
        decoded[n] = crit_decode(imgdir / n)
        rc, out, err = run([need_crit(), "show", imgdir / n])
        assert rc == 0, f"crit show {n} failed:\n{err}"
        json.loads(out)
        rc, out, err = run([tool.binary, "show", imgdir / n])
        assert rc == 0, f"criu-lazy show {n} failed:\n{err}"
        assert json.loads(out), f"criu-lazy show {n} printed nothing"
    rc, out, err = run([tool.binary, "show", imgdir])
    assert rc == 0, f"criu-lazy show {imgdir} failed:\n{err}"
    json.loads(out)

    check_inventory_pstree(decoded, facts)
    files = {e["id"]: e for e in entries(decoded, "files.img")}
    mark_ghosts(decoded, files)
    ids = only(decoded, f"ids-{pid}.img")
    check_core(decoded, facts)
    check_mm(decoded, facts, files)
    check_pagemap(imgdir, decoded, facts)
    check_page_contents(imgdir, pid, spec, only(decoded, f"core-{pid}.img"))
    check_fs(decoded, facts, files)
    check_fds(decoded, facts, files, ids)
    if spec.name == "itimer":
        check_itimers(decoded, pid)
    if spec.name == "sigpending":
        check_pending(decoded, pid)
    if spec.name == "pipe":
        check_pipes_data(decoded, facts, "pipes-data.img", fifos=False)
    if spec.name == "fifo":
        check_pipes_data(decoded, facts, "fifo-data.img", fifos=True)
    if spec.name == "unix_socketpair":
        check_unix_queues(decoded, facts, files)
    if spec.name == "unix_named":
        check_unix_names(decoded, facts, files)
    if spec.name == "unix_scm":
        check_unix_scm(decoded, facts, files)
    if spec.name == "netlink":
        check_netlink_queues(decoded, facts, files)

    task.check_pass()


def test_zero_page_pfn_is_the_zero_page(tool, zdtm, workdir):
    """The dump leaves out pages that map the kernel's zero page, by its
    PFN.  The PFN it takes for the zero page must be the zero page's: on a
    kernel that gives each read fault a page of its own (this project's
    test VM), a PFN taken from such a page is soon reused by some task's
    page with data, which the dump would then skip."""
    task = zdtm(ZdtmTest("maps"))
    imgdir = workdir / "images"
    imgdir.mkdir()
    log = workdir / "dump.log"
    assert_ok(tool.dump(task.pid, imgdir, log, TIMEOUT, extra=["-R"]), "dump -R")
    text = log.read_text()
    lines = [ln for ln in text.splitlines() if "zero page pfn" in ln]
    if lines:
        pfn = int(lines[0].split("zero page pfn")[1].split()[0], 16)
        with open("/proc/kpageflags", "rb", buffering=0) as kpf:
            assert is_zero_page(kpf, pfn), f"the dump took pfn {pfn:#x} for the zero page"
    else:
        assert "zero pages are saved" in text, "the dump log says nothing of the zero page"
    task.check_pass()


def seccomp_chains(imgdir, pid):
    """{tid: (mode, [filter lengths, oldest first], newest index)} of every
    thread pstree.img lists, and seccomp.img's filters."""
    (entry,) = crit_decode(imgdir / "seccomp.img")["entries"]
    filters = entry["seccomp_filters"]
    chains = {}
    for ps in crit_decode(imgdir / "pstree.img")["entries"]:
        for tid in ps.get("threads", [ps["pid"]]):
            (core,) = crit_decode(imgdir / f"core-{tid}.img")["entries"]
            thc = core["thread_core"]
            chain, idx = [], thc.get("seccomp_filter")
            if thc.get("seccomp_mode") == "filter":
                k = idx
                while True:
                    chain.insert(0, len(base64.b64decode(filters[k]["filter"])))
                    if "prev" not in filters[k]:
                        break
                    k = filters[k]["prev"]
            chains[tid] = (thc.get("seccomp_mode"), chain, idx)
    return filters, chains


def test_seccomp_images(tool, zdtm, workdir):
    """seccomp.img holds each filter of the tree once, as CRIU writes it: a
    chain that grew from an inherited one (a thread's, a child's) shares
    its start; every core names its newest filter."""
    need_crit()
    # t1: F1 (7 instructions); t2: t1's F1 + F2 (7); t3: F3 (9); main none
    task = zdtm(ZdtmTest("seccomp_filter_threads"))
    imgdir = workdir / "threads"
    imgdir.mkdir()
    assert_ok(tool.dump(task.pid, imgdir, workdir / "dump-threads.log", TIMEOUT,
                        extra=["-R"]), "dump -R")
    filters, chains = seccomp_chains(imgdir, task.pid)
    assert len(filters) == 3, f"3 distinct filters expected: {filters}"
    assert chains[task.pid][0] == "disabled"
    shapes = sorted(c[1] for t, c in chains.items() if t != task.pid)
    assert shapes == [[56], [56, 56], [72]], chains
    (t1,) = [c for c in chains.values() if c[1] == [56]]
    (t2,) = [c for c in chains.values() if c[1] == [56, 56]]
    assert filters[t2[2]]["prev"] == t1[2], "t2's chain does not start with t1's filter"
    task.check_pass()

    # the child's chain starts with the parent's filter
    task = zdtm(ZdtmTest("seccomp_filter_inherit", tree=True))
    imgdir = workdir / "inherit"
    imgdir.mkdir()
    assert_ok(tool.dump(task.pid, imgdir, workdir / "dump-inherit.log", TIMEOUT,
                        extra=["-R"]), "dump -R")
    filters, chains = seccomp_chains(imgdir, task.pid)
    assert len(filters) == 2, filters
    child = [t for t in chains if t != task.pid]
    assert len(child) == 1, chains
    assert chains[task.pid][1] == [56] and chains[child[0]][1] == [56, 72], chains
    assert filters[chains[child[0]][2]]["prev"] == chains[task.pid][2]
    task.check_pass()
