/*
 * Sockets between processes: the two ends of socketpairs held by the root
 * and its child, with data queued both ways; a socket end both hold; inet
 * sockets both hold.
 *
 * Before the dump (the root builds all, then forks):
 *   fds 30/31  unix stream pair: 30 the root's, 31 the child's; 500 bytes
 *              queued for the child, 300 for the root;
 *   fds 32/33  unix datagram pair: 32 the root's, 33 the child's; two
 *              datagrams (10 and 20 bytes) queued for the child;
 *   fds 34/35  unix seqpacket pair: both hold 34, only the root 35; one
 *              7-byte record queued on 34;
 *   fd 36      a UDP socket on 127.0.0.1 both hold, one datagram queued
 *              (36 and 37 on ports below the ephemeral range);
 *   fd 37      a TCP listener on 127.0.0.1 both hold;
 *   fd 38      the root's datagram socket bound to an abstract name, fd 39
 *              the child's, connected to it by that name, one datagram
 *              (15 bytes) sent before the dump and one (25) after.
 * After the restore: fds 34, 36 and 37 are one socket in both (kcmp); the
 * root reads its 300 bytes and sends a third datagram (30 bytes); the
 * child reads its 500 bytes, the three datagrams with their boundaries, the
 * record and the UDP datagram, and sends "bye" on 31; the root then reads
 * "bye" and the end of the stream from 30, finds nothing left on 34 and
 * 36 (the child took it from the one queue) and both datagrams of fd 39 on
 * fd 38.
 */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/inetport.h"
#include "lib/twoproc.h"
#include "lib/zdtmtst.h"

#define SEED 0x736f636bULL

static uint8_t buf[4096], got[4096];
static struct sockaddr_un named;
static socklen_t named_len;

static void put(int fd, uint64_t seed, size_t len, const char *what)
{
	pattern_fill(buf, len, seed);
	twoproc_write(fd, buf, len, what);
}

/* One message (stream: exactly @len bytes) of @seed's pattern from fd. */
static void take(int fd, uint64_t seed, size_t len, int stream, const char *what)
{
	ssize_t n;

	if (stream) {
		twoproc_read(fd, got, len, what);
		n = len;
	} else {
		n = recv(fd, got, sizeof(got), MSG_DONTWAIT);
		if (n < 0)
			twoproc_fail("%s: fd %d: %s", what, fd, strerror(errno));
	}
	if ((size_t)n != len)
		twoproc_fail("%s: fd %d: a message of %zd bytes, expected %zu", what, fd, n, len);
	pattern_fill(buf, len, seed);
	if (memcmp(got, buf, len))
		twoproc_fail("%s: fd %d: the %zu bytes are not the ones sent", what, fd, len);
}

static void expect_empty(int fd, const char *what)
{
	ssize_t n = recv(fd, got, sizeof(got), MSG_DONTWAIT);

	if (n >= 0 || errno != EAGAIN)
		twoproc_fail("%s: fd %d: expected an empty queue, recv says %zd (%s)", what, fd, n,
			     n < 0 ? strerror(errno) : "data");
}

/* A unix datagram socket as fd @fd and nowhere else; 0 or -1. */
static int unix_dgram_at(int fd)
{
	int sk = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);

	if (sk < 0 || dup2(sk, fd) != fd)
		return -1;
	close(sk);
	return 0;
}

static void root_setup(void)
{
	close(31);
	close(33);
}


static void child_setup(void)
{
	close(30);
	close(32);
	close(35);
	close(38);
	put(31, SEED + 1, 300, "stream to the root before the dump");
	if (unix_dgram_at(39) || connect(39, (struct sockaddr *)&named, named_len))
		twoproc_child_fail("fd 39: connecting to the root's name: %m");
	put(39, SEED + 7, 15, "datagram to the root's name");
}

static void root_check(pid_t child)
{
	twoproc_expect_shared(child, 34, 34, "the seqpacket end");
	twoproc_expect_shared(child, 36, 36, "the UDP socket");
	twoproc_expect_shared(child, 37, 37, "the TCP listener");
	take(30, SEED + 1, 300, 1, "stream from the child");
	put(32, SEED + 4, 30, "datagram 3");
}

