"""Task checks of a dump against /proc: inventory and pstree, the core
(signals, rlimits, creds, registers), mm fields and VMAs, fs, timers and
pending signals."""
import base64
import struct

from .zdtm_catalogue import cpu_flags
from .crit import (PROT, MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS, VMA_AREA_REGULAR,
                   VMA_AREA_VSYSCALL, VMA_AREA_VDSO, VMA_FILE_PRIVATE, VMA_FILE_SHARED,
                   VMA_ANON_SHARED, VMA_ANON_PRIVATE, VMA_AREA_VVAR, VMA_AREA_MEMFD, entries,
                   only, unlimited)


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


def check_fs(decoded, facts, files):
    fs = only(decoded, f"fs-{facts['pid']}.img")
    assert files[fs["cwd_id"]]["reg"]["name"] == facts["cwd"], "cwd"
    assert files[fs["root_id"]]["reg"]["name"] == facts["root"], "root"
    assert fs["umask"] == int(facts["status"]["Umask"], 8), "umask"


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
