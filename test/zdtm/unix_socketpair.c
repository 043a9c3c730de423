/*
 * Unix socketpairs in the states a task leaves them:
 *
 *   A  stream 20/21: 3000 bytes queued 20 -> 21 and 100 KiB 21 -> 20;
 *      on 20 SO_PRIORITY 5, SO_RCVLOWAT 3, SO_MARK 42, SO_SNDBUF and
 *      SO_RCVBUF set, SO_RCVTIMEO 7.5 s; 21 SO_PASSCRED and a peek offset
 *      of 10 (SO_PEEK_OFF); 22 is a dup of 20 (one open file description)
 *   B  datagram 30/31: five datagrams 30 -> 31 and two 31 -> 30, each of
 *      its own size; 30 O_NONBLOCK
 *   C  seqpacket 40/41: three records each way, then shutdown(40, SHUT_WR)
 *   D  stream 50: 500 bytes from a peer that is closed since (then EOF)
 *   E  61: a datagram socket never connected, SO_PASSCRED
 *
 * After SIGTERM: options, peer credentials, every queued byte with its
 * datagram and record boundaries, the peek offset, shutdown and EOF
 * states, which fds share a socket, and that every pair still carries
 * new data both ways.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define DATA_A1 3000
#define DATA_A2 (100 << 10)
#define PEEK_A 10
#define DATA_D 500

static const size_t dgrams_b[] = { 1, 100, 2000, 7, 65000 };
static const size_t dgrams_b2[] = { 300, 5 };
static const size_t recs_c[] = { 10, 4096, 3 };

static uint8_t buf[DATA_A2 + 4096];

static void make_pair(int type, int a, int b)
{
	int sv[2];

	if (socketpair(AF_UNIX, type, 0, sv))
		fail("socketpair: %m");
	/* socketpair() may hand out the other's target number: move both high first */
	fd_place(sv[0], 900, 0);
	fd_place(sv[1], 901, 0);
	fd_place(900, a, 0);
	fd_place(901, b, 0);
}

static void put(int fd, size_t len, uint64_t seed)
{
	pattern_fill(buf, len, seed);
	for (size_t done = 0; done < len;) {
		ssize_t n = send(fd, buf + done, len - done, MSG_DONTWAIT);

		if (n <= 0)
			fail("send %zu bytes into fd %d: %m", len, fd);
		done += n;
	}
}

static void get(int fd, size_t len, uint64_t seed, const char *what)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = recv(fd, buf + done, len - done, MSG_DONTWAIT);

		if (n <= 0)
			fail("%s: read %zu of %zu bytes: %m", what, done, len);
		done += n;
	}
	pattern_expect(what, buf, len, seed);
}

/* One datagram or record: exactly @len bytes, not truncated. */
static void get_one(int fd, size_t len, uint64_t seed, const char *what)
{
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);

	if (n != (ssize_t)len)
		fail("%s: a message of %zd bytes, expected %zu (%m)", what, n, len);
	pattern_expect(what, buf, len, seed);
}

static int get_int(int fd, int name)
{
	int v;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, SOL_SOCKET, name, &v, &len))
		fail("getsockopt %d on fd %d: %m", name, fd);
	return v;
}

static void set_int(int fd, int name, int v)
{
	if (setsockopt(fd, SOL_SOCKET, name, &v, sizeof(v)))
		fail("setsockopt %d = %d on fd %d: %m", name, v, fd);
}

static void expect_int(int fd, int name, const char *what, int want)
{
	int got = get_int(fd, name);

	if (got != want)
		fail("fd %d: %s is %d, expected %d", fd, what, got, want);
}

static void expect_eof(int fd, const char *what)
{
	ssize_t n = recv(fd, buf, 1, MSG_DONTWAIT);

	if (n != 0)
		fail("%s: expected EOF, read returned %zd (%m)", what, n);
}

