/*
 * memfds as mappings:
 *   "shared"   4 pages, fd 20 open, sealed against shrinking and growing,
 *              mapped MAP_SHARED read-write twice (the whole, and pages 2-3
 *              alone), written through the first mapping after mmap
 *   "nofd"     3 pages of which page 1 is a hole, mapped MAP_SHARED, no fd
 *   "private"  4 pages, fd 21 open (read-write, offset 123), mapped
 *              MAP_PRIVATE: page 0 written through the mapping (its own copy),
 *              page 2 written through the fd afterwards (seen in the mapping)
 *   "sealed"   2 pages, F_SEAL_WRITE | F_SEAL_SEAL, mapped MAP_SHARED
 *              read-only, no fd
 *   --child: a child inherits the "shared" mapping and writes page 3 of it
 *              after the restore; the parent must see that write
 * After SIGTERM: contents, that mappings, fds and the child share what
 * they shared (a write on one side shows on the other), that the private
 * copy stays private, names, seals, sizes.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/waiter.h"
#include "lib/zdtmtst.h"

#define SEED_SHARED	0x5348ULL
#define SEED_NOFD	0x4e4fULL
#define SEED_PRIV	0x5052ULL
#define SEED_SEALED	0x5345ULL
#define SEED_LATE	0x4c41ULL

static uint8_t want[4 * PAGE_SIZE], buf[4 * PAGE_SIZE];
static int with_child;

static int make_memfd(const char *name, unsigned int flags, size_t size, uint64_t seed)
{
	int fd = memfd_create(name, flags);

	if (fd < 0)
		fail("memfd_create %s: %m", name);
	pattern_fill(want, size, seed);
	if (ftruncate(fd, size) || pwrite(fd, want, size, 0) != (ssize_t)size)
		fail("filling memfd %s: %m", name);
	return fd;
}

static uint8_t *map(int fd, size_t len, int prot, int flags, off_t off, const char *what)
{
	uint8_t *p = mmap(NULL, len, prot, flags, fd, off);

	if (p == MAP_FAILED)
		fail("mmap %s: %m", what);
	return p;
}

/* The child, after the restore: its word to the shared mapping. */
static int child_write(void *shared)
{
	pattern_fill((uint8_t *)shared + 3 * PAGE_SIZE, PAGE_SIZE, SEED_LATE + 3);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct test_opt opts[] = {
		{ "child", TEST_OPT_FLAG, &with_child, 0, "a child shares the shared mapping" },
		{ NULL },
	};
	uint8_t *shared, *shared_hi, *nofd, *priv, *sealed;
	struct waiter child;
	char link[128];
	int fd;

	test_init(argc, argv, opts);

	fd = make_memfd("shared", MFD_ALLOW_SEALING, 4 * PAGE_SIZE, SEED_SHARED);
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW))
		fail("F_ADD_SEALS shared: %m");
	fd_place(fd, 20, 0);
	shared = map(20, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, 0, "shared");
	shared_hi = map(20, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, 2 * PAGE_SIZE,
			"shared, pages 2-3");
	pattern_fill(shared + PAGE_SIZE, PAGE_SIZE, SEED_LATE + 1);

	fd = make_memfd("nofd", 0, 3 * PAGE_SIZE, SEED_NOFD);
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, PAGE_SIZE, PAGE_SIZE))
		fail("punching a hole in nofd: %m");
	nofd = map(fd, 3 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, 0, "nofd");
	close(fd);

	fd = make_memfd("private", 0, 4 * PAGE_SIZE, SEED_PRIV);
	fd_place(fd, 21, 0);
	lseek(21, 123, SEEK_SET);
	priv = map(21, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, 0, "private");
	pattern_fill(priv, PAGE_SIZE, SEED_LATE + 10);
	pattern_fill(want, PAGE_SIZE, SEED_LATE + 12);
	if (pwrite(21, want, PAGE_SIZE, 2 * PAGE_SIZE) != PAGE_SIZE)
		fail("writing private page 2 through fd 21: %m");

	fd = make_memfd("sealed", MFD_ALLOW_SEALING, 2 * PAGE_SIZE, SEED_SEALED);
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SEAL))
		fail("F_ADD_SEALS sealed: %m");
	sealed = map(fd, 2 * PAGE_SIZE, PROT_READ, MAP_SHARED, 0, "sealed");
	close(fd);

	if (with_child) {
		waiter_fork(&child, child_write, shared);
		test_msg("child %d\n", child.pid);
	}

	test_daemon();
	test_waitsig();

	/* shared: pages 0, 2, 3 as made, page 1 written through the mapping */
	pattern_fill(want, 4 * PAGE_SIZE, SEED_SHARED);
	pattern_fill(want + PAGE_SIZE, PAGE_SIZE, SEED_LATE + 1);
	if (memcmp(shared, want, 4 * PAGE_SIZE))
		fail("shared: the mapping differs");
	if (pread(20, buf, 4 * PAGE_SIZE, 0) != 4 * PAGE_SIZE || memcmp(buf, want, 4 * PAGE_SIZE))
		fail("shared: fd 20 differs from the mapping");
	shared[5] ^= 0xff;
	if (pread(20, buf, 1, 5) != 1 || buf[0] != shared[5])
		fail("shared: fd 20 and the mapping are not one memfd any more");
	if (pwrite(20, "Q", 1, 2 * PAGE_SIZE + 9) != 1 || shared_hi[9] != 'Q' ||
	    shared[2 * PAGE_SIZE + 9] != 'Q')
		fail("shared: the two mappings and fd 20 are not one memfd any more");
	if (fcntl(20, F_GET_SEALS) != (F_SEAL_SHRINK | F_SEAL_GROW))
		fail("shared: seals %#x", fcntl(20, F_GET_SEALS));
	link_read("/proc/self/fd/20", link, sizeof(link));
	if (strcmp(link, "/memfd:shared (deleted)"))
		fail("fd 20 is %s", link);
	if (with_child) {
		waiter_wake(&child, NULL);
		pattern_fill(want, PAGE_SIZE, SEED_LATE + 3);
		if (memcmp(shared + 3 * PAGE_SIZE, want, PAGE_SIZE))
			fail("shared: the child's write to page 3 is not seen: not shared with it");
	}

	pattern_fill(want, 3 * PAGE_SIZE, SEED_NOFD);
	memset(want + PAGE_SIZE, 0, PAGE_SIZE);
	if (memcmp(nofd, want, 3 * PAGE_SIZE))
		fail("nofd: the mapping differs");

	pattern_fill(want, 4 * PAGE_SIZE, SEED_PRIV);
	pattern_fill(want, PAGE_SIZE, SEED_LATE + 10);
	pattern_fill(want + 2 * PAGE_SIZE, PAGE_SIZE, SEED_LATE + 12);
	if (memcmp(priv, want, 4 * PAGE_SIZE))
		fail("private: the mapping differs");
	if (pread(21, buf, PAGE_SIZE, 0) != PAGE_SIZE || !memcmp(buf, priv, PAGE_SIZE))
		fail("private: page 0 of the file has the mapping's private copy");
	if (pwrite(21, "Z", 1, 3 * PAGE_SIZE) != 1 || priv[3 * PAGE_SIZE] != 'Z')
		fail("private: a page not copied yet does not show the file");
	if (lseek(21, 0, SEEK_CUR) != 123)
		fail("private: fd 21 offset %lld", (long long)lseek(21, 0, SEEK_CUR));

	pattern_fill(want, 2 * PAGE_SIZE, SEED_SEALED);
	if (memcmp(sealed, want, 2 * PAGE_SIZE))
		fail("sealed: the mapping differs");
	{
		char path[96];

		snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx",
			 (unsigned long)sealed, (unsigned long)sealed + 2 * PAGE_SIZE);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			fail("sealed: reopening %s: %m", path);
		if (fcntl(fd, F_GET_SEALS) != (F_SEAL_WRITE | F_SEAL_SEAL))
			fail("sealed: seals %#x", fcntl(fd, F_GET_SEALS));
		close(fd);
	}
	pass();
}
