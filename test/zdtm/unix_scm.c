/*
 * File descriptors in flight (SCM_RIGHTS) in unix socket queues:
 *
 *   A  stream 20/21: 100 bytes, then 50 bytes carrying the read end of a
 *      pipe (its write end is 31, the read end closed here; 3000 bytes in
 *      the pipe) and a dup of fd 32 (a regular file, offset 5), then 70
 *      bytes with nothing
 *   B  datagram 40/41: a datagram with an eventfd (counter 7, held by no
 *      fd), one with a memfd (its bytes, held by no fd), one with nothing,
 *      one with the end 51 of the socketpair 50/51 (51 closed here, data
 *      queued both ways in the pair), one with the eventfd again, and
 *      one with fd 60 (a socket of the task whose own queue carries files)
 *   C  seqpacket 60/61: a record carrying fd 20 (a socket of the task in
 *      flight in another's queue) and the pipe's write end 31, then an
 *      empty-handed record, then one carrying a datagram socket bound to
 *      the relative name "unix_scm.sock" with a datagram in its queue (held
 *      by no fd)
 *
 * After SIGTERM: every message with its bytes and its files (none where
 * there were none), each file what it was (the pipe's bytes, the file's
 * offset shared with fd 32, the eventfd's counter, the memfd's bytes, the
 * pair's queues and that it still talks), files passed twice one file
 * again, and the task's own fds in flight the same open files (kcmp).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define PIPE_BYTES 3000
#define NAMED "unix_scm.sock"
#define MAX_FDS 4

static uint8_t buf[1 << 16];

static void make_pair(int type, int a, int b)
{
	int sv[2];

	if (socketpair(AF_UNIX, type, 0, sv))
		fail("socketpair: %m");
	fd_place(sv[0], 900, 0);
	fd_place(sv[1], 901, 0);
	fd_place(900, a, 0);
	fd_place(901, b, 0);
}

/* @len pattern bytes (@seed) with @nr fds, one sendmsg */
static void put(int sk, size_t len, uint64_t seed, const int *fds, int nr)
{
	union { char b[CMSG_SPACE(MAX_FDS * sizeof(int))]; struct cmsghdr a; } cbuf;
	struct iovec iov = { buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	pattern_fill(buf, len, seed);
	if (nr) {
		struct cmsghdr *ch = (struct cmsghdr *)cbuf.b;

		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.b;
		mh.msg_controllen = CMSG_SPACE(nr * sizeof(int));
		ch->cmsg_level = SOL_SOCKET;
		ch->cmsg_type = SCM_RIGHTS;
		ch->cmsg_len = CMSG_LEN(nr * sizeof(int));
		memcpy(CMSG_DATA(ch), fds, nr * sizeof(int));
	}
	if (sendmsg(sk, &mh, MSG_DONTWAIT) != (ssize_t)len)
		fail("sendmsg of %zu bytes and %d fds on fd %d: %m", len, nr, sk);
}

/* One recvmsg into buf at @off; the fds it brings are appended to @fds. */
static ssize_t get(int sk, size_t off, size_t len, int *fds, int *nr, const char *what)
{
	union { char b[CMSG_SPACE(MAX_FDS * 2 * sizeof(int))]; struct cmsghdr a; } cbuf;
	struct iovec iov = { buf + off, len };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf.b, .msg_controllen = sizeof(cbuf),
	};
	ssize_t n = recvmsg(sk, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

	if (n < 0)
		fail("%s: recvmsg: %m", what);
	if (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC))
		fail("%s: truncated (flags %#x)", what, mh.msg_flags);
	for (struct cmsghdr *ch = CMSG_FIRSTHDR(&mh); ch; ch = CMSG_NXTHDR(&mh, ch)) {
		int n_fds = (ch->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		if (ch->cmsg_level != SOL_SOCKET || ch->cmsg_type != SCM_RIGHTS)
			fail("%s: a control message %d/%d", what, ch->cmsg_level, ch->cmsg_type);
		if (*nr + n_fds > MAX_FDS)
			fail("%s: more than %d fds", what, MAX_FDS);
		memcpy(fds + *nr, CMSG_DATA(ch), n_fds * sizeof(int));
		*nr += n_fds;
	}
	return n;
}

/* A datagram or record: exactly @len bytes and @want fds. */
static void get_msg(int sk, size_t len, uint64_t seed, int *fds, int want, const char *what)
{
	int nr = 0;
	ssize_t n = get(sk, 0, sizeof(buf), fds, &nr, what);

	if (n != (ssize_t)len)
		fail("%s: %zd bytes, expected %zu", what, n, len);
	pattern_expect(what, buf, len, seed);
	if (nr != want)
		fail("%s: %d fds, expected %d", what, nr, want);
}

static void expect_empty(int sk, const char *what)
{
	if (recv(sk, buf, 1, MSG_DONTWAIT) != -1 || errno != EAGAIN)
		fail("%s: expected an empty queue (%m)", what);
}

static void expect_same(int a, int b, const char *what)
{
	pid_t me = getpid();

	if (syscall(SYS_kcmp, me, me, KCMP_FILE, a, b))
		fail("%s: fds %d and %d are not one open file (%m)", what, a, b);
}

static void expect_pipe(int rd, int wr, const char *what)
{
	ssize_t n = read(rd, buf, sizeof(buf));

	if (n != PIPE_BYTES)
		fail("%s: %zd bytes in the pipe, expected %d (%m)", what, n, PIPE_BYTES);
	pattern_expect(what, buf, n, 0x9199);
	if (write(wr, "x", 1) != 1 || read(rd, buf, 2) != 1 || buf[0] != 'x')
		fail("%s: the pipe's ends no longer meet (%m)", what);
}

static void check_stream(void)
{
	int fds[MAX_FDS], nr = 0;
	size_t done = 0;
	char c;

	/* the files come with the bytes they were sent with: somewhere in
	 * the first 150 bytes, depending on how the reads cut the stream */
	while (done < 150) {
		ssize_t n = get(20, done, 150 - done, fds, &nr, "fd 20");

		if (n <= 0)
			fail("fd 20: read %zu of 150 bytes", done);
		done += n;
	}
	pattern_expect("fd 20: first 100 bytes", buf, 100, 0xa1);
	pattern_expect("fd 20: next 50 bytes", buf + 100, 50, 0xa2);
	if (nr != 2)
		fail("fd 20: %d fds with the first 150 bytes, expected 2", nr);
	expect_pipe(fds[0], 31, "fd 20: pipe read end");
	expect_same(fds[1], 32, "fd 20: the regular file");
	if (lseek(32, 0, SEEK_CUR) != 5)
		fail("fd 32: offset %lld, expected 5", (long long)lseek(32, 0, SEEK_CUR));
	if (lseek(fds[1], 6, SEEK_SET) != 6 || lseek(32, 0, SEEK_CUR) != 6)
		fail("fd 32: its offset is not shared with its copy in flight");
	if (read(32, &c, 1) != 1 || c != 'w')
		fail("fd 32: read '%c' at 6, expected 'w'", c);
	close(fds[0]);
	close(fds[1]);
	nr = 0;
	if (get(20, 0, sizeof(buf), fds, &nr, "fd 20") != 70 || nr)
		fail("fd 20: the last 70 bytes with %d fds", nr);
	pattern_expect("fd 20: last 70 bytes", buf, 70, 0xa3);
	expect_empty(20, "fd 20");
}

static void check_dgram(void)
{
	int ev[1], ev2[1], mfd[1], sk[1], none[1], sixty[1];
	uint64_t v;
	char pair[8];

	get_msg(40, 10, 0xb1, ev, 1, "fd 40: datagram 1");
	get_msg(40, 20, 0xb2, mfd, 1, "fd 40: datagram 2");
	get_msg(40, 30, 0xb3, none, 0, "fd 40: datagram 3");
	get_msg(40, 5, 0xb4, sk, 1, "fd 40: datagram 4");
	get_msg(40, 1, 0xb5, ev2, 1, "fd 40: datagram 5");
	get_msg(40, 3, 0xb6, sixty, 1, "fd 40: datagram 6");
	expect_empty(40, "fd 40");
	expect_same(sixty[0], 60, "fd 40: fd 60 in flight");
	close(sixty[0]);
	expect_same(ev[0], ev2[0], "fd 40: the eventfd passed twice");
	if (read(ev[0], &v, 8) != 8 || v != 7)
		fail("fd 40: the eventfd counts %llu, expected 7", (unsigned long long)v);
	if (pread(mfd[0], buf, 4096, 0) != 4096)
		fail("fd 40: the memfd: %m");
	pattern_expect("fd 40: the memfd's bytes", buf, 4096, 0xcafe);
	if (recv(sk[0], pair, sizeof(pair), MSG_DONTWAIT) != 5 || memcmp(pair, "to-51", 5))
		fail("fd 40: the socket in flight lost its queue");
	if (recv(50, pair, sizeof(pair), MSG_DONTWAIT) != 5 || memcmp(pair, "to-50", 5))
		fail("fd 50: its queue");
	if (send(50, "ping", 4, 0) != 4 || recv(sk[0], pair, sizeof(pair), MSG_DONTWAIT) != 4 ||
	    memcmp(pair, "ping", 4))
		fail("fd 50: no longer talks to its peer that was in flight");
}

/* bound to "unix_scm.sock" (relative to our cwd), "to-named" queued */
static void check_named(int sk)
{
	struct sockaddr_un sun;
	socklen_t len = sizeof(sun);
	struct stat st;
	char got[16];

	memset(&sun, 0, sizeof(sun));
	if (getsockname(sk, (struct sockaddr *)&sun, &len) || strcmp(sun.sun_path, NAMED))
		fail("fd 60: the socket in flight is bound to '%s', expected '%s' (%m)",
		     sun.sun_path, NAMED);
	if (stat(NAMED, &st) || !S_ISSOCK(st.st_mode))
		fail("%s: not a socket in our directory (%m)", NAMED);
	if (recv(sk, got, sizeof(got), MSG_DONTWAIT) != 8 || memcmp(got, "to-named", 8))
		fail("fd 60: the named socket in flight lost its datagram");
	close(sk);
}

static void check_seqpacket(void)
{
	int fds[MAX_FDS], none[1], named[1];

	get_msg(60, 200, 0xc1, fds, 2, "fd 60: record 1");
	expect_same(fds[0], 20, "fd 60: fd 20 in flight");
	expect_same(fds[1], 31, "fd 60: fd 31 in flight");
	get_msg(60, 8, 0xc2, none, 0, "fd 60: record 2");
	get_msg(60, 16, 0xc3, named, 1, "fd 60: record 3");
	expect_empty(60, "fd 60");
	check_named(named[0]);
	if (send(fds[0], "z", 1, 0) != 1)
		fail("fd 60: sending through its copy of fd 20: %m");
	if (recv(21, buf, 2, MSG_DONTWAIT) != 1 || buf[0] != 'z')
		fail("fd 60: its copy of fd 20 does not reach fd 21 (%m)");
}

int main(int argc, char **argv)
{
	int p[2], fds[2], ev, mfd, file;

	test_init(argc, argv, NULL);

	file = open("unix_scm.data", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (file < 0 || write(file, "hello world", 11) != 11 || lseek(file, 5, SEEK_SET) != 5)
		fail("unix_scm.data: %m");
	fd_place(file, 32, 0);

	make_pair(SOCK_STREAM, 20, 21);
	if (pipe(p))
		fail("pipe: %m");
	fd_place(p[0], 30, 0);
	fd_place(p[1], 31, 0);
	pattern_fill(buf, PIPE_BYTES, 0x9199);
	if (write(31, buf, PIPE_BYTES) != PIPE_BYTES)
		fail("write into the pipe: %m");
	put(21, 100, 0xa1, NULL, 0);
	fds[0] = 30;
	fds[1] = dup(32);
	put(21, 50, 0xa2, fds, 2);
	close(fds[1]);
	close(30);
	put(21, 70, 0xa3, NULL, 0);

	make_pair(SOCK_DGRAM, 40, 41);
	ev = eventfd(7, EFD_CLOEXEC);
	mfd = memfd_create("unix_scm", MFD_CLOEXEC);
	pattern_fill(buf, 4096, 0xcafe);
	if (ev < 0 || mfd < 0 || pwrite(mfd, buf, 4096, 0) != 4096)
		fail("eventfd, memfd: %m");
	put(41, 10, 0xb1, &ev, 1);
	put(41, 20, 0xb2, &mfd, 1);
	close(mfd);
	put(41, 30, 0xb3, NULL, 0);
	make_pair(SOCK_DGRAM, 50, 51);
	if (send(50, "to-51", 5, 0) != 5 || send(51, "to-50", 5, 0) != 5)
		fail("pair 50/51: %m");
	fds[0] = 51;
	put(41, 5, 0xb4, fds, 1);
	close(51);
	put(41, 1, 0xb5, &ev, 1);
	close(ev);

	make_pair(SOCK_SEQPACKET, 60, 61);
	fds[0] = 20;
	fds[1] = 31;
	put(61, 200, 0xc1, fds, 2);
	put(61, 8, 0xc2, NULL, 0);
	{
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		int named = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

		strcpy(sun.sun_path, NAMED);
		unlink(NAMED);
		if (named < 0 || bind(named, (struct sockaddr *)&sun, sizeof(sun)) ||
		    sendto(41, "to-named", 8, 0, (struct sockaddr *)&sun, sizeof(sun)) != 8)
			fail("%s: %m", NAMED);
		put(61, 16, 0xc3, &named, 1);
		close(named);
	}

	fds[0] = 60;
	put(41, 3, 0xb6, fds, 1);

	test_daemon();
	test_waitsig();

	check_stream();
	check_dgram();
	check_seqpacket();
	pass();
}
