#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "restore/layout.h"

#define PAGE 4096ull

static int range_cmp(const void *a, const void *b)
{
	const struct layout_range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

int layout_find_hole(const struct layout_range *busy, size_t nr_busy, uint64_t size,
		     uint64_t gap, uint64_t lo, uint64_t hi, uint64_t *addr)
{
	struct layout_range *m;
	size_t nr = 0;
	int ret = -ENOMEM;

	size = (size + PAGE - 1) & ~(PAGE - 1);
	if (!size || lo >= hi || size > hi - lo)
		return -ENOMEM;
	m = malloc((nr_busy + 1) * sizeof(*m));
	if (!m)
		return -ENOMEM;

	/* widen every busy range by @gap, sort, merge the overlapping ones */
	for (size_t i = 0; i < nr_busy; i++) {
		if (busy[i].end <= busy[i].start)
			continue;
		m[nr].start = busy[i].start > gap ? busy[i].start - gap : 0;
		m[nr].end = busy[i].end + gap < busy[i].end ? UINT64_MAX : busy[i].end + gap;
		nr++;
	}
	qsort(m, nr, sizeof(*m), range_cmp);
	if (nr) {
		size_t k = 0;

		for (size_t i = 1; i < nr; i++) {
			if (m[i].start <= m[k].end) {
				if (m[i].end > m[k].end)
					m[k].end = m[i].end;
			} else {
				m[++k] = m[i];
			}
		}
		nr = k + 1;
	}

	/* the free intervals, from the top down: [m[k-1].end, m[k].start) */
	for (size_t k = nr + 1; k-- > 0;) {
		uint64_t from = k ? m[k - 1].end : lo;
		uint64_t to = k < nr ? m[k].start : hi;

		if (from < lo)
			from = lo;
		if (to > hi)
			to = hi;
		if (from >= to)
			continue;
		from = (from + PAGE - 1) & ~(PAGE - 1);	/* from < hi: no overflow */
		to &= ~(PAGE - 1);
		if (to > from && to - from >= size) {
			*addr = to - size;
			ret = 0;
			break;
		}
	}
	free(m);
	return ret;
}

int layout_vdso_match(const struct layout_range *ours, size_t nr_ours,
		      const struct layout_range *dumped, size_t nr_dumped,
		      char *why, size_t why_len)
{
	if (nr_ours != nr_dumped) {
		snprintf(why, why_len, "the dump has %zu vdso/vvar mappings, this kernel %zu",
			 nr_dumped, nr_ours);
		return -EINVAL;
	}
	for (size_t i = 0; i < nr_ours; i++) {
		uint64_t our_len = ours[i].end - ours[i].start;
		uint64_t dump_len = dumped[i].end - dumped[i].start;

		if (our_len != dump_len) {
			snprintf(why, why_len,
				 "vdso/vvar mapping %zu is %llu KiB in the dump, %llu KiB here",
				 i, (unsigned long long)dump_len >> 10,
				 (unsigned long long)our_len >> 10);
			return -EINVAL;
		}
		if (ours[i].start - ours[0].start != dumped[i].start - dumped[0].start) {
			snprintf(why, why_len,
				 "vdso/vvar mapping %zu is at +0x%llx in the dump, +0x%llx here", i,
				 (unsigned long long)(dumped[i].start - dumped[0].start),
				 (unsigned long long)(ours[i].start - ours[0].start));
			return -EINVAL;
		}
		if (i && ours[i].start != ours[i - 1].end) {
			snprintf(why, why_len, "our vdso/vvar mappings are not contiguous");
			return -EINVAL;
		}
	}
	return 0;
}
