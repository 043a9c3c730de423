/*
 * Unit test of the lazy model (criu-lazy/lazy/lazy-model*.c): every page is
 * delivered exactly once whatever mix of faults, background steps and
 * events happens, and dump-time addresses survive mremap (a prefetch finds
 * a page by its dump-time address wherever it is now).  A random run
 * checks the model page by page against a plain array after every
 * operation; a 16 TiB sparse mapping with four lazy pages must cost a few
 * hundred bytes, forks included.
 *
 * Prints "ok - NAME" or "FAIL ..." lines; exits 1 on any failure.
 */
#include <malloc.h>
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
	CHECK(!lazy_model_add_run(&m, 0x100000, 64, 0x100000, true), "add");
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
	/* two VMAs: two runs 10 pages apart share a region, then a hole punched */
	CHECK(!lazy_model_add_run(&m, 0x200000, 60, 0x200000, true), "r1");
	CHECK(!lazy_model_add_run(&m, 0x200000 + 70 * P, 30, 0x200000 + 70 * P, false), "r1b");
	CHECK(!lazy_model_add_run(&m, 0x400000, 200, 0x400000, true), "r2");
	CHECK(m.nr_regions == 2, "2 regions, got %zu", m.nr_regions);
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
	lazy_model_add_run(&m, 0x10000000, 32, 0x10000000, true);
	CHECK(lazy_model_take_next(&m, 32, &s) && s.nr_pages == 32, "all");
	CHECK(m.nr_regions == 0, "an empty region is freed");
	CHECK(!lazy_model_put_back(&m, &s), "put back");
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
	lazy_model_add_run(&m, base, 16, base, true);

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
	lazy_model_add_run(&m, 0x1000000, 8, 0x1000000, true);
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
	lazy_model_add_run(&m, 0x400000000ULL, n, 0x400000000ULL, true);
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

/* ---- page by page against a plain array ---------------------------------- */

#define U_BASE	0x7f0000000000ULL
#define U_PAGES	2048			/* the universe: 8 MiB of address space */
#define U_OPS	6000

struct shadow {
	bool pending[U_PAGES];
	uint64_t img[U_PAGES];		/* dump-time address of what is at each page */
};

static uint64_t rnd_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(uint64_t n)
{
	rnd_state = rnd_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (rnd_state >> 33) % n;
}

static uint64_t page_addr(uint64_t i)
{
	return U_BASE + i * P;
}

/* Every page of the universe, and the model's own invariants. */
static void check_pages(const struct lazy_model *m, const struct shadow *sh, const char *after)
{
	uint64_t count = 0;
	int bad = 0;

	for (uint64_t i = 0; i < U_PAGES && bad < 3; i++) {
		bool got = lazy_model_is_pending(m, page_addr(i));

		count += sh->pending[i];
		if (got != sh->pending[i]) {
			CHECK(0, "after %s: page %llu is %spending in the model, %spending in truth", after,
			      (unsigned long long)i, got ? "" : "not ", sh->pending[i] ? "" : "not ");
			bad++;
		}
	}
	CHECK(m->nr_pending == count, "after %s: model says %llu pending, truth %llu", after,
	      (unsigned long long)m->nr_pending, (unsigned long long)count);
	for (size_t r = 0; r < m->nr_regions; r++) {
		const struct lazy_region *x = &m->regions[r];

		CHECK(x->nr_pending > 0, "after %s: region %zu is empty but kept", after, r);
		CHECK(r == 0 || m->regions[r - 1].end <= x->start, "after %s: regions %zu, %zu overlap",
		      after, r - 1, r);
	}
}

/* A span taken out of the model: each page was pending, with its own image address. */
static void take_pages(struct shadow *sh, const struct lazy_span *s, const char *what)
{
	for (uint64_t k = 0; k < s->nr_pages; k++) {
		uint64_t i = (s->start - U_BASE) / P + k;

		CHECK(i < U_PAGES && sh->pending[i], "%s: page %llu taken but not pending", what,
		      (unsigned long long)i);
		if (i >= U_PAGES)
			return;
		CHECK(sh->img[i] == s->img_start + k * P, "%s: page %llu has dump-time 0x%llx, "
		      "the span says 0x%llx", what, (unsigned long long)i,
		      (unsigned long long)sh->img[i], (unsigned long long)(s->img_start + k * P));
		sh->pending[i] = false;
	}
}

struct taken {
	struct lazy_span s[64];
	int n;
};

static void put_back_all(struct lazy_model *m, struct shadow *sh, struct taken *tk)
{
	for (int j = 0; j < tk->n; j++) {
		CHECK(!lazy_model_put_back(m, &tk->s[j]), "put back");
		for (uint64_t k = 0; k < tk->s[j].nr_pages; k++)
			sh->pending[(tk->s[j].start - U_BASE) / P + k] = true;
	}
	tk->n = 0;
}

