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
import fcntl
import json
import os
import quopri
import resource
import shutil
import socket
import stat
import struct
import subprocess
import termios

import pytest

from lib import images
from lib.procstate import criu_auxv
from lib.tool import assert_ok
from lib.zdtm import ZdtmTest, cpu_flags

TIMEOUT = 60
PROGRAMS = [
    ZdtmTest("maps"), ZdtmTest("files"), ZdtmTest("sigpending"), ZdtmTest("itimer"),
    ZdtmTest("heap_brk"), ZdtmTest("cwd_umask_rlimit"), ZdtmTest("mmap_anon_shared"),
    ZdtmTest("mmap_file_private"), ZdtmTest("pipe"), ZdtmTest("fifo"),
    ZdtmTest("eventfd"), ZdtmTest("signalfd"), ZdtmTest("timerfd"), ZdtmTest("epoll"),
    ZdtmTest("unix_socketpair"), ZdtmTest("unix_named"), ZdtmTest("inet_sockets"), ZdtmTest("memfd"),
    ZdtmTest("unix_scm"), ZdtmTest("netlink"),
    ZdtmTest("ghost_files"), ZdtmTest("memfd_map"),
]

PROT = {"r": 1, "w": 2, "x": 4}
MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS = 0x1, 0x2, 0x20
VMA_AREA_REGULAR, VMA_AREA_VSYSCALL, VMA_AREA_VDSO = 1 << 0, 1 << 2, 1 << 3
VMA_FILE_PRIVATE, VMA_FILE_SHARED, VMA_ANON_SHARED, VMA_ANON_PRIVATE = (
    1 << 6, 1 << 7, 1 << 8, 1 << 9)
VMA_AREA_VVAR = 1 << 12
VMA_AREA_MEMFD = 1 << 14
O_CLOEXEC = 0o2000000
RLIM_INFINITY = 2**64 - 1
F_GETPIPE_SZ = 1032


# ------------------------------------------------------------ what /proc says

def proc_facts(pid):
    f = {"pid": pid}
    with open(f"/proc/{pid}/maps") as fh:
        f["maps"] = []
        for line in fh:
            parts = line.split(None, 5)
            start, end = (int(x, 16) for x in parts[0].split("-"))
            f["maps"].append({"start": start, "end": end, "perms": parts[1],
                              "offset": int(parts[2], 16), "inode": int(parts[4]),
                              "path": parts[5].strip() if len(parts) > 5 else ""})
    with open(f"/proc/{pid}/stat") as fh:
        data = fh.read()
    f["stat"] = [None, None, None] + data[data.rindex(")") + 2:].split()
    f["status"] = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            k, _, v = line.partition(":")
            f["status"][k] = v.strip()
    with open(f"/proc/{pid}/auxv", "rb") as fh:
        raw = fh.read()
    # as the dump writes it: fitted into CRIU's 44 words
    words = criu_auxv(list(struct.unpack(f"<{len(raw) // 8}Q", raw)))
    f["auxv"] = {}
    for i in range(0, len(words) - 1, 2):
        if words[i] == 0:
            break
        f["auxv"][words[i]] = words[i + 1]
    for link in ("exe", "cwd", "root"):
        f[link] = os.readlink(f"/proc/{pid}/{link}")
    with open(f"/proc/{pid}/comm") as fh:
        f["comm"] = fh.read().strip()
    f["fds"] = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        info = {}
        with open(f"/proc/{pid}/fdinfo/{name}") as fh:
            raw = fh.read()
        for line in raw.splitlines():
            k, _, v = line.partition(":")
            info[k] = v.strip()
        f["fds"][int(name)] = {"target": os.readlink(f"/proc/{pid}/fd/{name}"),
                               "pos": int(info["pos"]), "flags": int(info["flags"], 8),
                               "info": info, "raw": raw}
        st = os.stat(f"/proc/{pid}/fd/{name}")
        if stat.S_ISFIFO(st.st_mode):
            f["fds"][int(name)].update(pipe_facts(f"/proc/{pid}/fd/{name}"))
            f["fds"][int(name)]["pipe_id"] = st.st_ino
    f["rlimits"] = [resource.prlimit(pid, r) for r in range(16)]
    f["anon_pages"] = anon_pages(pid, f["maps"])
    return f


PM_PRESENT, PM_SWAP, PM_FILE = 1 << 63, 1 << 62, 1 << 61
PM_PFN_MASK = (1 << 55) - 1
KPF_ZERO_PAGE = 1 << 24
SPECIAL_MAPS = ("[vvar]", "[vvar_vclock]", "[vsyscall]", "[vdso]")


def is_zero_page(kpageflags, pfn):
    kpageflags.seek(pfn * 8)
    return bool(struct.unpack("<Q", kpageflags.read(8))[0] & KPF_ZERO_PAGE)


