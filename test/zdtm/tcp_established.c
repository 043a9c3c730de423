/*
 * TCP connections with both ends in the task (dumped with --tcp-established),
 * data in flight both ways:
 *
 *   20  an IPv4 listener on 127.0.0.1, on a port below the ephemeral range
 *       (its port is shared with 22)
 *   21  an IPv4 client connected to 20, 22 the accepted end: 21 has
 *       1.5 MiB unread by 22 (more than 22's receive buffer, so part of it
 *       is still unsent in 21's send queue), 22 has 40000 bytes unread by 21;
 *       TCP_NODELAY on 21, keepalive timing on 22 (--small: 60000 bytes, all
 *       of it in 22's receive queue: nothing unsent)
 *   23  an IPv6 client on [::1], 24 its accepted end (the listener closed):
 *       3000 bytes each way; a small SO_RCVBUF on 24
 *   --half-closed, also:
 *   25  an IPv4 client that shut down its writing (FIN_WAIT2), 26 its
 *       accepted end (CLOSE_WAIT) with 5000 bytes and the EOF unread
 *   27  an IPv6 client (CLOSE_WAIT, 700 bytes and the EOF unread), 28 its
 *       accepted end, closed for writing (FIN_WAIT2) with 900 bytes unread
 *       by 27
 *   --peer PORT, also:
 *   29  a connection to a listener of the test on 127.0.0.1:PORT (or
 *       --peer-addr, from --bind if given; --only-peer: fd 29 alone, for a
 *       network namespace with no loopback): it sends
 *       65536 bytes (seed 0x51), the test sends 32768 (seed 0x52) before the
 *       dump; after SIGTERM it reads them and 1000 more (seed 0x53) the test
 *       sent after the restore, and answers with 1000 (seed 0x54)
 *
 * After SIGTERM: addresses and options, the options the handshake agreed
 * (SACK, timestamps, window scales: TCP_INFO), the MSS the peer allows
 * (TCP_MAXSEG in repair mode), a timestamp clock that did not go back,
 * every byte in order, then more data
 * both ways on each connection, the EOFs where they were, and 20 still
 * takes connections.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/inetport.h"
#include "lib/sockio.h"
#include "lib/zdtmtst.h"

#define BIG		(1536 * 1024)

static uint8_t buf[BIG + 1];
static long peer_port;
static const char *peer_addr = "127.0.0.1", *bind_addr;
static int half_closed, small, only_peer;

struct conn {
	int fd;
	size_t unread;		/* bytes queued for it by its peer */
	uint64_t seed;
	struct sockaddr_storage name, peer;
	socklen_t name_len, peer_len;
	/* what TCP_REPAIR_OPTIONS and TCP_TIMESTAMP must give back */
	uint8_t options, snd_wscale, rcv_wscale;
	int mss;
	uint32_t tstamp;
};

static struct conn conns[10];
static int nr_conns;

static void set_int(int fd, int level, int name, int v)
{
	if (setsockopt(fd, level, name, &v, sizeof(v)))
		fail("setsockopt %d on fd %d: %m", name, fd);
}

static void expect_int(int fd, int level, int name, const char *what, int want)
{
	socklen_t len = sizeof(int);
	int v;

	if (getsockopt(fd, level, name, &v, &len) || v != want)
		fail("fd %d: %s is %d, expected %d (%m)", fd, what, v, want);
}

/* On a port below the ephemeral range: the restore binds it again (inetport.h). */
static void listen_on(int at, int family)
{
	fd_place(socket(family, SOCK_STREAM, 0), at, 0);
	bind_low_port(at, family, family == AF_INET ? "127.0.0.1" : "::1");
	if (listen(at, 8))
		fail("listener %d: %m", at);
}

/* A connection to @listener: the client at @c, the accepted end at @a. */
static void pair(int listener, int c, int a)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(listener, (struct sockaddr *)&ss, &len))
		fail("getsockname %d: %m", listener);
	fd_place(socket(ss.ss_family, SOCK_STREAM, 0), c, 0);
	if (connect(c, (struct sockaddr *)&ss, len))
		fail("connect %d: %m", c);
	fd_place(accept(listener, NULL, NULL), a, 0);
}

/* Everything, blocking the way poll says, never longer than the timeout. */
static void put(int fd, size_t len, uint64_t seed)
{
	size_t done = 0;

	pattern_fill(buf, len, seed);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	while (done < len) {
		ssize_t n = send(fd, buf + done, len - done, MSG_NOSIGNAL);

		if (n < 0 && errno == EAGAIN) {
			sock_wait(fd, POLLOUT, "send");
			continue;
		}
		if (n <= 0)
			fail("send %zu bytes on fd %d: %m", len, fd);
		done += n;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
}

/* Sends without waiting: what fits now (the rest stays the caller's). */
static size_t put_some(int fd, size_t len, uint64_t seed)
{
	ssize_t n;

	pattern_fill(buf, len, seed);
	n = send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n <= 0)
		fail("send on fd %d: %m", fd);
	return n;
}

static void expect_nothing(int fd, const char *what)
{
	if (recv(fd, buf, 1, MSG_DONTWAIT) != -1 || errno != EAGAIN)
		fail("%s: expected nothing to read (%m)", what);
}

