/*
 * The lazy model: loading, faults, background walk, put back and drop.
 * Layout changes (mremap, fork) are in lazy-model-layout.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/array.h"
#include "lazy/lazy-model-int.h"

uint64_t bits_assign(uint64_t *bits, uint64_t from, uint64_t to, bool value)
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

uint64_t bits_next_set(const uint64_t *bits, uint64_t from, uint64_t nr_bits)
{
	while (from < nr_bits) {
		uint64_t w = bits[from / BITS_PER_WORD] >> (from % BITS_PER_WORD);

		if (w)
			return from + __builtin_ctzll(w) < nr_bits ? from + __builtin_ctzll(w) : nr_bits;
		from = (from / BITS_PER_WORD + 1) * BITS_PER_WORD;
	}
	return nr_bits;
}

uint64_t bits_last_set(const uint64_t *bits, uint64_t nr_bits)
{
	uint64_t w = bitmap_words(nr_bits);

	while (w--) {
		uint64_t word = bits[w];

		if (w == nr_bits / BITS_PER_WORD && nr_bits % BITS_PER_WORD)
			word &= (1ULL << (nr_bits % BITS_PER_WORD)) - 1;
		if (word)
			return w * BITS_PER_WORD + 63 - __builtin_clzll(word);
	}
	return 0;
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

/* Room for nr_pages bits in r's bitmap (grown by doubling, new words clear). */
static int region_reserve_bits(struct lazy_region *r, uint64_t nr_pages)
{
	size_t old = r->nr_words;

	if (ARRAY_GROW(r->pending, r->nr_words, bitmap_words(nr_pages), 1))
		return -ENOMEM;
	memset(r->pending + old, 0, (r->nr_words - old) * sizeof(uint64_t));
	return 0;
}

int region_insert(struct lazy_model *m, size_t at, uint64_t start, uint64_t end,
		  uint64_t img_start)
{
	struct lazy_region r = { .start = start, .end = end, .img_start = img_start };

	if (ARRAY_GROW(m->regions, m->cap_regions, m->nr_regions + 1, 4))
		return -ENOMEM;
	if (region_reserve_bits(&r, region_pages(&r)))
		return -ENOMEM;
	memmove(&m->regions[at + 1], &m->regions[at], (m->nr_regions - at) * sizeof(r));
	m->regions[at] = r;
	m->nr_regions++;
	if (at <= m->cursor_region && m->cursor_region < m->nr_regions - 1)
		m->cursor_region++;
	return 0;
}

void region_remove(struct lazy_model *m, size_t i)
{
	m->nr_pending -= m->regions[i].nr_pending;
	free(m->regions[i].pending);
	memmove(&m->regions[i], &m->regions[i + 1], (m->nr_regions - i - 1) * sizeof(m->regions[0]));
	m->nr_regions--;
	if (i < m->cursor_region)
		m->cursor_region--;
	else if (i == m->cursor_region)
		m->cursor_page = 0;
	/* a model that lost all its regions gives its array back */
	if (!m->nr_regions) {
		free(m->regions);
		m->regions = NULL;
		m->cap_regions = 0;
	}
}

void region_set(struct lazy_model *m, size_t i, uint64_t from, uint64_t to)
{
	uint64_t changed = bits_assign(m->regions[i].pending, from, to, true);

	m->regions[i].nr_pending += changed;
	m->nr_pending += changed;
}

int lazy_model_add_run(struct lazy_model *m, uint64_t start, uint64_t nr_pages,
		       uint64_t img_start, bool new_vma)
{
	uint64_t end = start + nr_pages * LAZY_PAGE_SIZE;
	struct lazy_region *last = m->nr_regions ? &m->regions[m->nr_regions - 1] : NULL;
	int ret;

	if (!nr_pages || (start | img_start) % LAZY_PAGE_SIZE || end < start)
		return -EINVAL;
	if (last && last->end > start)
		return -EINVAL;
	if (!last || new_vma || start - last->end > LAZY_MODEL_JOIN_PAGES * LAZY_PAGE_SIZE ||
	    start - last->start != img_start - last->img_start) {
		ret = region_insert(m, m->nr_regions, start, end, img_start);
		if (ret)
			return ret;
	} else {
		if (region_reserve_bits(last, (end - last->start) / LAZY_PAGE_SIZE))
			return -ENOMEM;
		last->end = end;
	}
	last = &m->regions[m->nr_regions - 1];
	region_set(m, m->nr_regions - 1, (start - last->start) / LAZY_PAGE_SIZE,
		   (end - last->start) / LAZY_PAGE_SIZE);
	return 0;
}

long region_find(const struct lazy_model *m, uint64_t addr)
{
	size_t i = region_lower_bound(m, addr);

	return i < m->nr_regions && m->regions[i].start <= addr ? (long)i : -1;
}

size_t region_lower_bound(const struct lazy_model *m, uint64_t addr)
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

bool lazy_model_is_pending(const struct lazy_model *m, uint64_t addr)
{
	long i = region_find(m, addr);

	if (i < 0)
		return false;
	return bit_test(m->regions[i].pending, (addr - m->regions[i].start) / LAZY_PAGE_SIZE);
}

/* Take pages [lo, hi) of region i (all pending) out as span. */
static void take_range(struct lazy_model *m, size_t i, uint64_t lo, uint64_t hi,
		       struct lazy_span *span)
{
	struct lazy_region *r = &m->regions[i];
	uint64_t n = hi - lo;

	bits_assign(r->pending, lo, hi, false);
	r->nr_pending -= n;
	m->nr_pending -= n;
	span->start = r->start + lo * LAZY_PAGE_SIZE;
	span->img_start = r->img_start + lo * LAZY_PAGE_SIZE;
	span->nr_pages = n;
	if (!r->nr_pending)
		region_remove(m, i);
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
	take_range(m, i, lo, hi, span);
	return true;
}

