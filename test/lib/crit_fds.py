"""Per-fd checks of a dump against /proc: every fd's file entry, by kind
(regular, pipe, FIFO, memfd, anon inodes, unix, netlink, inet sockets),
and the pipe data images."""
import base64
import socket

from .selfcheck import steal_fd
from .crit import O_CLOEXEC, entries


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
