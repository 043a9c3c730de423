/*
 * Regular files shared between processes: one open file description held
 * by the root and its child (inherited across fork), so one offset and one
 * set of status flags for both.
 *
 * Before the dump: the root opens share.data (fd 30) and writes 4096 bytes,
 * forks; the child dups fd 30 to fd 31, writes 1024 more through fd 31,
 * and opens the file again on its own (fd 32, offset 100: not shared).
 * After the restore: the root's fd 30 and the child's fds 30 and 31 must be
 * one open file (kcmp) at offset 5120; the child writes 512 bytes and sets
 * O_APPEND through fd 31; then the root must see offset 5632 and O_APPEND
 * on its fd 30, writes its last 512 bytes, and the file must hold the
 * pattern from end to end.  The child's own fd 32 must still be at 100.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lib/twoproc.h"
#include "lib/zdtmtst.h"

#define SEED 0x73686172ULL
#define FILE_NAME "share.data"
#define FD_SHARED 30
#define FD_DUP 31
#define FD_OWN 32
#define OWN_POS 100

static uint8_t buf[8192];

static void expect_pos(int fd, off_t want, const char *who)
{
	off_t pos = lseek(fd, 0, SEEK_CUR);

	if (pos != want)
		twoproc_fail("%s: fd %d: offset %lld, expected %lld", who, fd, (long long)pos,
			     (long long)want);
}

/* Bytes [from, from + len) of the pattern through fd. */
static void write_part(int fd, size_t from, size_t len, const char *who)
{
	pattern_fill(buf, from + len, SEED);
	twoproc_write(fd, buf + from, len, who);
}

static void child_setup(void)
{
	if (dup2(FD_SHARED, FD_DUP) != FD_DUP)
		twoproc_child_fail("dup2: %m");
	write_part(FD_DUP, 4096, 1024, "child before the dump");
	twoproc_open_at(FILE_NAME, O_RDONLY, FD_OWN);
	if (lseek(FD_OWN, OWN_POS, SEEK_SET) != OWN_POS)
		twoproc_child_fail("its own open of %s: %m", FILE_NAME);
}

static void root_check(pid_t child)
{
	expect_pos(FD_SHARED, 5120, "root after the restore");
	twoproc_expect_shared(child, FD_SHARED, FD_SHARED, FILE_NAME);
	twoproc_expect_shared(child, FD_SHARED, FD_DUP, FILE_NAME " (the child's dup)");
	if (twoproc_same_file(getpid(), FD_SHARED, child, FD_OWN))
		fail("the child's own open of %s became the shared one", FILE_NAME);
}

static void child_check(void)
{
	expect_pos(FD_SHARED, 5120, "child after the restore");
	expect_pos(FD_OWN, OWN_POS, "child's own open");
	write_part(FD_DUP, 5120, 512, "child after the restore");
	if (fcntl(FD_DUP, F_SETFL, O_APPEND))
		twoproc_child_fail("F_SETFL O_APPEND: %m");
}

static void root_after(pid_t child)
{
	(void)child;
	expect_pos(FD_SHARED, 5632, "root after the child's write");
	if (!(fcntl(FD_SHARED, F_GETFL) & O_APPEND))
		fail("fd %d: the child's O_APPEND does not show in the root", FD_SHARED);
	write_part(FD_SHARED, 5632, 512, "root at the end");
	if (pread(FD_SHARED, buf, 6144, 0) != 6144)
		fail("reading %s back: %m", FILE_NAME);
	pattern_expect(FILE_NAME, buf, 6144, SEED);
}

int main(int argc, char **argv)
{
	static const struct twoproc tp = {
		.child_setup = child_setup, .root_check = root_check,
		.child_check = child_check, .root_after = root_after,
	};
	int fd;

	test_init(argc, argv, NULL);
	unlink(FILE_NAME);
	fd = open(FILE_NAME, O_RDWR | O_CREAT | O_EXCL, 0644);
	if (fd < 0 || dup2(fd, FD_SHARED) != FD_SHARED)
		fail("%s: %m", FILE_NAME);
	close(fd);
	write_part(FD_SHARED, 0, 4096, "root before the dump");
	twoproc_run(&tp);
}