bool lazy_model_take_next(struct lazy_model *m, uint64_t max_pages, struct lazy_span *span)
{
	if (!m->nr_pending || !max_pages)
		return false;

	/* Every region once, starting at the cursor and wrapping around. */
	for (size_t scanned = 0; scanned <= m->nr_regions; scanned++) {
		struct lazy_region *r;
		uint64_t first, last, n;

		if (m->cursor_region >= m->nr_regions) {
			m->cursor_region = 0;
			m->cursor_page = 0;
		}
		r = &m->regions[m->cursor_region];
		n = region_pages(r);
		first = bits_next_set(r->pending, m->cursor_page, n);
		if (first == n) {
			m->cursor_region++;
			m->cursor_page = 0;
			continue;
		}
		last = first + 1;
		while (last < n && last - first < max_pages && bit_test(r->pending, last))
			last++;
		m->cursor_page = last;
		take_range(m, m->cursor_region, first, last, span);
		return true;
	}
	return false;
}

static bool region_has_img(const struct lazy_region *r, uint64_t img)
{
	return img >= r->img_start && img - r->img_start < r->end - r->start;
}

bool lazy_model_find_img(const struct lazy_model *m, uint64_t img, size_t *hint, uint64_t *addr)
{
	size_t i = *hint;

	img &= ~(LAZY_PAGE_SIZE - 1);
	/* a working set walks a region or two at a time: the last one, its next, then all */
	if (i >= m->nr_regions || !region_has_img(&m->regions[i], img)) {
		if (i + 1 < m->nr_regions && region_has_img(&m->regions[i + 1], img)) {
			i++;
		} else {
			for (i = 0; i < m->nr_regions; i++)
				if (region_has_img(&m->regions[i], img))
					break;
			if (i == m->nr_regions)
				return false;
		}
	}
	*hint = i;
	if (!bit_test(m->regions[i].pending, (img - m->regions[i].img_start) / LAZY_PAGE_SIZE))
		return false;
	*addr = m->regions[i].start + (img - m->regions[i].img_start);
	return true;
}

bool lazy_model_take_range(struct lazy_model *m, uint64_t addr, uint64_t nr_pages,
			   struct lazy_span *span)
{
	long i = region_find(m, addr);
	uint64_t lo;

	if (i < 0 || !nr_pages || addr % LAZY_PAGE_SIZE)
		return false;
	lo = (addr - m->regions[i].start) / LAZY_PAGE_SIZE;
	if (lo + nr_pages > region_pages(&m->regions[i]))
		return false;
	for (uint64_t p = lo; p < lo + nr_pages; p++)
		if (!bit_test(m->regions[i].pending, p))
			return false;
	take_range(m, i, lo, lo + nr_pages, span);
	return true;
}

/* The background walk must see page `page` of region i again. */
static void cursor_rewind(struct lazy_model *m, size_t i, uint64_t page)
{
	if (i < m->cursor_region || (i == m->cursor_region && page < m->cursor_page)) {
		m->cursor_region = i;
		m->cursor_page = page;
	}
}

int lazy_model_put_back(struct lazy_model *m, const struct lazy_span *span)
{
	uint64_t cur = span->start, end = span->start + span->nr_pages * LAZY_PAGE_SIZE;

	while (cur < end) {
		size_t i = region_lower_bound(m, cur);
		uint64_t img = span->img_start + (cur - span->start), hi;
		struct lazy_region *r;

		if (i == m->nr_regions || m->regions[i].start > cur) {
			/* no region holds cur any more: one of its own up to the next */
			hi = i < m->nr_regions && m->regions[i].start < end ? m->regions[i].start : end;
			if (region_insert(m, i, cur, hi, img))
				return -ENOMEM;
		}
		r = &m->regions[i];
		if (r->img_start + (cur - r->start) != img)
			return -EINVAL;		/* not where these pages came from */
		hi = r->end < end ? r->end : end;
		region_set(m, i, (cur - r->start) / LAZY_PAGE_SIZE, (hi - r->start) / LAZY_PAGE_SIZE);
		cursor_rewind(m, i, (cur - r->start) / LAZY_PAGE_SIZE);
		cur = hi;
	}
	return 0;
}

void lazy_model_drop(struct lazy_model *m, uint64_t start, uint64_t end)
{
	size_t i;

	start &= ~(LAZY_PAGE_SIZE - 1);
	end = (end + LAZY_PAGE_SIZE - 1) & ~(LAZY_PAGE_SIZE - 1);
	for (i = region_lower_bound(m, start); i < m->nr_regions && m->regions[i].start < end;) {
		struct lazy_region *r = &m->regions[i];
		uint64_t from = (start > r->start ? start : r->start) - r->start;
		uint64_t to = (end < r->end ? end : r->end) - r->start;
		uint64_t changed = bits_assign(r->pending, from / LAZY_PAGE_SIZE, to / LAZY_PAGE_SIZE,
					       false);

		r->nr_pending -= changed;
		m->nr_pending -= changed;
		if (!r->nr_pending)
			region_remove(m, i);
		else
			i++;
	}
}

uint64_t lazy_model_free_address(const struct lazy_model *m, uint64_t addr)
{
	long i;

	while ((i = region_find(m, addr)) >= 0)
		addr = m->regions[i].end;
	return addr;
}

size_t lazy_model_footprint(const struct lazy_model *m)
{
	size_t bytes = sizeof(*m) + m->cap_regions * sizeof(m->regions[0]);

	for (size_t i = 0; i < m->nr_regions; i++)
		bytes += m->regions[i].nr_words * sizeof(uint64_t);
	return bytes;
}
