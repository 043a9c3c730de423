/*
 * Listening unix sockets with connections not yet accepted, data waiting
 * in them (issue 9):
 *
 *   20  a stream listener bound to "unix_backlog.stream" (non-blocking,
 *       backlog 8), four clients waiting on it, in this order:
 *         21  sent 1000 + 2000 bytes
 *         22  sent nothing
 *         23  sent 70000 bytes and shut its writing down
 *         24  sent 5 bytes with a file in flight: the read end of a pipe
 *             whose write end is 27
 *   30  a seqpacket listener bound to "unix_backlog.seqpacket"
 *       (non-blocking, backlog 4), two clients waiting:
 *         31  sent three records: 10 bytes, 0 bytes, 3000 bytes
 *         32  sent nothing
 *
 * With --closed three more clients connect and close before anything is
 * accepted: in the stream backlog one right after 22, bound to the
 * abstract name "unix_backlog.closed.PID", that sent 1500 bytes with the
 * read end of the pipe of 27 in flight, and one
 * after 24, bound to the relative path "unix_backlog.gone" (its socket
 * file left behind), that sent nothing; in the seqpacket backlog one
 * before 31 that sent two records (7 bytes, 0 bytes).  Their accepted ends
 * give what they sent, then the end of the stream (no reset: what the
 * kernel gives for a client closed before the accept).
 *
 * With --pass-epoll 24 passes an epoll fd instead (a file in flight a dump
 * refuses, and only after it accepted the connections to read them).
 *
 * With --passes N a stream listener at fd 50, bound to
 * "unix_backlog.passes", holds N more clients closed before the accept,
 * each of which sent two messages of one byte, each with PASSES_FDS copies
 * of fd 27 in flight (more passes in all, and in one connection, than a
 * dump may hold descriptors at once: it keeps one copy of each file, not
 * one of each pass).
 *
 * With --empty no client sends anything (and 24 passes no file).  With
 * --tree a child holds the clients (the program only the listeners and
 * the pipe's write end): the order is then told by the data alone.
 * With --ext-peer NAME the clients' holder (the child with --tree) also
 * holds, at fd 40, a stream socket connected to the test's listener at the
 * abstract NAME, outside the tree (a dump refuses it), and sent "ping".
 *
 * After SIGTERM each listener gives its connections back in the same order
 * (each accepted end answered by the client it should be), with the same
 * data and boundaries, the shutdown of 23, the file in flight working; and
 * nothing more is waiting.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

static uint8_t buf[70000];
static int empty, tree, closed, pass_epoll;
static long passes;
static const char *ext_peer;

struct name {
	struct sockaddr_un sun;
	socklen_t len;
};

static struct name path_name(const char *path)
{
	struct name n = { .sun = { .sun_family = AF_UNIX } };

	snprintf(n.sun.sun_path, sizeof(n.sun.sun_path), "%s", path);
	n.len = offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1;
	return n;
}

/* fd 40: connected to @name (abstract), outside the tree */
static void ext_socket(const char *name)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	socklen_t len = offsetof(struct sockaddr_un, sun_path) + 1 +
			snprintf(un.sun_path + 1, sizeof(un.sun_path) - 1, "%s", name);

	fd_place(socket(AF_UNIX, SOCK_STREAM, 0), 40, 0);
	if (connect(40, (struct sockaddr *)&un, len))
		fail("fd 40: connect to @%s: %m", name);
	if (write(40, "ping", 4) != 4)
		fail("fd 40: write: %m");
}

static void listener(int type, const char *path, int backlog, int at)
{
	struct name n = path_name(path);

	unlink(path);
	fd_place(socket(AF_UNIX, type | SOCK_NONBLOCK, 0), at, 0);
	if (bind(at, (struct sockaddr *)&n.sun, n.len) || listen(at, backlog))
		fail("fd %d: bind/listen %s: %m", at, path);
}

static void client(int type, const char *path, int at)
{
	struct name n = path_name(path);

	fd_place(socket(AF_UNIX, type, 0), at, 0);
	if (connect(at, (struct sockaddr *)&n.sun, n.len))
		fail("fd %d: connect to %s: %m", at, path);
}

