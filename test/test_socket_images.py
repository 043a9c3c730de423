"""Damaged socket images: files in flight and netlink sockets (and a
netlink socket whose queue the machine fills meanwhile).

Each case dumps a program, changes one field of sk-queues.img or
files.img, and expects the restore to fail with one line naming what is
wrong, before any process exists (nothing left behind); the undamaged
images then restore and the program passes (the control).
"""
import os
import subprocess

import pytest

from lib import images
from lib.zdtm import ZdtmTest
from lib.badinput import damaged_copy, dump_good, restore_must_fail, restore_must_pass

# field numbers: sk_packet_entry (proto/sk-packet.proto), scm_entry,
# file_entry (proto/fdinfo.proto), netlink_sk_entry (proto/sk-netlink.proto)
PKT_LENGTH, PKT_SCM = 2, 4
SCM_TYPE, SCM_RIGHTS = 1, 2
FE_TYPE, FE_NLSK = 1, 7
NL_PORTID, NL_GROUPS = 7, 8
NETLINKSK = 13


def dump(tool, zdtm, workdir, spec):
    task = zdtm(spec)
    return task, dump_good(tool, task, workdir)


def change_first_scm(path, change):
    """sk-queues.img with the scm_entry of its first packet that has one
    replaced by change(its fields)."""
    img = images.load_raw_following(path, PKT_LENGTH)
    for i in range(len(img.records)):
        pkt = images.decode(img.payload(i))
        scm = images.get(pkt, PKT_SCM)
        if scm:
            new = images.encode(change(images.decode(scm[0])))
            path.write_bytes(images.replace_record(img, i, images.encode(
                images.set_field(pkt, PKT_SCM, new))))
            return
    raise AssertionError(f"{path.name}: no packet carries files in flight")


def missing_file(scm):
    return images.set_field(scm, SCM_RIGHTS, 99999)


def not_rights(scm):
    return images.set_field(scm, SCM_TYPE, 2)	# SCM_CREDENTIALS


SCM_CASES = [
    ("missing-file", missing_file, r"sk-queues\.img: unix socket \d+ has file 99999 in flight, "
                                   r"which files\.img lacks"),
    ("not-rights", not_rights, r"sk-queues\.img: .*control message of type 2: only SCM_RIGHTS"),
]


@pytest.mark.parametrize("change,reason", [pytest.param(c, r, id=n) for n, c, r in SCM_CASES])
def test_damaged_files_in_flight(change, reason, tool, zdtm, workdir):
    task, good = dump(tool, zdtm, workdir, ZdtmTest("unix_scm"))
    bad = damaged_copy(good, workdir)
    change_first_scm(bad / "sk-queues.img", change)
    restore_must_fail(tool, workdir, bad, task.pid, reason)
    restore_must_pass(tool, workdir, task, good)


def change_netlink(path, change):
    """files.img with its first netlink_sk_entry replaced by change(it)."""
    img = images.load(path)
    for i in range(len(img.records)):
        fe = images.decode(img.payload(i))
        if images.get(fe, FE_TYPE) == [NETLINKSK] and images.get(fe, FE_NLSK):
            nl = images.decode(images.get(fe, FE_NLSK)[0])
            if images.get(nl, NL_GROUPS):
                path.write_bytes(images.replace_record(img, i, images.encode(
                    images.set_field(fe, FE_NLSK, images.encode(change(nl))))))
                return
    raise AssertionError(f"{path.name}: no netlink socket in groups")


def test_netlink_groups_without_port(tool, zdtm, workdir):
    """A netlink socket in multicast groups with no port id."""
    task, good = dump(tool, zdtm, workdir, ZdtmTest("netlink"))
    bad = damaged_copy(good, workdir)
    change_netlink(bad / "files.img", lambda nl: images.set_field(nl, NL_PORTID, 0))
    restore_must_fail(tool, workdir, bad, task.pid,
                      r"files\.img: netlink socket \d+ is in multicast groups but has no port id")
    restore_must_pass(tool, workdir, task, good)


def test_netlink_notifications_meanwhile(tool, zdtm, workdir):
    """netlink's fd 20 is in the link and IPv4 address groups of the
    machine's network namespace: a veth made and removed there by anyone
    (another test) queues notifications on it, before and after the dump.
    They are kept like any queued message, and the program's checks skip
    them (before, it failed 'fd 20: expected an empty queue' whenever
    another test made a link meanwhile)."""
    name = f"clnl{os.getpid() % 100000}"
    task = zdtm(ZdtmTest("netlink"))
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", name + "p"],
                   check=True, timeout=30)
    subprocess.run(["ip", "link", "del", name], check=True, timeout=30)
    good = dump_good(tool, task, workdir)
    restore_must_pass(tool, workdir, task, good)