static void expect_empty(int fd, const char *what)
{
	ssize_t n = recv(fd, buf, 1, MSG_DONTWAIT);

	if (n != -1 || errno != EAGAIN)
		fail("%s: expected an empty queue, read returned %zd (%m)", what, n);
}

static ino_t ino(int fd)
{
	struct stat st;

	if (fstat(fd, &st))
		fail("fstat %d: %m", fd);
	return st.st_ino;
}

/* New data both ways: the pair is still connected to each other. */
static void ping(int a, int b, const char *what)
{
	char c = 'x';

	if (send(a, &c, 1, MSG_DONTWAIT) != 1 || recv(b, &c, 1, MSG_DONTWAIT) != 1 || c != 'x')
		fail("%s: %d -> %d no longer works: %m", what, a, b);
	c = 'y';
	if (send(b, &c, 1, MSG_DONTWAIT) != 1 || recv(a, &c, 1, MSG_DONTWAIT) != 1 || c != 'y')
		fail("%s: %d -> %d no longer works: %m", what, b, a);
}

int main(int argc, char **argv)
{
	struct timeval tv = { 7, 500000 }, got_tv;
	socklen_t len;
	struct ucred cred;
	int sndbuf, rcvbuf;

	test_init(argc, argv, NULL);
	signal(SIGPIPE, SIG_IGN);

	make_pair(SOCK_STREAM, 20, 21);
	put(20, DATA_A1, 0xa1);
	put(21, DATA_A2, 0xa2);
	set_int(20, SO_PRIORITY, 5);
	set_int(20, SO_RCVLOWAT, 3);
	set_int(20, SO_MARK, 42);
	set_int(20, SO_SNDBUF, 300000);
	set_int(20, SO_RCVBUF, 100000);
	if (setsockopt(20, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)))
		fail("SO_RCVTIMEO: %m");
	set_int(21, SO_PASSCRED, 1);
	set_int(21, SO_PEEK_OFF, 0);
	if (recv(21, buf, PEEK_A, MSG_PEEK) != PEEK_A)
		fail("peek: %m");
	fd_place(dup(20), 22, 0);
	sndbuf = get_int(20, SO_SNDBUF);
	rcvbuf = get_int(20, SO_RCVBUF);

	make_pair(SOCK_DGRAM, 30, 31);
	for (size_t i = 0; i < sizeof(dgrams_b) / sizeof(dgrams_b[0]); i++)
		put(30, dgrams_b[i], 0xb0 + i);
	for (size_t i = 0; i < sizeof(dgrams_b2) / sizeof(dgrams_b2[0]); i++)
		put(31, dgrams_b2[i], 0xbb0 + i);
	fcntl(30, F_SETFL, O_NONBLOCK);

	make_pair(SOCK_SEQPACKET, 40, 41);
	for (size_t i = 0; i < sizeof(recs_c) / sizeof(recs_c[0]); i++) {
		put(40, recs_c[i], 0xc0 + i);
		put(41, recs_c[i], 0xcc0 + i);
	}
	if (shutdown(40, SHUT_WR))
		fail("shutdown: %m");

	make_pair(SOCK_STREAM, 50, 902);
	put(902, DATA_D, 0xd);
	close(902);

	fd_place(socket(AF_UNIX, SOCK_DGRAM, 0), 61, 0);
	set_int(61, SO_PASSCRED, 1);

	test_daemon();
	test_waitsig();

	/* A */
	if (ino(22) != ino(20) || ino(21) == ino(20))
		fail("fds 20, 21, 22: wrong sharing of sockets");
	expect_int(20, SO_PRIORITY, "SO_PRIORITY", 5);
	expect_int(20, SO_RCVLOWAT, "SO_RCVLOWAT", 3);
	expect_int(20, SO_MARK, "SO_MARK", 42);
	expect_int(20, SO_SNDBUF, "SO_SNDBUF", sndbuf);
	expect_int(20, SO_RCVBUF, "SO_RCVBUF", rcvbuf);
	expect_int(21, SO_PASSCRED, "SO_PASSCRED", 1);
	expect_int(20, SO_PASSCRED, "SO_PASSCRED", 0);
	expect_int(21, SO_PEEK_OFF, "SO_PEEK_OFF", PEEK_A);
	expect_int(20, SO_PEEK_OFF, "SO_PEEK_OFF", -1);
	expect_int(20, SO_TYPE, "SO_TYPE", SOCK_STREAM);
	len = sizeof(got_tv);
	if (getsockopt(20, SOL_SOCKET, SO_RCVTIMEO, &got_tv, &len) ||
	    got_tv.tv_sec != tv.tv_sec || got_tv.tv_usec != tv.tv_usec)
		fail("fd 20: SO_RCVTIMEO %ld.%06ld, expected 7.5 s", (long)got_tv.tv_sec,
		     (long)got_tv.tv_usec);
	len = sizeof(cred);
	if (getsockopt(20, SOL_SOCKET, SO_PEERCRED, &cred, &len) || cred.pid != getpid() ||
	    cred.uid != getuid() || cred.gid != getgid())
		fail("fd 20: peer credentials %d/%d/%d, expected %d/%d/%d", cred.pid, cred.uid,
		     cred.gid, getpid(), getuid(), getgid());
	/* the peek offset: the next peek starts 10 bytes in */
	if (recv(21, buf, 20, MSG_PEEK) != 20)
		fail("fd 21: peek: %m");
	{
		uint8_t want[DATA_A1];

		pattern_fill(want, DATA_A1, 0xa1);
		if (memcmp(buf, want + PEEK_A, 20))
			fail("fd 21: a peek no longer starts at the peek offset");
	}
	set_int(21, SO_PEEK_OFF, -1);
	get(21, DATA_A1, 0xa1, "fd 21 (stream, 3000 bytes)");
	get(20, DATA_A2, 0xa2, "fd 20 (stream, 100 KiB)");
	expect_empty(21, "fd 21");
	ping(20, 21, "stream pair 20/21");

	/* B */
	if (!(fcntl(30, F_GETFL) & O_NONBLOCK) || (fcntl(31, F_GETFL) & O_NONBLOCK))
		fail("fds 30/31: O_NONBLOCK lost or gained");
	expect_int(30, SO_TYPE, "SO_TYPE", SOCK_DGRAM);
	for (size_t i = 0; i < sizeof(dgrams_b) / sizeof(dgrams_b[0]); i++)
		get_one(31, dgrams_b[i], 0xb0 + i, "fd 31 (datagram)");
	for (size_t i = 0; i < sizeof(dgrams_b2) / sizeof(dgrams_b2[0]); i++)
		get_one(30, dgrams_b2[i], 0xbb0 + i, "fd 30 (datagram)");
	expect_empty(30, "fd 30");
	expect_empty(31, "fd 31");
	ping(30, 31, "datagram pair 30/31");

	/* C */
	expect_int(41, SO_TYPE, "SO_TYPE", SOCK_SEQPACKET);
	for (size_t i = 0; i < sizeof(recs_c) / sizeof(recs_c[0]); i++) {
		get_one(41, recs_c[i], 0xc0 + i, "fd 41 (record)");
		get_one(40, recs_c[i], 0xcc0 + i, "fd 40 (record)");
	}
	expect_eof(41, "fd 41 after shutdown(40, SHUT_WR)");
	expect_empty(40, "fd 40");
	if (send(40, "z", 1, MSG_DONTWAIT) != -1 || errno != EPIPE)
		fail("fd 40: sending after SHUT_WR did not fail with EPIPE (%m)");
	put(41, 1, 0x77);
	get_one(40, 1, 0x77, "fd 40 (a new record)");

	/* D */
	get(50, DATA_D, 0xd, "fd 50 (peer closed)");
	expect_eof(50, "fd 50");

	/* E */
	expect_int(61, SO_TYPE, "SO_TYPE", SOCK_DGRAM);
	expect_int(61, SO_PASSCRED, "SO_PASSCRED", 1);
	pass();
}
