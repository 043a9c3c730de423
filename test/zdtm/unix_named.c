/*
 * Unix sockets with names, listeners and their connections:
 *
 *   A  20: a datagram socket bound to the relative path "unix_named.dgram",
 *      three datagrams queued; 21 an unnamed datagram socket connected to
 *      it (one way)
 *   B  22: a datagram socket bound to an abstract name, two datagrams
 *      queued (sent to it by 21 with sendto)
 *   C  30: a stream listener bound to an absolute path (mode 0640),
 *      backlog 7; 31 a client it accepted as 32, data queued both ways;
 *      33 a client it has not accepted yet
 *   D  40: a seqpacket listener with an abstract name; 41 a client it
 *      accepted as 42, records queued both ways
 *   E  50: a datagram socket bound to "unix_named.gone", which was
 *      unlinked since
 *
 * After SIGTERM: every name (getsockname, getpeername), the queued
 * messages with their boundaries, the file mode of the listener's path,
 * the deleted name still the socket's and gone from the directory, the
 * connection not yet accepted accepted now and working, and that each
 * connection still carries data.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

static uint8_t buf[70000];

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

static struct name abstract_name(const char *what)
{
	struct name n = { .sun = { .sun_family = AF_UNIX } };
	int len = snprintf(n.sun.sun_path + 1, sizeof(n.sun.sun_path) - 1, "zdtm-%s-%d", what,
			   getpid());

	n.len = offsetof(struct sockaddr_un, sun_path) + 1 + len;
	return n;
}

static int sock_at(int type, int at)
{
	fd_place(socket(AF_UNIX, type, 0), at, 0);
	return at;
}

static void do_bind(int fd, const struct name *n)
{
	if (bind(fd, (const struct sockaddr *)&n->sun, n->len))
		fail("bind fd %d: %m", fd);
}

static void do_connect(int fd, const struct name *n)
{
	if (connect(fd, (const struct sockaddr *)&n->sun, n->len))
		fail("connect fd %d: %m", fd);
}

static void put(int fd, size_t len, uint64_t seed, const struct name *to)
{
	pattern_fill(buf, len, seed);
	if (sendto(fd, buf, len, MSG_DONTWAIT, to ? (const struct sockaddr *)&to->sun : NULL,
		   to ? to->len : 0) != (ssize_t)len)
		fail("send %zu bytes from fd %d: %m", len, fd);
}

static void get_one(int fd, size_t len, uint64_t seed, const char *what)
{
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);

	if (n != (ssize_t)len)
		fail("%s: a message of %zd bytes, expected %zu (%m)", what, n, len);
	pattern_expect(what, buf, len, seed);
}

static void get_stream(int fd, size_t len, uint64_t seed, const char *what)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = recv(fd, buf + done, len - done, MSG_DONTWAIT);

		if (n <= 0)
			fail("%s: read %zu of %zu bytes: %m", what, done, len);
		done += n;
	}
	pattern_expect(what, buf, len, seed);
}

static void expect_empty(int fd, const char *what)
{
	if (recv(fd, buf, 1, MSG_DONTWAIT) != -1 || errno != EAGAIN)
		fail("%s: expected an empty queue (%m)", what);
}

static void expect_name(int fd, bool peer, const struct name *want, const char *what)
{
	struct sockaddr_un got;
	socklen_t len = sizeof(got);

	memset(&got, 0, sizeof(got));
	if ((peer ? getpeername : getsockname)(fd, (struct sockaddr *)&got, &len))
		fail("%s: get%sname: %m", what, peer ? "peer" : "sock");
	if (!want) {
		if (len != offsetof(struct sockaddr_un, sun_path))
			fail("%s: has a name, expected none", what);
		return;
	}
	if (len != want->len ||
	    memcmp(got.sun_path, want->sun.sun_path, want->len - offsetof(struct sockaddr_un, sun_path)))
		fail("%s: name '%s%s' (%u bytes), expected '%s%s' (%u)", what,
		     got.sun_path[0] ? "" : "@", got.sun_path + !got.sun_path[0], len,
		     want->sun.sun_path[0] ? "" : "@", want->sun.sun_path + !want->sun.sun_path[0],
		     want->len);
}

static void ping(int a, int b, const char *what)
{
	char c = 'p';

	if (send(a, &c, 1, MSG_DONTWAIT) != 1 || recv(b, &c, 1, MSG_DONTWAIT) != 1 || c != 'p')
		fail("%s: %d -> %d no longer works: %m", what, a, b);
}

int main(int argc, char **argv)
{
	struct name a, b, c, d, e, rel_a;
	char cwd[PATH_MAX], path[PATH_MAX + 32];
	struct stat st;
	int acc;

	test_init(argc, argv, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (!getcwd(cwd, sizeof(cwd)))
		fail("getcwd: %m");

	/* A: relative name, so it is bound (and must be again) from the cwd */
	rel_a = path_name("unix_named.dgram");
	a = rel_a;
	unlink("unix_named.dgram");
	do_bind(sock_at(SOCK_DGRAM, 20), &a);
	do_connect(sock_at(SOCK_DGRAM, 21), &a);
	put(21, 10, 0xa0, NULL);
	put(21, 3000, 0xa1, NULL);
	put(21, 1, 0xa2, NULL);

	/* B */
	b = abstract_name("dgram");
	do_bind(sock_at(SOCK_DGRAM, 22), &b);
	put(21, 77, 0xb0, &b);
	put(21, 60000, 0xb1, &b);

	/* C */
	snprintf(path, sizeof(path), "%s/unix_named.listen", cwd);
	c = path_name(path);
	unlink(path);
	do_bind(sock_at(SOCK_STREAM, 30), &c);
	if (chmod(path, 0640))
		fail("chmod: %m");
	if (listen(30, 7))
		fail("listen: %m");
	do_connect(sock_at(SOCK_STREAM, 31), &c);
	fd_place(accept(30, NULL, NULL), 32, 0);
	put(31, 5000, 0xc0, NULL);
	put(32, 700, 0xc1, NULL);
	do_connect(sock_at(SOCK_STREAM, 33), &c);

	/* D */
	d = abstract_name("seqpacket");
	do_bind(sock_at(SOCK_SEQPACKET, 40), &d);
	if (listen(40, 3))
		fail("listen: %m");
	do_connect(sock_at(SOCK_SEQPACKET, 41), &d);
	fd_place(accept(40, NULL, NULL), 42, 0);
	put(41, 11, 0xd0, NULL);
	put(41, 22, 0xd1, NULL);
	put(42, 33, 0xd2, NULL);

	/* E */
	e = path_name("unix_named.gone");
	unlink("unix_named.gone");
	do_bind(sock_at(SOCK_DGRAM, 50), &e);
	if (unlink("unix_named.gone"))
		fail("unlink: %m");

	test_daemon();
	test_waitsig();

	/* A */
	expect_name(20, false, &rel_a, "fd 20");
	expect_name(21, true, &rel_a, "fd 21 (peer)");
	expect_name(21, false, NULL, "fd 21");
	get_one(20, 10, 0xa0, "fd 20 (datagram 1)");
	get_one(20, 3000, 0xa1, "fd 20 (datagram 2)");
	get_one(20, 1, 0xa2, "fd 20 (datagram 3)");
	expect_empty(20, "fd 20");
	ping(21, 20, "fd 21 -> fd 20");

	/* B */
	expect_name(22, false, &b, "fd 22");
	get_one(22, 77, 0xb0, "fd 22 (datagram 1)");
	get_one(22, 60000, 0xb1, "fd 22 (datagram 2)");
	expect_empty(22, "fd 22");

	/* C */
	if (stat(path, &st) || !S_ISSOCK(st.st_mode) || (st.st_mode & 07777) != 0640)
		fail("%s: mode %o, expected a socket of mode 0640 (%m)", path, st.st_mode);
	expect_name(30, false, &c, "fd 30");
	expect_name(32, false, &c, "fd 32 (accepted)");
	expect_name(31, true, &c, "fd 31 (peer)");
	expect_name(31, false, NULL, "fd 31");
	get_stream(32, 5000, 0xc0, "fd 32");
	get_stream(31, 700, 0xc1, "fd 31");
	expect_empty(31, "fd 31");
	expect_empty(32, "fd 32");
	ping(31, 32, "fd 31 -> 32");
	ping(32, 31, "fd 32 -> 31");
	acc = accept(30, NULL, NULL);
	if (acc < 0)
		fail("fd 30: the connection of fd 33 is not there to accept: %m");
	ping(33, acc, "fd 33 -> its accepted end");
	ping(acc, 33, "fd 33's accepted end -> 33");
	close(acc);

	/* D */
	expect_name(40, false, &d, "fd 40");
	expect_name(42, false, &d, "fd 42 (accepted)");
	expect_name(41, true, &d, "fd 41 (peer)");
	get_one(42, 11, 0xd0, "fd 42 (record 1)");
	get_one(42, 22, 0xd1, "fd 42 (record 2)");
	get_one(41, 33, 0xd2, "fd 41 (record)");
	ping(41, 42, "fd 41 -> 42");

	/* E */
	expect_name(50, false, &e, "fd 50");
	if (!lstat("unix_named.gone", &st))
		fail("unix_named.gone is back in the directory");
	pass();
}
