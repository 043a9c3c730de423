/*
 * Lazy shared memory, inside: one shmem object the daemon fills
 * (lazy-shmem.c fills it, lazy-shmem-load.c finds and opens it).
 */
#ifndef CRIU_LAZY_LAZY_SHMEM_INT_H
#define CRIU_LAZY_LAZY_SHMEM_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "images/pagemap.h"
#include "lazy/lazy-model.h"
#include "lazy/lazy-shmem.h"

#define PS		((uint64_t)LAZY_PAGE_SIZE)

struct lazy_shm_obj {
	uint64_t shmid;
	uint64_t nr_pages;		/* the object's size */
	uint8_t *map;			/* our mapping, registered with uffd */
	int fd, uffd;
	uint64_t *pending;		/* dumped pages not in the object yet */
	uint64_t nr_pending;
	struct pagemap_index pi;	/* pagemap-shmem-<shmid>.img */
	uint8_t *pages;			/* its pages file, mapped */
	long stats_idx;			/* counted with the first process mapping it */
	uint64_t cursor;		/* background: where to look next */
	struct lazy_shm_obj *next;

	/* pages from the page source (lazy-shmem-remote.c), not o->pages */
	bool remote;
	uint64_t *inflight;		/* pending pages asked for */
	uint64_t nr_inflight;
	unsigned int bg_out;		/* background requests out */
	uint64_t *pf;			/* of the pages in flight, asked by a working set */
	uint64_t *pf_fill;		/* ... and of those, not in its record (a window's rest) */
	struct shm_waiter *waiters;	/* faults waiting for their page */
	size_t nr_waiters, cap_waiters;
	uint64_t orphan_ns;		/* lazy-watchdog.c: first seen with one left behind */
};

/* A task's thread faulted at addr, page p of the object, at t_ns. */
struct shm_waiter {
	struct lazy_task *t;
	uint64_t addr, p, t_ns;
};

static inline bool bit_test(const uint64_t *bits, uint64_t p)
{
	return (bits[p / 64] >> (p % 64)) & 1;
}

static inline void bit_clear(uint64_t *bits, uint64_t p)
{
	bits[p / 64] &= ~(1ULL << (p % 64));
}

static inline void bit_set(uint64_t *bits, uint64_t p)
{
	bits[p / 64] |= 1ULL << (p % 64);
}

static inline bool is_pending(const struct lazy_shm_obj *o, uint64_t p)
{
	return p < o->nr_pages && bit_test(o->pending, p);
}

/* pending and not asked for yet (remote) */
static inline bool is_askable(const struct lazy_shm_obj *o, uint64_t p)
{
	return is_pending(o, p) && !bit_test(o->inflight, p);
}

/* lazy-shmem.c */
void shm_count(struct lazy_daemon *d, const struct lazy_shm_obj *o, uint64_t n, bool bg);
/* n pending pages of o were in the object before our copy (EEXIST, the
 * first at offset first): lost, logged */
void shm_count_lost(struct lazy_daemon *d, const struct lazy_shm_obj *o, uint64_t n,
		    uint64_t first);
/* n pages of o installed by a working set, filled of them not in its record */
void shm_count_prefetch(struct lazy_daemon *d, const struct lazy_shm_obj *o, uint64_t n,
			uint64_t filled);

/* lazy-shmem-remote.c */
int shm_remote_fault(struct lazy_daemon *d, struct lazy_task *t, struct lazy_shm_obj *o,
		     uint64_t addr, uint64_t p, uint64_t t_ns);
/* Fetch the pending pages [lo, hi) of o and wait until they are in (REMOVE). */
int shm_remote_fill(struct lazy_daemon *d, struct lazy_shm_obj *o, uint64_t lo, uint64_t hi);
bool shm_remote_can_background(const struct lazy_shm_obj *o);
/* Wake the tasks waiting for a page of [p, p + n). */
void shm_wake_waiters(struct lazy_daemon *d, struct lazy_shm_obj *o, uint64_t p, uint64_t n);
int shm_remote_background(struct lazy_daemon *d, struct lazy_shm_obj *o, uint64_t max_pages);
/* Ask for [p, p + n) of o, all of it askable; pf: for that task's working set. */
int shm_remote_ask(struct lazy_daemon *d, struct lazy_shm_obj *o, uint64_t p, uint64_t n,
		   bool urgent, struct lazy_task *pf);

/* lazy-shmem-prefetch.c */
/* The working set's window [w, w + LAZY_FAULT_WINDOW_PAGES) of o, seen through v, from a page server. */
int shm_prefetch_remote(struct lazy_daemon *d, struct lazy_task *t, const struct lazy_shm_vma *v,
			uint64_t w, struct lazy_shm_pf_run *run);

#endif
