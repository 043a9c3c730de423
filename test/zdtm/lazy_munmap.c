/*
 * munmap of the middle of a region whose pages are still lazy: the two
 * remaining parts keep their data, and a new mapping in the hole reads
 * zeros, not the dumped data.
 */
#include <sys/mman.h>

#include "lib/lazy.h"
#include "lib/zdtmtst.h"

#define WATCHDOG_S 45

#define SEED 0x6d756e6d6170ULL
#define NPAGES 512

int main(int argc, char **argv)
{
	size_t len = NPAGES * PAGE_SIZE, lo = 128 * PAGE_SIZE, hi = 384 * PAGE_SIZE;
	uint8_t *mem, *again;

	test_init(argc, argv, NULL);
	mem = lazy_map_guarded(NPAGES);
	pattern_fill(mem, len, SEED);

	test_msg("region %p", (void *)mem);
	test_daemon();
	test_waitsig();
	lazy_watchdog(WATCHDOG_S, "the checks");
	lazy_premise("the region", mem, len);

	if (munmap(mem + lo, hi - lo))
		fail("munmap: %m");
	again = mmap(mem + lo, hi - lo, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (again != mem + lo)
		fail("map the hole again: %m");
	zero_expect("new mapping in the hole", again, hi - lo);
	pattern_expect("part before the hole", mem, lo, SEED);
	pattern_expect_at("part after the hole", mem, hi, len, SEED);
	pass();
}