def anon_pages(pid, maps):
    """Addresses of the task's private pages that hold data of their own
    (present or swapped, not the page cache, not the kernel's zero page):
    the pages a dump must save, whatever the dump thinks of them."""
    found = set()
    with open(f"/proc/{pid}/pagemap", "rb", buffering=0) as pm, \
            open("/proc/kpageflags", "rb", buffering=0) as kpf:
        for m in maps:
            if m["perms"][3] != "p" or m["path"] in SPECIAL_MAPS:
                continue
            pm.seek(m["start"] // 4096 * 8)
            raw = pm.read((m["end"] - m["start"]) // 4096 * 8)
            for i, pme in enumerate(struct.unpack(f"<{len(raw) // 8}Q", raw)):
                if not pme & (PM_PRESENT | PM_SWAP) or pme & PM_FILE:
                    continue
                if pme & PM_PRESENT and is_zero_page(kpf, pme & PM_PFN_MASK):
                    continue
                found.add(m["start"] + i * 4096)
    return found


def pipe_facts(path):
    """Capacity and fill of a pipe, through a reader of our own."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        size = fcntl.fcntl(fd, F_GETPIPE_SZ)
        nread = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]
    finally:
        os.close(fd)
    return {"pipe_size": size, "pipe_bytes": nread}


# ------------------------------------------------------------ decoding

def need_crit():
    crit = shutil.which("crit")
    if not crit:
        pytest.fail("crit is missing: scripts/setup installs it (Debian package criu)",
                    pytrace=False)
    return crit


def run(argv):
    p = subprocess.run([str(a) for a in argv], capture_output=True, timeout=TIMEOUT)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def crit_decode(path):
    rc, out, err = run([need_crit(), "decode", "-i", path])
    assert rc == 0, f"crit decode -i {path.name} failed:\n{err}"
    return json.loads(out)


def entries(decoded, name):
    return decoded[name]["entries"]


def only(decoded, name):
    e = entries(decoded, name)
    assert len(e) == 1, f"{name} should hold one entry, holds {len(e)}"
    return e[0]


def mark_ghosts(decoded, files):
    """A deleted file is in files.img under the name it had, with a ghost
    (remap-fpath.img, ghost-file-<hex id>.img): give it the name /proc
    shows, "<name> (deleted)"."""
    if "remap-fpath.img" not in decoded:
        return
    for r in entries(decoded, "remap-fpath.img"):
        assert r["remap_type"] == "GHOST", f"remap {r}: not a ghost"
        ghost = f"ghost-file-{r['remap_id']:x}.img"
        assert ghost in decoded, f"remap {r}: {ghost} was not written"
        gfe = entries(decoded, ghost)[0]
        reg = files[r["orig_id"]]["reg"]
        if "size" in reg:
            assert gfe.get("size", reg["size"]) == reg["size"], f"{ghost}: size"
        reg["name"] += " (deleted)"


def unlimited(v):
    return RLIM_INFINITY if v == resource.RLIM_INFINITY else v


# ------------------------------------------------------------ the test

@pytest.mark.parametrize("spec", [pytest.param(s, id=s.id) for s in PROGRAMS])
def test_images_match_proc(spec, tool, zdtm, workdir):
    need_crit()
    task = zdtm(spec)
    pid = task.pid
    facts = proc_facts(pid)
    before = task.snapshot()
    imgdir = workdir / "images"
    imgdir.mkdir()
    assert_ok(tool.dump(pid, imgdir, workdir / "dump.log", TIMEOUT, extra=["-R"]), "dump -R")
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


def check_inventory_pstree(decoded, facts):
    inv = only(decoded, "inventory.img")
    assert inv["img_version"] == 2
    assert inv.get("fdinfo_per_id") is True
    tree = only(decoded, "pstree.img")
    assert tree["pid"] == facts["pid"]
    assert tree["pgid"] == int(facts["stat"][5]), "pstree pgid"
    assert tree["sid"] == int(facts["stat"][6]), "pstree sid"
    assert tree.get("threads") == [facts["pid"]], "pstree threads"


def sig_bit(sig):
    return 1 << (sig - 1)


def vma_of(facts, addr):
    for m in facts["maps"]:
        if m["start"] <= addr < m["end"]:
            return m
    return None


def check_core(decoded, facts):
    core = only(decoded, f"core-{facts['pid']}.img")
    assert core["mtype"] == "X86_64"
    tc = core["tc"]
    assert tc["task_state"] == 1, "task_state should be 1 (alive)"
    assert tc["comm"] == facts["comm"], "comm"
    # The task waits in sigsuspend (test_waitsig), where /proc shows the
    # temporary mask; the mask sigsuspend will restore has SIGTERM added.
    # An image may hold either: the restarted sigsuspend ends the same way.
    blk = int(facts["status"]["SigBlk"], 16)
    assert tc["blk_sigset"] in (blk, blk | sig_bit(15)), (
        f"blocked mask {tc['blk_sigset']:#x}, /proc says {blk:#x}")

    rl = tc["rlimits"]["rlimits"]
    assert len(rl) == 16, "16 rlimits"
    for i, (cur, mx) in enumerate(facts["rlimits"]):
        assert (rl[i]["cur"], rl[i]["max"]) == (unlimited(cur), unlimited(mx)), f"rlimit {i}"

    acts = tc["sigactions"]
    assert len(acts) == 62, f"62 sigactions (1..64 without KILL and STOP), got {len(acts)}"
    ign = int(facts["status"]["SigIgn"], 16)
    cgt = int(facts["status"]["SigCgt"], 16)
    sigs = [s for s in range(1, 65) if s not in (9, 19)]
    for sig, act in zip(sigs, acts):
        h = act["sigaction"]
        if ign & sig_bit(sig):
            assert h == 1, f"signal {sig} is ignored, the image says handler {h:#x}"
        elif cgt & sig_bit(sig):
            assert h > 1, f"signal {sig} is caught, the image says handler {h:#x}"
            m = vma_of(facts, h)
            assert m and "x" in m["perms"], f"signal {sig}'s handler {h:#x} is not in code"
        else:
            assert h == 0, f"signal {sig} is default, the image says handler {h:#x}"

    creds = core["thread_core"]["creds"]
    uid = [int(x) for x in facts["status"]["Uid"].split()]
    gid = [int(x) for x in facts["status"]["Gid"].split()]
    assert [creds[k] for k in ("uid", "euid", "suid", "fsuid")] == uid, "uids"
    assert [creds[k] for k in ("gid", "egid", "sgid", "fsgid")] == gid, "gids"

    regs = core["thread_info"]["gpregs"]
    ip_vma = vma_of(facts, regs["ip"])
    assert ip_vma and "x" in ip_vma["perms"], f"ip {regs['ip']:#x} is not in executable memory"
    sp_vma = vma_of(facts, regs["sp"])
    assert sp_vma and "w" in sp_vma["perms"], f"sp {regs['sp']:#x} is not in writable memory"
    assert vma_of(facts, regs["fs_base"]), f"fs_base {regs['fs_base']:#x} (TLS) is not mapped"
    assert regs["cs"] == 0x33 and regs["ss"] == 0x2b, "64-bit cs/ss"
    fp = core["thread_info"]["fpregs"]
    assert len(fp["st_space"]) == 32 and len(fp["xmm_space"]) == 64, "FXSAVE area sizes"
    if "avx" in cpu_flags():
        assert len(fp.get("xsave", {}).get("ymmh_space", [])) == 64, "AVX upper halves"


def check_mm(decoded, facts, files):
    mm = only(decoded, f"mm-{facts['pid']}.img")
    st = facts["stat"]
    for key, n in (("mm_start_code", 26), ("mm_end_code", 27), ("mm_start_stack", 28),
                   ("mm_start_data", 45), ("mm_end_data", 46), ("mm_start_brk", 47),
                   ("mm_arg_start", 48), ("mm_arg_end", 49), ("mm_env_start", 50),
                   ("mm_env_end", 51)):
        assert mm[key] == int(st[n]), f"{key} is {mm[key]:#x}, /proc says {int(st[n]):#x}"
    heap = [m for m in facts["maps"] if m["path"] == "[heap]"]
    if heap:
        brk_end = (mm["mm_brk"] + 4095) & ~4095
        assert brk_end == heap[0]["end"], f"mm_brk {mm['mm_brk']:#x} vs [heap] end"
    auxv = mm["mm_saved_auxv"]
    saved = {}
    for i in range(0, len(auxv) - 1, 2):
        if auxv[i] == 0:
            break
        saved[auxv[i]] = auxv[i + 1]
    assert saved == facts["auxv"], "auxv"
    assert files[mm["exe_file_id"]]["reg"]["name"] == facts["exe"], "exe file"

    vmas = [v for v in mm["vmas"] if not v["status"] & VMA_AREA_VSYSCALL]
    maps = [m for m in facts["maps"] if m["path"] != "[vsyscall]"]
    got = [(v["start"], v["end"]) for v in vmas]
    want = [(m["start"], m["end"]) for m in maps]
    assert got == want, "the VMA list differs from /proc/PID/maps:\n" + "\n".join(
        f"image {g[0]:x}-{g[1]:x}   maps {w[0]:x}-{w[1]:x}" if g != w else f"  same {g[0]:x}"
        for g, w in zip(got + [(0, 0)] * len(want), want + [(0, 0)] * len(got)))
    for v, m in zip(vmas, maps):
        where = f"VMA {m['start']:x}-{m['end']:x} {m['perms']} {m['path']}"
        prot = sum(b for c, b in PROT.items() if c in m["perms"])
        assert v["prot"] == prot, f"{where}: prot {v['prot']}"
        shared = m["perms"][3] == "s"
        assert bool(v["flags"] & MAP_SHARED) == shared, f"{where}: flags {v['flags']:#x}"
        assert bool(v["flags"] & MAP_PRIVATE) == (not shared), f"{where}: flags {v['flags']:#x}"
        assert v["status"] & VMA_AREA_REGULAR, f"{where}: status lacks VMA_AREA_REGULAR"
        if m["path"] == "[vdso]":
            assert v["status"] & VMA_AREA_VDSO, f"{where}: not marked VDSO"
        elif m["path"].startswith("[vvar"):
            assert v["status"] & VMA_AREA_VVAR, f"{where}: not marked VVAR"
        elif m["path"].startswith("/dev/zero") or m["path"].startswith("/SYSV"):
            assert v["status"] & VMA_ANON_SHARED, f"{where}: not marked ANON_SHARED"
        elif m["path"].startswith("/memfd:"):
            # CRIU's memfd mapping: a MEMFD file object naming the inode
            assert v["status"] & VMA_AREA_MEMFD, f"{where}: not marked MEMFD"
            assert v["status"] & (VMA_FILE_SHARED if shared else VMA_FILE_PRIVATE), (
                f"{where}: status {v['status']:#x}")
            f = files[v["shmid"]]
            assert f["type"] == "MEMFD", f"{where}: file {v['shmid']} is {f['type']}"
            inodes = {i["inode_id"]: i for i in entries(decoded, "memfd.img")}
            ino = inodes[f["memfd"]["inode_id"]]
            assert f"/memfd:{ino['name']} (deleted)" == m["path"], f"{where}: name"
            assert ino["inode_id"] == m["inode"], f"{where}: inode"
            assert v["pgoff"] == m["offset"], f"{where}: pgoff {v['pgoff']:#x}"
        elif m["inode"]:
            assert v["status"] & (VMA_FILE_SHARED if shared else VMA_FILE_PRIVATE), (
                f"{where}: status {v['status']:#x}")
            assert v["pgoff"] == m["offset"], f"{where}: pgoff {v['pgoff']:#x}"
            assert files[v["shmid"]]["reg"]["name"] == m["path"], f"{where}: file"
        else:
            assert v["flags"] & MAP_ANONYMOUS and v["status"] & VMA_ANON_PRIVATE, (
                f"{where}: flags {v['flags']:#x} status {v['status']:#x}")


def check_pagemap(imgdir, decoded, facts):
    pid = facts["pid"]
    mm = only(decoded, f"mm-{pid}.img")
    vmas = [v for v in mm["vmas"] if not v["status"] & VMA_AREA_VSYSCALL]
    pages_id, ents = images.pagemap_entries(imgdir / f"pagemap-{pid}.img")
    pages = imgdir / f"pages-{pages_id}.img"
    assert pages.exists(), f"pagemap-{pid}.img names pages-{pages_id}.img, which is missing"
    present = sum(n for _, n, fl in ents if fl & images.PE_PRESENT)
    assert pages.stat().st_size == present * 4096, (
        f"{pages.name} has {pages.stat().st_size} bytes, the pagemap's present "
        f"entries {present} pages")
    prev_end = 0
    for vaddr, n, fl in ents:
        end = vaddr + n * 4096
        assert vaddr % 4096 == 0 and n > 0 and vaddr >= prev_end, (
            f"pagemap entries must be page aligned, ascending and disjoint: {vaddr:#x}+{n}")
        prev_end = end
        addr = vaddr
        while addr < end:	# may span adjacent VMAs
            v = next((v for v in vmas if v["start"] <= addr < v["end"]), None)
            assert v is not None, f"pagemap entry {vaddr:#x}+{n} covers unmapped {addr:#x}"
            assert not v["flags"] & MAP_SHARED, f"pagemap entry {vaddr:#x} covers shared memory"
            assert not v["status"] & VMA_AREA_VVAR, f"pagemap entry {vaddr:#x} covers vvar"
            if fl & images.PE_LAZY:
                assert v["flags"] & MAP_ANONYMOUS and not v["status"] & VMA_AREA_VDSO, (
                    f"pagemap entry {vaddr:#x} is lazy but not private anonymous memory")
            addr = min(end, v["end"])
    # every page with data of its own before the dump and still after it
    # (the task ran on, quietly) is in the pagemap: none was taken for the
    # zero page or otherwise left out
    dumped = {vaddr + k * 4096 for vaddr, n, fl in ents for k in range(n)}
    kept = facts["anon_pages"] & anon_pages(pid, facts["maps"])
    missing = sorted(kept - dumped)
    assert not missing, (f"{len(missing)} pages with data are not in pagemap-{pid}.img, "
                         "first at " + ", ".join(f"{a:#x}" for a in missing[:8]))
    vdso = [v for v in vmas if v["status"] & VMA_AREA_VDSO]
    for v in vdso:
        covered = sum(min(a + n * 4096, v["end"]) - max(a, v["start"])
                      for a, n, _ in ents if a < v["end"] and a + n * 4096 > v["start"])
        assert covered == v["end"] - v["start"], "the vDSO pages must always be dumped"


def differing_pages(ents, dumped, mem, volatile=()):
    """Addresses of the present pages whose dumped bytes (`dumped`, the
    pages file) differ from what `mem` (a file object on /proc/PID/mem)
    holds at their address now.  `volatile`: (address, size) areas the
    kernel itself rewrites while the task runs on, left out of the
    comparison."""
    off, bad = 0, []
    for vaddr, n, fl in ents:
        if not fl & images.PE_PRESENT:
            continue
        for k in range(n):
            addr = vaddr + k * 4096
            mem.seek(addr)
            live, saved = bytearray(mem.read(4096)), bytearray(dumped[off:off + 4096])
            for start, size in volatile:
                lo, hi = max(start, addr), min(start + size, addr + 4096)
                if lo < hi:
                    live[lo - addr:hi - addr] = saved[lo - addr:hi - addr] = bytes(hi - lo)
            if live != saved:
                bad.append(addr)
            off += 4096
    return bad


def rseq_area(core):
    """The thread's rseq area: after `dump -R` the kernel writes the CPU
    the task runs on into it (cpu_id, node_id, mm_cid), so it may differ
    from the dumped copy without anything being wrong."""
    rseq = core.get("thread_core", {}).get("rseq_entry")
    if not rseq or not rseq.get("rseq_abi_size"):
        return ()
    num = lambda v: int(v, 0) if isinstance(v, str) else int(v)
    return ((num(rseq["rseq_abi_pointer"]), num(rseq["rseq_abi_size"])),)


def check_page_contents(imgdir, pid, spec, core):
    """The pages file holds what the task's memory holds, page for page:
    after `dump -R` the task runs on, and a quiet one (waiting for SIGTERM)
    still has every dumped page as it was.  Programs whose memory moves on
    by itself (a timer's handler) are held to everything but those pages."""
    pages_id, ents = images.pagemap_entries(imgdir / f"pagemap-{pid}.img")
    dumped = (imgdir / f"pages-{pages_id}.img").read_bytes()
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        volatile = rseq_area(core)
        assert volatile, "the core image has no rseq area (glibc registers one for every thread)"
        bad = differing_pages(ents, dumped, mem, volatile)
        fs_base = core["thread_info"]["gpregs"]["fs_base"]
        allowed = moving_pages(pid, fs_base) if spec.name in MOVING_MEMORY else set()
        wrong = [a for a in bad if a not in allowed]
        assert not wrong, (f"{len(wrong)} dumped pages differ from the live task's memory, "
                           f"first at {wrong[0]:#x} in {maps_line(pid, wrong[0])}: "
                           + ", ".join(f"{a:#x}" for a in wrong[:8]))
        # the comparison sees a change: one byte flipped in the dumped copy
        first = next(((v, n) for v, n, fl in ents if fl & images.PE_PRESENT), None)
        assert first, "the pagemap has no present page"
        flipped = bytearray(dumped)
        flipped[100] ^= 0xff
        assert differing_pages(ents, bytes(flipped), mem)[:1] == [first[0]], (
            "the page comparison missed a flipped byte")


def maps_line(pid, addr):
    with open(f"/proc/{pid}/maps") as fh:
        for line in fh:
            start, end = (int(x, 16) for x in line.split()[0].split("-"))
            if start <= addr < end:
                return line.strip()
    return "no mapping"


# programs whose memory changes while they wait: the pages their handler
# and its interrupted sleep write (the signal frame, the counter, errno in
# the thread's TLS) may differ from the dumped ones
MOVING_MEMORY = ("itimer",)


def moving_pages(pid, fs_base):
    """Pages of the stack, of the writable data of the program itself, and
    of the mapping that holds the thread pointer (glibc's TCB and static
    TLS, errno among it)."""
    pages = set()
    exe = os.readlink(f"/proc/{pid}/exe")
    with open(f"/proc/{pid}/maps") as fh:
        for line in fh:
            parts = line.split(None, 5)
            path = parts[5].strip() if len(parts) > 5 else ""
            start, end = (int(x, 16) for x in parts[0].split("-"))
            if path == "[stack]" or (path == exe and "w" in parts[1]) or (
                    start <= fs_base < end):
                pages.update(range(start, end, 4096))
    return pages


def check_fs(decoded, facts, files):
    fs = only(decoded, f"fs-{facts['pid']}.img")
    assert files[fs["cwd_id"]]["reg"]["name"] == facts["cwd"], "cwd"
    assert files[fs["root_id"]]["reg"]["name"] == facts["root"], "root"
    assert fs["umask"] == int(facts["status"]["Umask"], 8), "umask"


def check_fds(decoded, facts, files, ids):
    name = f"fdinfo-{ids['files_id']}.img"
    assert name in decoded, f"ids names {name}, which was not written"
    fdinfo = {e["fd"]: e for e in entries(decoded, name)}
    assert sorted(fdinfo) == sorted(facts["fds"]), "the set of fds"
    for fd, e in fdinfo.items():
        proc = facts["fds"][fd]
        f = files[e["id"]]
        assert f["type"] == e["type"], f"fd {fd}: type {e['type']}, its file's {f['type']}"
        assert bool(e["flags"] & 1) == bool(proc["flags"] & O_CLOEXEC), f"fd {fd}: FD_CLOEXEC"
        if proc["target"].startswith("pipe:"):
            check_pipe_fd(fd, f, proc)
            continue
        if "pipe_id" in proc:
            check_fifo_fd(fd, f, proc, files)
            continue
        if proc["target"].startswith("/memfd:"):
            check_memfd_fd(fd, f, proc, decoded)
            continue
        if proc["target"] in ANON_KINDS:
            check_anon_fd(fd, f, proc)
            continue
        if proc["target"].startswith("socket:") and f["type"] == "NETLINKSK":
            check_netlink_fd(fd, f, proc, facts["pid"])
            continue
        if proc["target"].startswith("socket:") and f["type"] == "INETSK":
            check_inet_fd(fd, f, proc, facts["pid"])
            continue
        if proc["target"].startswith("socket:"):
            check_unix_fd(fd, f, proc, files)
            continue
        assert e["type"] == "REG", f"fd {fd}: type {e['type']}"
        reg = f["reg"]
        assert reg["name"] == proc["target"], f"fd {fd}: {reg['name']} vs {proc['target']}"
        assert reg["pos"] == proc["pos"], f"fd {fd}: pos {reg['pos']} vs {proc['pos']}"
        assert reg["flags"] & ~O_CLOEXEC == proc["flags"] & ~O_CLOEXEC, (
            f"fd {fd}: open flags {reg['flags']:#o} vs {proc['flags']:#o}")


def check_pipe_fd(fd, f, proc):
    assert f["type"] == "PIPE", f"fd {fd} ({proc['target']}): file type {f['type']}"
    pe = f["pipe"]
    assert pe["id"] == f["id"]
    assert pe["pipe_id"] == proc["pipe_id"], f"fd {fd}: pipe {pe['pipe_id']}"
    assert pe["flags"] == proc["flags"] & ~O_CLOEXEC, (
        f"fd {fd}: open flags {pe['flags']:#o} vs {proc['flags']:#o}")


# anon inode -> (file type, payload field, [(entry field, fdinfo key, base)])
ANON_KINDS = {
    "anon_inode:[eventfd]": ("EVENTFD", "efd", [("counter", "eventfd-count", 16)]),
    "anon_inode:[signalfd]": ("SIGNALFD", "sgfd", [("sigmask", "sigmask", 16)]),
    "anon_inode:[timerfd]": ("TIMERFD", "tfd", [("clockid", "clockid", 10),
                                                ("settime_flags", "settime flags", 8)]),
    "anon_inode:[eventpoll]": ("EVENTPOLL", "epfd", []),
}


def check_anon_fd(fd, f, proc):
    ftype, payload, fields = ANON_KINDS[proc["target"]]
    assert f["type"] == ftype, f"fd {fd} ({proc['target']}): file type {f['type']}"
    e = f[payload]
    assert e["id"] == f["id"]
    flags = e["flags"]
    if ftype == "EVENTFD":	# bit 0 is EFD_SEMAPHORE (an eventfd is O_RDWR)
        assert bool(flags & 1) == (proc["info"].get("eventfd-semaphore") == "1"), (
            f"fd {fd}: EFD_SEMAPHORE")
        flags &= ~1
    assert flags == proc["flags"] & ~O_CLOEXEC, (
        f"fd {fd}: flags {e['flags']:#o} vs {proc['flags']:#o}")
    for key, info, base in fields:
        want = int(proc["info"][info], base)
        got = int(e[key], 0) if isinstance(e[key], str) else e[key]
        assert got == want, f"fd {fd}: {key} {e[key]} vs {info} {want}"
    if ftype == "EVENTPOLL":
        want = sorted((int(w[1]), int(w[3], 16), int(w[5], 16))
                      for w in (line.split() for line in proc["raw"].splitlines())
                      if w and w[0] == "tfd:")
        got = sorted((t["tfd"], t["events"], int(t["data"], 0) if isinstance(t["data"], str)
                      else t["data"]) for t in e.get("tfd", []))
        assert got == want, f"fd {fd}: watches {got} vs fdinfo {want}"


def check_memfd_fd(fd, f, proc, decoded):
    assert f["type"] == "MEMFD", f"fd {fd} ({proc['target']}): file type {f['type']}"
    e = f["memfd"]
    assert e["pos"] == proc["pos"], f"fd {fd}: pos {e['pos']} vs {proc['pos']}"
    assert e["flags"] == proc["flags"] & ~O_CLOEXEC, (
        f"fd {fd}: flags {e['flags']:#o} vs {proc['flags']:#o}")
    inodes = {i["inode_id"]: i for i in entries(decoded, "memfd.img")}
    ino = inodes[e["inode_id"]]
    assert f"/memfd:{ino['name']} (deleted)" == proc["target"], f"fd {fd}: name {ino['name']}"
    assert f"pagemap-shmem-{ino['shmid']}.img" in decoded, f"fd {fd}: no pagemap-shmem"


def check_fifo_fd(fd, f, proc, files):
    assert f["type"] == "FIFO", f"fd {fd} ({proc['target']}): file type {f['type']}"
    fe = f["fifo"]
    assert fe["id"] == f["id"] and fe["pipe_id"] == proc["pipe_id"], f"fd {fd}: {fe}"
    reg = files[fe["regf_id"]]["reg"]
    assert reg["name"] == proc["target"], f"fd {fd}: {reg['name']} vs {proc['target']}"
    assert reg["flags"] == proc["flags"] & ~O_CLOEXEC, (
        f"fd {fd}: open flags {reg['flags']:#o} vs {proc['flags']:#o}")


SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET = 1, 2, 5
TCP_ESTABLISHED, TCP_CLOSE = 1, 7


def check_unix_fd(fd, f, proc, files):
    assert f["type"] == "UNIXSK", f"fd {fd} ({proc['target']}): file type {f['type']}"
    usk = f["usk"]
    assert usk["id"] == f["id"]
    assert f"socket:[{usk['ino']}]" == proc["target"], f"fd {fd}: inode {usk['ino']}"
    assert usk["flags"] == proc["flags"] & ~O_CLOEXEC, (
        f"fd {fd}: open flags {usk['flags']:#o} vs {proc['flags']:#o}")
    assert usk["type"] in (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET), f"fd {fd}: {usk}"
    if usk["peer"]:
        peers = [x["usk"] for x in files.values()
                 if x["type"] == "UNIXSK" and x["usk"]["ino"] == usk["peer"]]
        assert len(peers) == 1, f"fd {fd}: peer of {usk}"
        assert usk["state"] == TCP_ESTABLISHED, f"fd {fd}: {usk}"
        # a connected stream's two ends name each other (a client not yet
        # accepted names the listener; a datagram socket may be one way)
        if usk["type"] != SOCK_DGRAM and peers[0]["state"] == TCP_ESTABLISHED:
            assert peers[0]["peer"] == usk["ino"], f"fd {fd}: peer of {usk}"


def check_netlink_fd(fd, f, proc, pid):
    """A netlink socket: its inode, protocol and port id as our copy of it
    says (AF_NETLINK getsockname: (port id, groups))."""
    import socket
    nlsk = f["nlsk"]
    assert nlsk["id"] == f["id"] and f"socket:[{nlsk['ino']}]" == proc["target"], nlsk
    assert nlsk["flags"] == proc["flags"] & ~O_CLOEXEC, f"fd {fd}: {nlsk}"
    sock = socket.socket(fileno=steal_fd(pid, fd))
    try:
        assert nlsk["protocol"] == sock.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL)
        port, groups = sock.getsockname()
        assert nlsk["portid"] == port, f"fd {fd}: port {nlsk['portid']} vs {port}"
        assert (nlsk.get("groups") or [0])[0] == groups, f"fd {fd}: groups {nlsk}"
    finally:
        sock.close()


def check_netlink_queues(decoded, facts, files):
    """netlink: the queued messages (the kernel's answer on fd 20, two of
    fd 23's on fd 22) and fd 23's peer."""
    ids = only(decoded, f"ids-{facts['pid']}.img")
    by_fd = {e["fd"]: files[e["id"]]["nlsk"]
             for e in entries(decoded, f"fdinfo-{ids['files_id']}.img") if e["type"] == "NETLINKSK"}
    queues = {}
    for e in entries(decoded, "sk-queues.img"):
        queues.setdefault(e["id_for"], []).append(e["length"])
    assert len(queues.get(by_fd[20]["id"], [])) == 1, f"fd 20: {queues}"
    assert queues[by_fd[22]["id"]] == [100, 3000], f"fd 22: {queues}"
    assert by_fd[23]["state"] == 1 and by_fd[23]["dst_portid"] == by_fd[22]["portid"]
    assert by_fd[21]["portid"] == 0 and not by_fd[21].get("groups")
    assert by_fd[20]["groups"][:2] == [0x11, 1], f"fd 20: {by_fd[20]}"


def steal_fd(pid, fd):
    """The task's fd fd here, the same socket (pidfd_getfd)."""
    import ctypes
    pidfd = os.pidfd_open(pid)
    try:
        got = ctypes.CDLL(None, use_errno=True).syscall(438, pidfd, fd, 0)
        assert got >= 0, f"pidfd_getfd({pid}, {fd}): {os.strerror(ctypes.get_errno())}"
        return got
    finally:
        os.close(pidfd)


def check_inet_fd(fd, f, proc, pid):
    isk = f["isk"]
    assert isk["id"] == f["id"]
    assert f"socket:[{isk['ino']}]" == proc["target"], f"fd {fd}: inode {isk['ino']}"
    assert isk["flags"] == proc["flags"] & ~O_CLOEXEC, f"fd {fd}: flags {isk['flags']:#o}"
    sock = socket.socket(fileno=steal_fd(pid, fd))
    try:
        addr = sock.getsockname()
        assert isk["src_port"] == addr[1], f"fd {fd}: port {isk['src_port']} vs {addr}"
        assert isk["family"] == sock.family and isk["type"] == sock.type, f"fd {fd}: {isk}"
    finally:
        sock.close()


def check_unix_queues(decoded, facts, files):
    """unix_socketpair's queues: the packets of each socket, in order, with
    their sizes (datagrams and records one by one) and their bytes."""
    by_fd = {fd: files[e["id"]]["usk"]
             for e in entries(decoded, f"fdinfo-{only(decoded, 'ids-%d.img' % facts['pid'])['files_id']}.img")
             for fd in [e["fd"]] if e["type"] == "UNIXSK"}
    queues = {}
    for e in entries(decoded, "sk-queues.img"):
        assert files[e["id_for"]]["type"] == "UNIXSK", f"sk-queues.img: {e}"
        raw = base64.b64decode(e.get("extra", ""))
        assert len(raw) == e["length"], f"sk-queues.img: {len(raw)} bytes follow {e}"
        queues.setdefault(e["id_for"], []).append(e["length"])
    q = {fd: queues.get(usk["id"], []) for fd, usk in by_fd.items()}
    assert q[31] == [1, 100, 2000, 7, 65000], f"fd 31 (datagrams): {q[31]}"
    assert q[30] == [300, 5], f"fd 30 (datagrams): {q[30]}"
    assert q[41] == [10, 4096, 3] and q[40] == [10, 4096, 3], f"seqpacket: {q[40]} {q[41]}"
    assert sum(q[21]) == 3000 and sum(q[20]) == 100 << 10, f"stream: {q[20]} {q[21]}"
    assert sum(q[50]) == 500 and by_fd[50]["peer"] == 0 and by_fd[50]["shutdown"] == "BOTH"
    assert by_fd[40]["shutdown"] == "WRITE" and by_fd[41]["shutdown"] == "READ"
    assert by_fd[61]["state"] == TCP_CLOSE and not q[61]
    assert by_fd[20]["opts"]["so_priority"] == 5 and by_fd[20]["opts"]["so_mark"] == 42
    assert by_fd[21]["opts"]["so_passcred"] is True


def check_unix_scm(decoded, facts, files):
    """unix_scm: the files in flight of each packet, as files.img ids: the
    task's own files where it holds them, files of their own otherwise
    (one per open file, however often it was passed)."""
    ids = only(decoded, f"ids-{facts['pid']}.img")
    fd_id = {e["fd"]: e["id"] for e in entries(decoded, f"fdinfo-{ids['files_id']}.img")}
    held = set(fd_id.values())
    queues = {}
    for e in entries(decoded, "sk-queues.img"):
        rights = [r for scm in e.get("scm", []) for r in scm["rights"]]
        assert all(scm["type"] == 1 for scm in e.get("scm", [])), f"not SCM_RIGHTS: {e}"
        queues.setdefault(e["id_for"], []).append((e["length"], rights))
    stream = queues[fd_id[20]]
    assert [len(r) for _, r in stream] == [2, 0] and sum(n for n, _ in stream) == 220, stream
    pipe, reg = stream[0][1]
    assert files[pipe]["type"] == "PIPE" and pipe not in held, files[pipe]
    assert files[pipe]["pipe"]["pipe_id"] == files[fd_id[31]]["pipe"]["pipe_id"]
    assert reg == fd_id[32], f"the dup of fd 32 in flight is file {reg}, fd 32's {fd_id[32]}"
    dgrams = queues[fd_id[40]]
    assert [n for n, _ in dgrams] == [10, 20, 30, 5, 1, 3], dgrams
    ev, mfd, none, sk, ev2, sixty = [r for _, r in dgrams]
    assert sixty == [fd_id[60]], f"fd 60 in flight is file {sixty}"
    assert not none and ev == ev2 and len(ev) == len(mfd) == len(sk) == 1, dgrams
    assert files[ev[0]]["type"] == "EVENTFD" and files[ev[0]]["efd"]["counter"] == 7
    assert files[mfd[0]]["type"] == "MEMFD" and files[sk[0]]["type"] == "UNIXSK"
    assert not held & {ev[0], mfd[0], sk[0]}, "a file only in flight has a task's fd"
    assert files[sk[0]]["usk"]["peer"] == files[fd_id[50]]["usk"]["ino"]
    assert queues[files[sk[0]]["id"]] == [(5, [])], "the socket in flight lost its queue"
    records = queues[fd_id[60]]
    assert records[:2] == [(200, [fd_id[20], fd_id[31]]), (8, [])], records
    named = files[records[2][1][0]]["usk"]
    assert records[2][0] == 16 and named["name_dir"] == facts["cwd"], named
    assert queues[named["id"]] == [(8, [])], "the named socket in flight lost its datagram"


def check_unix_names(decoded, facts, files):
    """unix_named: names as bound (relative, abstract, deleted), the
    listener's backlog and file mode, the client not yet accepted naming
    its listener."""
    ids = only(decoded, f"ids-{facts['pid']}.img")
    by_fd = {e["fd"]: files[e["id"]]["usk"]
             for e in entries(decoded, f"fdinfo-{ids['files_id']}.img") if e["type"] == "UNIXSK"}
    # crit shows a unix name quoted-printable
    name = lambda fd: quopri.decodestring(by_fd[fd]["name"].encode())
    # a path name keeps its NUL, as the kernel gives it (and CRIU writes it)
    assert name(20) == b"unix_named.dgram\0" and by_fd[20]["name_dir"] == facts["cwd"]
    assert name(22) == b"\0" + f"zdtm-dgram-{facts['pid']}".encode()
    assert name(30).endswith(b"/unix_named.listen\0") and by_fd[30]["backlog"] == 7
    assert by_fd[30]["file_perms"]["mode"] == 0o640, by_fd[30]
    assert by_fd[33]["peer"] == by_fd[30]["ino"], "the client not yet accepted"
    assert by_fd[21]["peer"] == by_fd[20]["ino"] and by_fd[20]["peer"] == 0
    assert by_fd[50]["deleted"] is True and name(50) == b"unix_named.gone\0"
    lengths = {}
    for e in entries(decoded, "sk-queues.img"):
        lengths.setdefault(e["id_for"], []).append(e["length"])
    assert lengths.get(by_fd[20]["id"]) == [10, 3000, 1], lengths
    assert lengths.get(by_fd[22]["id"]) == [77, 60000], lengths


def check_pipes_data(decoded, facts, name, fifos):
    """One entry per pipe (or FIFO): its size and fill as the kernel says."""
    pipes = {}
    for fd, proc in facts["fds"].items():
        if "pipe_id" in proc and proc["target"].startswith("pipe:") != fifos:
            pipes.setdefault(proc["pipe_id"], proc)
    data = {e["pipe_id"]: e for e in entries(decoded, name)}
    assert sorted(data) == sorted(pipes), f"{name}: one entry per pipe"
    for ino, proc in pipes.items():
        e = data[ino]
        assert e["size"] == proc["pipe_size"], f"pipe {ino}: size {e['size']}"
        assert e["bytes"] == proc["pipe_bytes"], f"pipe {ino}: {e['bytes']} bytes"
        raw = base64.b64decode(e.get("extra", ""))
        assert len(raw) == e["bytes"], f"pipe {ino}: {len(raw)} bytes of data follow"


def check_itimers(decoded, pid):
    tc = only(decoded, f"core-{pid}.img")["tc"]
    t = tc["timers"]
    assert (t["real"]["isec"], t["real"]["iusec"]) == (0, 10000), "ITIMER_REAL interval"
    real = t["real"]["vsec"] * 10**6 + t["real"]["vusec"]
    if real == 0:
        # the kernel rearms ITIMER_REAL when its SIGALRM is dequeued: while
        # one is pending (the task was frozen) the timer reads 0
        assert 14 in queued(tc.get("signals_s")), (
            "ITIMER_REAL reads 0 (disarmed) but no SIGALRM is pending")
    assert real <= 10000, "ITIMER_REAL value"
    assert (t["virt"]["isec"], t["virt"]["iusec"]) == (500, 0), "ITIMER_VIRTUAL interval"
    # CPU-time timers read with tick granularity: a little above what was set
    slack = 50000
    assert 0 < t["virt"]["vsec"] * 10**6 + t["virt"]["vusec"] <= 1000 * 10**6 + slack
    assert (t["prof"]["isec"], t["prof"]["iusec"]) == (0, 0), "ITIMER_PROF interval"
    assert 0 < t["prof"]["vsec"] * 10**6 + t["prof"]["vusec"] <= 2000 * 10**6 + slack


def queued(q):
    out = []
    for s in (q or {}).get("signals", []):
        raw = base64.b64decode(s["siginfo"])
        assert len(raw) == 128, "siginfo must be 128 bytes"
        out.append(struct.unpack_from("<i", raw)[0])
    return sorted(out)


def check_pending(decoded, pid):
    core = only(decoded, f"core-{pid}.img")
    rtmin = 34	# glibc's SIGRTMIN
    assert queued(core["tc"].get("signals_s")) == [12, 28], "shared queue: SIGUSR2, SIGWINCH"
    assert queued(core["thread_core"].get("signals_p")) == [rtmin + 5] * 2, (
        "private queue: SIGRTMIN+5 twice")


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


# ------------------------------------------------------------ seccomp

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
