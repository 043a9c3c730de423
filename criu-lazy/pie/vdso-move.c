/*
 * Moving the vdso group ([vvar], [vvar_vclock], [vdso]) onto the dumped
 * address.  The vdso code finds its data pages at a fixed distance, so
 * every part moves by the same delta; the restore process checked that the
 * dumped parts have our sizes and relative positions.  mremap() refuses an
 * overlapping source and destination, so when our span overlaps the dumped
 * one the parts go through a scratch area in the blob region first.
 */
#include <stdint.h>

#include "restorer.h"
#include "syscalls.h"

#define MREMAP_MAYMOVE	1
#define MREMAP_FIXED	2

static int move_parts(struct restorer_args *a, uint64_t from, uint64_t to)
{
	struct rst_vdso *v = &a->vdso;
	uint64_t base = v->parts[0].start;

	for (uint32_t i = 0; i < v->nr_parts; i++) {
		uint64_t len = v->parts[i].end - v->parts[i].start;
		uint64_t src = from + (v->parts[i].start - base);
		uint64_t dst = to + (v->parts[i].start - base);
		long ret = sys_mremap(src, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, dst);

		if ((uint64_t)ret != dst)
			return rst_fail(a, RST_STEP_VDSO, ret, src);
	}
	return 0;
}

int rst_vdso_move(struct restorer_args *a)
{
	struct rst_vdso *v = &a->vdso;
	uint64_t start, len;

	if (!v->nr_parts || !v->target)
		return 0;
	start = v->parts[0].start;
	len = v->parts[v->nr_parts - 1].end - start;
	if (v->target == start)
		return 0;

	if (v->target < start + len && start < v->target + len) {
		if (move_parts(a, start, v->scratch))
			return -1;
		start = v->scratch;
	}
	return move_parts(a, start, v->target);
}