static void tcp_state(const struct conn *c, uint8_t *options, uint8_t *snd_wscale,
		      uint8_t *rcv_wscale, int *mss, uint32_t *tstamp);

static struct conn *note(int fd, size_t unread, uint64_t seed)
{
	struct conn *c = &conns[nr_conns++];

	c->fd = fd;
	c->unread = unread;
	c->seed = seed;
	c->name_len = sizeof(c->name);
	c->peer_len = sizeof(c->peer);
	if (getsockname(fd, (struct sockaddr *)&c->name, &c->name_len) ||
	    getpeername(fd, (struct sockaddr *)&c->peer, &c->peer_len))
		fail("fd %d: its names: %m", fd);
	tcp_state(c, &c->options, &c->snd_wscale, &c->rcv_wscale, &c->mss, &c->tstamp);
	return c;
}

/* The options the handshake agreed (SACK, timestamps, window scales), the
 * MSS, the timestamp clock. */
static void tcp_state(const struct conn *c, uint8_t *options, uint8_t *snd_wscale,
		      uint8_t *rcv_wscale, int *mss, uint32_t *tstamp)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	socklen_t ilen = sizeof(*mss), tlen = sizeof(*tstamp);

	int on = 1, off = 0;

	/* the MSS the peer allows (mss_clamp): TCP_MAXSEG shows it in repair
	 * mode only, else the MSS in use, which follows the path and windows */
	if (getsockopt(c->fd, SOL_TCP, TCP_INFO, &ti, &len) ||
	    setsockopt(c->fd, SOL_TCP, TCP_REPAIR, &on, sizeof(on)) ||
	    getsockopt(c->fd, SOL_TCP, TCP_MAXSEG, mss, &ilen) ||
	    setsockopt(c->fd, SOL_TCP, TCP_REPAIR, &off, sizeof(off)) ||
	    getsockopt(c->fd, SOL_TCP, TCP_TIMESTAMP, tstamp, &tlen))
		fail("fd %d: TCP_INFO, TCP_MAXSEG in repair mode or TCP_TIMESTAMP: %m", c->fd);
	*options = ti.tcpi_options;
	*snd_wscale = ti.tcpi_snd_wscale;
	*rcv_wscale = ti.tcpi_rcv_wscale;
}

static void check_tcp(const struct conn *c)
{
	uint8_t options, snd_wscale, rcv_wscale;
	uint32_t tstamp;
	int mss;

	tcp_state(c, &options, &snd_wscale, &rcv_wscale, &mss, &tstamp);
	if (options != c->options || snd_wscale != c->snd_wscale || rcv_wscale != c->rcv_wscale)
		fail("fd %d: TCP options %#x, window scales %u/%u; they were %#x, %u/%u", c->fd,
		     options, snd_wscale, rcv_wscale, c->options, c->snd_wscale, c->rcv_wscale);
	if (mss != c->mss)
		fail("fd %d: MSS %d, it was %d", c->fd, mss, c->mss);
	if ((int32_t)(tstamp - c->tstamp) < 0)
		fail("fd %d: its timestamp clock went back from %u to %u", c->fd, c->tstamp, tstamp);
}

static void check_names(const struct conn *c)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(c->fd, (struct sockaddr *)&ss, &len) || len != c->name_len ||
	    memcmp(&ss, &c->name, len))
		fail("fd %d: its address or port changed", c->fd);
	len = sizeof(ss);
	if (getpeername(c->fd, (struct sockaddr *)&ss, &len) || len != c->peer_len ||
	    memcmp(&ss, &c->peer, len))
		fail("fd %d: its peer changed (%m)", c->fd);
}

static void connect_peer(void)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(peer_port) };
	struct sockaddr_in me = { .sin_family = AF_INET };

	if (inet_pton(AF_INET, peer_addr, &in.sin_addr) != 1)
		fail("--peer-addr %s: not an IPv4 address", peer_addr);
	fd_place(socket(AF_INET, SOCK_STREAM, 0), 29, 0);
	if (bind_addr && (inet_pton(AF_INET, bind_addr, &me.sin_addr) != 1 ||
			  bind(29, (struct sockaddr *)&me, sizeof(me))))
		fail("bind to %s: %m", bind_addr);
	if (connect(29, (struct sockaddr *)&in, sizeof(in)))
		fail("connect to the test's %s:%ld: %m", peer_addr, peer_port);
	note(29, 0, 0);
	put(29, 65536, 0x51);
}