static void child_check(void)
{
	take(31, SEED, 500, 1, "stream from the root");
	take(33, SEED + 2, 10, 0, "datagram 1");
	take(33, SEED + 3, 20, 0, "datagram 2");
	take(33, SEED + 4, 30, 0, "datagram 3");
	take(34, SEED + 5, 7, 0, "the seqpacket record");
	take(36, SEED + 6, 40, 0, "the UDP datagram");
	put(39, SEED + 8, 25, "datagram to the root's name after the restore");
	twoproc_write(31, "bye", 3, "stream to the root");
}

static void root_after(pid_t child)
{
	char bye[4] = "";
	ssize_t n;

	(void)child;
	twoproc_read(30, bye, 3, "stream from the child");
	if (memcmp(bye, "bye", 3))
		fail("fd 30: read '%.3s' from the child, expected 'bye'", bye);
	n = recv(30, got, sizeof(got), MSG_DONTWAIT);
	if (n != 0)
		fail("fd 30: no end of stream after the child's exit (recv: %zd, %m)", n);
	expect_empty(34, "the seqpacket end");
	expect_empty(36, "the UDP socket");
	take(38, SEED + 7, 15, 0, "the child's first datagram");
	take(38, SEED + 8, 25, 0, "the child's second datagram");
}

static void pair_at(int type, int a, int b)
{
	int sv[2];

	if (socketpair(AF_UNIX, type | SOCK_NONBLOCK, 0, sv) || dup2(sv[0], a) != a ||
	    dup2(sv[1], b) != b)
		fail("socketpair for fds %d/%d: %m", a, b);
	close(sv[0]);
	close(sv[1]);
}

/* On a port below the ephemeral range: the restore binds it again (inetport.h). */
static void inet_at(int type, int fd, struct sockaddr_in *sin)
{
	socklen_t len = sizeof(*sin);

	fd_place(socket(AF_INET, type | SOCK_NONBLOCK, 0), fd, 0);
	bind_low_port(fd, AF_INET, "127.0.0.1");
	if (getsockname(fd, (struct sockaddr *)sin, &len))
		fail("inet socket for fd %d: %m", fd);
}

int main(int argc, char **argv)
{
	static const struct twoproc tp = {
		.root_setup = root_setup, .child_setup = child_setup,
		.root_check = root_check, .child_check = child_check, .root_after = root_after,
	};
	struct sockaddr_in sin;
	int sk;

	test_init(argc, argv, NULL);
	pair_at(SOCK_STREAM, 30, 31);
	pair_at(SOCK_DGRAM, 32, 33);
	pair_at(SOCK_SEQPACKET, 34, 35);
	put(30, SEED, 500, "stream to the child before the dump");
	put(32, SEED + 2, 10, "datagram 1");
	put(32, SEED + 3, 20, "datagram 2");
	put(35, SEED + 5, 7, "the seqpacket record");

	inet_at(SOCK_DGRAM, 36, &sin);
	sk = socket(AF_INET, SOCK_DGRAM, 0);
	pattern_fill(buf, 40, SEED + 6);
	if (sk < 0 || sendto(sk, buf, 40, 0, (struct sockaddr *)&sin, sizeof(sin)) != 40)
		fail("a datagram to the UDP socket: %m");
	close(sk);
	inet_at(SOCK_STREAM, 37, &sin);
	if (listen(37, 4))
		fail("listen: %m");
	named.sun_family = AF_UNIX;
	named_len = offsetof(struct sockaddr_un, sun_path) + 1 +
		    snprintf(named.sun_path + 1, sizeof(named.sun_path) - 1, "zdtm-share-%d",
			     getpid());
	if (unix_dgram_at(38) || bind(38, (struct sockaddr *)&named, named_len))
		fail("fd 38: binding @zdtm-share-%d: %m", getpid());
	twoproc_run(&tp);
}
