/*
 * Unit test of the lazy model (criu-lazy/lazy/lazy-model.c): every page is
 * delivered exactly once whatever mix of faults, background steps and
 * events happens, and dump-time addresses survive mremap.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lazy/lazy-model.h"

#define P 4096ULL
static int failures;

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			printf("FAIL %s:%d: ", __FILE__, __LINE__);        \
			printf(__VA_ARGS__);                               \
			printf("\n");                                      \
			failures++;                                        \
		}                                                          \
	} while (0)

static void test_fault_window(void)
{
	struct lazy_model m;
	struct lazy_span s;

	lazy_model_init(&m);
	CHECK(!lazy_model_add_region(&m, 0x100000, 0x100000 + 64 * P, 0x100000), "add");
	lazy_model_mark_pending(&m, 0x100000, 64);
	CHECK(m.nr_pending == 64, "64 pending, got %llu", (unsigned long long)m.nr_pending);

	/* fault in the middle of the 3rd 16-page window: whole window taken */
	CHECK(lazy_model_take_fault(&m, 0x100000 + 37 * P + 123, 16, &s), "fault taken");
	CHECK(s.start == 0x100000 + 32 * P && s.nr_pages == 16 && s.img_start == s.start,
	      "window 32..47, got start +%llu n %llu",
	      (unsigned long long)((s.start - 0x100000) / P), (unsigned long long)s.nr_pages);
	CHECK(!lazy_model_is_pending(&m, 0x100000 + 37 * P), "page delivered");
	CHECK(!lazy_model_take_fault(&m, 0x100000 + 40 * P, 16, &s), "second fault: nothing");
	CHECK(m.nr_pending == 48, "48 left");

	/* a window stops at pages already delivered */
	CHECK(lazy_model_take_fault(&m, 0x100000 + 5 * P, 1, &s) && s.nr_pages == 1, "1 page");
	CHECK(lazy_model_take_fault(&m, 0x100000 + 3 * P, 16, &s), "fault 3");
	CHECK(s.start == 0x100000 && s.nr_pages == 5, "0..4 around the hole, got n %llu",
	      (unsigned long long)s.nr_pages);

	/* outside any region */
	CHECK(!lazy_model_take_fault(&m, 0x50000, 16, &s), "outside");
	lazy_model_free(&m);
}

static void test_background_exactly_once(void)
{
	struct lazy_model m;
	struct lazy_span s;
	unsigned char seen[300] = { 0 };
	uint64_t total = 0;

	lazy_model_init(&m);
	CHECK(!lazy_model_add_region(&m, 0x200000, 0x200000 + 100 * P, 0x200000), "r1");
	CHECK(!lazy_model_add_region(&m, 0x400000, 0x400000 + 200 * P, 0x400000), "r2");
	/* pending: two runs with a hole in each region */
	lazy_model_mark_pending(&m, 0x200000, 60);
	lazy_model_mark_pending(&m, 0x200000 + 70 * P, 30);
	lazy_model_mark_pending(&m, 0x400000, 200);
	lazy_model_drop(&m, 0x400000 + 10 * P, 0x400000 + 20 * P);
	CHECK(m.nr_pending == 280, "280 pending, got %llu", (unsigned long long)m.nr_pending);

	/* interleave faults with background steps */
	lazy_model_take_fault(&m, 0x400000 + 150 * P, 8, &s);
	for (uint64_t i = 0; i < s.nr_pages; i++)
		seen[100 + (s.start - 0x400000) / P + i]++;
	total += s.nr_pages;
	while (lazy_model_take_next(&m, 7, &s)) {
		CHECK(s.nr_pages <= 7, "chunk limit");
		for (uint64_t i = 0; i < s.nr_pages; i++) {
			uint64_t a = s.start + i * P;
			size_t idx = a < 0x400000 ? (a - 0x200000) / P : 100 + (a - 0x400000) / P;

			seen[idx]++;
		}
		total += s.nr_pages;
		if (total == 40)	/* a fault in the middle of the walk */
			if (lazy_model_take_fault(&m, 0x400000 + 190 * P, 4, &s)) {
				for (uint64_t i = 0; i < s.nr_pages; i++)
					seen[100 + (s.start - 0x400000) / P + i]++;
				total += s.nr_pages;
			}
	}
	CHECK(total == 280, "every pending page once, got %llu", (unsigned long long)total);
	for (int i = 0; i < 300; i++) {
		int want = (i < 60 || (i >= 70 && i < 100) || (i >= 100 && !(i >= 110 && i < 120)));

		CHECK(seen[i] == want, "page %d delivered %d times, want %d", i, seen[i], want);
	}
	CHECK(m.nr_pending == 0, "empty");
	lazy_model_free(&m);
}

