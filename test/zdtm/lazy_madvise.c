/*
 * MADV_DONTNEED on part of a region whose pages are still lazy: that part
 * must read zeros afterwards (the dumped data must not come back), the rest
 * keeps its data, and the discarded part is ordinary memory again.
 */
#include <sys/mman.h>

#include "lib/lazy.h"
#include "lib/zdtmtst.h"

#define WATCHDOG_S 45

#define SEED 0x6d61647669ULL
#define NPAGES 512

int main(int argc, char **argv)
{
	size_t len = NPAGES * PAGE_SIZE, lo = 100 * PAGE_SIZE, hi = 300 * PAGE_SIZE;
	uint8_t *mem;

	test_init(argc, argv, NULL);
	mem = lazy_map_guarded(NPAGES);
	pattern_fill(mem, len, SEED);

	test_msg("region %p", (void *)mem);
	test_daemon();
	test_waitsig();
	lazy_watchdog(WATCHDOG_S, "the checks");
	lazy_premise("the region", mem, len);

	if (madvise(mem + lo, hi - lo, MADV_DONTNEED))
		fail("madvise: %m");
	zero_expect("discarded part", mem + lo, hi - lo);
	pattern_expect("part before", mem, lo, SEED);
	pattern_expect_at("part after", mem, hi, len, SEED);
	pattern_fill(mem + lo, hi - lo, SEED ^ 1);
	pattern_expect("discarded part rewritten", mem + lo, hi - lo, SEED ^ 1);
	pass();
}
