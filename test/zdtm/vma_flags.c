/*
 * One VMA state of madvise/mmap/mlock (issue 9, point 6), chosen by
 * --state, on 32 pages of memory filled with a pattern between two
 * read-only neighbours:
 *
 *   dontfork     MADV_DONTFORK     a child forked after the restore lacks it
 *   wipeonfork   MADV_WIPEONFORK   a child forked after the restore sees zeros
 *   dontdump     MADV_DONTDUMP
 *   hugepage     MADV_HUGEPAGE
 *   nohugepage   MADV_NOHUGEPAGE
 *   mergeable    MADV_MERGEABLE
 *   random       MADV_RANDOM
 *   sequential   MADV_SEQUENTIAL
 *   locked       MAP_LOCKED
 *   mlock        mlock() of pages 8-15 (the VMA splits in three)
 *   droppable    MAP_DROPPABLE
 *   guard        MADV_GUARD_INSTALL on pages 4-5 and 20: touching them
 *                still raises SIGSEGV, pagemap says guard (bit 58)
 *   shared-rw    a file opened O_RDWR mapped MAP_SHARED read-only:
 *                mprotect(PROT_WRITE) still works and writes reach the file
 *   mlock-onfault  mlock2(MLOCK_ONFAULT) of pages 8-15: the images cannot
 *                carry it, the dump refuses it (test_bad_input.py)
 *   prot-none    PROT_NONE memory with data (a lazily restored copy must be
 *                dumped again while the daemon still runs)
 *   advice-split four VMAs in a row, alike but for their advice: pages 0-7
 *                MADV_NOHUGEPAGE (a thread stack, MAP_STACK), 8-15 none,
 *                16-23 MADV_RANDOM, 24-31 MADV_NOHUGEPAGE and MADV_DONTDUMP;
 *                the restore maps them in place, each with its advice at
 *                once, and none may merge with its neighbour
 *
 * The maps lines and VmFlags of the region and its neighbours are recorded
 * before the checkpoint and must be the same after it (but for the flags
 * of the kernel's bookkeeping: sd, ac, um, uw, ui); the contents too.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define SEED 0x766d6166ULL
#define PAGES 32
#define PM_GUARD (1ULL << 58)

#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

static const char *state = "";
static uint8_t *region;
static char before[1 << 16], after[1 << 16];
static sigjmp_buf segv_jmp;

static int is(const char *s)
{
	return !strcmp(state, s);
}

static int is_guard_page(int i)
{
	return is("guard") && ((i >= 4 && i < 6) || i == 20);
}

/* maps line + VmFlags (bookkeeping flags left out) of each VMA near the region */
static void record(char *out, size_t size)
{
	smaps_vmas_record((unsigned long)region - PAGE_SIZE,
			  (unsigned long)region + (PAGES + 1) * PAGE_SIZE, out, size);
}

static void first_difference(void)
{
	const char *a = before, *b = after;

	while (*a || *b) {
		size_t na = strcspn(a, "\n"), nb = strcspn(b, "\n");

		if (na != nb || memcmp(a, b, na))
			fail("the region's VMAs changed: before '%.*s', after '%.*s'\nbefore:\n%safter:\n%s",
			     (int)na, a, (int)nb, b, before, after);
		a += na + (a[na] != '\0');
		b += nb + (b[nb] != '\0');
	}
}

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(segv_jmp, 1);
}

/* Does reading page i fault? */
static int faults(int i)
{
	struct sigaction sa = { .sa_handler = on_segv }, old;
	volatile uint8_t v;
	int hit = 0;

	sigaction(SIGSEGV, &sa, &old);
	if (sigsetjmp(segv_jmp, 1) == 0)
		v = region[i * PAGE_SIZE];
	else
		hit = 1;
	(void)v;
	sigaction(SIGSEGV, &old, NULL);
	return hit;
}

static void check_guards(void)
{
	uint64_t pm[PAGES];
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0 || pread(fd, pm, sizeof(pm), (uintptr_t)region / PAGE_SIZE * 8) != sizeof(pm))
		fail("read /proc/self/pagemap: %m");
	close(fd);
	for (int i = 0; i < PAGES; i++) {
		if (is_guard_page(i) != !!(pm[i] & PM_GUARD))
			fail("page %d: pagemap says %sa guard", i, pm[i] & PM_GUARD ? "" : "not ");
		if (is_guard_page(i) && !faults(i))
			fail("page %d: a guard page that can be read", i);
	}
}

static void check_contents(const char *when)
{
	for (int i = 0; i < PAGES; i++) {
		size_t bad;

		if (is_guard_page(i))
			continue;
		bad = pattern_find_bad(region + i * PAGE_SIZE, PAGE_SIZE, SEED + i);
		if (bad != PAGE_SIZE)
			fail("%s: page %d byte %zu is %#x, expected %#x", when, i, bad,
			     region[i * PAGE_SIZE + bad], pattern_byte(SEED + i, bad));
	}
}

/* What a child forked now finds at the region. */
static void check_fork(void)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		fail("fork: %m");
	if (pid == 0) {
		char maps[1 << 16], line[256];

		read_file("/proc/self/maps", maps, sizeof(maps));
		if (is("dontfork"))
			_exit(maps_line_at(maps, (unsigned long)region, line, sizeof(line)) == 0 ? 3 : 0);
		for (size_t i = 0; i < PAGES * PAGE_SIZE; i++)
			if (region[i])
				_exit(4);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid)
		fail("waitpid: %m");
	if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
		fail("a child forked after the restore has the MADV_DONTFORK region");
	if (WIFEXITED(status) && WEXITSTATUS(status) == 4)
		fail("a child forked after the restore sees data in the MADV_WIPEONFORK region");
	if (status)
		fail("the forked child ended with status %#x", status);
}

