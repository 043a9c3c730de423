/*
 * Shared anonymous memory (MAP_SHARED | MAP_ANONYMOUS): a read-write
 * region with a pattern and a few never-touched pages, and a second region
 * filled and then made read-only.  After SIGTERM: contents as they were,
 * maps lines the same (but for the shmem inode number, which a restore
 * cannot keep), and the memory is still *shared*: a child forked now
 * writes into it and the parent sees the write.
 * --prot-none: a third region, filled, then made PROT_NONE (a lazy restore
 * restores it eagerly); checked after it is made readable again.
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define SEED 0x73686d656dULL
#define RO_PAGES 4

static size_t npages;

static int untouched(size_t i)
{
	return npages >= 8 && i % 8 == 3;
}

static void line_of(const char *maps, void *addr, char *line, size_t size)
{
	if (maps_line_at(maps, (unsigned long)addr, line, size))
		fail("no maps line for %p", addr);
	maps_line_normalize(line);
}

int main(int argc, char **argv)
{
	static char maps[1 << 20], rw_before[512], ro_before[512], line[512];
	size_t size = 1 << 20, i;
	int prot_none = 0;
	const struct test_opt opts[] = {
		{ "size", TEST_OPT_SIZE, &size, 0, "bytes of the read-write region" },
		{ "prot-none", TEST_OPT_FLAG, &prot_none, 0, "a third region, PROT_NONE" },
		{ NULL, 0, NULL, 0, NULL },
	};
	uint8_t *rw, *ro, *none = NULL;
	pid_t child;
	int status;

	test_init(argc, argv, opts);
	npages = (size + PAGE_SIZE - 1) / PAGE_SIZE;
	if (!npages)
		fail("--size must be at least one byte");
	size = npages * PAGE_SIZE;

	rw = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ro = mmap(NULL, RO_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (rw == MAP_FAILED || ro == MAP_FAILED)
		fail("mmap shared anonymous: %m");
	for (i = 0; i < npages; i++)
		if (!untouched(i))
			pattern_fill(rw + i * PAGE_SIZE, PAGE_SIZE, SEED + i);
	pattern_fill(ro, RO_PAGES * PAGE_SIZE, SEED ^ 1);
	if (mprotect(ro, RO_PAGES * PAGE_SIZE, PROT_READ))
		fail("mprotect: %m");
	test_msg("shared region %p size %zu, read-only %p", (void *)rw, size, (void *)ro);
	if (prot_none) {
		none = mmap(NULL, RO_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (none == MAP_FAILED)
			fail("mmap shared anonymous: %m");
		pattern_fill(none, RO_PAGES * PAGE_SIZE, SEED ^ 2);
		if (mprotect(none, RO_PAGES * PAGE_SIZE, PROT_NONE))
			fail("mprotect: %m");
	}

	read_file("/proc/self/maps", maps, sizeof(maps));
	line_of(maps, rw, rw_before, sizeof(rw_before));
	line_of(maps, ro, ro_before, sizeof(ro_before));

	test_daemon();
	test_waitsig();

	read_file("/proc/self/maps", maps, sizeof(maps));
	line_of(maps, rw, line, sizeof(line));
	if (strcmp(line, rw_before))
		fail("maps line changed: before '%s' after '%s'", rw_before, line);
	line_of(maps, ro, line, sizeof(line));
	if (strcmp(line, ro_before))
		fail("maps line changed: before '%s' after '%s'", ro_before, line);

	for (i = 0; i < npages; i++) {
		char what[64];

		snprintf(what, sizeof(what), "shared page %zu", i);
		if (untouched(i))
			zero_expect(what, rw + i * PAGE_SIZE, PAGE_SIZE);
		else
			pattern_expect(what, rw + i * PAGE_SIZE, PAGE_SIZE, SEED + i);
	}
	pattern_expect("read-only shared region", ro, RO_PAGES * PAGE_SIZE, SEED ^ 1);
	if (none) {
		if (mprotect(none, RO_PAGES * PAGE_SIZE, PROT_READ))
			fail("mprotect: %m");
		pattern_expect("PROT_NONE shared region", none, RO_PAGES * PAGE_SIZE, SEED ^ 2);
	}

	child = fork();
	if (child < 0)
		fail("fork: %m");
	if (child == 0) {
		pattern_fill(rw, PAGE_SIZE, 0x5157);
		_exit(0);
	}
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
	    WEXITSTATUS(status))
		fail("child failed (status %#x)", status);
	pattern_expect("first page after a child wrote it (is it still shared?)",
		       rw, PAGE_SIZE, 0x5157);
	pass();
}
