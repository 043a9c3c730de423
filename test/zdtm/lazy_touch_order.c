/*
 * A known working set: after the restore the program reads one page in
 * each of NTOUCH stretches of STRIDE pages, in a fixed scattered order,
 * and nothing else of its region (the rest stays lazy until it exits).
 * The stride is wider than the daemon's fault-around window, so each
 * touch is a fault of its own and the daemon's working set must list
 * exactly these pages, in this order.  With --mremap the region moves
 * before the touches: the record still names the dump-time addresses.
 * It says how many of the pages it touches were there before its first
 * touch (a restore that prefetched its working set installed them).
 */
#include <stdio.h>
#include <sys/mman.h>

#include "lib/lazy.h"
#include "lib/zdtmtst.h"

#define WATCHDOG_S 45
#define SEED	0x746f756368ULL
#define NTOUCH	32
#define STRIDE	32	/* pages; > the 16-page fault-around window */
#define NPAGES	(NTOUCH * STRIDE)

/* The k-th page touched: 7 is prime to NTOUCH, so each stretch once. */
static size_t touched(size_t k)
{
	return ((k * 7 + 3) % NTOUCH) * STRIDE + k % 5;
}

int main(int argc, char **argv)
{
	size_t len = NPAGES * PAGE_SIZE;
	int do_mremap = 0;
	const struct test_opt opts[] = {
		{ "mremap", TEST_OPT_FLAG, &do_mremap, 0, "move the region before the touches" },
		{ NULL, 0, NULL, 0, NULL },
	};
	uint8_t *mem, *dst;
	size_t present;
	char what[64];

	test_init(argc, argv, opts);
	mem = lazy_map_guarded(NPAGES);
	pattern_fill(mem, len, SEED);
	/* a free place for the move, reserved now so it is free after the restore too */
	dst = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (dst == MAP_FAILED)
		fail("reserve %zu bytes: %m", len);

	test_msg("region %p", (void *)mem);
	test_daemon();
	test_waitsig();
	lazy_watchdog(WATCHDOG_S, "the touches");
	lazy_premise("the region", mem, len);

	if (do_mremap) {
		if (mremap(mem, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, dst) != dst)
			fail("mremap the region to %p: %m", (void *)dst);
		mem = dst;
	}
	/* a restore that prefetched the working set has them already (test_prefetch) */
	present = 0;
	for (size_t k = 0; k < NTOUCH; k++)
		present += lazy_present_pages(mem + touched(k) * PAGE_SIZE, PAGE_SIZE);
	test_msg("present before the touches: %zu", present);
	for (size_t k = 0; k < NTOUCH; k++) {
		size_t i = touched(k);

		snprintf(what, sizeof(what), "page %zu (touch %zu)", i, k);
		for (size_t off = 0; off < PAGE_SIZE; off++)
			if (mem[i * PAGE_SIZE + off] != pattern_byte(SEED, i * PAGE_SIZE + off))
				fail("%s: byte %zu is %#x, expected %#x", what, off,
				     mem[i * PAGE_SIZE + off], pattern_byte(SEED, i * PAGE_SIZE + off));
	}
	pass();
}
