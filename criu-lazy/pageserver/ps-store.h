/*
 * What a lazy page server serves: the lazy pages of every process of an
 * image directory, straight from the mmap'ed pages files.
 *
 * Per process, the PE_LAZY|PE_PRESENT runs of its pagemap are merged where
 * they are contiguous both in memory and in the pages file (CRIU splits
 * runs at page-pipe buffer limits, and a GET may span such a split), and a
 * lookup is a binary search that clamps the request at the end of the run.
 */
#ifndef CRIU_LAZY_PAGESERVER_PS_STORE_H
#define CRIU_LAZY_PAGESERVER_PS_STORE_H

#include <stdint.h>
#include <sys/types.h>

#include "images/pagemap.h"

struct ps_run {
	uint64_t vaddr, nr_pages;
	uint64_t pages_off;		/* in the pages file */
};

struct ps_task {
	pid_t pid;
	struct pagemap_index pi;
	void *pages;			/* mapped pages file (NULL if empty) */
	struct ps_run *runs;		/* lazy and present, merged, ascending */
	size_t nr_runs;
	uint64_t nr_pages;		/* pages it can serve */
};

struct ps_store {
	struct ps_task *tasks;
	size_t nr_tasks;
};

/* Load pstree.img and, for each process with a pagemap, its lazy pages. */
int ps_store_load(struct ps_store *s, int dirfd);
void ps_store_free(struct ps_store *s);

enum ps_lookup {
	PS_FOUND = 0,
	PS_NO_TASK,		/* no process with that pid */
	PS_NOT_LAZY,		/* no lazy page at vaddr */
	PS_NOT_PRESENT,		/* lazy, but its data is not in the pages file */
};

/*
 * Where the data of a GET {pid, vaddr, *nr_pages} is: on PS_FOUND, *data
 * points into the mapping and *nr_pages is clamped (1 <= result <= asked)
 * to the end of the lazy run holding vaddr.
 */
enum ps_lookup ps_store_find(const struct ps_store *s, pid_t pid, uint64_t vaddr,
			     uint64_t *nr_pages, const void **data);

#endif
