"""Memory checks of a dump against the live task: the pagemap covers only
dumpable memory, and the pages file holds the task's bytes page for page."""
import os

from . import images
from .procfacts import anon_pages
from .crit import (MAP_SHARED, MAP_ANONYMOUS, VMA_AREA_VSYSCALL, VMA_AREA_VDSO, VMA_AREA_VVAR,
                   only)


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