int main(int argc, char **argv)
{
	static const struct test_opt opts[] = {
		{ "half-closed", TEST_OPT_FLAG, &half_closed, 0, "also half-closed connections" },
		{ "small", TEST_OPT_FLAG, &small, 0, "nothing left unsent in a send queue" },
		{ "peer", TEST_OPT_INT, &peer_port, 0, "a port of the test on 127.0.0.1" },
		{ "peer-addr", TEST_OPT_STR, &peer_addr, 0, "the test's address (IPv4)" },
		{ "bind", TEST_OPT_STR, &bind_addr, 0, "fd 29's own address" },
		{ "only-peer", TEST_OPT_FLAG, &only_peer, 0, "fd 29 alone" },
		{ NULL, 0, NULL, 0, NULL },
	};
	size_t sent21, sent;

	test_init(argc, argv, opts);
	if (only_peer) {
		if (!peer_port)
			fail("--only-peer needs --peer");
		connect_peer();
		test_daemon();
		test_waitsig();
		check_names(&conns[0]);
		sock_get(29, buf, 32768, 0x52, "fd 29 (sent by the test before the dump)");
		sock_get(29, buf, 1000, 0x53, "fd 29 (sent by the test while dumped)");
		put(29, 1000, 0x54);
		pass();
	}

	listen_on(20, AF_INET);
	pair(20, 21, 22);
	set_int(21, SOL_TCP, TCP_NODELAY, 1);
	set_int(22, SOL_TCP, TCP_KEEPIDLE, 77);
	set_int(22, SOL_TCP, TCP_KEEPINTVL, 11);
	set_int(22, SOL_TCP, TCP_KEEPCNT, 5);
	/* as much as fits now: the receiver's buffer and our own send queue */
	pattern_fill(buf, BIG, 0x21);
	sent21 = 0;
	while (sent21 < (small ? 60000 : BIG)) {
		ssize_t n = send(21, buf + sent21, (small ? 60000 : BIG) - sent21,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0)
			fail("send on fd 21: %m");
		sent21 += n;
	}
	put(22, 40000, 0x22);
	note(21, 40000, 0x22);
	note(22, sent21, 0x21);

	listen_on(30, AF_INET6);
	pair(30, 23, 24);
	close(30);
	set_int(24, SOL_SOCKET, SO_RCVBUF, 8192);
	put(23, 3000, 0x23);
	put(24, 3000, 0x24);
	note(23, 3000, 0x24);
	note(24, 3000, 0x23);

	if (half_closed) {
		pair(20, 25, 26);
		put(25, 5000, 0x25);
		if (shutdown(25, SHUT_WR))
			fail("shutdown 25: %m");
		listen_on(30, AF_INET6);
		pair(30, 27, 28);
		close(30);
		put(27, 700, 0x27);
		put(28, 900, 0x28);
		if (shutdown(28, SHUT_WR))
			fail("shutdown 28: %m");
		note(26, 5000, 0x25);
		note(27, 900, 0x28);
		note(28, 700, 0x27);
		usleep(100000);		/* the FINs and their ACKs */
	}
	if (peer_port)
		connect_peer();

	test_daemon();
	test_waitsig();

	for (int i = 0; i < nr_conns; i++) {
		check_names(&conns[i]);
		check_tcp(&conns[i]);
	}
	expect_int(21, SOL_TCP, TCP_NODELAY, "TCP_NODELAY", 1);
	expect_int(22, SOL_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE", 77);
	expect_int(22, SOL_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL", 11);
	expect_int(22, SOL_TCP, TCP_KEEPCNT, "TCP_KEEPCNT", 5);
	expect_int(20, SOL_SOCKET, SO_ACCEPTCONN, "SO_ACCEPTCONN", 1);

	/* every byte in flight, in order, then nothing more */
	for (int i = 0; i < nr_conns; i++) {
		char what[64];

		snprintf(what, sizeof(what), "fd %d: the data in flight", conns[i].fd);
		sock_get(conns[i].fd, buf, conns[i].unread, conns[i].seed, what);
	}
	if (half_closed) {
		sock_eof(26, "fd 26 (after 25's FIN)");
		sock_eof(27, "fd 27 (after 28's FIN)");
		put(26, 600, 0x26);
		sock_get(25, buf, 600, 0x26, "fd 25 (a half-closed end still reads)");
		put(27, 800, 0x29);
		sock_get(28, buf, 800, 0x29, "fd 28 (a half-closed end still reads)");
		close(26);
		close(27);
		sock_eof(25, "fd 25 (after 26 closed)");
		sock_eof(28, "fd 28 (after 27 closed)");
	}
	expect_nothing(21, "fd 21");
	expect_nothing(22, "fd 22");

	/* and the connections still carry data both ways */
	sent = put_some(21, 1000, 0x31);
	sock_get(22, buf, sent, 0x31, "fd 22 (after the restore)");
	put(22, 2000, 0x32);
	sock_get(21, buf, 2000, 0x32, "fd 21 (after the restore)");
	put(23, 5000, 0x33);
	sock_get(24, buf, 5000, 0x33, "fd 24 (after the restore)");
	put(24, 10, 0x34);
	sock_get(23, buf, 10, 0x34, "fd 23 (after the restore)");
	if (peer_port) {
		sock_get(29, buf, 32768, 0x52, "fd 29 (sent by the test before the dump)");
		sock_get(29, buf, 1000, 0x53, "fd 29 (sent by the test while dumped)");
		put(29, 1000, 0x54);
	}
	close(21);
	sock_eof(22, "fd 22 (after 21 closed)");
	pair(20, 25, 26);
	put(25, 3, 0x35);
	sock_get(26, buf, 3, 0x35, "a new connection to fd 20");
	pass();
}
