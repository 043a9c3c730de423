"""What /proc says about a task before its dump: maps, stat, status, auxv,
links, fds (with pipe fill), rlimits, and the private pages holding data."""
import fcntl
import os
import resource
import stat
import struct
import termios

from .procstate import criu_auxv


F_GETPIPE_SZ = 1032


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
