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
};

static inline bool is_pending(const struct lazy_shm_obj *o, uint64_t p)
{
	return p < o->nr_pages && (o->pending[p / 64] >> (p % 64)) & 1;
}

#endif