static void test_put_back(void)
{
	struct lazy_model m;
	struct lazy_span s, s2;

	lazy_model_init(&m);
	lazy_model_add_region(&m, 0x10000000, 0x10000000 + 32 * P, 0x10000000);
	lazy_model_mark_pending(&m, 0x10000000, 32);
	CHECK(lazy_model_take_next(&m, 32, &s) && s.nr_pages == 32, "all");
	lazy_model_put_back(&m, &s);
	CHECK(m.nr_pending == 32, "back");
	CHECK(lazy_model_take_next(&m, 32, &s2) && s2.nr_pages == 32 && s2.start == s.start,
	      "walk sees put-back pages again");
	lazy_model_free(&m);
}

static void test_remap(void)
{
	struct lazy_model m;
	struct lazy_span s;
	uint64_t base = 0x7f0000000000ULL, to = 0x7e0000000000ULL, dropped = 0;

	lazy_model_init(&m);
	lazy_model_add_region(&m, base, base + 16 * P, base);
	lazy_model_mark_pending(&m, base, 16);

	/* move pages 4..11 away: the region splits in three */
	CHECK(!lazy_model_remap(&m, base + 4 * P, to, 8 * P, &dropped) && !dropped, "remap");
	CHECK(m.nr_regions == 3, "3 regions, got %zu", m.nr_regions);
	CHECK(m.nr_pending == 16, "nothing lost");
	CHECK(!lazy_model_is_pending(&m, base + 5 * P), "old place empty");
	CHECK(lazy_model_is_pending(&m, to + 5 * P), "new place pending");
	CHECK(lazy_model_take_fault(&m, to + 2 * P, 1, &s), "fault at new place");
	CHECK(s.img_start == base + 6 * P, "dump-time address kept, got +%llx",
	      (unsigned long long)(s.img_start - base));
	CHECK(lazy_model_take_fault(&m, base + 12 * P, 1, &s) && s.img_start == base + 12 * P,
	      "tail keeps its own address");

	/* shrink: the tail of the moved part is unmapped */
	lazy_model_drop(&m, to + 6 * P, to + 8 * P);
	CHECK(m.nr_pending == 12, "12 left, got %llu", (unsigned long long)m.nr_pending);
	lazy_model_free(&m);
}

static void test_clone(void)
{
	struct lazy_model m, c;
	struct lazy_span s;

	lazy_model_init(&m);
	lazy_model_add_region(&m, 0x1000000, 0x1000000 + 8 * P, 0x1000000);
	lazy_model_mark_pending(&m, 0x1000000, 8);
	lazy_model_take_fault(&m, 0x1000000, 1, &s);
	CHECK(!lazy_model_clone(&c, &m), "clone");
	CHECK(c.nr_pending == 7 && !lazy_model_is_pending(&c, 0x1000000) &&
	      lazy_model_is_pending(&c, 0x1000000 + P), "child has the parent's state");
	lazy_model_take_fault(&c, 0x1000000 + P, 1, &s);
	CHECK(lazy_model_is_pending(&m, 0x1000000 + P), "parent independent of child");
	lazy_model_free(&m);
	lazy_model_free(&c);
}

/* Many random single-page faults over a big region must each find their page. */
static void test_random_faults(void)
{
	const uint64_t n = 1 << 18;	/* 1 GiB of pages */
	struct lazy_model m;
	struct lazy_span s;
	uint64_t taken = 0, x = 12345;

	lazy_model_init(&m);
	lazy_model_add_region(&m, 0x400000000ULL, 0x400000000ULL + n * P, 0x400000000ULL);
	lazy_model_mark_pending(&m, 0x400000000ULL, n);
	for (uint64_t i = 0; i < n; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		if (lazy_model_take_fault(&m, 0x400000000ULL + (x >> 20) % n * P, 1, &s))
			taken += s.nr_pages;
	}
	while (lazy_model_take_next(&m, 1024, &s))
		taken += s.nr_pages;
	CHECK(taken == n, "all %llu pages exactly once, got %llu", (unsigned long long)n,
	      (unsigned long long)taken);
	lazy_model_free(&m);
}

int main(void)
{
	test_fault_window();
	test_background_exactly_once();
	test_put_back();
	test_remap();
	test_clone();
	test_random_faults();
	printf("%s\n", failures ? "FAILED" : "lazy model: all checks passed");
	return failures ? 1 : 0;
}
