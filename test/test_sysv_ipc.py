"""SysV IPC where it goes wrong, and its images as crit reads them.

The program is test/zdtm/sysv_ipc.c (its success in every mode is in
test_zdtm.py; a SysV segment of the host's IPC namespace is refused in
test_shared_memory.py): a tree whose child has an IPC namespace of its own
is refused by the dump, the tree unharmed; images that lack a segment, its
contents or the namespace's sysctls fail the restore naming what is
missing, leaving nothing behind (no task, and the new IPC namespace goes
with the restore), and the undamaged images then restore.
"""
import json
import struct
import subprocess

import pytest

from lib import images
from lib.tool import assert_ok
from lib.zdtm import ZdtmTest
from lib.badinput import (damaged_copy, dump_good, dump_must_refuse,
                          restore_must_fail, restore_must_pass)


def ns_id(good, tool):
    """The ipc_ns_id the images are numbered by (the root's)."""
    names = sorted(p.name for p in good.glob("ipcns-var-*.img"))
    assert len(names) == 1, names
    return int(names[0][len("ipcns-var-"):-len(".img")])


@pytest.fixture
def dumped(tool, zdtm, workdir):
    task = zdtm(ZdtmTest("sysv_ipc"))
    return task, dump_good(tool, task, workdir)


def test_nested_ipc_ns_refused(tool, zdtm, workdir):
    task = zdtm(ZdtmTest("sysv_ipc", ("--nested",), label="nested", tree=True))
    dump_must_refuse(tool, task, workdir, r"not in the IPC namespace of the tree's root",
                     r"IPC namespaces inside the tree are not supported")
    task.check_pass()


@pytest.mark.parametrize("image,patterns", [
    ("ipcns-shm-{ns}.img", (r"mm-\d+\.img", r"SysV segment \d+, which", r"ipcns-shm-{ns}\.img")),
    ("pagemap-shmem-0.img", (r"pagemap-shmem-0\.img",)),
    ("ipcns-var-{ns}.img", (r"ipcns-var-{ns}\.img", r"missing")),
], ids=["segments", "contents", "sysctls"])
def test_restore_without(image, patterns, dumped, tool, workdir):
    task, good = dumped
    ns = ns_id(good, tool)
    bad = damaged_copy(good, workdir)
    (bad / image.format(ns=ns)).unlink()
    restore_must_fail(tool, workdir, bad, task.pid, *(p.format(ns=ns) for p in patterns))
    restore_must_pass(tool, workdir, task, good)


def queue_offsets(data):
    """Where each queue's entry starts in an ipcns-msg image: the entry,
    then its qnum messages (framed ipc_msg, msize bytes padded to 8)."""
    off, starts = 8, []
    while off < len(data):
        starts.append(off)
        (n,) = struct.unpack_from("<I", data, off)
        qnum = images.get(images.decode(data[off + 4:off + 4 + n]), 3)[0]
        off += 4 + n
        for _ in range(qnum):
            (m,) = struct.unpack_from("<I", data, off)
            msize = images.get(images.decode(data[off + 4:off + 4 + m]), 2)[0]
            off += 4 + m + (msize + 7) // 8 * 8
    return starts


@pytest.mark.parametrize("kind,cut,patterns", [
    ("msg", 16, (r"ipcns-msg-{ns}\.img", r"SysV message queue 0: message 2 of 3 missing")),
    ("msg", 200, (r"ipcns-msg-{ns}\.img", r"a message of SysV object 0: truncated")),
    ("sem", 4, (r"ipcns-sem-{ns}\.img", r"the values of SysV object 0: truncated")),
], ids=["msg-header", "msg-data", "sem-values"])
def test_restore_truncated(kind, cut, patterns, dumped, tool, workdir):
    """A queue's messages or a set's values cut short: one line naming the
    image and the object, nothing left behind."""
    task, good = dumped
    ns = ns_id(good, tool)
    bad = damaged_copy(good, workdir)
    path = bad / f"ipcns-{kind}-{ns}.img"
    data = path.read_bytes()
    if kind == "msg":	# without the empty queue's entry, last: cut into the one before
        data = data[:queue_offsets(data)[1]]
    path.write_bytes(data[:len(data) - cut])
    restore_must_fail(tool, workdir, bad, task.pid, *(p.format(ns=ns) for p in patterns))
    restore_must_pass(tool, workdir, task, good)


