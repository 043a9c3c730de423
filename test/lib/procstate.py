"""What /proc says about a task, in a form two snapshots can be compared in.

A restore must bring back the state /proc shows: the memory map, signal
masks and dispositions, credentials, fds with their offsets and flags, cwd,
root, exe, limits, the mm fields of stat, auxv, cmdline, environ.  What
legitimately changes is left out or normalized:

- the inode of shared anonymous memory (a new shmem object on restore),
  of deleted files (ghost files, made again on restore), and of pipes,
  sockets and pidfds (which ones share an inode is compared);
- SIGALRM in the pending sets (interval timers fire on their own schedule);
- the run state, times, PF_* flags (a restored task did not exec) and
  anything else that is about the process's life rather than its state;
- auxv is compared as the dump writes it: fitted into CRIU's 44 words
  (criu_auxv, the rule of images/auxv.c), which is what a restored task shows;
- the task's own pid where stat shows it as its process group or session:
  a task restored in a new pid namespace (lazy-migrate) has another pid
  here, and leads its group and session all the same.
"""
import os
import re
import struct
import time

from . import procs

SIGALRM_BIT = 1 << (14 - 1)

STATUS_KEYS = ("Umask", "SigBlk", "SigIgn", "SigCgt", "SigPnd", "ShdPnd",
               "Uid", "Gid", "Groups", "NoNewPrivs", "Seccomp",
               "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "Threads")

# proc(5) stat fields compared: name -> field number
STAT_FIELDS = {
    "comm": 2, "pgrp": 5, "session": 6, "tty_nr": 7, "priority": 18, "nice": 19,
    "num_threads": 20, "exit_signal": 38, "rt_priority": 40, "policy": 41,
    "start_code": 26, "end_code": 27, "start_stack": 28, "start_data": 45,
    "end_data": 46, "start_brk": 47, "arg_start": 48, "arg_end": 49,
    "env_start": 50, "env_end": 51,
}

_SHMEM = re.compile(r"/dev/zero \(deleted\)|/SYSV|\[anon_shmem| \(deleted\)$")


CRIU_AUXV_WORDS = 44
# types left out first when an auxv is too long for CRIU (images/auxv.c):
# AT_RSEQ_ALIGN, AT_RSEQ_FEATURE_SIZE, AT_MINSIGSTKSZ, AT_HWCAP2
AUXV_DROP_ORDER = (28, 27, 51, 26)


def criu_auxv(words, max_words=CRIU_AUXV_WORDS):
    """The auxv words as criu-lazy writes them: at most max_words, ending
    with the AT_NULL pair, dropping AUXV_DROP_ORDER first, then the last."""
    pairs = []
    for i in range(0, len(words) - 1, 2):
        if words[i] == 0:
            break
        pairs.append((words[i], words[i + 1]))
    room = max_words // 2 - 1
    for t in AUXV_DROP_ORDER:
        if len(pairs) <= room:
            break
        at = next((i for i, p in enumerate(pairs) if p[0] == t), None)
        if at is not None:
            del pairs[at]
    pairs = pairs[:room]
    return [w for p in pairs for w in p] + [0, 0]


def _fitted_auxv(pid):
    data = _read(f"/proc/{pid}/auxv", binary=True)
    if data is None:
        return None
    words = struct.unpack(f"<{len(data) // 8}Q", data[:len(data) // 8 * 8])
    fitted = criu_auxv(list(words))
    return struct.pack(f"<{len(fitted)}Q", *fitted)


def normalize_maps_line(line):
    """Blank the inode of shared anonymous mappings and of deleted files
    (made again by a restore); keep everything else."""
    if not _SHMEM.search(line):
        return line
    parts = line.split(None, 5)
    if len(parts) >= 5:
        parts[4] = "X"
    return " ".join(parts)


def _private_anon(line):
    parts = line.split()
    return len(parts) == 5 and parts[1].endswith("p") and parts[3:] == ["00:00", "0"]


def maps_lines(pid):
    with open(f"/proc/{pid}/maps") as f:
        return [normalize_maps_line(l.rstrip("\n")) for l in f]


def _read(path, binary=False):
    try:
        with open(path, "rb" if binary else "r") as f:
            return f.read()
    except FileNotFoundError:
        return None


# Objects that a restore makes anew, with new inode numbers: compared by
# which fds share one (the n-th such object met in fd order), not by number.
_NEW_INODE = re.compile(r"^(pipe|socket):\[(\d+)\]$")


def _fds(pid, ignore_pos):
    out = {}
    seen = {}
    base = f"/proc/{pid}/fd"
    for name in sorted(os.listdir(base), key=int):
        fd = int(name)
        try:
            target = os.readlink(f"{base}/{name}")
            info = _read(f"/proc/{pid}/fdinfo/{name}") or ""
        except FileNotFoundError:
            continue
        fields = {}
        for line in info.splitlines():
            k, _, v = line.partition(":")
            if k in ("pos", "flags", "ino", "mnt_id"):
                fields[k] = v.strip()
        if ignore_pos:
            fields.pop("pos", None)
        if target.startswith("/memfd:") or target.endswith(" (deleted)"):
            fields.pop("ino", None)	# a new inode with the same name
        m = _NEW_INODE.match(target)
        if m:
            n = seen.setdefault(target, len(seen))
            target = f"{m.group(1)}:[#{n}]"
            fields.pop("ino", None)
        elif target == "anon_inode:[pidfd]" and "ino" in fields:
            # the pidfs inode of a task is new with every restore: compare
            # which pidfds name the same task, not the number
            key = ("pidfd", fields["ino"])
            fields["ino"] = f"#{seen.setdefault(key, len(seen))}"
        out[fd] = (target, tuple(sorted(fields.items())))
    return out


def snapshot(pid, ignore_fd_pos=False, threads_vary=False):
    """A dict of everything compared; raises if the task is gone.  A task
    whose threads come and go (threads_vary) is not compared by their number,
    nor by its private anonymous mappings (their stacks, malloc's arenas)."""
    st = procs.read_stat(pid)
    if st is None:
        raise ProcessLookupError(f"pid {pid} is gone")
    snap = {"maps": maps_lines(pid)}
    for key in STATUS_KEYS:
        val = procs.status_field(pid, key)
        if key in ("SigPnd", "ShdPnd") and val is not None:
            val = f"{int(val, 16) & ~SIGALRM_BIT:016x}"
        snap["status " + key] = val
    for name, n in STAT_FIELDS.items():
        snap["stat " + name] = st[n]
    for name in ("pgrp", "session"):
        if snap["stat " + name] == str(pid):
            snap["stat " + name] = "(its own pid)"
    if threads_vary:
        snap["status Threads"] = snap["stat num_threads"] = "(varies)"
        # thread stacks and malloc arenas come and go with the threads (a
        # new arena or stack after the restore is the program's doing):
        # private anonymous mappings are not compared, everything else is
        snap["maps"] = [l for l in snap["maps"] if not _private_anon(l)]
    snap["fds"] = _fds(pid, ignore_fd_pos)
    for link in ("cwd", "root", "exe"):
        snap[link] = os.readlink(f"/proc/{pid}/{link}")
    snap["limits"] = _read(f"/proc/{pid}/limits")
    snap["personality"] = _read(f"/proc/{pid}/personality")
    snap["oom_score_adj"] = _read(f"/proc/{pid}/oom_score_adj")
    if os.path.exists(f"/proc/{pid}/loginuid"):
        snap["loginuid"] = _read(f"/proc/{pid}/loginuid")
    snap["comm"] = _read(f"/proc/{pid}/comm")
    snap["auxv"] = _fitted_auxv(pid)
    snap["cmdline"] = _read(f"/proc/{pid}/cmdline", binary=True)
    snap["environ"] = _read(f"/proc/{pid}/environ", binary=True)
    return snap


def diff(before, after):
    """Human-readable differences, one string per thing that changed."""
    out = []
    for key in before:
        a, b = before[key], after.get(key)
        if a == b:
            continue
        if key == "maps":
            out.append("maps differ:\n" + _maps_diff(a, b))
        elif key == "fds":
            for fd in sorted(set(a) | set(b)):
                if a.get(fd) != b.get(fd):
                    out.append(f"fd {fd}: {a.get(fd)} -> {b.get(fd)}")
        elif isinstance(a, bytes):
            out.append(f"{key} differs ({len(a)} -> {len(b) if b is not None else None} bytes)")
        else:
            out.append(f"{key}: {a!r} -> {b!r}")
    return out


def settled_diff(pid, before, ignore_fd_pos=False, timeout=2.0, threads_vary=False):
    """diff(before, now), retried for up to timeout seconds until it is empty.

    Right after a restore (or a refused dump) the task may still be on its
    way back into the call it was interrupted in: a task restarting
    sigsuspend shows its real blocked mask until it re-enters it.  Only a
    difference that lasts is a difference."""
    deadline = time.monotonic() + timeout
    while True:
        changes = diff(before, snapshot(pid, ignore_fd_pos, threads_vary))
        if not changes or time.monotonic() >= deadline:
            return changes
        time.sleep(0.02)


def settled_snapshot(pid, ignore_fd_pos=False, timeout=2.0, threads_vary=False):
    """A snapshot that the next one, a moment later, agrees with: a task
    that has just written its pidfile may not be in its wait call yet (its
    blocked mask shows SIGTERM until it is)."""
    deadline = time.monotonic() + timeout
    snap = snapshot(pid, ignore_fd_pos, threads_vary)
    while True:
        time.sleep(0.02)
        again = snapshot(pid, ignore_fd_pos, threads_vary)
        if not diff(snap, again) or time.monotonic() >= deadline:
            return again
        snap = again


def _maps_diff(a, b):
    import difflib
    return "\n".join(difflib.unified_diff(a, b, "before", "after", lineterm="", n=1))
