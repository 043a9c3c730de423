/*
 * Splits of a lazy region that raise no userfaultfd event (issue 13):
 * after the restore, with every page still lazy, the program splits its
 * region -- mprotect of one page and of a stretch, mlock of part (which
 * also faults that part in from the kernel), madvise of VMA flags
 * (MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_DONTFORK) on parts, a stretch cut
 * into many VMAs -- then reads it; and splits a second half while it is
 * reading it, right behind a fault whose fault-around window and the
 * background chunks still in flight cross the new boundaries.  Every page
 * must hold its dumped data: none dropped, none zero, no thread asleep.
 *
 * The region is --size bytes (at least 64 pages) between guard pages; q is
 * a sixteenth of it.  In pages:
 *
 *   [0, 2q)        read after the splits
 *   2q             one page made read-only (page 8 of a 64-page region)
 *   [3q, 4q)       a read-only stretch
 *   [4q, 4.5q)     mlock'ed
 *   [5q, 6q)       MADV_HUGEPAGE, [6q, 7q) MADV_NOHUGEPAGE, [7q, 8q) MADV_DONTFORK
 *   [8q, 9q)       every other page read-only: many splits in one stretch
 *   [9q, 16q)      split while being read: its first page is read, then
 *                  page 9q+2 and [10q, 11q) made read-only, [11q, 12q)
 *                  MADV_HUGEPAGE, [12q, 12.25q) mlock'ed, then all read
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "lib/lazy.h"
#include "lib/zdtmtst.h"

#define SEED 0x73706c6974ULL
#define WATCHDOG_S 50

static uint8_t *mem;
static size_t npages, q;

static uint8_t *page(size_t i)
{
	return mem + i * PAGE_SIZE;
}

static void check_pages(const char *when, size_t from, size_t to)
{
	char what[96];

	for (size_t i = from; i < to; i++) {
		snprintf(what, sizeof(what), "%s: page %zu", when, i);
		pattern_expect(what, page(i), PAGE_SIZE, SEED + i);
	}
}

static void protect(size_t from, size_t n, int prot)
{
	if (mprotect(page(from), n * PAGE_SIZE, prot))
		fail("mprotect pages [%zu, %zu): %m", from, from + n);
}

static void advise(size_t from, size_t n, int advice, const char *name)
{
	if (madvise(page(from), n * PAGE_SIZE, advice))
		fail("madvise(%s) of pages [%zu, %zu): %m", name, from, from + n);
}

static void lock(size_t from, size_t n)
{
	if (mlock(page(from), n * PAGE_SIZE))
		fail("mlock pages [%zu, %zu): %m", from, from + n);
}

/* The split really happened: a VMA starts at page i. */
static void expect_boundary(const char *maps, size_t i)
{
	char line[512];

	if (maps_line_at(maps, (unsigned long)page(i), line, sizeof(line)))
		fail("no VMA starts at page %zu (%p): the region was not split there", i,
		     (void *)page(i));
}

static void expect_splits(size_t extra)
{
	static char maps[1 << 20];
	size_t i;

	read_file("/proc/self/maps", maps, sizeof(maps));
	expect_boundary(maps, 2 * q);
	expect_boundary(maps, 2 * q + 1);
	expect_boundary(maps, 3 * q);
	expect_boundary(maps, 4 * q);
	expect_boundary(maps, 4 * q + q / 2);
	for (i = 5; i <= 8; i++)	/* 9q: page 9q-1 and [9q, ...) merge */
		expect_boundary(maps, i * q);
	for (i = 8 * q; i < 9 * q; i++)
		expect_boundary(maps, i);
	if (extra) {
		expect_boundary(maps, 9 * q + 2);
		expect_boundary(maps, 9 * q + 3);
		for (i = 10; i <= 12; i++)
			expect_boundary(maps, i * q);
		expect_boundary(maps, 12 * q + q / 4);
	}
}

int main(int argc, char **argv)
{
	size_t size = 64 * PAGE_SIZE;
	const struct test_opt opts[] = {
		{ "size", TEST_OPT_SIZE, &size, 0, "bytes of the region (K/M/G, >= 64 pages)" },
		{ NULL, 0, NULL, 0, NULL },
	};
	volatile uint8_t sink;

	test_init(argc, argv, opts);
	npages = size / PAGE_SIZE;
	if (npages < 64 || npages % 16)
		fail("--size must be a multiple of 16 pages, at least 64 pages");
	q = npages / 16;
	mem = lazy_map_guarded(npages);
	for (size_t i = 0; i < npages; i++)
		pattern_fill(page(i), PAGE_SIZE, SEED + i);
	test_msg("region %p, %zu pages", (void *)mem, npages);

	test_daemon();
	test_waitsig();
	lazy_watchdog(WATCHDOG_S, "reading the split region");
	lazy_premise("the region", mem, npages * PAGE_SIZE);

	/* before reading: every page of the region is still lazy */
	protect(2 * q, 1, PROT_READ);
	protect(3 * q, q, PROT_READ);
	lock(4 * q, q / 2);
	advise(5 * q, q, MADV_HUGEPAGE, "MADV_HUGEPAGE");
	advise(6 * q, q, MADV_NOHUGEPAGE, "MADV_NOHUGEPAGE");
	advise(7 * q, q, MADV_DONTFORK, "MADV_DONTFORK");
	for (size_t i = 8 * q; i < 9 * q; i += 2)
		protect(i, 1, PROT_READ);
	expect_splits(0);
	check_pages("split before reading", 2 * q, 9 * q);
	check_pages("beside the splits", 0, 2 * q);

	/* while reading: the first fault of [9q, 16q) is barely answered */
	sink = *page(9 * q);
	(void)sink;
	protect(9 * q + 2, 1, PROT_READ);
	protect(10 * q, q, PROT_READ);
	advise(11 * q, q, MADV_HUGEPAGE, "MADV_HUGEPAGE");
	lock(12 * q, q / 4);
	check_pages("split while reading", 9 * q, npages);
	expect_splits(1);

	/* and all of it once more, now that nothing is lazy */
	check_pages("at the end", 0, npages);
	lazy_guards_expect("the region", mem, npages);
	if (munlock(mem, npages * PAGE_SIZE))
		fail("munlock: %m");
	lazy_watchdog(0, "");
	pass();
}
