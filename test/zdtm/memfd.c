/*
 * memfds held as descriptors:
 *   fd 20  "zdtm-memfd", sealable: pages 0, 2 and 100 bytes of page 3
 *          written (page 1 a hole), offset 5000, sealed against shrinking
 *          and growing
 *   fd 21  a dup of 20 (one open file description)
 *   fd 22  the same memfd reopened read-only through /proc, offset 10,
 *          FD_CLOEXEC
 *   fd 23  "second", not sealable, "hello", O_APPEND
 * After SIGTERM: names, sizes, seals, contents byte for byte, offsets,
 * flags, which fds share the inode and which the open file description.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define SIZE (3 * PAGE_SIZE + 100)
#define SEED 0x3fd

static uint8_t want[SIZE], buf[SIZE + 16];
static struct fd_snapshot before[4];

static ino_t ino(int fd)
{
	struct stat st;

	if (fstat(fd, &st))
		fail("fstat %d: %m", fd);
	return st.st_ino;
}

int main(int argc, char **argv)
{
	test_init(argc, argv, NULL);
	fd_place(memfd_create("zdtm-memfd", MFD_ALLOW_SEALING), 20, 0);
	pattern_fill(want, SIZE, SEED);
	memset(want + PAGE_SIZE, 0, PAGE_SIZE);
	if (ftruncate(20, SIZE) || pwrite(20, want, PAGE_SIZE, 0) != PAGE_SIZE ||
	    pwrite(20, want + 2 * PAGE_SIZE, SIZE - 2 * PAGE_SIZE, 2 * PAGE_SIZE) !=
	    (ssize_t)(SIZE - 2 * PAGE_SIZE))
		fail("filling the memfd: %m");
	if (fcntl(20, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW))
		fail("F_ADD_SEALS: %m");
	lseek(20, 5000, SEEK_SET);
	fd_place(dup(20), 21, 0);
	fd_place(open("/proc/self/fd/20", O_RDONLY), 22, 1);
	lseek(22, 10, SEEK_SET);
	fd_place(memfd_create("second", 0), 23, 0);
	if (write(23, "hello", 5) != 5)
		fail("write: %m");
	fcntl(23, F_SETFL, O_APPEND);
	for (int i = 0; i < 4; i++)
		fd_snapshot_take(20 + i, &before[i]);

	test_daemon();
	test_waitsig();

	for (int i = 0; i < 4; i++)
		fd_snapshot_expect(20 + i, &before[i]);
	if (ino(20) != ino(21) || ino(20) != ino(22) || ino(20) == ino(23))
		fail("fds 20, 21, 22 are not one memfd, or 23 is that one too");
	if (fcntl(20, F_GET_SEALS) != (F_SEAL_SHRINK | F_SEAL_GROW))
		fail("fd 20: seals %#x, expected %#x", fcntl(20, F_GET_SEALS),
		     F_SEAL_SHRINK | F_SEAL_GROW);
	if (fcntl(23, F_GET_SEALS) != F_SEAL_SEAL)
		fail("fd 23: seals %#x, expected F_SEAL_SEAL only", fcntl(23, F_GET_SEALS));
	if (lseek(20, 0, SEEK_CUR) != 5000 || lseek(22, 0, SEEK_CUR) != 10)
		fail("offsets %lld and %lld, expected 5000 and 10",
		     (long long)lseek(20, 0, SEEK_CUR), (long long)lseek(22, 0, SEEK_CUR));
	lseek(21, 77, SEEK_SET);
	if (lseek(20, 0, SEEK_CUR) != 77)
		fail("fds 20 and 21 no longer share their offset");
	if (pread(22, buf, SIZE + 10, 0) != SIZE)
		fail("fd 22: size is not %lu bytes", (unsigned long)SIZE);
	pattern_expect("memfd", buf, PAGE_SIZE, SEED);
	zero_expect("memfd page 1", buf + PAGE_SIZE, PAGE_SIZE);
	if (memcmp(buf + 2 * PAGE_SIZE, want + 2 * PAGE_SIZE, SIZE - 2 * PAGE_SIZE))
		fail("memfd pages 2-3 differ");
	if (pread(23, buf, 16, 0) != 5 || memcmp(buf, "hello", 5))
		fail("fd 23: not \"hello\"");
	if (write(22, "x", 1) != -1)
		fail("fd 22 is writable");
	pass();
}
