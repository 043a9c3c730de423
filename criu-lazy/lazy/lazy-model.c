#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lazy/lazy-model.h"

#define BITS_PER_WORD 64

static uint64_t region_pages(const struct lazy_region *r)
{
	return (r->end - r->start) / LAZY_PAGE_SIZE;
}

static size_t bitmap_words(uint64_t nr_bits)
{
	return (nr_bits + BITS_PER_WORD - 1) / BITS_PER_WORD;
}

static bool bit_test(const uint64_t *bits, uint64_t i)
{
	return bits[i / BITS_PER_WORD] & (1ULL << (i % BITS_PER_WORD));
}

static void bit_set(uint64_t *bits, uint64_t i)
{
	bits[i / BITS_PER_WORD] |= 1ULL << (i % BITS_PER_WORD);
}

/* Count and change bits [from, to) to value; returns how many changed. */
static uint64_t bits_assign(uint64_t *bits, uint64_t from, uint64_t to, bool value)
{
	uint64_t changed = 0;

	while (from < to) {
		uint64_t w = from / BITS_PER_WORD, off = from % BITS_PER_WORD;
		uint64_t n = BITS_PER_WORD - off;
		uint64_t mask;

		if (n > to - from)
			n = to - from;
		mask = (n == BITS_PER_WORD ? ~0ULL : ((1ULL << n) - 1)) << off;
		if (value) {
			changed += __builtin_popcountll(~bits[w] & mask);
			bits[w] |= mask;
		} else {
			changed += __builtin_popcountll(bits[w] & mask);
			bits[w] &= ~mask;
		}
		from += n;
	}
	return changed;
}

/* First set bit at or after from, or nr_bits if none. */
static uint64_t bits_next_set(const uint64_t *bits, uint64_t from, uint64_t nr_bits)
{
	while (from < nr_bits) {
		uint64_t w = bits[from / BITS_PER_WORD] >> (from % BITS_PER_WORD);

		if (w)
			return from + __builtin_ctzll(w) < nr_bits ? from + __builtin_ctzll(w) : nr_bits;
		from = (from / BITS_PER_WORD + 1) * BITS_PER_WORD;
	}
	return nr_bits;
}

void lazy_model_init(struct lazy_model *m)
{
	memset(m, 0, sizeof(*m));
}

void lazy_model_free(struct lazy_model *m)
{
	for (size_t i = 0; i < m->nr_regions; i++)
		free(m->regions[i].pending);
	free(m->regions);
	lazy_model_init(m);
}

static int regions_reserve(struct lazy_model *m, size_t extra)
{
	struct lazy_region *grown;

	grown = realloc(m->regions, (m->nr_regions + extra) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	m->regions = grown;
	return 0;
}

int lazy_model_add_region(struct lazy_model *m, uint64_t start, uint64_t end, uint64_t img_start)
{
	struct lazy_region *r;

	if (end <= start || (start | end | img_start) % LAZY_PAGE_SIZE)
		return -EINVAL;
	if (m->nr_regions && m->regions[m->nr_regions - 1].end > start)
		return -EINVAL;
	if (regions_reserve(m, 1))
		return -ENOMEM;

	r = &m->regions[m->nr_regions];
	r->start = start;
	r->end = end;
	r->img_start = img_start;
	r->nr_pending = 0;
	r->pending = calloc(bitmap_words((end - start) / LAZY_PAGE_SIZE), sizeof(uint64_t));
	if (!r->pending)
		return -ENOMEM;
	m->nr_regions++;
	return 0;
}

/* Index of the region holding addr, or -1. */
static long region_find(const struct lazy_model *m, uint64_t addr)
{
	size_t lo = 0, hi = m->nr_regions;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct lazy_region *r = &m->regions[mid];

		if (addr < r->start)
			hi = mid;
		else if (addr >= r->end)
			lo = mid + 1;
		else
			return mid;
	}
	return -1;
}

