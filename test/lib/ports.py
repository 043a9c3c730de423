"""TCP ports for the servers a test starts (page servers, lazy-migrate
dumps), chosen so that nothing else takes them before the server binds.

A port of bind(0) comes from the ephemeral range (ip_local_port_range,
32768-60999 by default): once let go, any connect() on the host may take it
as its source port before the server binds it, and the server fails with
"Address already in use".  Ports below that range are only ever taken by an
explicit bind, so free_port() picks one of 10000-19999 (below zdtm's
bind_low_port() range, 20000-31999, test/zdtm/lib/inetport.h), checked free
by binding it, from a start that depends on our pid, and keeps a lock on
byte PORT of /tmp/criu-lazy-test-ports.lock for its last few picks: two
test runs at once never hand out the same port while its server starts.
"""
import collections
import fcntl
import os
import socket

FIRST, COUNT = 10000, 10000
LOCK_FILE = "/tmp/criu-lazy-test-ports.lock"
KEEP_LOCKS = 32			# a pick's server has long bound its port after 32 more

_next = FIRST + os.getpid() * 7919 % COUNT
_locked = collections.deque()
_lock_fd = None			# open for good: closing it would drop every lock


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _lock(port):
    """Byte @port of the lock file locked for us; False if another run holds it."""
    global _lock_fd
    if _lock_fd is None:
        _lock_fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.lockf(_lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, port)
    except OSError:
        return False
    return True


def _unlock(port):
    fcntl.lockf(_lock_fd, fcntl.LOCK_UN, 1, port)


def _bindable(address, port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


def free_port(address="127.0.0.1"):
    """A TCP port of @address that is free, outside the ephemeral range,
    and handed out by no other test run meanwhile."""
    global _next
    if FIRST + COUNT > _ephemeral_low():
        raise RuntimeError(f"ip_local_port_range starts at {_ephemeral_low()}: the test "
                           f"ports {FIRST}-{FIRST + COUNT - 1} are not below it")
    for _ in range(COUNT):
        port = _next
        _next = FIRST + (_next - FIRST + 1) % COUNT
        if not _lock(port):
            continue
        if not _bindable(address, port):
            _unlock(port)
            continue
        _locked.append(port)
        while len(_locked) > KEEP_LOCKS:
            _unlock(_locked.popleft())
        return port
    raise RuntimeError(f"no free TCP port of {address} in {FIRST}-{FIRST + COUNT - 1}")
