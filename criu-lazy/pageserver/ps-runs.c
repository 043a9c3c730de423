/* Runs of lazy pages, shared by both stores (see ps-store.h). */
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
