/*
 * One reserved span of 64 pages carved into VMAs: munmapped holes, a
 * read-only part, a PROT_NONE part in the middle, an executable part and
 * a write-only part, each with its own pattern.  After SIGTERM the maps
 * lines of the whole span are the same, the holes are still holes, and
 * every part holds its pattern (PROT_NONE is opened up to be read).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "lib/zdtmtst.h"

#define NPAGES 64
#define SEED 0x686f6c6573ULL

struct part {
	int first, npages;
	int prot;		/* final protection; -1 = hole */
	const char *name;
};

static const struct part parts[] = {
	{ 0, 8, PROT_READ | PROT_WRITE, "rw head" },
	{ 8, 4, -1, "hole 1" },
	{ 12, 4, PROT_READ | PROT_WRITE, "rw after hole" },
	{ 16, 4, PROT_READ, "read-only" },
	{ 20, 10, PROT_READ | PROT_WRITE, "rw middle" },
	{ 30, 1, -1, "one-page hole" },
	{ 31, 9, PROT_READ | PROT_WRITE, "rw before none" },
	{ 40, 4, PROT_NONE, "PROT_NONE" },
	{ 44, 6, PROT_READ | PROT_WRITE, "rw after none" },
	{ 50, 2, PROT_WRITE, "write-only" },
	{ 52, 4, PROT_READ | PROT_EXEC, "read-exec" },
	{ 56, 8, PROT_READ | PROT_WRITE, "rw tail" },
};
#define NPARTS (sizeof(parts) / sizeof(parts[0]))

static uint8_t *base;

static uint8_t *part_addr(const struct part *p)
{
	return base + (size_t)p->first * PAGE_SIZE;
}

int main(int argc, char **argv)
{
	static char maps[1 << 20], before[8192], after[8192];
	size_t i;

	test_init(argc, argv, NULL);

	/* Reserve the span, then build it: fill everything, cut, protect. */
	base = mmap(NULL, NPAGES * PAGE_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		fail("mmap: %m");
	for (i = 0; i < NPARTS; i++) {
		const struct part *p = &parts[i];
		size_t len = (size_t)p->npages * PAGE_SIZE;

		if (p->prot < 0) {
			if (munmap(part_addr(p), len))
				fail("munmap %s: %m", p->name);
			continue;
		}
		pattern_fill(part_addr(p), len, SEED + i);
		if (p->prot != (PROT_READ | PROT_WRITE) &&
		    mprotect(part_addr(p), len, p->prot))
			fail("mprotect %s: %m", p->name);
	}
	test_msg("span %p pages %d", (void *)base, NPAGES);

	read_file("/proc/self/maps", maps, sizeof(maps));
	maps_lines_in(maps, (unsigned long)base,
		      (unsigned long)base + NPAGES * PAGE_SIZE, before, sizeof(before));

	test_daemon();
	test_waitsig();

	read_file("/proc/self/maps", maps, sizeof(maps));
	maps_lines_in(maps, (unsigned long)base,
		      (unsigned long)base + NPAGES * PAGE_SIZE, after, sizeof(after));
	if (strcmp(before, after))
		fail("maps of the span changed:\n--- before\n%s--- after\n%s", before, after);

	for (i = 0; i < NPARTS; i++) {
		const struct part *p = &parts[i];
		size_t len = (size_t)p->npages * PAGE_SIZE;

		if (p->prot < 0) {
			/* msync on an unmapped range fails with ENOMEM */
			if (msync(part_addr(p), len, MS_ASYNC) == 0 || errno != ENOMEM)
				fail("%s at %p is mapped again", p->name, (void *)part_addr(p));
			continue;
		}
		if (!(p->prot & PROT_READ) &&
		    mprotect(part_addr(p), len, p->prot | PROT_READ))
			fail("mprotect %s readable: %m", p->name);
		pattern_expect(p->name, part_addr(p), len, SEED + i);
	}
	pass();
}
