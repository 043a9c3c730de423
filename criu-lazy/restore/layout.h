/*
 * Address-space arithmetic for the restore, with no I/O so it can be unit
 * tested: find a hole that is free in several layouts at once, and check
 * that the vdso group of the dump has the shape of ours.
 */
#ifndef CRIU_LAZY_RESTORE_LAYOUT_H
#define CRIU_LAZY_RESTORE_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

struct layout_range {
	uint64_t start, end;
};

/*
 * The highest @size-byte range inside [lo, hi) that stays at least @gap
 * bytes away from every busy range (any order, may overlap).  @size and
 * the result are page-aligned.  0 and *addr set, or -ENOMEM if none fits.
 */
int layout_find_hole(const struct layout_range *busy, size_t nr_busy, uint64_t size,
		     uint64_t gap, uint64_t lo, uint64_t hi, uint64_t *addr);

/*
 * Do the parts of the dumped vdso group (@dumped, ascending) have the sizes
 * and relative positions of ours (@ours, ascending)?  0, or -EINVAL with a
 * reason in @why.
 */
int layout_vdso_match(const struct layout_range *ours, size_t nr_ours,
		      const struct layout_range *dumped, size_t nr_dumped,
		      char *why, size_t why_len);

#endif
