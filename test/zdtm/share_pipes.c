/*
 * Pipes and FIFOs between processes: each end held by another process,
 * with data queued, and a pipe both processes hold both ends of.
 *
 * Before the dump (the root builds all, then forks):
 *   pipe A  fd 30 read end (the child's only), fd 31 write end (the
 *           root's only), 3000 bytes queued, O_NONBLOCK on the read end;
 *   pipe B  fds 32/33, both ends held by both processes, 100 bytes queued;
 *   FIFO    share.fifo: fd 34 read end (the child's), fd 35 write end (the
 *           root's), fd 36 a write end the child opened on its own; 2000
 *           bytes from the root, 500 from the child.
 * After the restore: the root's fds 32/33 are the child's (kcmp); the root
 * writes 1000 more bytes into pipe A and 500 into the FIFO; the child reads
 * exactly 4000 bytes from A, 100 from B, 3000 from the FIFO, each in
 * pattern order, and writes "bye" into B; the root reads that "bye" back
 * from B, and its write into A fails with EPIPE: the child, gone, was the
 * only reader.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/twoproc.h"
#include "lib/zdtmtst.h"

#define SEED_A 0x70697065ULL
#define SEED_B (SEED_A ^ 0xb)
#define SEED_F (SEED_A ^ 0xf)
#define FIFO_NAME "share.fifo"

static uint8_t buf[8192], got[8192];

/* Bytes [from, from + len) of @seed's pattern into fd. */
static void write_part(int fd, uint64_t seed, size_t from, size_t len, const char *what)
{
	pattern_fill(buf, from + len, seed);
	twoproc_write(fd, buf + from, len, what);
}

/* Exactly @len bytes of @seed's pattern in fd, nothing more. */
static void read_all(int fd, uint64_t seed, size_t len, const char *what)
{
	int more = 0;

	twoproc_read(fd, got, len, what);
	pattern_fill(buf, len, seed);
	for (size_t i = 0; i < len; i++)
		if (got[i] != buf[i])
			twoproc_fail("%s: fd %d: byte %zu is %#x, expected %#x", what, fd, i, got[i],
				     buf[i]);
	if (ioctl(fd, FIONREAD, &more) || more)
		twoproc_fail("%s: fd %d: %d byte(s) more than the %zu expected", what, fd, more, len);
}

static void child_setup(void)
{
	close(31);
	close(35);
	twoproc_open_at(FIFO_NAME, O_WRONLY | O_NONBLOCK, 36);
	write_part(36, SEED_F, 2000, 500, "the child's FIFO end");
}

static void root_setup(void)
{
	close(30);
	close(34);
}

static void root_check(pid_t child)
{
	twoproc_expect_shared(child, 32, 32, "pipe B, read end");
	twoproc_expect_shared(child, 33, 33, "pipe B, write end");
	write_part(31, SEED_A, 3000, 1000, "pipe A after the restore");
	write_part(35, SEED_F, 2500, 500, "the FIFO after the restore");
}

static void child_check(void)
{
	read_all(30, SEED_A, 4000, "pipe A");
	read_all(32, SEED_B, 100, "pipe B");
	read_all(34, SEED_F, 3000, "the FIFO");
	twoproc_write(33, "bye", 3, "pipe B back to the root");
}

static void root_after(pid_t child)
{
	char bye[4] = "";

	(void)child;
	twoproc_read(32, bye, 3, "pipe B from the child");
	if (memcmp(bye, "bye", 3))
		fail("pipe B: read '%.3s' from the child, expected 'bye'", bye);
	signal(SIGPIPE, SIG_IGN);
	if (write(31, "x", 1) != -1 || errno != EPIPE)
		fail("pipe A: the root's write end still has a reader after the child's exit (%m)");
}

int main(int argc, char **argv)
{
	static const struct twoproc tp = {
		.root_setup = root_setup, .child_setup = child_setup, .root_check = root_check,
		.child_check = child_check, .root_after = root_after,
	};
	int p[2], keeper;

	test_init(argc, argv, NULL);
	if (pipe(p) || dup2(p[0], 30) != 30 || dup2(p[1], 31) != 31)
		fail("pipe A: %m");
	close(p[0]);
	close(p[1]);
	if (fcntl(30, F_SETFL, O_NONBLOCK))
		fail("pipe A: O_NONBLOCK: %m");
	write_part(31, SEED_A, 0, 3000, "pipe A before the dump");
	if (pipe(p) || dup2(p[0], 32) != 32 || dup2(p[1], 33) != 33)
		fail("pipe B: %m");
	close(p[0]);
	close(p[1]);
	if (fcntl(32, F_SETFL, O_NONBLOCK))
		fail("pipe B: O_NONBLOCK: %m");
	write_part(33, SEED_B, 0, 100, "pipe B before the dump");

	unlink(FIFO_NAME);
	if (mkfifo(FIFO_NAME, 0600))
		fail("mkfifo %s: %m", FIFO_NAME);
	keeper = open(FIFO_NAME, O_RDWR | O_NONBLOCK);
	if (keeper < 0)
		fail("%s: %m", FIFO_NAME);
	twoproc_open_at(FIFO_NAME, O_RDONLY | O_NONBLOCK, 34);
	twoproc_open_at(FIFO_NAME, O_WRONLY | O_NONBLOCK, 35);
	write_part(35, SEED_F, 0, 2000, "the FIFO before the dump");
	close(keeper);
	twoproc_run(&tp);
}
