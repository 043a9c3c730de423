/*
 * mremap of regions whose pages are still lazy: a move to a fixed new
 * address, a grow that may move, and a shrink.  The data must follow the
 * pages to their new addresses, the grown tail must read zeros, and what
 * a shrink cut off must be gone.
 */
#include <string.h>
#include <sys/mman.h>

#include "lib/lazy.h"
#include "lib/zdtmtst.h"

#define WATCHDOG_S 45

#define SEED 0x72656d6170ULL
#define NPAGES 256

static uint8_t *map_pattern(uint64_t seed)
{
	uint8_t *mem = lazy_map_guarded(NPAGES);

	pattern_fill(mem, NPAGES * PAGE_SIZE, seed);
	return mem;
}

int main(int argc, char **argv)
{
	uint8_t *moved, *grown, *shrunk, *hole, *p;
	size_t len = NPAGES * PAGE_SIZE;

	test_init(argc, argv, NULL);
	moved = map_pattern(SEED);
	grown = map_pattern(SEED + 1);
	shrunk = map_pattern(SEED + 2);

	test_msg("region %p", (void *)moved);
	test_daemon();
	test_waitsig();
	lazy_watchdog(WATCHDOG_S, "the checks");
	lazy_premise("the moved region", moved, len);
	lazy_premise("the grown region", grown, len);
	lazy_premise("the shrunk region", shrunk, len);

	/* 1. move, without touching a page first */
	hole = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (hole == MAP_FAILED)
		fail("mmap a destination: %m");
	p = mremap(moved, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, hole);
	if (p != hole)
		fail("mremap move: %m");
	pattern_expect("moved region", p, len, SEED);

	/* 2. grow to four times the size (it may move) */
	p = mremap(grown, len, 4 * len, MREMAP_MAYMOVE);
	if (p == MAP_FAILED)
		fail("mremap grow: %m");
	pattern_expect("grown region, old part", p, len, SEED + 1);
	zero_expect("grown region, new part", p + len, 3 * len);

	/* 3. shrink to a quarter: the rest must be gone */
	p = mremap(shrunk, len, len / 4, 0);
	if (p != shrunk)
		fail("mremap shrink: %m");
	pattern_expect("shrunk region", p, len / 4, SEED + 2);
	if (mmap(shrunk + len / 4, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		 -1, 0) == MAP_FAILED)
		fail("the part a shrink cut off is still mapped: %m");
	zero_expect("a new mapping where the shrunk tail was", shrunk + len / 4, PAGE_SIZE);
	pass();
}
