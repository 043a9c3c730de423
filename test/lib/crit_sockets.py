"""Socket queue checks of a dump, per zdtm program: the packets queued on
unix and netlink sockets, names, and the files in flight (SCM_RIGHTS)."""
import base64
import quopri

from .crit_fds import TCP_CLOSE
from .crit import entries, only


def sockets_by_fd(decoded, facts, files, ftype, payload):
    """{fd: the socket's payload entry} of the task's fds of type ftype."""
    ids = only(decoded, f"ids-{facts['pid']}.img")
    return {e["fd"]: files[e["id"]][payload]
            for e in entries(decoded, f"fdinfo-{ids['files_id']}.img") if e["type"] == ftype}


def queue_lengths(decoded):
    """{socket file id: [packet lengths, in queue order]} of sk-queues.img."""
    lengths = {}
    for e in entries(decoded, "sk-queues.img"):
        lengths.setdefault(e["id_for"], []).append(e["length"])
    return lengths


def check_netlink_queues(decoded, facts, files):
    """netlink: the queued messages (the kernel's answer on fd 20, two of
    fd 23's on fd 22) and fd 23's peer."""
    by_fd = sockets_by_fd(decoded, facts, files, "NETLINKSK", "nlsk")
    queues = queue_lengths(decoded)
    # and the notifications of its groups (a link or an address changed by
    # anyone in this network namespace meanwhile: another test's veth)
    assert len(queues.get(by_fd[20]["id"], [])) >= 1, f"fd 20: {queues}"
    assert queues[by_fd[22]["id"]] == [100, 3000], f"fd 22: {queues}"
    assert by_fd[23]["state"] == 1 and by_fd[23]["dst_portid"] == by_fd[22]["portid"]
    assert by_fd[21]["portid"] == 0 and not by_fd[21].get("groups")
    assert by_fd[20]["groups"][:2] == [0x11, 1], f"fd 20: {by_fd[20]}"


def check_unix_queues(decoded, facts, files):
    """unix_socketpair's queues: the packets of each socket, in order, with
    their sizes (datagrams and records one by one) and their bytes."""
    by_fd = sockets_by_fd(decoded, facts, files, "UNIXSK", "usk")
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
    by_fd = sockets_by_fd(decoded, facts, files, "UNIXSK", "usk")
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
    lengths = queue_lengths(decoded)
    assert lengths.get(by_fd[20]["id"]) == [10, 3000, 1], lengths
    assert lengths.get(by_fd[22]["id"]) == [77, 60000], lengths