def inline_contents(good, seg_id, size):
    """Segment seg_id's contents from its pagemap-shmem image, as older
    images carry them after the entry: size bytes, padded to 4."""
    pages_id, entries = images.pagemap_entries(good / f"pagemap-shmem-{seg_id}.img")
    pages = (good / f"pages-{pages_id}.img").read_bytes()
    data, off = bytearray((size + 4095) // 4096 * 4096), 0
    for vaddr, nr, flags in entries:
        if flags & images.PE_PRESENT:
            data[vaddr:vaddr + nr * 4096] = pages[off:off + nr * 4096]
            off += nr * 4096
    return bytes(data[:size]) + b"\0" * (-size % 4)


def test_restore_contents_inline(dumped, tool, workdir):
    """Images whose ipcns-shm carries the contents after each entry (no
    in_pagemaps: what CRIU wrote before it used pagemap-shmem, and still
    restores) restore the same, with no pagemap-shmem image at all."""
    task, good = dumped
    ns = ns_id(good, tool)
    bad = damaged_copy(good, workdir)
    shm = images.load(good / f"ipcns-shm-{ns}.img")
    out = bytearray(shm.data[:shm.header])
    for i in range(len(shm.records)):
        fields = images.decode(shm.payload(i))
        seg_id = images.get(images.decode(images.get(fields, 1)[0]), 7)[0]
        size = images.get(fields, 2)[0]
        payload = images.encode([f for f in fields if f[0] != 3])
        out += struct.pack("<I", len(payload)) + payload + inline_contents(good, seg_id, size)
        (bad / f"pagemap-shmem-{seg_id}.img").unlink()
    (bad / f"ipcns-shm-{ns}.img").write_bytes(bytes(out))
    res = tool.run(["show", bad / f"ipcns-shm-{ns}.img"], 30)
    assert_ok(res, "show of the inline ipcns-shm")
    assert not any("in_pagemaps" in e for e in json.loads(res.stdout)["entries"])
    restore_must_pass(tool, workdir, task, bad)


def test_sysv_mapping_without_own_ns(dumped, tool, workdir):
    """Images that say the tree was in the dumper's IPC namespace (as a
    CRIU dump of a tree in the host's would, with its SysV mappings) are
    refused, naming the mapping, not restored without their segments."""
    task, good = dumped
    ns = ns_id(good, tool)
    bad = damaged_copy(good, workdir)
    # inventory's root_ids, their ipc_ns_id
    images.edit_record(bad / "inventory.img", lambda f: images.set_nested(
        f, (3,), lambda ids: images.set_field(ids, 7, ns)))
    restore_must_fail(tool, workdir, bad, task.pid, r"mm-\d+\.img", r"SysV shared memory",
                      r"no IPC namespace of its own")
    restore_must_pass(tool, workdir, task, good)


def crit_decode(path):
    res = subprocess.run(["crit", "decode", "-i", str(path)], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_images_as_crit_reads_them(dumped, tool):
    """Our decoder and crit agree on the IPC images (crit's extra data, the
    messages and values, left out).  crit's reader of ipcns-shm takes the
    contents inline whatever in_pagemaps says (CRIU 4 writes them to
    pagemap-shmem, as we do), so only its first entry is compared."""
    task, good = dumped
    ns = ns_id(good, tool)
    for kind in ("var", "shm", "msg", "sem"):
        path = good / f"ipcns-{kind}-{ns}.img"
        res = tool.run(["show", path], 30)
        assert_ok(res, f"show {path.name}")
        ours = json.loads(res.stdout)
        theirs = crit_decode(path)
        assert ours["magic"] == theirs["magic"]
        for e in theirs["entries"]:
            e.pop("extra", None)
        if kind == "shm":
            assert len(ours["entries"]) == 6
            assert ours["entries"][0] == theirs["entries"][0]
            assert all(e["in_pagemaps"] for e in ours["entries"])
        else:
            assert ours["entries"] == theirs["entries"], kind
    var = json.loads(tool.run(["show", good / f"ipcns-var-{ns}.img"], 30).stdout)["entries"][0]
    assert var["shm_ctlmni"] == 1234 and var["msg_ctlmax"] == 4000
    sem = crit_decode(good / f"ipcns-sem-{ns}.img")["entries"]
    assert sem[0]["extra"] == [0, 1, 5, 32767]
    msg = crit_decode(good / f"ipcns-msg-{ns}.img")["entries"]
    assert [m["mtype"] for m in msg[0]["extra"][0::2]] == [1, 7, 2]
    # each attachment as CRIU writes it: shared anonymous memory + SysV
    # (VMA_AREA_REGULAR | VMA_ANON_SHARED | VMA_AREA_SYSVIPC), shmid = the id
    mm = crit_decode(next(good.glob("mm-*.img")))["entries"][0]
    sysv = [v for v in mm["vmas"] if v["status"] & 0x400]
    assert len(sysv) == 9, mm["vmas"]
    assert all(v["status"] == 0x501 and v["flags"] == 0x21 for v in sysv), sysv
    assert sorted({int(v["shmid"]) for v in sysv}) == [0, 2, 3, 4]


def test_sparse_segment_holes_skipped(dumped, tool):
    """Of the 64 MiB segment F (id 5) only the two pages written are in
    the images."""
    task, good = dumped
    res = tool.run(["show", good / "pagemap-shmem-5.img"], 30)
    assert_ok(res, "show pagemap-shmem-5.img")
    runs = json.loads(res.stdout)["entries"][1:]
    assert sum(r["nr_pages"] for r in runs) == 2, runs
    assert sorted(r["vaddr"] for r in runs) == [0, 10000 * 4096], runs