static void put(int fd, size_t len, uint64_t seed, int pass_fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	pattern_fill(buf, len, seed);
	if (pass_fd >= 0) {
		struct cmsghdr *ch = (struct cmsghdr *)cbuf;

		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		ch->cmsg_level = SOL_SOCKET;
		ch->cmsg_type = SCM_RIGHTS;
		ch->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(ch), &pass_fd, sizeof(int));
	}
	if (sendmsg(fd, &mh, MSG_DONTWAIT) != (ssize_t)len)
		fail("send %zu bytes from fd %d: %m", len, fd);
}

/* @len bytes of @seed's pattern (a stream: as they come); a file passed
 * with them goes to *passed. */
static void get(int fd, size_t len, uint64_t seed, int stream, int *passed, const char *what)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	size_t done = 0;

	do {
		/* a stream: no byte beyond these (what follows is checked apart) */
		struct iovec iov = { buf + done, stream ? len - done : sizeof(buf) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *ch;
		ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (n < 0 || (n == 0 && len))
			fail("%s: got %zu of %zu bytes (%zd: %m)", what, done, len, n);
		for (ch = CMSG_FIRSTHDR(&mh); ch; ch = CMSG_NXTHDR(&mh, ch)) {
			if (ch->cmsg_type != SCM_RIGHTS || !passed || *passed >= 0)
				fail("%s: a file in flight not expected", what);
			memcpy(passed, CMSG_DATA(ch), sizeof(int));
		}
		done += n;
		if (!stream && done != len)
			fail("%s: a record of %zu bytes, expected %zu", what, done, len);
	} while (done < len);
	pattern_expect(what, buf, len, seed);
}

static void expect_empty(int fd, const char *what)
{
	if (recv(fd, buf, 1, MSG_DONTWAIT) != -1 || errno != EAGAIN)
		fail("%s: expected an empty queue (%m)", what);
}

static void expect_eof(int fd, const char *what)
{
	if (recv(fd, buf, 1, MSG_DONTWAIT) != 0)
		fail("%s: expected the end of the stream (%m)", what);
}

/* @acc is the accepted end of @cl: a byte each way. */
static void same_connection(int acc, int cl, int cl_shut, const char *what)
{
	char c = 'x';

	if (tree)
		return;		/* the clients are the child's */
	if (send(acc, &c, 1, MSG_DONTWAIT) != 1 || recv(cl, &c, 1, MSG_DONTWAIT) != 1 || c != 'x')
		fail("%s: the connection accepted is not fd %d's (%m)", what, cl);
	if (cl_shut)
		return;
	if (send(cl, &c, 1, MSG_DONTWAIT) != 1 || recv(acc, &c, 1, MSG_DONTWAIT) != 1)
		fail("%s: fd %d -> its accepted end no longer works (%m)", what, cl);
}

/* A client of @path, bound to @name if given ("@...": abstract, else a
 * path relative to our directory), sends @n records
 * of @lens (patterns @seed + i), the first with @pass_fd in flight (-1:
 * none), and closes. */
static void closed_client(int type, const char *path, const char *name, int n,
			  const size_t *lens, uint64_t seed, int pass_fd)
{
	struct name to = path_name(path);
	int sk = socket(AF_UNIX, type, 0);

	if (sk < 0)
		fail("a closed client of %s: socket: %m", path);
	if (name && name[0] == '@') {
		struct sockaddr_un un = { .sun_family = AF_UNIX };
		socklen_t len = offsetof(struct sockaddr_un, sun_path) + 1 +
				snprintf(un.sun_path + 1, sizeof(un.sun_path) - 1, "%s", name + 1);

		if (bind(sk, (struct sockaddr *)&un, len))
			fail("a closed client of %s: bind %s: %m", path, name);
	} else if (name) {
		struct name own = path_name(name);

		unlink(name);
		if (bind(sk, (struct sockaddr *)&own.sun, own.len))
			fail("a closed client of %s: bind %s: %m", path, name);
	}
	if (connect(sk, (struct sockaddr *)&to.sun, to.len))
		fail("a closed client of %s: connect: %m", path);
	for (int i = 0; i < n && !empty; i++)
		put(sk, lens[i], seed + i, i ? -1 : pass_fd);
	close(sk);
}

#define PASSES_FDS 200

