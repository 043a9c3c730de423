/*
 * MAP_SHARED mappings of /dev/zero: shared anonymous memory under another
 * name (each mmap of /dev/zero is a shmem object of its own):
 *   "a"  16 pages, pages 0-7 written, 8-15 never touched
 *   "b"  4 pages of a second mapping of the same open /dev/zero, all written
 *   the fd of /dev/zero is closed before the checkpoint
 *   --child: a child inherits both; after the restore it writes page 10 of
 *            "a" and checks what the parent wrote; the parent must see its
 *            write (still one object for the two processes)
 *   --sysv: also attach a SysV shared memory segment (the dump refuses it)
 *   --shmem-fd: also hold "b" open as fd 30, reopened through map_files
 *            (a file of the kernel's own: the dump refuses it)
 * After SIGTERM: contents, untouched pages zero, "a" and "b" still apart.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <unistd.h>

#include "lib/waiter.h"
#include "lib/zdtmtst.h"

#define A_PAGES		16
#define B_PAGES		4
#define SEED_A		0x646576ULL
#define SEED_B		0x7a65726fULL
#define SEED_CHILD	0x6368ULL

static int with_child, with_sysv, with_shmem_fd;

static void check_a(const uint8_t *a, const char *who)
{
	char what[64];

	for (int i = 0; i < 8; i++) {
		snprintf(what, sizeof(what), "%s: a page %d", who, i);
		pattern_expect(what, a + i * PAGE_SIZE, PAGE_SIZE, SEED_A + i);
	}
}

/* The child, after the restore: a as it was, then its word to page 10. */
static int child_check(void *arg)
{
	uint8_t *a = arg;

	for (int i = 0; i < 8; i++)
		if (pattern_find_bad(a + i * PAGE_SIZE, PAGE_SIZE, SEED_A + i) != PAGE_SIZE)
			return 3;	/* the parent says what */
	pattern_fill(a + 10 * PAGE_SIZE, PAGE_SIZE, SEED_CHILD);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct test_opt opts[] = {
		{ "child", TEST_OPT_FLAG, &with_child, 0, "a child shares the mappings" },
		{ "sysv", TEST_OPT_FLAG, &with_sysv, 0, "attach a SysV segment too" },
		{ "shmem-fd", TEST_OPT_FLAG, &with_shmem_fd, 0, "hold b as fd 30" },
		{ NULL },
	};
	uint8_t *a, *b;
	struct waiter child;
	int fd;

	test_init(argc, argv, opts);
	fd = open("/dev/zero", O_RDWR);
	if (fd < 0)
		fail("open /dev/zero: %m");
	a = mmap(NULL, A_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	b = mmap(NULL, B_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (a == MAP_FAILED || b == MAP_FAILED)
		fail("mmap /dev/zero shared: %m");
	close(fd);
	for (int i = 0; i < 8; i++)
		pattern_fill(a + i * PAGE_SIZE, PAGE_SIZE, SEED_A + i);
	pattern_fill(b, B_PAGES * PAGE_SIZE, SEED_B);
	if (with_sysv) {
		int id = shmget(IPC_PRIVATE, PAGE_SIZE, IPC_CREAT | 0600);
		void *s = id < 0 ? (void *)-1 : shmat(id, NULL, 0);

		if (s == (void *)-1)
			fail("SysV segment: %m");
		shmctl(id, IPC_RMID, NULL);	/* gone once we detach or die */
	}

	if (with_shmem_fd) {
		char path[96];

		snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)b,
			 (unsigned long)b + B_PAGES * PAGE_SIZE);
		fd = open(path, O_RDWR);
		if (fd < 0 || dup2(fd, 30) != 30)
			fail("holding b as fd 30: %m");
		close(fd);
	}
	if (with_child)
		waiter_fork(&child, child_check, a);

	test_daemon();
	test_waitsig();

	check_a(a, "parent");
	zero_expect("a pages 8-15", a + 8 * PAGE_SIZE, 8 * PAGE_SIZE);
	pattern_expect("b", b, B_PAGES * PAGE_SIZE, SEED_B);
	if (with_child) {
		waiter_wake(&child, "3: it saw other data in a");
		pattern_expect("the child's write to a page 10: not shared with it",
			       a + 10 * PAGE_SIZE, PAGE_SIZE, SEED_CHILD);
	}
	pass();
}
