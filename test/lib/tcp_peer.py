"""The far end of tcp_established --only-peer, run as a process of its own
(inside a network namespace, through nsenter, by test_two_hosts.py):

    python3 tcp_peer.py DIR ADDR PORT

Listens on ADDR:PORT, writes DIR/peer-ready; accepts one connection and
sends 32768 bytes (seed 0x52); when DIR/peer-go exists (the program is
dumped) sends 1000 more (0x53), which only a lock keeps alive; then reads
the 65536 bytes the program sent before its dump (0x51) and the 1000 it
answers after its checks (0x54), and writes PASS or FAIL: why to
DIR/peer-result.  Every wait has a timeout.
"""
import os
import socket
import struct
import sys
import time

TIMEOUT = 60
M64 = (1 << 64) - 1


def pattern(seed, n):
    """test/zdtm/lib/pattern.c's pattern_fill(): word i is splitmix64 of
    (seed, i), never zero, little-endian."""
    out = bytearray()
    for i in range((n + 7) // 8):
        z = (seed + (i + 1) * 0x9e3779b97f4a7c15) & M64
        z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M64
        z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
        z ^= z >> 31
        out += struct.pack("<Q", z or 1)
    return bytes(out[:n])


def recv_exact(s, n, what):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise AssertionError(f"{what}: the connection ended after {len(data)} of {n} bytes")
        data += chunk
    return data


def wait_file(path):
    end = time.monotonic() + TIMEOUT
    while not os.path.exists(path):
        if time.monotonic() > end:
            raise AssertionError(f"{os.path.basename(path)} did not appear within {TIMEOUT} s")
        time.sleep(0.05)


def main(d, addr, port):
    result = "PASS"
    try:
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.bind((addr, port))
        ls.listen(1)
        ls.settimeout(TIMEOUT)
        open(os.path.join(d, "peer-ready"), "w").close()
        conn, _ = ls.accept()
        ls.close()
        conn.settimeout(TIMEOUT)
        conn.sendall(pattern(0x52, 32768))
        wait_file(os.path.join(d, "peer-go"))
        conn.sendall(pattern(0x53, 1000))
        if recv_exact(conn, 65536, "the program's data from before its dump") != \
                pattern(0x51, 65536):
            raise AssertionError("the program's data from before its dump is wrong")
        if recv_exact(conn, 1000, "the program's answer") != pattern(0x54, 1000):
            raise AssertionError("the program's answer is wrong")
        conn.close()
    except Exception as e:	# the test reads why
        result = f"FAIL: {type(e).__name__}: {e}"
    with open(os.path.join(d, "peer-result.tmp"), "w") as f:
        f.write(result + "\n")
    os.rename(os.path.join(d, "peer-result.tmp"), os.path.join(d, "peer-result"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