/* Move [from, from+n) to [to, to+n) (pages of the universe, not overlapping). */
static void remap_pages(struct lazy_model *m, struct shadow *sh, uint64_t from, uint64_t to,
			uint64_t n)
{
	static struct shadow moved;
	uint64_t dropped = 0, want = 0;

	for (uint64_t k = 0; k < n; k++) {
		want += sh->pending[to + k];
		moved.pending[k] = sh->pending[from + k];
		moved.img[k] = sh->img[from + k];
		sh->pending[from + k] = false;
	}
	for (uint64_t k = 0; k < n; k++) {
		sh->pending[to + k] = moved.pending[k];
		sh->img[to + k] = moved.img[k];
	}
	CHECK(!lazy_model_remap(m, page_addr(from), page_addr(to), n * P, &dropped), "remap");
	CHECK(dropped == want, "remap: %llu pages dropped at the destination, want %llu",
	      (unsigned long long)dropped, (unsigned long long)want);
}

static void load_universe(struct lazy_model *m, struct shadow *sh)
{
	uint64_t i = 0;

	memset(sh, 0, sizeof(*sh));
	for (i = 0; i < U_PAGES; i++)
		sh->img[i] = page_addr(i);
	/* VMAs of 1..300 pages with lazy runs of 1..40 pages and gaps of 0..100 */
	for (i = rnd(8); i < U_PAGES;) {
		uint64_t vma_end = i + 1 + rnd(300), p = i;
		bool first = true;

		if (vma_end > U_PAGES)
			vma_end = U_PAGES;
		while (p < vma_end) {
			uint64_t n = 1 + rnd(40);

			if (p + n > vma_end)
				n = vma_end - p;
			CHECK(!lazy_model_add_run(m, page_addr(p), n, page_addr(p), first), "add run");
			for (uint64_t k = 0; k < n; k++)
				sh->pending[p + k] = true;
			first = false;
			p += n + 1 + rnd(100);
		}
		i = vma_end + rnd(20);
	}
}

static void test_page_by_page(void)
{
	static struct shadow sh;
	struct lazy_model m;
	struct taken tk = { .n = 0 };
	struct lazy_span s;
	int clones = 0, layouts = 1, failed_before = failures;

	lazy_model_init(&m);
	load_universe(&m, &sh);
	check_pages(&m, &sh, "loading");
	for (int op = 0; op < U_OPS; op++) {
		uint64_t a = rnd(U_PAGES), n = 1 + rnd(64), win = 1ULL << rnd(6);
		const char *what = "?";

		switch (rnd(9)) {
		case 0:
		case 1:
			what = "a fault";
			if (lazy_model_take_fault(&m, page_addr(a) + rnd(P), win, &s)) {
				CHECK(sh.pending[a], "fault on page %llu: taken but not pending",
				      (unsigned long long)a);
				CHECK(s.start <= page_addr(a) && page_addr(a) < s.start + s.nr_pages * P,
				      "fault on page %llu: the span misses it", (unsigned long long)a);
				CHECK(s.nr_pages <= win && (s.start - page_addr(a) / (win * P) * win * P) <
				      win * P, "fault: the span leaves its window");
				take_pages(&sh, &s, what);
				if (tk.n < 64 && rnd(2))
					tk.s[tk.n++] = s;
			} else {
				CHECK(!sh.pending[a], "fault on pending page %llu: nothing taken",
				      (unsigned long long)a);
			}
			break;
		case 2:
		case 3:
			what = "a background step";
			if (lazy_model_take_next(&m, n, &s)) {
				CHECK(s.nr_pages >= 1 && s.nr_pages <= n, "background: %llu pages, max %llu",
				      (unsigned long long)s.nr_pages, (unsigned long long)n);
				take_pages(&sh, &s, what);
				if (tk.n < 64 && rnd(2))
					tk.s[tk.n++] = s;
			} else {
				CHECK(m.nr_pending == 0, "background: nothing taken with pages pending");
			}
			break;
		case 4:
			what = "a put back";
			put_back_all(&m, &sh, &tk);
			break;
		case 5:
			what = "a drop";
			put_back_all(&m, &sh, &tk);
			if (a + n > U_PAGES)
				n = U_PAGES - a;
			lazy_model_drop(&m, page_addr(a), page_addr(a + n));
			for (uint64_t k = 0; k < n; k++)
				sh.pending[a + k] = false;
			break;
		case 6: {
			uint64_t to = rnd(U_PAGES);

			what = "a remap";
			put_back_all(&m, &sh, &tk);
			n = 1 + rnd(200);
			if (a + n > U_PAGES || to + n > U_PAGES || (a < to + n && to < a + n))
				break;
			remap_pages(&m, &sh, a, to, n);
			break;
		}
		case 8: {
			uint64_t img = page_addr(rnd(U_PAGES)), addr = 0, j;
			size_t hint = rnd(4);
			bool found;

			what = "a prefetch";
			/* the truth: the pending page that holds what was at img at dump time */
			for (j = 0; j < U_PAGES && !(sh.pending[j] && sh.img[j] == img); j++)
				;
			found = lazy_model_find_img(&m, img, &hint, &addr);
			CHECK(found == (j < U_PAGES), "prefetch of 0x%llx: %sfound, %spending in truth",
			      (unsigned long long)img, found ? "" : "not ", j < U_PAGES ? "" : "not ");
			if (!found || j == U_PAGES)
				break;
			CHECK(addr == page_addr(j), "prefetch of 0x%llx: at page %llu, truly at %llu",
			      (unsigned long long)img, (unsigned long long)((addr - U_BASE) / P),
			      (unsigned long long)j);
			n = 1 + rnd(8);
			if (!lazy_model_take_range(&m, addr, n, &s)) {
				/* some of the run is not pending, or in another region: one page is */
				CHECK(lazy_model_take_range(&m, addr, 1, &s), "prefetch: one pending page");
			}
			take_pages(&sh, &s, what);
			if (tk.n < 64 && rnd(2))
				tk.s[tk.n++] = s;
			break;
		}
		case 7: {
			struct lazy_model c;

			what = "a fork";
			put_back_all(&m, &sh, &tk);
			if (clones++ > 500)
				break;
			CHECK(!lazy_model_clone(&c, &m), "clone");
			CHECK(lazy_model_footprint(&c) <= lazy_model_footprint(&m) + 64,
			      "the copy (%zu bytes) is bigger than the model (%zu)",
			      lazy_model_footprint(&c), lazy_model_footprint(&m));
			lazy_model_free(&m);
			m = c;		/* the child goes on */
			break;
		}
		}
		check_pages(&m, &sh, what);
		if (failures > failed_before)
			break;
		if (m.nr_pending < 100 && !tk.n) {
			/* nearly all delivered: start again with another layout */
			lazy_model_free(&m);
			load_universe(&m, &sh);
			layouts++;
		}
	}
	CHECK(layouts >= 10, "only %d layouts tried", layouts);
	put_back_all(&m, &sh, &tk);
	while (lazy_model_take_next(&m, 1 + rnd(100), &s))
		take_pages(&sh, &s, "the final walk");
	check_pages(&m, &sh, "the final walk");
	CHECK(!m.nr_regions && lazy_model_footprint(&m) == sizeof(m),
	      "an empty model still holds %zu bytes", lazy_model_footprint(&m));
	lazy_model_free(&m);
}

