/* Runs of lazy pages, shared by both stores (see ps-store.h). */
#include <errno.h>
#include <stdlib.h>

#include "images/pagemap.h"
#include "pageserver/ps-proto.h"
#include "pageserver/ps-store.h"

const struct ps_run *ps_runs_find(const struct ps_run *runs, size_t nr, uint64_t vaddr)
{
	size_t lo = 0, hi = nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (vaddr < runs[mid].vaddr)
			hi = mid;
		else if (vaddr >= runs[mid].vaddr + runs[mid].nr_pages * PS_PAGE_SIZE)
			lo = mid + 1;
		else
			return &runs[mid];
	}
	return NULL;
}

int ps_runs_index(const struct pagemap_index *pi, uint32_t flags, struct ps_run **runs,
		  size_t *nr, uint64_t *nr_pages)
{
	struct ps_run *v = calloc(pi->nr_runs ?: 1, sizeof(*v));
	size_t n = 0;

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < pi->nr_runs; i++) {
		const struct page_run *r = &pi->runs[i];
		struct ps_run *last = n ? &v[n - 1] : NULL;

		if ((r->flags & flags) != flags)
			continue;
		if (nr_pages)
			*nr_pages += r->nr_pages;
		if (last && last->vaddr + last->nr_pages * PAGEMAP_PAGE_SIZE == r->vaddr &&
		    last->data_off + last->nr_pages * PAGEMAP_PAGE_SIZE == r->pages_off) {
			last->nr_pages += r->nr_pages;
			continue;
		}
		v[n++] = (struct ps_run){ r->vaddr, r->nr_pages, r->pages_off };
	}
	*runs = v;
	*nr = n;
	return 0;
}
