/*
 * Private anonymous memory of --size bytes (one page to hundreds of MiB):
 * most pages hold a pattern, every 8th page is never touched (must read
 * zero), and the page after it holds a single non-zero byte at its end.
 * After SIGTERM: every page as it was, the VMA line unchanged, and the
 * memory still private and writable.
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "lib/zdtmtst.h"

#define SEED 0x6d656d616e6f6eULL

enum page_kind { PG_PATTERN, PG_UNTOUCHED, PG_ONE_BYTE };

static enum page_kind kind_of(size_t i, size_t npages)
{
	if (npages < 8)
		return PG_PATTERN;
	if (i % 8 == 5)
		return PG_UNTOUCHED;
	if (i % 8 == 6)
		return PG_ONE_BYTE;
	return PG_PATTERN;
}

static void check_page(const uint8_t *page, size_t i, size_t npages, uint64_t seed)
{
	char what[64];

	snprintf(what, sizeof(what), "page %zu of the region", i);
	switch (kind_of(i, npages)) {
	case PG_PATTERN:
		pattern_expect(what, page, PAGE_SIZE, seed + i);
		break;
	case PG_UNTOUCHED:
		zero_expect(what, page, PAGE_SIZE);
		break;
	case PG_ONE_BYTE:
		zero_expect(what, page, PAGE_SIZE - 1);
		if (page[PAGE_SIZE - 1] != 0x5a)
			fail("%s: last byte is %#x, expected 0x5a", what, page[PAGE_SIZE - 1]);
		break;
	}
}

int main(int argc, char **argv)
{
	static char maps[1 << 20], line_before[512], line_after[512];
	size_t size = 1 << 20, npages, i;
	const struct test_opt opts[] = {
		{ "size", TEST_OPT_SIZE, &size, 0, "bytes of memory (K/M/G suffix)" },
		{ NULL, 0, NULL, 0, NULL },
	};
	uint8_t *mem;

	test_init(argc, argv, opts);
	npages = (size + PAGE_SIZE - 1) / PAGE_SIZE;
	if (!npages)
		fail("--size must be at least one byte");
	size = npages * PAGE_SIZE;

	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		fail("mmap %zu bytes: %m", size);
	for (i = 0; i < npages; i++) {
		uint8_t *page = mem + i * PAGE_SIZE;

		switch (kind_of(i, npages)) {
		case PG_PATTERN:
			pattern_fill(page, PAGE_SIZE, SEED + i);
			break;
		case PG_UNTOUCHED:
			break;
		case PG_ONE_BYTE:
			page[PAGE_SIZE - 1] = 0x5a;
			break;
		}
	}
	test_msg("region %p size %zu", (void *)mem, size);

	read_file("/proc/self/maps", maps, sizeof(maps));
	if (maps_line_at(maps, (unsigned long)mem, line_before, sizeof(line_before)))
		fail("no maps line for the region at %p", (void *)mem);

	test_daemon();
	test_waitsig();

	read_file("/proc/self/maps", maps, sizeof(maps));
	if (maps_line_at(maps, (unsigned long)mem, line_after, sizeof(line_after)))
		fail("the region at %p is gone from /proc/self/maps", (void *)mem);
	if (strcmp(line_before, line_after))
		fail("maps line changed: before '%s' after '%s'", line_before, line_after);

	for (i = 0; i < npages; i++)
		check_page(mem + i * PAGE_SIZE, i, npages, SEED);

	/* Still ordinary private writable memory. */
	pattern_fill(mem, size, SEED ^ 0xffff);
	pattern_expect("region after rewriting it", mem, size, SEED ^ 0xffff);
	pass();
}