/* A client of "unix_backlog.passes" sends two messages of one byte, each
 * with PASSES_FDS copies of fd 27 in flight, and closes. */
static void passing_client(void)
{
	struct name to = path_name("unix_backlog.passes");
	char cbuf[CMSG_SPACE(PASSES_FDS * sizeof(int))] = { 0 };
	struct iovec iov = { "p", 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *ch = (struct cmsghdr *)cbuf;
	int sk = socket(AF_UNIX, SOCK_STREAM, 0);

	ch->cmsg_level = SOL_SOCKET;
	ch->cmsg_type = SCM_RIGHTS;
	ch->cmsg_len = CMSG_LEN(PASSES_FDS * sizeof(int));
	for (int i = 0; i < PASSES_FDS; i++)
		memcpy(CMSG_DATA(ch) + i * sizeof(int), &(int){ 27 }, sizeof(int));
	if (sk < 0 || connect(sk, (struct sockaddr *)&to.sun, to.len))
		fail("a passing client: socket/connect: %m");
	for (int i = 0; i < 2; i++)
		if (sendmsg(sk, &mh, MSG_DONTWAIT) != 1)
			fail("a passing client: sendmsg of %d files: %m", PASSES_FDS);
	close(sk);
}

/* Each of the passing clients' connections: two messages of a byte and
 * PASSES_FDS files, each the pipe of fd 27 (same inode), then the end of
 * the stream. */
static void check_passes(void)
{
	char cbuf[CMSG_SPACE(PASSES_FDS * sizeof(int))];
	struct stat want, got;
	int acc = -1;

	if (fstat(27, &want))
		fail("fstat fd 27: %m");
	for (long m = 0; m < passes * 2; m++) {
		long i = m / 2;
		struct iovec iov = { buf, 2 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf) };
		int n = 0;
		struct cmsghdr *ch;

		if (m % 2 == 0)
			acc = accept4(50, NULL, NULL, SOCK_CLOEXEC);
		if (acc < 0)
			fail("passing connection %ld: nothing to accept on fd 50 (%m)", i + 1);
		if (recvmsg(acc, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) != 1 || buf[0] != 'p' ||
		    (mh.msg_flags & MSG_CTRUNC))
			fail("passing connection %ld: not its one byte with its files (%m)", i + 1);
		for (ch = CMSG_FIRSTHDR(&mh); ch; ch = CMSG_NXTHDR(&mh, ch)) {
			int fd;

			for (size_t k = 0; k < (ch->cmsg_len - CMSG_LEN(0)) / sizeof(int); k++, n++) {
				memcpy(&fd, CMSG_DATA(ch) + k * sizeof(int), sizeof(int));
				if (fstat(fd, &got) || got.st_ino != want.st_ino ||
				    got.st_dev != want.st_dev)
					fail("passing connection %ld: file %d is not fd 27's pipe (%m)",
					     i + 1, n);
				close(fd);
			}
		}
		if (n != PASSES_FDS)
			fail("passing connection %ld: %d files in flight, expected %d", i + 1, n,
			     PASSES_FDS);
		if (m % 2 == 0)
			continue;
		expect_eof(acc, "a passing connection");
		close(acc);
	}
	if (accept(50, NULL, NULL) >= 0 || errno != EAGAIN)
		fail("fd 50: one more connection waits (%m)");
}

static char closed_name[64], closed_at[66];

#define GONE_PATH "unix_backlog.gone"	/* the second closed client's name */

static int take(int l, const char *what)
{
	int acc = accept4(l, NULL, NULL, SOCK_CLOEXEC);

	if (acc < 0)
		fail("%s: nothing to accept on fd %d (%m)", what, l);
	return acc;
}