/* ---- memory follows the lazy pages, not the address space ------------------ */

/* (freed chunks kept in glibc's thread cache still count as used) */
static size_t heap_used(void)
{
	return mallinfo2().uordblks;
}

static void test_huge_sparse(void)
{
	const uint64_t base = 0x100000000000ULL, span = 16ULL << 40;	/* 16 TiB */
	const uint64_t at[4] = { 0, 1ULL << 40, 8ULL << 40, span - P };
	struct lazy_model m, c[8];
	struct lazy_span s;
	uint64_t dropped = 0;
	size_t before = heap_used(), used;
	int i;

	lazy_model_init(&m);
	for (i = 0; i < 4; i++)	/* one VMA: MAP_NORESERVE reservation, four pages touched */
		CHECK(!lazy_model_add_run(&m, base + at[i], 1, base + at[i], i == 0), "add");
	used = heap_used() - before;
	CHECK(m.nr_pending == 4, "4 pending");
	CHECK(lazy_model_footprint(&m) <= 512, "the model costs %zu bytes",
	      lazy_model_footprint(&m));
	CHECK(used <= 4096, "the heap grew by %zu bytes", used);

	/* forked several times: each copy as small */
	for (i = 0; i < 8; i++)
		CHECK(!lazy_model_clone(&c[i], i ? &c[i - 1] : &m), "clone %d", i);
	used = heap_used() - before;
	CHECK(used <= 9 * 4096, "nine models take %zu bytes of heap", used);

	/* the whole reservation moves: the pages follow, nothing is dropped */
	CHECK(!lazy_model_remap(&c[7], base, base + span, span, &dropped) && !dropped, "remap");
	CHECK(lazy_model_is_pending(&c[7], base + span + (8ULL << 40)), "moved page pending");
	CHECK(lazy_model_take_fault(&c[7], base + span + span - P, 16, &s) &&
	      s.img_start == base + span - P && s.nr_pages == 1, "fault on the last page");
	lazy_model_drop(&c[7], base + span, base + 2 * span);
	CHECK(!c[7].nr_pending && !c[7].nr_regions, "all dropped");

	for (i = 0; i < 8; i++)
		lazy_model_free(&c[i]);
	lazy_model_free(&m);
}

static void run(const char *name, void (*fn)(void))
{
	int before = failures;

	fn();
	printf("%s - %s\n", failures == before ? "ok" : "FAIL", name);
}

int main(void)
{
	run("fault window", test_fault_window);
	run("background exactly once", test_background_exactly_once);
	run("put back", test_put_back);
	run("remap", test_remap);
	run("clone", test_clone);
	run("random faults over 1 GiB", test_random_faults);
	run("page by page against a plain array", test_page_by_page);
	run("16 TiB sparse mapping, forked", test_huge_sparse);
	printf("%s\n", failures ? "FAILED" : "lazy model: all checks passed");
	return failures ? 1 : 0;
}
