"""--tls: the page-server connections over TLS with mutual X.509
authentication (Documentation/tls.md).

The certificates are made by each test's module in a directory of its own
(lib/tlscerts.py): a CA and its CRL, a server certificate naming the
loopback addresses, a client certificate, one naming another host, one
revoked, and one from a CA nobody trusts.

Success: a remote-lazy restore (the stand-in restore of
test_page_server_remote.py, every page checked against the dump) and a
lazy migration of a live zdtm program, both over TLS.  Refusal: a peer
whose certificate does not verify, a plain client of a TLS server (and the
reverse), a server certificate for another name (accepted with
--tls-no-cn-verify), and missing files at start-up.  No page may cross a
refused connection: each refusal is seen before the first request.
"""
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

from lib import procs as procs_mod
from lib.pageserver import (HDR, PS_IOV_GET, RESTORE_TOOL, SMALL_VMA, Client, daemon_images,
                            output_of, spawn_ready, start_daemon, start_page_server, stop,
                            write_images)
from lib.ports import free_port
from lib.tlscerts import Certs
from lib.tool import assert_error_line

BIG = 1024
TIMEOUT = 60
ADDR = "127.0.0.1"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return Certs(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def dirs(workdir):
    src = write_images(workdir / "images", BIG)
    return src, daemon_images(src, workdir / "images-daemon")


def exit_status(procs, p, timeout=TIMEOUT):
    return procs_mod.wait_status_str(procs.reap(p.pid, timeout))


def daemon_argv(tool, workdir, imgdir, port, tls, name="lazy-pages", address=ADDR):
    return [tool.binary, "lazy-pages", "-D", imgdir, "--page-server", "--address", address,
            "--port", port, "-v4", "-o", workdir / f"{name}.log", *tls]


def restore_counts(procs, workdir, dst):
    """The stand-in restore: {pid: (with data, zero, sigbus, wrong)}."""
    p = procs.spawn([RESTORE_TOOL, dst], stdout=workdir / "restore.output")
    assert exit_status(procs, p) == "exit code 0", output_of(workdir, "restore")
    got = {}
    for m in re.finditer(r"task (\d+): (\d+) pages with data, (\d+) zero, (\d+) SIGBUS, "
                         r"(\d+) wrong", output_of(workdir, "restore")):
        got[int(m.group(1))] = tuple(int(x) for x in m.groups()[1:])
    return got


EVERY_PAGE = {100: (BIG + 20, 44, 0, 0), 200: (32, 0, 0, 0)}


def remote_restore(tool, procs, workdir, dirs, server_tls, daemon_tls):
    """page-server --tls, lazy-pages --tls, the stand-in restore: every page right."""
    src, dst = dirs
    port = free_port()
    server = start_page_server(tool, procs, workdir, src, port, extra=server_tls)
    daemon = spawn_ready(procs, workdir, "lazy-pages",
                         daemon_argv(tool, workdir, dst, port, daemon_tls))
    assert restore_counts(procs, workdir, dst) == EVERY_PAGE
    assert exit_status(procs, daemon) == "exit code 0", output_of(workdir, "lazy-pages")
    assert exit_status(procs, server, 10) == "exit code 0", output_of(workdir, "page-server")
    return (workdir / "page-server.log").read_text(), (workdir / "lazy-pages.log").read_text()


def test_remote_lazy_over_tls(tool, procs, workdir, dirs, certs):
    """Both connections authenticate both ways; every page arrives right."""
    ps_log, lp_log = remote_restore(tool, procs, workdir, dirs, certs.args("server"),
                                    certs.args("client"))
    # the server saw the client's certificate, the client the server's
    assert ps_log.count("CN=criu-lazy client") == 2, ps_log
    assert ps_log.count("session ended (closed after CLOSE)") == 2, ps_log
    for role in ("fault", "background"):
        assert re.search(rf"\({role} connection\): TLS: \(TLS1\.2\).*CN=localhost", lp_log), \
            lp_log
    assert "fault and background connections, TLS" in lp_log


def test_cn_mismatch(tool, procs, workdir, dirs, certs):
    """A server certificate for another name is refused by the client,
    and accepted with --tls-no-cn-verify."""
    src, dst = dirs
    port = free_port()
    server = start_page_server(tool, procs, workdir, src, port, extra=certs.args("wrongname"))
    res = tool.run(daemon_argv(tool, workdir, dst, port, certs.args("client"))[1:], timeout=30)
    assert_error_line(res, "lazy-pages", rf"page server {ADDR}:{port} \(fault connection\)",
                      r"server's certificate is refused", r"does not match")
    assert procs_mod.wait_for(lambda: "refused" in (workdir / "page-server.log").read_text(),
                              10), (workdir / "page-server.log").read_text()
    stop(procs, server)

    ps_log, lp_log = remote_restore(tool, procs, workdir, dirs, certs.args("wrongname"),
                                    certs.args("client", extra=["--tls-no-cn-verify"]))
    assert "CN=wrong.example (name not checked: --tls-no-cn-verify)" in lp_log, lp_log


def refused_daemon(tool, procs, workdir, dirs, certs, server_cert, client_cert, *patterns,
                   client_ca="ca"):
    """The daemon fails at start-up with one line; the server refused it
    before any request, and goes on."""
    src, dst = dirs
    port = free_port()
    server = start_page_server(tool, procs, workdir, src, port, extra=certs.args(server_cert))
    res = tool.run(daemon_argv(tool, workdir, dst, port, certs.args(client_cert, ca=client_ca))
                   [1:], timeout=30)
    line = assert_error_line(res, "lazy-pages", rf"page server {ADDR}:{port}", *patterns)
    assert procs_mod.wait_for(lambda: "refused" in (workdir / "page-server.log").read_text(),
                              10), (workdir / "page-server.log").read_text()
    assert server.poll() is None, output_of(workdir, "page-server")
    stop(procs, server)
    ps_log = (workdir / "page-server.log").read_text()
    assert not re.search(r"\bGET task", ps_log), ps_log
    return line, ps_log


def test_untrusted_client(tool, procs, workdir, dirs, certs):
    _, ps_log = refused_daemon(tool, procs, workdir, dirs, certs, "server", "rogue",
                               r"the server refused the handshake", client_ca="ca")
    assert re.search(r"refused: the client's certificate is refused: .*(issuer is unknown|"
                     r"NOT trusted)", ps_log), ps_log


def test_revoked_client(tool, procs, workdir, dirs, certs):
    _, ps_log = refused_daemon(tool, procs, workdir, dirs, certs, "server", "revoked",
                               r"the server refused the handshake")
    assert re.search(r"refused: the client's certificate is refused: .*revoked", ps_log), ps_log


def test_untrusted_server(tool, procs, workdir, dirs, certs):
    _, ps_log = refused_daemon(tool, procs, workdir, dirs, certs, "rogue", "client",
                               r"server's certificate is refused", r"issuer is unknown|not trusted")
    assert re.search(r"refused: the client refused the handshake", ps_log), ps_log


def test_revoked_server(tool, procs, workdir, dirs, certs):
    refused_daemon(tool, procs, workdir, dirs, certs, "revoked", "client",
                   r"server's certificate is refused", r"revoked")


def test_plain_client_gets_nothing(tool, procs, workdir, dirs, certs):
    """A client without TLS sends a GET in the clear: no byte comes back,
    the connection is closed, the server says why."""
    src, _ = dirs
    port = free_port()
    server = start_page_server(tool, procs, workdir, src, port, extra=certs.args("server"))
    c = Client(port)
    c.get(100, SMALL_VMA, 1)
    try:
        data = c.sock.recv(1 << 16)
    except ConnectionResetError:
        data = b""
    c.close()
    assert data == b"", data[:64]
    assert procs_mod.wait_for(lambda: "refused" in (workdir / "page-server.log").read_text(),
                              10)
    ps_log = (workdir / "page-server.log").read_text()
    assert re.search(r"refused: the client does not speak TLS \(its first byte is 0x07", ps_log), \
        ps_log
    assert server.poll() is None
    stop(procs, server)


def test_client_without_certificate(tool, procs, workdir, dirs, certs):
    """A TLS client that presents no certificate gets no page."""
    src, _ = dirs
    port = free_port()
    server = start_page_server(tool, procs, workdir, src, port, extra=certs.args("server"))
    ctx = ssl.create_default_context(cafile=str(certs.path("ca.pem")))
    with socket.create_connection((ADDR, port), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname=ADDR) as s:
                s.sendall(HDR.pack(PS_IOV_GET, 0, 1, SMALL_VMA, 100))
                data = s.recv(1 << 16)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            data = b""
    assert data == b"", data[:64]
    assert procs_mod.wait_for(lambda: "refused" in (workdir / "page-server.log").read_text(),
                              10)
    ps_log = (workdir / "page-server.log").read_text()
    assert "refused: the client sent no certificate" in ps_log, ps_log
    stop(procs, server)


def test_tls_client_plain_server(tool, procs, workdir, dirs, certs):
    """A TLS client against a server without --tls fails at once, clearly."""
    src, dst = dirs
    port = free_port()
    server = start_page_server(tool, procs, workdir, src, port)
    t0 = time.monotonic()
    res = tool.run(daemon_argv(tool, workdir, dst, port, certs.args("client"))[1:], timeout=30)
    assert time.monotonic() - t0 < 8, res.describe()
    assert_error_line(res, "lazy-pages", rf"page server {ADDR}:{port}",
                      r"closed the connection during the TLS handshake",
                      r"without --tls")
    stop(procs, server)
    ps_log = (workdir / "page-server.log").read_text()
    assert "a TLS client (its first bytes are a TLS handshake), but this server runs without " \
           "--tls" in ps_log, ps_log


@pytest.mark.parametrize("command", ["page-server", "lazy-pages"])
@pytest.mark.parametrize("flag,what", [("--tls-cacert", "CA certificate"),
                                       ("--tls-cacrl", "certificate revocation list"),
                                       ("--tls-cert", "certificate"),
                                       ("--tls-key", "private key")])
def test_missing_file(tool, workdir, dirs, certs, command, flag, what):
    """One line at start-up, naming the file and the flag's meaning."""
    src, dst = dirs
    args = [str(a) for a in certs.args("server")]
    args[args.index(flag) + 1] = str(workdir / "nowhere.pem")
    port = str(free_port())
    if command == "page-server":
        argv = ["page-server", "-D", src, "--port", port, "--lazy-pages", *args]
    else:
        argv = ["lazy-pages", "-D", dst, "--page-server", "--address", ADDR, "--port", port,
                *args]
    res = tool.run(argv, timeout=20)
    assert_error_line(res, command, rf"tls: {what} {re.escape(str(workdir))}/nowhere\.pem: "
                      r"No such file or directory")


def test_default_files(tool, workdir, dirs):
    """Without the file flags, CRIU's default paths (absent here)."""
    src, _ = dirs
    res = tool.run(["page-server", "-D", src, "--port", str(free_port()), "--lazy-pages",
                    "--tls"], timeout=20)
    assert_error_line(res, "page-server", r"CA certificate /etc/pki/CA/cacert\.pem \(the "
                      r"default: --tls-cacert FILE names another\): No such file")


def test_bad_key(tool, workdir, dirs, certs):
    """A certificate with another certificate's key."""
    src, _ = dirs
    args = [str(a) for a in certs.args("server")]
    args[args.index("--tls-key") + 1] = str(certs.path("client.key"))
    res = tool.run(["page-server", "-D", src, "--port", str(free_port()), "--lazy-pages",
                    *args], timeout=20)
    assert_error_line(res, "page-server", r"tls: certificate .*server\.pem with private key "
                      r".*client\.key: .*(match|Key)")


@pytest.mark.parametrize("argv,pat", [
    (["restore", "-D", "."], r"--tls secures the page-server connections"),
    (["lazy-pages", "-D", "."], r"--tls secures the page-server connections"),
    (["page-server", "-D", ".", "--tls-cert", "x"], r"--tls-cert without --tls"),
])
def test_tls_flags_misused(tool, argv, pat):
    res = tool.run(argv + (["--tls"] if "--tls-cert" not in argv else []), timeout=20)
    assert res.rc != 0 and re.search(pat, res.stderr), res.describe()


# -- GnuTLS is loaded only for --tls (common/tls-lib.c) ------------------------

def gnutls_mapped(pid):
    with open(f"/proc/{pid}/maps") as f:
        return "/libgnutls.so" in f.read()


def test_gnutls_only_with_tls(tool, procs, workdir, dirs, certs):
    """The tool is not linked with GnuTLS: a page server and a daemon
    without --tls never map it; with --tls both have loaded it."""
    res = tool.run(["--version"], timeout=20, env={**os.environ, "LD_DEBUG": "libs"})
    assert res.rc == 0 and "gnutls" not in res.stderr, res.describe()
    src, dst = dirs
    for name, tls in (("plain", False), ("tls", True)):
        port = free_port()
        server = start_page_server(tool, procs, workdir, src, port, name=f"page-server-{name}",
                                   extra=certs.args("server") if tls else ())
        daemon = start_daemon(tool, procs, workdir, dst, port, name=f"lazy-pages-{name}",
                              extra=certs.args("client") if tls else ())
        mapped = (gnutls_mapped(server.pid), gnutls_mapped(daemon.pid))
        stop(procs, daemon)
        stop(procs, server)
        assert mapped == (tls, tls), (name, mapped)


def shared_lib_of(binary, name):
    """The path of a library the tool is linked with (ldd)."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=20)
    m = re.search(rf"^\s*{re.escape(name)}\S* => (\S+)", out.stdout, re.MULTILINE)
    assert m, out.stdout
    return m.group(1)


@pytest.mark.parametrize("command", ["page-server", "lazy-pages"])
@pytest.mark.parametrize("lib,pat", [
    ("garbage", r"invalid ELF header"),
    # another library under GnuTLS's name: it loads, but has none of its functions
    ("incomplete", r"undefined symbol: gnutls_"),
])
def test_gnutls_missing(tool, workdir, dirs, certs, command, lib, pat):
    """A GnuTLS that cannot be loaded fails only --tls, with one line
    naming the library and the loader's reason."""
    src, dst = dirs
    libdir = workdir / "libs"
    libdir.mkdir()
    if lib == "garbage":
        (libdir / "libgnutls.so.30").write_bytes(b"not a shared library\n" * 16)
    else:
        shutil.copy(shared_lib_of(tool.binary, "libprotobuf-c.so"), libdir / "libgnutls.so.30")
    env = {**os.environ, "LD_LIBRARY_PATH": str(libdir)}
    port = str(free_port())
    if command == "page-server":
        argv = ["page-server", "-D", src, "--port", port, "--lazy-pages"]
    else:
        argv = ["lazy-pages", "-D", dst, "--page-server", "--address", ADDR, "--port", port]
    res = tool.run([*argv, *certs.args("server")], timeout=20, env=env)
    assert res.rc == 1, res.describe()
    assert_error_line(res, command, r"--tls needs GnuTLS \(libgnutls\.so\.30\): .*" + pat)


# -- dump --lazy-pages --tls: the dump is the page server -----------------------

@pytest.fixture
def task(zdtm):
    from test_lazy_migrate import WORKLOAD
    return zdtm(WORKLOAD, pid_ns=True)


def intruder(tool, m, certs, cert):
    """A daemon with a certificate the dump refuses: it fails at start-up."""
    res = tool.run(["lazy-pages", "-D", m.imgdir, "--page-server", "--address", ADDR, "--port",
                    m.port, "-o", m.dir / f"intruder-{cert}.log", *certs.args(cert)],
                   timeout=30)
    assert_error_line(res, "lazy-pages", r"the server refused the handshake")
    assert procs_mod.wait_for(lambda: "refused" in m.dump.log.read_text(), 10), m.dump.text()


def test_lazy_migrate_over_tls(tool, procs, workdir, task, certs):
    """Migration of a live task over TLS, after a refused intruder: the
    copy gets every page and passes its checks; the dump exits 0."""
    from test_lazy_migrate import Migration
    m = Migration(tool, procs, workdir, task, *certs.args("server"), "-v4")
    intruder(tool, m, certs, "rogue")
    intruder(tool, m, certs, "revoked")
    m.start_daemon(*certs.args("client"))
    m.restore()
    m.daemon.expect_clean_exit()
    m.dump.expect_clean_exit()
    task.expect_gone(pid=m.source)
    log = m.dump.log.read_text()
    assert len(re.findall(r"refused: the client's certificate is refused", log)) == 2, log
    assert "over TLS" in log and "CN=criu-lazy client" in log, log
    task.check_pass()


def test_refused_peer_is_no_destination(tool, procs, workdir, task, certs):
    """Only refused peers came: no copy can have run, so a stopped dump
    resumes the source as if nobody had connected."""
    from test_lazy_migrate import Migration
    before = task.snapshot()
    m = Migration(tool, procs, workdir, task, *certs.args("server"))
    intruder(tool, m, certs, "rogue")
    os.kill(m.dump.pid, signal.SIGTERM)
    m.dump_error_line(r"stopped by signal 15", r"0 of \d+ lazy pages served",
                      rf"task {m.source} \(pid 1 in its pid namespace\) resumed$")
    task.expect_unharmed(before)
    task.check_pass()


def test_dump_missing_certificate(tool, workdir, task, certs):
    """Checked before the task is touched: one line, the task runs on."""
    before = task.snapshot()
    args = [str(a) for a in certs.args("server")]
    args[args.index("--tls-cert") + 1] = str(workdir / "nowhere.pem")
    res = tool.dump(task.pid, workdir, workdir / "dump.log", TIMEOUT,
                    extra=["--lazy-pages", "--port", str(free_port()), *args])
    assert_error_line(res, "dump", rf"tls: certificate {re.escape(str(workdir))}/nowhere\.pem: "
                      r"No such file or directory")
    task.expect_unharmed(before)
    task.check_pass()


@pytest.mark.parametrize("back", ["same", "rogue"])
def test_reconnect_over_tls(tool, procs, workdir, dirs, certs, back):
    """--page-server-reconnect with --tls: the server is killed mid-restore
    and started again; the new connection authenticates again (same: every
    page arrives right); a server the daemon does not trust is tried until
    the time is up (a handshake cut short by a server still starting is no
    refusal), then the daemon fails, naming the last reason, with SIGBUS for
    what never came (rogue)."""
    src, dst = dirs
    port = free_port()
    go = workdir / "go"
    server = start_page_server(tool, procs, workdir, src, port, extra=certs.args("server"))
    daemon = spawn_ready(procs, workdir, "lazy-pages", daemon_argv(
        tool, workdir, dst, port, [*certs.args("client"), "--no-background-fetch",
                                   "--page-server-reconnect", "20" if back == "same" else "3"]))
    restore = procs.spawn([RESTORE_TOOL, dst, "--wait-file", go],
                          stdout=workdir / "restore.output")
    halves = [workdir / f"go.{pid}.half" for pid in (100, 200)]
    assert procs_mod.wait_for(lambda: all(h.exists() for h in halves), TIMEOUT), \
        output_of(workdir, "restore")
    procs.kill(server.pid)
    go.touch()
    server = start_page_server(tool, procs, workdir, src, port, name="page-server-again",
                               extra=certs.args("server" if back == "same" else "rogue"))

    assert exit_status(procs, restore) == "exit code 0", output_of(workdir, "restore")
    got = {}
    for m in re.finditer(r"task (\d+): (\d+) pages with data, (\d+) zero, (\d+) SIGBUS, "
                         r"(\d+) wrong", output_of(workdir, "restore")):
        got[int(m.group(1))] = tuple(int(x) for x in m.groups()[1:])
    lp_log = (workdir / "lazy-pages.log").read_text()
    if back == "same":
        assert got == EVERY_PAGE
        assert exit_status(procs, daemon) == "exit code 0", output_of(workdir, "lazy-pages")
        assert re.search(r"reconnected to page server .* \d+ pages checked", lp_log), lp_log
        # both connections at start, and at least one again: each a handshake
        assert len(re.findall(r"connection\): TLS: \(TLS1\.2\)", lp_log)) >= 3, lp_log
        assert exit_status(procs, server, 10) == "exit code 0", \
            output_of(workdir, "page-server-again")
        return
    assert exit_status(procs, daemon) == "exit code 1", output_of(workdir, "lazy-pages")
    assert_line = output_of(workdir, "lazy-pages")
    assert re.search(rf"lazy-pages: page server {ADDR}:{port}: no (fault|background) "
                     r"connection that answers within the reconnect time, with \d+ pages "
                     r"still to deliver \(\d+ tries, last: the server's certificate is refused",
                     assert_line), assert_line
    assert re.search(r"Warn : page server .*connection\): .*certificate is refused", lp_log), \
        lp_log
    assert "reconnected" not in lp_log, lp_log
    assert all(c[3] == 0 for c in got.values()) and sum(c[2] for c in got.values()) > 0, got
    stop(procs, server)
