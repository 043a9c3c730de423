/*
 * The lazy model of one task: which pages are still to be delivered, and
 * where their data was at dump time.
 *
 * A task's lazy memory is a sorted array of regions, each a stretch of lazy
 * runs of one VMA (runs a few pages apart share a region) with a bitmap of
 * its pages still to deliver.  A fault is a binary search over the regions
 * plus a look at a few bits, so its cost does not grow with how fragmented
 * delivery has made the model (a range list that splits on every fault
 * would).  Memory follows the lazy pages, not the address space: a 16 TiB
 * reservation with four lazy pages costs a region or four, and a region is
 * freed when its last page is taken.  Background delivery walks the bitmaps
 * with a cursor.
 *
 * Addresses: start/end are where the region is now in the task (they move
 * with mremap); img_start is where it was at dump time, the address the
 * page source knows.
 */
#ifndef CRIU_LAZY_LAZY_MODEL_H
#define CRIU_LAZY_LAZY_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LAZY_PAGE_SIZE 4096ULL

struct lazy_region {
	uint64_t start, end;	/* run-time [start, end), page aligned */
	uint64_t img_start;	/* dump-time address of start */
	uint64_t *pending;	/* bit i: page start + i*4096 still to deliver */
	uint64_t nr_pending;	/* never 0: an empty region is freed */
	size_t nr_words;	/* allocated words of pending */
};

struct lazy_model {
	struct lazy_region *regions;	/* sorted by start, never overlapping */
	size_t nr_regions, cap_regions;
	uint64_t nr_pending;		/* sum over regions */
	/* background cursor: next page to look at */
	size_t cursor_region;
	uint64_t cursor_page;
};

/* Lazy runs at most this many pages apart in one VMA share a region. */
#define LAZY_MODEL_JOIN_PAGES 64

/* A run of pages taken out of the model, to be copied in one go. */
struct lazy_span {
	uint64_t start;		/* run-time address */
	uint64_t img_start;	/* dump-time address */
	uint64_t nr_pages;
};

void lazy_model_init(struct lazy_model *m);
void lazy_model_free(struct lazy_model *m);

/*
 * Loading: nr_pages pending pages at start, which were at img_start at dump
 * time.  Runs come in ascending order and do not overlap; new_vma says that
 * this run is in another VMA than the one before (a region never crosses a
 * VMA: a copy cannot).
 */
int lazy_model_add_run(struct lazy_model *m, uint64_t start, uint64_t nr_pages,
		       uint64_t img_start, bool new_vma);

/* Is the page at run-time addr still to be delivered? */
bool lazy_model_is_pending(const struct lazy_model *m, uint64_t addr);

/*
 * Fault: take the page at addr (rounded down) and its pending neighbours
 * inside the aligned window of window_pages pages around it, as one
 * contiguous span.  Returns true and fills *span if the page was pending.
 */
bool lazy_model_take_fault(struct lazy_model *m, uint64_t addr, uint64_t window_pages,
			   struct lazy_span *span);

/*
 * Prefetch: the run-time address of dump-time page img if it is still
 * pending (*hint: the region index to look at first, updated).
 */
bool lazy_model_find_img(const struct lazy_model *m, uint64_t img, size_t *hint, uint64_t *addr);
/* Take [addr, +nr_pages) out as span if every page of it is pending in one region. */
bool lazy_model_take_range(struct lazy_model *m, uint64_t addr, uint64_t nr_pages,
			   struct lazy_span *span);

/* Background: take the next contiguous pending run, at most max_pages. */
bool lazy_model_take_next(struct lazy_model *m, uint64_t max_pages, struct lazy_span *span);

/*
 * Give a span back (its copy could not be done now and will be retried, or
 * a child inherits what its parent had in flight): its pages are pending
 * again, in a region of their own if none holds them any more.
 */
int lazy_model_put_back(struct lazy_model *m, const struct lazy_span *span);

/* REMOVE / UNMAP: nothing in [start, end) is to be delivered any more. */
void lazy_model_drop(struct lazy_model *m, uint64_t start, uint64_t end);

/*
 * REMAP: what was at [from, from+len) is now at [to, to+len); pages pending
 * at the destination are gone (added to *dropped).
 */
int lazy_model_remap(struct lazy_model *m, uint64_t from, uint64_t to, uint64_t len,
		     uint64_t *dropped);

/* FORK: dst becomes a copy of what src still has pending (nothing more). */
int lazy_model_clone(struct lazy_model *dst, const struct lazy_model *src);

/* The lowest page address at or above addr inside no region. */
uint64_t lazy_model_free_address(const struct lazy_model *m, uint64_t addr);

/* Bytes of memory the model holds (the tests measure it). */
size_t lazy_model_footprint(const struct lazy_model *m);

#endif
