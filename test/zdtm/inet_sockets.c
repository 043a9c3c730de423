/*
 * TCP listeners and UDP sockets, IPv4 and IPv6, on the loopback:
 *
 *   20  a TCP listener on 127.0.0.1, backlog 5
 *   21  a TCP listener on [::1], IPV6_V6ONLY, SO_REUSEADDR
 *   22  a UDP socket on 127.0.0.1 with three datagrams queued, sent by 23
 *   23  a UDP socket on 127.0.0.1 connected to 22
 *   24  a UDP socket on [::1] with two datagrams queued, sent by 25
 *   25  an IPv6 UDP socket on [::1] connected to 24; O_NONBLOCK
 *   26  a TCP socket never bound, SO_KEEPALIVE
 *   27  a UDP socket on 0.0.0.0 (any address), SO_BROADCAST, one datagram
 *
 * Every bound socket is on a port below the ephemeral range, 23 and 25
 * too (bound before their connect()): the restore binds each port again
 * (lib/inetport.h).
 *
 * After SIGTERM: every address and port (getsockname, getpeername), the
 * options, each datagram with its size and bytes, that the listeners
 * still take connections and the connected UDP sockets still reach their
 * peers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/inetport.h"
#include "lib/zdtmtst.h"

#define NR 8
static const int fds[NR] = { 20, 21, 22, 23, 24, 25, 26, 27 };
static struct sockaddr_storage names[NR], peers[NR];
static socklen_t name_len[NR], peer_len[NR];
static uint8_t buf[65536];

static void name_of(int fd, struct sockaddr_storage *ss, socklen_t *len)
{
	*len = sizeof(*ss);
	if (getsockname(fd, (struct sockaddr *)ss, len))
		fail("getsockname %d: %m", fd);
}

static void connect_to(int fd, int to)
{
	struct sockaddr_storage ss;
	socklen_t len;

	name_of(to, &ss, &len);
	if (connect(fd, (struct sockaddr *)&ss, len))
		fail("connect fd %d to fd %d: %m", fd, to);
}

static void set_int(int fd, int level, int name, int v)
{
	if (setsockopt(fd, level, name, &v, sizeof(v)))
		fail("setsockopt %d on fd %d: %m", name, fd);
}

static void expect_int(int fd, int level, int name, const char *what, int want)
{
	int v;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, level, name, &v, &len) || v != want)
		fail("fd %d: %s is %d, expected %d (%m)", fd, what, v, want);
}

static void put(int fd, size_t len, uint64_t seed, int to)
{
	struct sockaddr_storage ss;
	socklen_t sl = 0;

	pattern_fill(buf, len, seed);
	if (to >= 0) {
		name_of(to, &ss, &sl);
		if (ss.ss_family == AF_INET)	/* 0.0.0.0: reach it on the loopback */
			((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	}
	if (sendto(fd, buf, len, 0, to >= 0 ? (struct sockaddr *)&ss : NULL, sl) != (ssize_t)len)
		fail("send %zu bytes from fd %d: %m", len, fd);
}

static void get_one(int fd, size_t len, uint64_t seed, const char *what)
{
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);

	if (n != (ssize_t)len)
		fail("%s: a datagram of %zd bytes, expected %zu (%m)", what, n, len);
	pattern_expect(what, buf, len, seed);
}

static void expect_empty(int fd, const char *what)
{
	if (recv(fd, buf, 1, MSG_DONTWAIT) != -1 || errno != EAGAIN)
		fail("%s: expected an empty queue (%m)", what);
}

static void record(void)
{
	for (int i = 0; i < NR; i++) {
		name_of(fds[i], &names[i], &name_len[i]);
		peer_len[i] = sizeof(peers[i]);
		if (getpeername(fds[i], (struct sockaddr *)&peers[i], &peer_len[i]))
			peer_len[i] = 0;
	}
}

