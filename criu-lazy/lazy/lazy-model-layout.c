/*
 * The lazy model when the task's layout changes under it: mremap moves
 * regions (cut at the moved range's edges, their dump-time start kept),
 * fork copies what is still pending.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lazy/lazy-model-int.h"

/* Cut region i in two at addr (strictly inside it). */
static int region_split(struct lazy_model *m, size_t i, uint64_t addr)
{
	struct lazy_region *left, *right;
	uint64_t cut, n, k;
	int ret;

	ret = region_insert(m, i + 1, addr, m->regions[i].end,
			    m->regions[i].img_start + (addr - m->regions[i].start));
	if (ret)
		return ret;
	left = &m->regions[i];
	right = &m->regions[i + 1];
	n = region_pages(left);
	cut = (addr - left->start) / LAZY_PAGE_SIZE;
	for (k = bits_next_set(left->pending, cut, n); k < n; k = bits_next_set(left->pending, k + 1, n))
		right->pending[(k - cut) / BITS_PER_WORD] |= 1ULL << ((k - cut) % BITS_PER_WORD);
	right->nr_pending = bits_assign(left->pending, cut, n, false);
	left->nr_pending -= right->nr_pending;
	left->end = addr;
	return 0;
}

static int region_cmp(const void *a, const void *b)
{
	const struct lazy_region *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Regions left with nothing pending by a split go. */
static void remove_empty(struct lazy_model *m)
{
	for (size_t i = 0; i < m->nr_regions;) {
		if (!m->regions[i].nr_pending)
			region_remove(m, i);
		else
			i++;
	}
}

/* Cut the regions at addr, if one straddles it. */
static int cut_at(struct lazy_model *m, uint64_t addr)
{
	long at = region_find(m, addr);

	if (at >= 0 && m->regions[at].start < addr)
		return region_split(m, at, addr);
	return 0;
}

int lazy_model_remap(struct lazy_model *m, uint64_t from, uint64_t to, uint64_t len,
		     uint64_t *dropped)
{
	uint64_t end, to_end;
	size_t i;
	int ret;

	len = (len + LAZY_PAGE_SIZE - 1) & ~(LAZY_PAGE_SIZE - 1);
	end = from + len;
	to_end = to + len;

	ret = cut_at(m, from) ?: cut_at(m, end);
	if (ret)
		return ret;

	/* whatever was left at the destination is gone (the kernel unmapped it) */
	for (i = 0; i < m->nr_regions;) {
		struct lazy_region *r = &m->regions[i];
		bool moving = r->start >= from && r->end <= end;

		if (moving || r->start >= to_end || r->end <= to) {
			i++;
			continue;
		}
		if (r->start < to) {
			ret = region_split(m, i, to);
			if (ret)
				return ret;
			i++;
			continue;
		}
		if (r->end > to_end && (ret = region_split(m, i, to_end)))
			return ret;
		*dropped += m->regions[i].nr_pending;
		region_remove(m, i);
	}

	for (i = 0; i < m->nr_regions; i++) {
		struct lazy_region *r = &m->regions[i];

		if (r->start >= from && r->end <= end) {
			r->start = r->start - from + to;
			r->end = r->end - from + to;
		}
	}
	remove_empty(m);
	if (m->nr_regions)
		qsort(m->regions, m->nr_regions, sizeof(m->regions[0]), region_cmp);
	m->cursor_region = 0;
	m->cursor_page = 0;
	return 0;
}

/* dst gets src's region r cut to its first and last pending page. */
static int clone_region(struct lazy_model *dst, const struct lazy_region *r)
{
	uint64_t n = region_pages(r), first, last, k;
	struct lazy_region *c;
	int ret;

	first = bits_next_set(r->pending, 0, n);
	last = bits_last_set(r->pending, n);
	ret = region_insert(dst, dst->nr_regions, r->start + first * LAZY_PAGE_SIZE,
			    r->start + (last + 1) * LAZY_PAGE_SIZE,
			    r->img_start + first * LAZY_PAGE_SIZE);
	if (ret)
		return ret;
	c = &dst->regions[dst->nr_regions - 1];
	if (first % BITS_PER_WORD == 0) {
		memcpy(c->pending, r->pending + first / BITS_PER_WORD,
		       bitmap_words(last + 1 - first) * sizeof(uint64_t));
		/* bits past the region in the last word must stay clear */
		bits_assign(c->pending, last + 1 - first, c->nr_words * BITS_PER_WORD, false);
	} else {
		for (k = first; k <= last; k = bits_next_set(r->pending, k + 1, last + 1))
			c->pending[(k - first) / BITS_PER_WORD] |= 1ULL << ((k - first) % BITS_PER_WORD);
	}
	c->nr_pending = r->nr_pending;
	dst->nr_pending += r->nr_pending;
	return 0;
}

int lazy_model_clone(struct lazy_model *dst, const struct lazy_model *src)
{
	lazy_model_init(dst);
	for (size_t i = 0; i < src->nr_regions; i++) {
		int ret = clone_region(dst, &src->regions[i]);

		if (ret) {
			lazy_model_free(dst);
			return ret;
		}
	}
	return 0;
}
