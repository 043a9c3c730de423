/*
 * Pipes in every state a task can leave them:
 *
 *   A  fds 20 (read) / 21 (write), sized 1 MiB with F_SETPIPE_SZ and
 *      nearly full; 22 is a dup of 21 (one open file description), 23 a
 *      dup of 20 with FD_CLOEXEC; the read end is O_NONBLOCK
 *   B  fds 30 / 31, default size, 5000 bytes, the write end O_NONBLOCK
 *   C  fd 40: a read end whose writer is closed, 300 bytes, then EOF
 *   D  fd 41: a write end whose reader is closed, 10 bytes still in it
 *   E  fds 50 / 51 empty, and 52 a second open file description of the
 *      read end (reopened through /proc/self/fd/50), O_NONBLOCK on 52 only
 *
 * After SIGTERM: which fds share a pipe (inodes), sizes, status and fd
 * flags, which fds share an open file description, the buffered bytes
 * byte for byte (FIONREAD, then read), EOF and EPIPE where the other end
 * is gone, and that every pipe still carries new data.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define SIZE_A (1 << 20)
#define DATA_A (SIZE_A - 100)
#define DATA_B 5000
#define DATA_C 300
#define DATA_D 10

static const int all_fds[] = { 20, 21, 22, 23, 30, 31, 40, 41, 50, 51, 52 };
#define NR_FDS (sizeof(all_fds) / sizeof(all_fds[0]))

static struct pipe_end before[NR_FDS];
static uint8_t buf[SIZE_A];

static void make_pipe(int r, int w)
{
	int p[2];

	if (pipe(p))
		fail("pipe: %m");
	/* pipe() may hand out the other's target number: move both high first */
	fd_place(p[0], 900, 0);
	fd_place(p[1], 901, 0);
	fd_place(900, r, 0);
	fd_place(901, w, 0);
}

static void put(int fd, size_t len, uint64_t seed)
{
	pattern_fill(buf, len, seed);
	for (size_t done = 0; done < len;) {
		ssize_t n = write(fd, buf + done, len - done);

		if (n <= 0)
			fail("write %zu bytes into fd %d: %m", len, fd);
		done += n;
	}
}

static void same_pipe(const struct pipe_end *s, int a, int b, int want)
{
	size_t i, j;

	for (i = 0; all_fds[i] != a; i++)
		;
	for (j = 0; all_fds[j] != b; j++)
		;
	if ((s[i].ino == s[j].ino) != want)
		fail("fds %d and %d are %s pipe, expected %s", a, b,
		     s[i].ino == s[j].ino ? "one" : "not one", want ? "one" : "two");
}

static void get(int fd, size_t len, uint64_t seed, const char *what)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, buf + done, len - done);

		if (n <= 0)
			fail("%s: read %zu of %zu bytes: %m", what, done, len);
		done += n;
	}
	pattern_expect(what, buf, len, seed);
}

static void expect_size(int fd, int want)
{
	int got = fcntl(fd, F_GETPIPE_SZ);

	if (got != want)
		fail("fd %d: pipe size %d, expected %d", fd, got, want);
}

int main(int argc, char **argv)
{
	struct pipe_end after[NR_FDS];
	char path[64];
	int fd;

	test_init(argc, argv, NULL);
	signal(SIGPIPE, SIG_IGN);

	make_pipe(20, 21);
	if (fcntl(21, F_SETPIPE_SZ, SIZE_A) != SIZE_A)
		fail("F_SETPIPE_SZ %d: %m", SIZE_A);
	put(21, DATA_A, 0xa);
	fd_place(dup(21), 22, 0);
	fd_place(dup(20), 23, 1);
	fcntl(20, F_SETFL, O_NONBLOCK);

	make_pipe(30, 31);
	put(31, DATA_B, 0xb);
	fcntl(31, F_SETFL, O_NONBLOCK);

	make_pipe(40, 900);
	put(900, DATA_C, 0xc);
	close(900);

	make_pipe(902, 41);
	put(41, DATA_D, 0xd);
	close(902);

	make_pipe(50, 51);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", 50);
	fd = open(path, O_RDONLY | O_NONBLOCK);
	if (fd < 0)
		fail("reopen %s: %m", path);
	fd_place(fd, 52, 0);

	pipe_ends_record(all_fds, NR_FDS, before);
	test_daemon();
	test_waitsig();
	pipe_ends_record(all_fds, NR_FDS, after);

	pipe_ends_expect(all_fds, NR_FDS, before, after, "pipe");
	same_pipe(after, 20, 21, 1);
	same_pipe(after, 20, 22, 1);
	same_pipe(after, 20, 23, 1);
	same_pipe(after, 30, 31, 1);
	same_pipe(after, 50, 51, 1);
	same_pipe(after, 50, 52, 1);
	same_pipe(after, 20, 30, 0);
	same_pipe(after, 40, 41, 0);
	same_pipe(after, 30, 50, 0);
	expect_size(20, SIZE_A);
	expect_size(30, 65536);

	/* 21 and 22 share one open file description, 50 and 52 do not */
	fcntl(22, F_SETFL, O_NONBLOCK);
	if (!(fcntl(21, F_GETFL) & O_NONBLOCK))
		fail("fds 21 and 22 no longer share their open file description");
	if (fcntl(50, F_GETFL) & O_NONBLOCK)
		fail("fds 50 and 52 share an open file description");

	get(23, DATA_A, 0xa, "pipe A");
	if (read(20, buf, 1) != -1 || errno != EAGAIN)
		fail("pipe A: not empty, or its read end blocks");
	get(30, DATA_B, 0xb, "pipe B");
	get(40, DATA_C, 0xc, "pipe C");
	if (read(40, buf, 1) != 0)
		fail("pipe C: no EOF after its data (%m)");
	if (write(41, "x", 1) != -1 || errno != EPIPE)
		fail("pipe D: writing without a reader did not fail with EPIPE (%m)");

	put(22, 4096, 0x1a);
	get(20, 4096, 0x1a, "pipe A after the restore");
	put(31, 100, 0x1b);
	get(30, 100, 0x1b, "pipe B after the restore");
	put(51, 100, 0x1e);
	get(52, 100, 0x1e, "pipe E after the restore");
	pass();
}