/* Index of the first region ending after addr (may be nr_regions). */
static size_t region_lower_bound(const struct lazy_model *m, uint64_t addr)
{
	size_t lo = 0, hi = m->nr_regions;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->regions[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Set or clear [start, end) across every region it touches. */
static void model_assign(struct lazy_model *m, uint64_t start, uint64_t end, bool value)
{
	for (size_t i = region_lower_bound(m, start); i < m->nr_regions; i++) {
		struct lazy_region *r = &m->regions[i];
		uint64_t from, to, changed;

		if (r->start >= end)
			break;
		from = (start > r->start ? start : r->start) - r->start;
		to = (end < r->end ? end : r->end) - r->start;
		changed = bits_assign(r->pending, from / LAZY_PAGE_SIZE, to / LAZY_PAGE_SIZE, value);
		if (value) {
			r->nr_pending += changed;
			m->nr_pending += changed;
		} else {
			r->nr_pending -= changed;
			m->nr_pending -= changed;
		}
	}
}

void lazy_model_mark_pending(struct lazy_model *m, uint64_t start, uint64_t nr_pages)
{
	model_assign(m, start, start + nr_pages * LAZY_PAGE_SIZE, true);
}

bool lazy_model_is_pending(const struct lazy_model *m, uint64_t addr)
{
	long i = region_find(m, addr);

	if (i < 0)
		return false;
	return bit_test(m->regions[i].pending, (addr - m->regions[i].start) / LAZY_PAGE_SIZE);
}

static void take_range(struct lazy_model *m, struct lazy_region *r, uint64_t lo, uint64_t hi,
		       struct lazy_span *span)
{
	uint64_t n = hi - lo;

	bits_assign(r->pending, lo, hi, false);
	r->nr_pending -= n;
	m->nr_pending -= n;
	span->start = r->start + lo * LAZY_PAGE_SIZE;
	span->img_start = r->img_start + lo * LAZY_PAGE_SIZE;
	span->nr_pages = n;
}

bool lazy_model_take_fault(struct lazy_model *m, uint64_t addr, uint64_t window_pages,
			   struct lazy_span *span)
{
	struct lazy_region *r;
	uint64_t page, wlo, whi, lo, hi;
	long i;

	addr &= ~(LAZY_PAGE_SIZE - 1);
	i = region_find(m, addr);
	if (i < 0)
		return false;
	r = &m->regions[i];
	page = (addr - r->start) / LAZY_PAGE_SIZE;
	if (!bit_test(r->pending, page))
		return false;

	/* the aligned window around the fault, clipped to the region */
	if (!window_pages)
		window_pages = 1;
	wlo = (addr / LAZY_PAGE_SIZE) / window_pages * window_pages * LAZY_PAGE_SIZE;
	whi = wlo + window_pages * LAZY_PAGE_SIZE;
	wlo = wlo > r->start ? (wlo - r->start) / LAZY_PAGE_SIZE : 0;
	whi = whi < r->end ? (whi - r->start) / LAZY_PAGE_SIZE : region_pages(r);

	lo = page;
	while (lo > wlo && bit_test(r->pending, lo - 1))
		lo--;
	hi = page + 1;
	while (hi < whi && bit_test(r->pending, hi))
		hi++;
	take_range(m, r, lo, hi, span);
	return true;
}

bool lazy_model_take_next(struct lazy_model *m, uint64_t max_pages, struct lazy_span *span)
{
	size_t scanned;

	if (!m->nr_pending || !max_pages)
		return false;

	/* Every region once, starting at the cursor and wrapping around. */
	for (scanned = 0; scanned <= m->nr_regions; scanned++) {
		struct lazy_region *r;
		uint64_t first, last, n;

		if (m->cursor_region >= m->nr_regions) {
			m->cursor_region = 0;
			m->cursor_page = 0;
		}
		r = &m->regions[m->cursor_region];
		n = region_pages(r);
		first = r->nr_pending ? bits_next_set(r->pending, m->cursor_page, n) : n;
		if (first == n) {
			m->cursor_region++;
			m->cursor_page = 0;
			continue;
		}
		last = first + 1;
		while (last < n && last - first < max_pages && bit_test(r->pending, last))
			last++;
		take_range(m, r, first, last, span);
		m->cursor_page = last;
		return true;
	}
	return false;
}

void lazy_model_put_back(struct lazy_model *m, const struct lazy_span *span)
{
	long i = region_find(m, span->start);

	model_assign(m, span->start, span->start + span->nr_pages * LAZY_PAGE_SIZE, true);
	/* the background walk must see these pages again */
	if (i >= 0 && ((size_t)i < m->cursor_region ||
		       ((size_t)i == m->cursor_region &&
			(span->start - m->regions[i].start) / LAZY_PAGE_SIZE < m->cursor_page))) {
		m->cursor_region = i;
		m->cursor_page = (span->start - m->regions[i].start) / LAZY_PAGE_SIZE;
	}
}

void lazy_model_drop(struct lazy_model *m, uint64_t start, uint64_t end)
{
	model_assign(m, start & ~(LAZY_PAGE_SIZE - 1),
		     (end + LAZY_PAGE_SIZE - 1) & ~(LAZY_PAGE_SIZE - 1), false);
}

/* Cut region i in two at addr (strictly inside it). */
static int region_split(struct lazy_model *m, size_t i, uint64_t addr)
{
	struct lazy_region *r, *right;
	uint64_t cut, n, k;
	uint64_t *left_bits, *right_bits;

	if (regions_reserve(m, 1))
		return -ENOMEM;
	r = &m->regions[i];
	n = region_pages(r);
	cut = (addr - r->start) / LAZY_PAGE_SIZE;

	left_bits = calloc(bitmap_words(cut), sizeof(uint64_t));
	right_bits = calloc(bitmap_words(n - cut), sizeof(uint64_t));
	if (!left_bits || !right_bits) {
		free(left_bits);
		free(right_bits);
		return -ENOMEM;
	}
	memmove(&m->regions[i + 2], &m->regions[i + 1],
		(m->nr_regions - i - 1) * sizeof(*r));
	m->nr_regions++;
	right = &m->regions[i + 1];

	right->start = addr;
	right->end = r->end;
	right->img_start = r->img_start + (addr - r->start);
	right->nr_pending = 0;
	r->end = addr;
	r->nr_pending = 0;
	for (k = 0; k < n; k++) {
		if (!bit_test(r->pending, k))
			continue;
		if (k < cut) {
			bit_set(left_bits, k);
			r->nr_pending++;
		} else {
			bit_set(right_bits, k - cut);
			right->nr_pending++;
		}
	}
	free(r->pending);
	r->pending = left_bits;
	right->pending = right_bits;
	return 0;
}

static int region_cmp(const void *a, const void *b)
{
	const struct lazy_region *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

static void region_remove(struct lazy_model *m, size_t i)
{
	m->nr_pending -= m->regions[i].nr_pending;
	free(m->regions[i].pending);
	memmove(&m->regions[i], &m->regions[i + 1], (m->nr_regions - i - 1) * sizeof(m->regions[0]));
	m->nr_regions--;
}

int lazy_model_remap(struct lazy_model *m, uint64_t from, uint64_t to, uint64_t len,
		     uint64_t *dropped)
{
	uint64_t end;
	size_t i;
	long at;
	int ret;

	len = (len + LAZY_PAGE_SIZE - 1) & ~(LAZY_PAGE_SIZE - 1);
	end = from + len;

	/* cut regions at the edges of the moved range */
	at = region_find(m, from);
	if (at >= 0 && m->regions[at].start < from && (ret = region_split(m, at, from)))
		return ret;
	at = region_find(m, end);
	if (at >= 0 && m->regions[at].start < end && (ret = region_split(m, at, end)))
		return ret;

	/* whatever was left at the destination is gone (the kernel unmapped it) */
	for (i = 0; i < m->nr_regions;) {
		struct lazy_region *r = &m->regions[i];
		bool moving = r->start >= from && r->end <= end;

		if (!moving && r->start < to + len && r->end > to) {
			if (r->start < to && (ret = region_split(m, i, to)))
				return ret;
			if (m->regions[i].start < to) {
				i++;
				continue;
			}
			if (m->regions[i].end > to + len && (ret = region_split(m, i, to + len)))
				return ret;
			*dropped += m->regions[i].nr_pending;
			region_remove(m, i);
			continue;
		}
		i++;
	}

	for (i = 0; i < m->nr_regions; i++) {
		struct lazy_region *r = &m->regions[i];

		if (r->start >= from && r->end <= end) {
			r->start = r->start - from + to;
			r->end = r->end - from + to;
		}
	}
	qsort(m->regions, m->nr_regions, sizeof(m->regions[0]), region_cmp);
	m->cursor_region = 0;
	m->cursor_page = 0;
	return 0;
}

int lazy_model_clone(struct lazy_model *dst, const struct lazy_model *src)
{
	lazy_model_init(dst);
	for (size_t i = 0; i < src->nr_regions; i++) {
		const struct lazy_region *r = &src->regions[i];
		int ret = lazy_model_add_region(dst, r->start, r->end, r->img_start);

		if (ret) {
			lazy_model_free(dst);
			return ret;
		}
		memcpy(dst->regions[i].pending, r->pending,
		       bitmap_words(region_pages(r)) * sizeof(uint64_t));
		dst->regions[i].nr_pending = r->nr_pending;
		dst->nr_pending += r->nr_pending;
	}
	return 0;
}

uint64_t lazy_model_free_address(const struct lazy_model *m)
{
	uint64_t addr = 0x10000;	/* the default mmap_min_addr */

	for (size_t i = 0; i < m->nr_regions; i++)
		if (addr >= m->regions[i].start && addr < m->regions[i].end)
			addr = m->regions[i].end;
	return addr;
}