static void accept_one(int listener, const char *what)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int c, a;

	name_of(listener, &ss, &len);
	c = socket(ss.ss_family, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&ss, len))
		fail("%s: connect: %m", what);
	a = accept(listener, NULL, NULL);
	if (a < 0 || write(c, "x", 1) != 1 || read(a, buf, 1) != 1)
		fail("%s: accept: %m", what);
	close(a);
	close(c);
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len;

	test_init(argc, argv, NULL);

	fd_place(socket(AF_INET, SOCK_STREAM, 0), 20, 0);
	bind_low_port(20, AF_INET, "127.0.0.1");
	if (listen(20, 5))
		fail("listen: %m");
	fd_place(socket(AF_INET6, SOCK_STREAM, 0), 21, 0);
	set_int(21, IPPROTO_IPV6, IPV6_V6ONLY, 1);
	set_int(21, SOL_SOCKET, SO_REUSEADDR, 1);
	bind_low_port(21, AF_INET6, "::1");
	if (listen(21, 9))
		fail("listen: %m");

	fd_place(socket(AF_INET, SOCK_DGRAM, 0), 22, 0);
	bind_low_port(22, AF_INET, "127.0.0.1");
	fd_place(socket(AF_INET, SOCK_DGRAM, 0), 23, 0);
	bind_low_port(23, AF_INET, "127.0.0.1");
	connect_to(23, 22);
	put(23, 100, 0x10, -1);
	put(23, 1, 0x11, -1);
	put(23, 60000, 0x12, -1);

	fd_place(socket(AF_INET6, SOCK_DGRAM, 0), 24, 0);
	bind_low_port(24, AF_INET6, "::1");
	fd_place(socket(AF_INET6, SOCK_DGRAM, 0), 25, 0);
	bind_low_port(25, AF_INET6, "::1");
	connect_to(25, 24);
	put(25, 1200, 0x20, -1);
	put(25, 3, 0x21, -1);
	fcntl(25, F_SETFL, O_NONBLOCK);

	fd_place(socket(AF_INET, SOCK_STREAM, 0), 26, 0);
	set_int(26, SOL_SOCKET, SO_KEEPALIVE, 1);

	fd_place(socket(AF_INET, SOCK_DGRAM, 0), 27, 0);
	set_int(27, SOL_SOCKET, SO_BROADCAST, 1);
	bind_low_port(27, AF_INET, "0.0.0.0");
	put(23, 7, 0x27, 27);

	record();
	test_daemon();
	test_waitsig();

	for (int i = 0; i < NR; i++) {
		struct sockaddr_storage p;
		socklen_t pl = sizeof(p);

		name_of(fds[i], &ss, &len);
		if (len != name_len[i] || memcmp(&ss, &names[i], len))
			fail("fd %d: its address or port changed", fds[i]);
		if (getpeername(fds[i], (struct sockaddr *)&p, &pl))
			pl = 0;
		if (pl != peer_len[i] || memcmp(&p, &peers[i], pl))
			fail("fd %d: its peer changed (%u bytes, was %u)", fds[i], pl, peer_len[i]);
	}
	expect_int(21, IPPROTO_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY", 1);
	expect_int(21, SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR", 1);
	expect_int(20, SOL_SOCKET, SO_ACCEPTCONN, "SO_ACCEPTCONN", 1);
	expect_int(26, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE", 1);
	expect_int(27, SOL_SOCKET, SO_BROADCAST, "SO_BROADCAST", 1);
	expect_int(22, SOL_SOCKET, SO_TYPE, "SO_TYPE", SOCK_DGRAM);
	if (!(fcntl(25, F_GETFL) & O_NONBLOCK))
		fail("fd 25 lost O_NONBLOCK");

	get_one(22, 100, 0x10, "fd 22 (datagram 1)");
	get_one(22, 1, 0x11, "fd 22 (datagram 2)");
	get_one(22, 60000, 0x12, "fd 22 (datagram 3)");
	expect_empty(22, "fd 22");
	get_one(24, 1200, 0x20, "fd 24 (datagram 1)");
	get_one(24, 3, 0x21, "fd 24 (datagram 2)");
	expect_empty(24, "fd 24");
	get_one(27, 7, 0x27, "fd 27 (datagram)");
	expect_empty(27, "fd 27");

	put(23, 5, 0x30, -1);
	get_one(22, 5, 0x30, "fd 22 (after the restore)");
	put(25, 6, 0x31, -1);
	get_one(24, 6, 0x31, "fd 24 (after the restore)");
	accept_one(20, "fd 20");
	accept_one(21, "fd 21");
	pass();
}
