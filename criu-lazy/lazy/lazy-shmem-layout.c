/*
 * Where a task maps the lazy shmem objects: its VMAs of them, kept in step
 * with the task's userfaultfd events (UNMAP cuts, REMAP moves, FORK
 * copies), so that a fault address names the right page of the right
 * object.  A fault in one of these VMAs is never answered with a zero page
 * unless that page of the object was never dumped: guessing wrong here
 * would be wrong memory for every process that shares the object.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/array.h"
#include "lazy/lazy-shmem.h"

struct lazy_shm_vma *lazy_shm_find(const struct lazy_shm_map *m, uint64_t addr)
{
	size_t lo = 0, hi = m->nr;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (addr < m->vmas[mid].start)
			hi = mid;
		else if (addr >= m->vmas[mid].end)
			lo = mid + 1;
		else
			return &m->vmas[mid];
	}
	return NULL;
}

struct lazy_shm_vma *lazy_shm_find_img(const struct lazy_shm_map *m, uint64_t img)
{
	for (size_t i = 0; i < m->nr; i++)
		if (img >= m->vmas[i].img_start &&
		    img < m->vmas[i].img_start + (m->vmas[i].end - m->vmas[i].start))
			return &m->vmas[i];
	return NULL;
}

/* Insert keeping the order; the caller makes sure nothing overlaps. */
int lazy_shm_add(struct lazy_shm_map *m, const struct lazy_shm_vma *v)
{
	size_t i;

	if (v->start >= v->end)
		return 0;
	if (ARRAY_GROW(m->vmas, m->cap, m->nr + 1, 4))
		return -ENOMEM;
	for (i = m->nr; i > 0 && m->vmas[i - 1].start > v->start; i--)
		m->vmas[i] = m->vmas[i - 1];
	m->vmas[i] = *v;
	m->nr++;
	return 0;
}

/* Take [start, end) out; the parts outside it stay.  *out gets what was
 * inside (if out is not NULL), with its addresses unchanged. */
static int cut(struct lazy_shm_map *m, uint64_t start, uint64_t end, struct lazy_shm_map *out)
{
	for (size_t i = 0; i < m->nr; i++) {
		struct lazy_shm_vma v = m->vmas[i], in;
		int ret = 0;

		if (v.end <= start || v.start >= end)
			continue;
		in = v;
		in.start = v.start > start ? v.start : start;
		in.end = v.end < end ? v.end : end;
		in.pgoff = v.pgoff + (in.start - v.start);
		in.img_start = v.img_start + (in.start - v.start);
		if (out && lazy_shm_add(out, &in))
			return -ENOMEM;
		/* drop it, then put back what lies outside [start, end) */
		memmove(&m->vmas[i], &m->vmas[i + 1], (m->nr - i - 1) * sizeof(v));
		m->nr--;
		if (v.start < start) {
			struct lazy_shm_vma lo = v;

			lo.end = start;
			ret = lazy_shm_add(m, &lo);
		}
		if (!ret && v.end > end) {
			struct lazy_shm_vma hi = v;

			hi.start = end;
			hi.pgoff = v.pgoff + (end - v.start);
			hi.img_start = v.img_start + (end - v.start);
			ret = lazy_shm_add(m, &hi);
		}
		if (ret)
			return ret;
		i = (size_t)-1;		/* the array changed: from the start again */
	}
	return 0;
}

int lazy_shm_cut(struct lazy_shm_map *m, uint64_t start, uint64_t end)
{
	return cut(m, start, end, NULL);
}

int lazy_shm_remap(struct lazy_shm_map *m, uint64_t from, uint64_t to, uint64_t len)
{
	struct lazy_shm_map moved = { 0 };
	int ret;

	ret = cut(m, from, from + len, &moved);
	/* whatever was at the destination is gone (its UNMAP came first, normally) */
	ret = ret ?: cut(m, to, to + len, NULL);
	for (size_t i = 0; i < moved.nr && !ret; i++) {
		moved.vmas[i].start = moved.vmas[i].start - from + to;
		moved.vmas[i].end = moved.vmas[i].end - from + to;
		ret = lazy_shm_add(m, &moved.vmas[i]);
	}
	lazy_shm_free(&moved);
	return ret;
}

int lazy_shm_clone(struct lazy_shm_map *dst, const struct lazy_shm_map *src)
{
	memset(dst, 0, sizeof(*dst));
	if (!src->nr)
		return 0;
	dst->vmas = malloc(src->nr * sizeof(*dst->vmas));
	if (!dst->vmas)
		return -ENOMEM;
	memcpy(dst->vmas, src->vmas, src->nr * sizeof(*dst->vmas));
	dst->nr = dst->cap = src->nr;
	return 0;
}

void lazy_shm_free(struct lazy_shm_map *m)
{
	free(m->vmas);
	memset(m, 0, sizeof(*m));
}

uint64_t lazy_shm_free_address(const struct lazy_shm_map *m, uint64_t addr)
{
	const struct lazy_shm_vma *v;

	while ((v = lazy_shm_find(m, addr)))
		addr = v->end;
	return addr;
}