static void check_stream(void)
{
	int acc, passed = -1;

	acc = take(20, "connection 1 (fd 21)");
	if (!empty)
		get(acc, 3000, 0x21, 1, NULL, "fd 21's connection");
	expect_empty(acc, "fd 21's connection");
	same_connection(acc, 21, 0, "connection 1 (fd 21)");
	close(acc);

	acc = take(20, "connection 2 (fd 22)");
	expect_empty(acc, "fd 22's connection");
	same_connection(acc, 22, 0, "connection 2 (fd 22)");
	close(acc);

	if (closed) {
		struct sockaddr_un un;
		socklen_t len = sizeof(un);

		acc = take(20, "connection of the closed client @unix_backlog.closed");
		if (getpeername(acc, (struct sockaddr *)&un, &len) ||
		    len != offsetof(struct sockaddr_un, sun_path) + 1 + strlen(closed_name) ||
		    un.sun_path[0] || memcmp(un.sun_path + 1, closed_name, strlen(closed_name)))
			fail("the closed client's connection: its peer is not @%s (%m)",
			     closed_name);
		if (!empty) {
			int passed = -1;

			get(acc, 1500, 0x25, 1, &passed, "the closed client's connection");
			if (passed < 0 || write(27, "clos", 4) != 4 || read(passed, buf, 8) != 4 ||
			    memcmp(buf, "clos", 4))
				fail("the pipe passed by the closed client is not the one of fd 27 (%m)");
			close(passed);
		}
		expect_eof(acc, "the closed client's connection");
		close(acc);
	}

	acc = take(20, "connection 3 (fd 23)");
	if (!empty) {
		get(acc, sizeof(buf), 0x23, 1, NULL, "fd 23's connection");
		expect_eof(acc, "fd 23's connection (shut down)");
	} else {
		expect_empty(acc, "fd 23's connection");
	}
	same_connection(acc, 23, !empty, "connection 3 (fd 23)");
	close(acc);

	acc = take(20, "connection 4 (fd 24)");
	if (!empty) {
		get(acc, 5, 0x24, 1, &passed, "fd 24's connection");
		if (passed < 0)
			fail("fd 24's connection: the file in flight is missing");
		if (pass_epoll && epoll_wait(passed, &(struct epoll_event){ 0 }, 1, 0) != 0)
			fail("fd 24's connection: the epoll fd passed does not work (%m)");
		if (!pass_epoll && (write(27, "pipe", 4) != 4 || read(passed, buf, 8) != 4 ||
				    memcmp(buf, "pipe", 4)))
			fail("the pipe passed by fd 24 is not the one of fd 27 (%m)");
		close(passed);
	}
	expect_empty(acc, "fd 24's connection");
	same_connection(acc, 24, 0, "connection 4 (fd 24)");
	close(acc);

	if (closed) {
		struct sockaddr_un un;
		socklen_t len = sizeof(un);

		acc = take(20, "connection of the closed client " GONE_PATH);
		if (getpeername(acc, (struct sockaddr *)&un, &len) ||
		    len != offsetof(struct sockaddr_un, sun_path) + sizeof(GONE_PATH) ||
		    strcmp(un.sun_path, GONE_PATH))
			fail("the second closed client's connection: its peer is not %s (%m)",
			     GONE_PATH);
		expect_eof(acc, "the closed client " GONE_PATH "'s connection");
		close(acc);
	}

	if (accept(20, NULL, NULL) >= 0 || errno != EAGAIN)
		fail("fd 20: one more connection waits (%m)");
}

static void check_seqpacket(void)
{
	int acc;

	if (closed) {
		acc = take(30, "seqpacket connection of the closed client");
		if (!empty) {
			get(acc, 7, 0x330, 0, NULL, "the closed client's record 1");
			get(acc, 0, 0x331, 0, NULL, "the closed client's record 2 (empty)");
		}
		expect_eof(acc, "the closed seqpacket client's connection");
		close(acc);
	}

	acc = take(30, "seqpacket connection 1 (fd 31)");
	if (!empty) {
		get(acc, 10, 0x310, 0, NULL, "fd 31's record 1");
		get(acc, 0, 0, 0, NULL, "fd 31's record 2 (empty)");
		get(acc, 3000, 0x312, 0, NULL, "fd 31's record 3");
	}
	expect_empty(acc, "fd 31's connection");
	same_connection(acc, 31, 0, "seqpacket connection 1 (fd 31)");
	close(acc);

	acc = take(30, "seqpacket connection 2 (fd 32)");
	expect_empty(acc, "fd 32's connection");
	same_connection(acc, 32, 0, "seqpacket connection 2 (fd 32)");
	close(acc);

	if (accept(30, NULL, NULL) >= 0 || errno != EAGAIN)
		fail("fd 30: one more connection waits (%m)");
}