static void check_shared_rw(void)
{
	uint8_t b = 0, want = pattern_byte(SEED + 5, 7) ^ 0xff;
	int fd;

	if (mprotect(region, PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE))
		fail("mprotect(PROT_WRITE) of the shared file mapping: %m");
	region[5 * PAGE_SIZE + 7] ^= 0xff;
	if (msync(region, PAGES * PAGE_SIZE, MS_SYNC))
		fail("msync: %m");
	fd = open("vma_flags.data", O_RDONLY);
	if (fd < 0 || pread(fd, &b, 1, 5 * PAGE_SIZE + 7) != 1)
		fail("read vma_flags.data: %m");
	close(fd);
	if (b != want)
		fail("a write through the mapping did not reach the file");
	region[5 * PAGE_SIZE + 7] ^= 0xff;
}

static void map_region(void)
{
	size_t len = PAGES * PAGE_SIZE;
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, fd = -1;
	uint8_t *base, *p;

	base = mmap(NULL, len + 2 * PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		fail("mmap: %m");
	region = base + PAGE_SIZE;
	if (is("locked"))
		flags |= MAP_LOCKED;
	if (is("droppable"))
		flags = MAP_DROPPABLE | MAP_ANONYMOUS | MAP_FIXED;
	if (is("shared-rw")) {
		uint8_t page[PAGE_SIZE];

		fd = open("vma_flags.data", O_RDWR | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			fail("open vma_flags.data: %m");
		for (int i = 0; i < PAGES; i++) {
			pattern_fill(page, sizeof(page), SEED + i);
			if (write(fd, page, sizeof(page)) != sizeof(page))
				fail("write vma_flags.data: %m");
		}
		p = mmap(region, len, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
		close(fd);
		if (p == MAP_FAILED)
			fail("mmap the file: %m");
		return;
	}
	p = mmap(region, len, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (p == MAP_FAILED)
		fail("mmap the region (state %s): %m", state);
	for (int i = 0; i < PAGES; i++)
		pattern_fill(region + i * PAGE_SIZE, PAGE_SIZE, SEED + i);
}

static void set_state(void)
{
	static const struct { const char *name; int advice; } advice[] = {
		{ "dontfork", MADV_DONTFORK }, { "wipeonfork", MADV_WIPEONFORK },
		{ "dontdump", MADV_DONTDUMP }, { "hugepage", MADV_HUGEPAGE },
		{ "nohugepage", MADV_NOHUGEPAGE }, { "mergeable", MADV_MERGEABLE },
		{ "random", MADV_RANDOM }, { "sequential", MADV_SEQUENTIAL },
	};

	for (size_t i = 0; i < sizeof(advice) / sizeof(advice[0]); i++)
		if (is(advice[i].name) && madvise(region, PAGES * PAGE_SIZE, advice[i].advice))
			fail("madvise(%s): %m", state);
	if (is("mlock") && mlock(region + 8 * PAGE_SIZE, 8 * PAGE_SIZE))
		fail("mlock: %m");
	if (is("mlock-onfault") && mlock2(region + 8 * PAGE_SIZE, 8 * PAGE_SIZE, MLOCK_ONFAULT))
		fail("mlock2(MLOCK_ONFAULT): %m");
	if (is("prot-none") && mprotect(region, PAGES * PAGE_SIZE, PROT_NONE))
		fail("mprotect(PROT_NONE): %m");
	if (is("advice-split") &&
	    (madvise(region, 8 * PAGE_SIZE, MADV_NOHUGEPAGE) ||
	     madvise(region + 16 * PAGE_SIZE, 8 * PAGE_SIZE, MADV_RANDOM) ||
	     madvise(region + 24 * PAGE_SIZE, 8 * PAGE_SIZE, MADV_NOHUGEPAGE) ||
	     madvise(region + 24 * PAGE_SIZE, 8 * PAGE_SIZE, MADV_DONTDUMP)))
		fail("madvise (advice-split): %m");
	if (is("guard") &&
	    (madvise(region + 4 * PAGE_SIZE, 2 * PAGE_SIZE, MADV_GUARD_INSTALL) ||
	     madvise(region + 20 * PAGE_SIZE, PAGE_SIZE, MADV_GUARD_INSTALL)))
		fail("madvise(MADV_GUARD_INSTALL): %m");
}

int main(int argc, char **argv)
{
	static const char *const states[] = {
		"dontfork", "wipeonfork", "dontdump", "hugepage", "nohugepage", "mergeable",
		"locked", "mlock", "droppable", "guard", "shared-rw", "prot-none", "mlock-onfault", "random", "sequential",
		"advice-split",
	};
	const struct test_opt opts[] = {
		{ "state", TEST_OPT_STR, &state, 1, "the VMA state to build" },
		{ NULL },
	};
	int known = 0;

	test_init(argc, argv, opts);
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		known |= is(states[i]);
	if (!known)
		fail("unknown --state %s", state);
	map_region();
	set_state();
	record(before, sizeof(before));
	test_msg("region %p, state %s", (void *)region, state);

	test_daemon();
	test_waitsig();

	record(after, sizeof(after));
	first_difference();
	if (is("prot-none") && mprotect(region, PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE))
		fail("mprotect(PROT_READ | PROT_WRITE): %m");
	/* first, while the pages may still be lazy */
	if (is("dontfork") || is("wipeonfork"))
		check_fork();
	check_contents("after the restore");
	if (is("guard"))
		check_guards();
	if (is("shared-rw"))
		check_shared_rw();
	check_contents("at the end");
	pass();
}
