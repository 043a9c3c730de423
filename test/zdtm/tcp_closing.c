/*
 * TCP connections closing while data is still unsent (dumped with
 * --tcp-established), both ends in the task, on 127.0.0.1; every socket's
 * buffers small, so that what a side sends before its peer reads stays
 * partly in its send queue, and a FIN sent after it waits there too:
 *
 *   20     the listener, on a port below the ephemeral range
 *   21/22  21 sent as much as fits (22 reads nothing) and shut its
 *          writing down: its FIN waits behind that data (FIN_WAIT1); 22
 *          is ESTABLISHED
 *   23/24  23 shut its writing down first (FIN_WAIT2, 24 CLOSE_WAIT); 24
 *          then sent as much as fits and shut down too: LAST_ACK
 *   25/26  25 sent as much as fits and shut down (FIN_WAIT1); 26 sent 100
 *          bytes and shut down: 25 got them and that FIN while its own FIN
 *          waits (CLOSING), 26's FIN was acknowledged (FIN_WAIT2)
 *
 * After SIGTERM: each end in that state again (TCP_INFO), then every byte
 * in order and the end of each stream, both ways; and 20 still takes
 * connections.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/inetport.h"
#include "lib/sockio.h"
#include "lib/zdtmtst.h"

#define BIG	(4 << 20)
#define SMALL_BUF 16384

static uint8_t buf[BIG];

static const char *state_name(int st)
{
	static const char *names[] = {
		[TCP_ESTABLISHED] = "ESTABLISHED", [TCP_FIN_WAIT1] = "FIN_WAIT1",
		[TCP_FIN_WAIT2] = "FIN_WAIT2", [TCP_CLOSE_WAIT] = "CLOSE_WAIT",
		[TCP_LAST_ACK] = "LAST_ACK", [TCP_CLOSING] = "CLOSING",
	};

	return st >= 0 && st < (int)(sizeof(names) / sizeof(names[0])) && names[st] ?
	       names[st] : "another state";
}

static void expect_state(int fd, int want, const char *when)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(fd, SOL_TCP, TCP_INFO, &ti, &len))
		fail("fd %d: TCP_INFO: %m", fd);
	if (ti.tcpi_state != want)
		fail("fd %d %s: %s (%u), expected %s", fd, when, state_name(ti.tcpi_state),
		     ti.tcpi_state, state_name(want));
}

/* fds 21..26: the state each end of the three connections is in */
static const int want_state[] = {
	TCP_FIN_WAIT1, TCP_ESTABLISHED, TCP_FIN_WAIT2, TCP_LAST_ACK, TCP_CLOSING, TCP_FIN_WAIT2,
};

static void expect_states(const char *when)
{
	for (size_t i = 0; i < sizeof(want_state) / sizeof(want_state[0]); i++)
		expect_state(21 + (int)i, want_state[i], when);
}

static void set_int(int fd, int level, int name, int v)
{
	if (setsockopt(fd, level, name, &v, sizeof(v)))
		fail("setsockopt %d on fd %d: %m", name, fd);
}

/* A connection to 20: the client at @c, the accepted end at @a, each
 * with small buffers. */
static void pair(int c, int a)
{
	struct sockaddr_in in;
	socklen_t len = sizeof(in);

	if (getsockname(20, (struct sockaddr *)&in, &len))
		fail("getsockname 20: %m");
	fd_place(socket(AF_INET, SOCK_STREAM, 0), c, 0);
	set_int(c, SOL_SOCKET, SO_SNDBUF, SMALL_BUF);
	set_int(c, SOL_SOCKET, SO_RCVBUF, SMALL_BUF);
	if (connect(c, (struct sockaddr *)&in, len))
		fail("connect %d: %m", c);
	fd_place(accept(20, NULL, NULL), a, 0);
	set_int(a, SOL_SOCKET, SO_SNDBUF, SMALL_BUF);
}

/* As much of the pattern of @seed as fits now; how much. */
static size_t fill(int fd, uint64_t seed)
{
	size_t sent = 0;

	pattern_fill(buf, BIG, seed);
	while (sent < BIG) {
		ssize_t n = send(fd, buf + sent, BIG - sent, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && errno == EAGAIN)
			return sent;
		if (n <= 0)
			fail("send on fd %d: %m", fd);
		sent += n;
	}
	fail("fd %d: %d bytes went and the queues are still not full", fd, BIG);
	return 0;
}

static void shut(int fd)
{
	if (shutdown(fd, SHUT_WR))
		fail("shutdown %d: %m", fd);
}

int main(int argc, char **argv)
{
	static const struct test_opt opts[] = { { NULL, 0, NULL, 0, NULL } };
	size_t fill21, fill24, fill25;

	test_init(argc, argv, opts);
	fd_place(socket(AF_INET, SOCK_STREAM, 0), 20, 0);
	set_int(20, SOL_SOCKET, SO_RCVBUF, SMALL_BUF);	/* the accepted ends' */
	bind_low_port(20, AF_INET, "127.0.0.1");	/* the restore binds it again */
	if (listen(20, 8))
		fail("listener: %m");

	pair(21, 22);
	fill21 = fill(21, 0x21);
	shut(21);

	pair(23, 24);
	shut(23);
	usleep(50000);			/* 23's FIN and its ACK */
	fill24 = fill(24, 0x24);
	shut(24);

	pair(25, 26);
	fill25 = fill(25, 0x25);
	shut(25);
	pattern_fill(buf, 100, 0x26);
	if (send(26, buf, 100, MSG_NOSIGNAL) != 100)
		fail("send on fd 26: %m");
	shut(26);
	usleep(100000);			/* 26's bytes and FIN, their ACKs */

	expect_states("before the checkpoint");

	test_daemon();
	test_waitsig();

	expect_states("after the restore");

	sock_get(22, buf, fill21, 0x21, "fd 22 (what 21 sent before its FIN)");
	sock_eof(22, "fd 22 (21's FIN)");
	sock_get(23, buf, fill24, 0x24, "fd 23 (what 24 sent before its FIN)");
	sock_eof(23, "fd 23 (24's FIN)");
	sock_eof(24, "fd 24 (23's FIN)");
	sock_get(26, buf, fill25, 0x25, "fd 26 (what 25 sent before its FIN)");
	sock_eof(26, "fd 26 (25's FIN)");
	sock_get(25, buf, 100, 0x26, "fd 25 (what 26 sent before its FIN)");
	sock_eof(25, "fd 25 (26's FIN)");
	close(22);
	sock_eof(21, "fd 21 (after 22 closed)");

	pair(27, 28);
	pattern_fill(buf, 3, 0x27);
	if (send(27, buf, 3, MSG_NOSIGNAL) != 3)
		fail("send on fd 27: %m");
	sock_get(28, buf, 3, 0x27, "a new connection to fd 20");
	pass();
}