int main(int argc, char **argv)
{
	const struct test_opt opts[] = {
		{ "empty", TEST_OPT_FLAG, &empty, 0, "no client sends anything" },
		{ "tree", TEST_OPT_FLAG, &tree, 0, "a child holds the clients" },
		{ "closed", TEST_OPT_FLAG, &closed, 0, "clients closed before the accept too" },
		{ "pass-epoll", TEST_OPT_FLAG, &pass_epoll, 0, "24 passes an epoll fd, not the pipe" },
		{ "passes", TEST_OPT_INT, &passes, 0,
		  "clients on fd 50 passing fd 27 200 times each" },
		{ "ext-peer", TEST_OPT_STR, &ext_peer, 0,
		  "fd 40 of the clients' holder connected to this abstract name" },
		{ NULL, 0, NULL, 0, NULL },
	};
	static const size_t lens_a[] = { 1500 }, lens_none[] = { 0 }, lens_seq[] = { 7, 0 };
	int p[2];

	test_init(argc, argv, opts);
	snprintf(closed_name, sizeof(closed_name), "unix_backlog.closed.%d", getpid());
	snprintf(closed_at, sizeof(closed_at), "@%s", closed_name);

	if (pipe(p))
		fail("pipe: %m");
	fd_place(p[0], 26, 0);
	fd_place(p[1], 27, 0);
	listener(SOCK_STREAM, "unix_backlog.stream", 8, 20);
	client(SOCK_STREAM, "unix_backlog.stream", 21);
	client(SOCK_STREAM, "unix_backlog.stream", 22);
	if (closed)
		closed_client(SOCK_STREAM, "unix_backlog.stream", closed_at, 1, lens_a, 0x25, 26);
	client(SOCK_STREAM, "unix_backlog.stream", 23);
	client(SOCK_STREAM, "unix_backlog.stream", 24);
	if (closed)
		closed_client(SOCK_STREAM, "unix_backlog.stream", GONE_PATH, 0, lens_none, 0, -1);
	if (!empty) {
		put(21, 1000, 0x21, -1);
		/* the second part of the same pattern */
		pattern_fill(buf, 3000, 0x21);
		if (send(21, buf + 1000, 2000, MSG_DONTWAIT) != 2000)
			fail("send from fd 21: %m");
		put(23, sizeof(buf), 0x23, -1);
		if (shutdown(23, SHUT_WR))
			fail("shutdown fd 23: %m");
		if (pass_epoll) {
			int ep = epoll_create1(EPOLL_CLOEXEC);

			if (ep < 0)
				fail("epoll_create1: %m");
			put(24, 5, 0x24, ep);
			close(ep);
		} else {
			put(24, 5, 0x24, 26);
		}
	}
	close(26);
	if (passes) {
		listener(SOCK_STREAM, "unix_backlog.passes", passes, 50);
		for (long i = 0; i < passes; i++)
			passing_client();
	}

	listener(SOCK_SEQPACKET, "unix_backlog.seqpacket", 4, 30);
	if (closed)
		closed_client(SOCK_SEQPACKET, "unix_backlog.seqpacket", NULL, 2, lens_seq, 0x330, -1);
	client(SOCK_SEQPACKET, "unix_backlog.seqpacket", 31);
	client(SOCK_SEQPACKET, "unix_backlog.seqpacket", 32);
	if (!empty) {
		put(31, 10, 0x310, -1);
		put(31, 0, 0, -1);
		put(31, 3000, 0x312, -1);
	}

	if (tree) {
		static const int clients[] = { 21, 22, 23, 24, 31, 32 };
		pid_t kid;

		test_kill_tree_at_exit();
		kid = fork();
		if (kid < 0)
			fail("fork: %m");
		if (kid == 0) {
			close(20);
			close(27);
			close(30);
			if (ext_peer)
				ext_socket(ext_peer);
			test_waitsig();
			_exit(0);
		}
		for (size_t i = 0; i < sizeof(clients) / sizeof(clients[0]); i++)
			close(clients[i]);
	}

	if (ext_peer && !tree)
		ext_socket(ext_peer);
	test_daemon();
	test_waitsig();

	check_stream();
	check_seqpacket();
	if (passes)
		check_passes();
	pass();
}
