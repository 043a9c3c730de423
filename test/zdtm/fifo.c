/*
 * FIFOs (named pipes) in the test's directory:
 *
 *   fifo.a  fd 20 O_RDWR, sized 128 KiB, 3000 bytes in it; fd 21 a reader
 *           (O_NONBLOCK), fd 22 a writer with FD_CLOEXEC
 *   fifo.b  fd 30 only, a writer whose reader is gone, 100 bytes in it
 *
 * After SIGTERM: the descriptors still name the FIFOs (same inode as the
 * path), status and fd flags, the size, the buffered bytes byte for byte,
 * and data still flows from fd 22 to fd 21.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define SIZE_A (128 << 10)
#define DATA_A 3000
#define DATA_B 100

static const int all_fds[] = { 20, 21, 22, 30 };
#define NR_FDS (sizeof(all_fds) / sizeof(all_fds[0]))

static struct pipe_end before[NR_FDS], after[NR_FDS];
static uint8_t buf[SIZE_A];

static void put(int fd, size_t len, uint64_t seed)
{
	pattern_fill(buf, len, seed);
	if (write(fd, buf, len) != (ssize_t)len)
		fail("write %zu bytes into fd %d: %m", len, fd);
}

static void get(int fd, size_t len, uint64_t seed, const char *what)
{
	if (read(fd, buf, len) != (ssize_t)len)
		fail("%s: read %zu bytes: %m", what, len);
	pattern_expect(what, buf, len, seed);
}

static ino_t path_ino(const char *path)
{
	struct stat st;

	if (stat(path, &st))
		fail("stat %s: %m", path);
	return st.st_ino;
}

int main(int argc, char **argv)
{
	test_init(argc, argv, NULL);
	signal(SIGPIPE, SIG_IGN);
	unlink("fifo.a");
	unlink("fifo.b");
	if (mkfifo("fifo.a", 0600) || mkfifo("fifo.b", 0600))
		fail("mkfifo: %m");

	fd_place(open("fifo.a", O_RDWR), 20, 0);
	if (fcntl(20, F_SETPIPE_SZ, SIZE_A) != SIZE_A)
		fail("F_SETPIPE_SZ: %m");
	fd_place(open("fifo.a", O_RDONLY | O_NONBLOCK), 21, 0);
	fd_place(open("fifo.a", O_WRONLY), 22, 1);
	put(22, DATA_A, 0xa);

	fd_place(open("fifo.b", O_RDONLY | O_NONBLOCK), 31, 0);
	fd_place(open("fifo.b", O_WRONLY), 30, 0);
	put(30, DATA_B, 0xb);
	close(31);

	pipe_ends_record(all_fds, NR_FDS, before);
	test_daemon();
	test_waitsig();
	pipe_ends_record(all_fds, NR_FDS, after);

	pipe_ends_expect(all_fds, NR_FDS, before, after, "FIFO");
	for (size_t i = 0; i < NR_FDS; i++) {
		if (after[i].ino != path_ino(i < 3 ? "fifo.a" : "fifo.b"))
			fail("fd %d is not the FIFO %s any more", all_fds[i],
			     i < 3 ? "fifo.a" : "fifo.b");
	}
	if (fcntl(20, F_GETPIPE_SZ) != SIZE_A)
		fail("fifo.a: size %d, expected %d", fcntl(20, F_GETPIPE_SZ), SIZE_A);
	get(21, DATA_A, 0xa, "fifo.a");
	put(22, 500, 0x1a);
	get(21, 500, 0x1a, "fifo.a after the restore");
	if (read(21, buf, 1) != -1 || errno != EAGAIN)
		fail("fifo.a: not empty after its data (%m)");
	unlink("fifo.a");
	unlink("fifo.b");
	pass();
}
