"""Two hosts on one machine: network namespaces joined by a veth pair.

build/test/netns/netns_link (test/netns/netns_link.c) creates and
removes them through libnl-route; this module drives it and runs commands
inside a namespace with `nsenter --net=/run/netns/NAME`, which execs the
command in place, so the pid a test tracks is the command's own.  The
addresses exist only inside the two namespaces.

A process is in a namespace when its /proc/PID/ns/net is the namespace's
nsfs inode; that is how processes left in one are found and ended, by pid.
"""
import os
import shutil
import subprocess
from pathlib import Path

from . import paths, procs as procs_mod
from .tool import Tool

NETNS_LINK = paths.BUILD / "test" / "netns" / "netns_link"
RUN_DIR = Path("/run/netns")
VETH = "veth0"			# the veth end's name in both namespaces
PREFIX = 30
SRC_ADDR = "10.231.0.1"		# private, inside the source namespace only
DST_ADDR = "10.231.0.2"
HELPER_TIMEOUT = 20


def nsenter():
    return shutil.which("nsenter", path="/usr/bin:/bin:/usr/sbin:/sbin")


def unavailable():
    """Why two hosts cannot be made here, or None."""
    if not NETNS_LINK.is_file():
        return f"{NETNS_LINK} is missing: build with `scons -j2`"
    if not nsenter():
        return "nsenter is missing (Debian package util-linux): run scripts/setup"
    return None


# a new mount namespace whose /dev/pts is a devpts instance of its own,
# /dev/ptmx its ptmx; then the command
OWN_DEVPTS = ("mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts && "
              "mount --bind /dev/pts/ptmx /dev/ptmx && exec \"$@\"")


def own_devpts_prefix():
    unshare = shutil.which("unshare", path="/usr/bin:/bin:/usr/sbin:/sbin")
    return (unshare, "--mount", "--propagation", "private", "sh", "-c", OWN_DEVPTS, "sh")


# a new mount namespace with each COPY bound over its ORIG; then the command
OWN_FILES = ('while [ "$1" != -- ]; do mount --bind "$1" "$2" || exit 1; shift 2; done; '
             'shift; exec "$@"')


def own_files_prefix(pairs):
    """pairs: (copy, original) paths: the files of a host of its own."""
    unshare = shutil.which("unshare", path="/usr/bin:/bin:/usr/sbin:/sbin")
    return (unshare, "--mount", "--propagation", "private", "sh", "-c", OWN_FILES, "sh",
            *(str(x) for pair in pairs for x in pair), "--")


def run_helper(*args):
    p = subprocess.run([str(NETNS_LINK), *args], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=HELPER_TIMEOUT)
    return p.returncode, p.stdout, p.stderr


def mount_points():
    """Every mount point of this mount namespace (field 5 of mountinfo)."""
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


def run_dir_left_mounted(was_mounted):
    """/run/netns is a mount point that no one needs: it was not one
    before, and no namespace (of this run or another) is in it."""
    return (not was_mounted and str(RUN_DIR) in mount_points() and
            not any(RUN_DIR.iterdir()))


def netns_id(path):
    st = os.stat(path)
    return st.st_dev, st.st_ino


class Host:
    """One network namespace: its name, its address, criu-lazy inside it."""

    def __init__(self, name, addr):
        self.name = name
        self.addr = addr
        self.path = RUN_DIR / name
        self.id = None		# (st_dev, st_ino) of the namespace, once up

    def enter(self):
        return (nsenter(), f"--net={self.path}")

    def tool(self, own_devpts=False):
        """criu-lazy run inside; own_devpts: in a mount namespace of its own
        with a devpts instance of its own (new pty numbers: a host of its
        own for ptys too), which lives as long as what runs in it."""
        return Tool(paths.TOOL, prefix=self.enter() + (own_devpts_prefix() if own_devpts
                                                      else ()))

    def holds(self, pid):
        try:
            return netns_id(f"/proc/{pid}/ns/net") == self.id
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return False

    def pids(self):
        return [int(d) for d in os.listdir("/proc") if d.isdigit() and self.holds(int(d))]

    def counters(self, ifname=VETH):
        """{rx_bytes, rx_packets, tx_bytes, tx_packets} of ifname, read
        from /proc/net/dev by a process inside the namespace."""
        p = subprocess.run([*self.enter(), "cat", "/proc/net/dev"], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=HELPER_TIMEOUT)
        assert p.returncode == 0, f"reading /proc/net/dev in {self.name}: {p.stderr}"
        for line in p.stdout.splitlines():
            name, sep, rest = line.partition(":")
            if sep and name.strip() == ifname:
                f = [int(x) for x in rest.split()]
                return {"rx_bytes": f[0], "rx_packets": f[1],
                        "tx_bytes": f[8], "tx_packets": f[9]}
        raise AssertionError(f"no {ifname} in /proc/net/dev of {self.name}:\n{p.stdout}")


class TwoHosts:
    """src and dst, joined by one veth pair (SRC_ADDR - DST_ADDR)."""

    def __init__(self, tag):
        self.src = Host(f"cl-src-{tag}", SRC_ADDR)
        self.dst = Host(f"cl-dst-{tag}", DST_ADDR)
        self.run_dir_was_mounted = str(RUN_DIR) in mount_points()

    def hosts(self):
        return (self.src, self.dst)

    def up(self):
        rc, out, err = run_helper("up", self.src.name, self.dst.name,
                                  f"{SRC_ADDR}/{PREFIX}", f"{DST_ADDR}/{PREFIX}")
        assert rc == 0, f"netns_link up failed ({rc}): {err.strip()}"
        for h in self.hosts():
            h.id = netns_id(h.path)

    def cut(self, host):
        """The veth end in host goes down: packets stop, no connection is
        told (a pulled cable, as seen from the other side)."""
        rc, out, err = run_helper("cut", host.name)
        assert rc == 0, f"netns_link cut {host.name} failed ({rc}): {err.strip()}"

    def end_processes(self, tracker):
        """Kill, by pid, every process still in either namespace; returns
        their descriptions."""
        left = []
        for h in self.hosts():
            for pid in h.pids():
                left.append(f"{h.name}: {procs_mod.describe(pid)}")
                if not tracker.owns(pid):
                    tracker.adopt(pid)	# e.g. a child a restored task forked
                tracker.kill(pid)
        return left

    def down(self):
        """Remove both namespaces; returns what is still left of them."""
        rc, out, err = run_helper("down", self.src.name, self.dst.name)
        left = [] if rc == 0 else [f"netns_link down failed ({rc}): {err.strip()}"]
        mounts = mount_points()
        for h in self.hosts():
            if h.path.exists():
                left.append(f"{h.path} still exists")
            if str(h.path) in mounts:
                left.append(f"{h.path} is still mounted")
            pids = h.pids()
            if pids:
                left.append(f"processes still in {h.name}: {pids}")
        if run_dir_left_mounted(self.run_dir_was_mounted):
            left.append(f"{RUN_DIR} is still a mount point")
        return left
