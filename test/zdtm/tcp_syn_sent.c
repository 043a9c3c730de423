/*
 * A TCP connection still being opened (SYN_SENT), dumped with
 * --tcp-established (and --skip-in-flight):
 *
 *   20  an IPv4 listener on 127.0.0.1 (a port below the ephemeral range),
 *       backlog 0, its one place in the accept queue taken by a connection
 *       whose client closed at once (so the listener drops every further
 *       SYN: listen overflow)
 *   21  a non-blocking client of 20 whose SYN is not answered: SYN_SENT
 *       (TCP_SYNCNT 127: it does not give up before the dump)
 *
 * The dump drops the connection waiting on 20 (--skip-in-flight) and the
 * restore sends 21's SYN again, with the same initial sequence number.
 * --fastopen: 21 opens with sendto(MSG_FASTOPEN) of "hi" instead, with
 * TCP_FASTOPEN_NO_COOKIE (the 2 bytes go with the SYN and wait in its
 * retransmission queue): a dump refuses it.
 *
 * After SIGTERM 20 must give 21's connection (after the closed one when no
 * dump came between), 21 must be connected with the initial sequence number
 * it had (read in repair mode: write_seq is the ISN + 1 while nothing was
 * sent), and carry data both ways.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/inetport.h"
#include "lib/zdtmtst.h"

#define WAIT_MS 40000

static uint32_t expected_write_seq;	/* the ISN + 1 (+ 2 with --fastopen) */
static int fastopen;

static void set_int(int fd, int level, int name, int v, const char *what)
{
	if (setsockopt(fd, level, name, &v, sizeof(v)))
		fail("fd %d: %s: %m", fd, what);
}

static int tcp_state(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		fail("fd %d: TCP_INFO: %m", fd);
	return ti.tcpi_state;
}

/* write_seq of @fd, read in repair mode */
static uint32_t write_seq(int fd)
{
	uint32_t seq;
	socklen_t len = sizeof(seq);

	set_int(fd, SOL_TCP, TCP_REPAIR, 1, "TCP_REPAIR on");
	set_int(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, "TCP_REPAIR_QUEUE");
	if (getsockopt(fd, SOL_TCP, TCP_QUEUE_SEQ, &seq, &len))
		fail("fd %d: TCP_QUEUE_SEQ: %m", fd);
	set_int(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE, "TCP_REPAIR_QUEUE");
	set_int(fd, SOL_TCP, TCP_REPAIR, 0, "TCP_REPAIR off");
	return seq;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

static uint16_t port_of(int fd, int peer)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	if ((peer ? getpeername : getsockname)(fd, (struct sockaddr *)&sin, &len))
		fail("fd %d: get%sname: %m", fd, peer ? "peer" : "sock");
	return ntohs(sin.sin_port);
}

/* The accepted end of 21's connection (others, the closed one, dropped). */
static int accept_ours(void)
{
	long deadline = now_ms() + WAIT_MS;
	uint16_t ours = port_of(21, 0);

	while (now_ms() < deadline) {
		struct pollfd p = { .fd = 20, .events = POLLIN };
		int s;

		if (poll(&p, 1, 200) < 0 && errno != EINTR)
			fail("poll on fd 20: %m");
		s = accept4(20, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (s < 0 && errno == EAGAIN)
			continue;
		if (s < 0)
			fail("fd 20: accept: %m");
		if (port_of(s, 1) == ours)
			return s;
		close(s);
	}
	fail("fd 20: fd 21's connection did not arrive within %d s (fd 21 in TCP state %d)",
	     WAIT_MS / 1000, tcp_state(21));
}

static void one_byte(int from, int to, char c, const char *what)
{
	struct pollfd p = { .fd = to, .events = POLLIN };
	char got = 0;

	if (send(from, &c, 1, MSG_DONTWAIT | MSG_NOSIGNAL) != 1)
		fail("%s: send: %m", what);
	if (poll(&p, 1, 5000) != 1 || recv(to, &got, 1, MSG_DONTWAIT) != 1 || got != c)
		fail("%s: the byte did not arrive (%m)", what);
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int filler, err, s;
	long deadline;

	const struct test_opt opts[] = {
		{ "fastopen", TEST_OPT_FLAG, &fastopen, 0, "open 21 with TCP Fast Open data" },
		{ NULL, 0, NULL, 0, NULL },
	};

	test_init(argc, argv, opts);
	fd_place(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), 20, 0);
	bind_low_port(20, AF_INET, "127.0.0.1");	/* the restore binds it again */
	if (listen(20, 0) || getsockname(20, (struct sockaddr *)&sin, &len))
		fail("fd 20: bind/listen: %m");

	filler = socket(AF_INET, SOCK_STREAM, 0);
	if (filler < 0 || connect(filler, (struct sockaddr *)&sin, sizeof(sin)))
		fail("the connection that fills the accept queue: %m");
	close(filler);

	fd_place(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), 21, 0);
	set_int(21, SOL_TCP, TCP_SYNCNT, 127, "TCP_SYNCNT");
	if (fastopen) {
		/* no cookie needed: the data goes with the SYN */
		set_int(21, SOL_TCP, TCP_FASTOPEN_NO_COOKIE, 1, "TCP_FASTOPEN_NO_COOKIE");
		if (sendto(21, "hi", 2, MSG_FASTOPEN, (struct sockaddr *)&sin, sizeof(sin)) != 2 &&
		    errno != EINPROGRESS)
			fail("fd 21: sendto(MSG_FASTOPEN): %m");
	} else if (!connect(21, (struct sockaddr *)&sin, sizeof(sin)) || errno != EINPROGRESS) {
		fail("fd 21: connect did not stay in progress (%m)");
	}
	usleep(100 * 1000);
	if (tcp_state(21) != TCP_SYN_SENT)
		fail("fd 21: TCP state %d, expected SYN_SENT", tcp_state(21));
	expected_write_seq = write_seq(21);
	test_msg("expected write_seq at %p", (void *)&expected_write_seq);

	test_daemon();
	test_waitsig();

	s = accept_ours();
	deadline = now_ms() + 5000;
	while (tcp_state(21) != TCP_ESTABLISHED && now_ms() < deadline)
		usleep(10 * 1000);
	len = sizeof(err);
	if (tcp_state(21) != TCP_ESTABLISHED ||
	    getsockopt(21, SOL_SOCKET, SO_ERROR, &err, &len) || err)
		fail("fd 21: not connected (TCP state %d, error %d)", tcp_state(21), err);
	if (write_seq(21) != expected_write_seq)
		fail("fd 21: initial sequence number %u, expected %u", write_seq(21) - 1,
		     expected_write_seq - 1);
	if (fastopen) {
		char hi[2];
		struct pollfd p = { .fd = s, .events = POLLIN };

		if (poll(&p, 1, 5000) != 1 || recv(s, hi, 2, MSG_DONTWAIT) != 2 || memcmp(hi, "hi", 2))
			fail("fd 21's Fast Open data did not arrive (%m)");
	}
	one_byte(21, s, 'a', "fd 21 -> its accepted end");
	one_byte(s, 21, 'b', "its accepted end -> fd 21");
	close(s);
	pass();
}
