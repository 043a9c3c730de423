/*
 * Prefetch (issue 11, point 2): the working set an earlier restore of the
 * same images recorded is installed first, its first-touched half first,
 * each half in address order, in batches of
 * runs with short gaps filled, while the task already runs.  Faults are
 * served before every batch; background delivery of the rest waits until a
 * task's working set is installed.
 *
 * A page is taken out of the task's model when its batch is requested, as
 * a fault or a background chunk takes it: every page is delivered once,
 * whoever asks first, and what prefetch delivers is counted in
 * pages_prefetched (one more term of the accounting).
 */
#ifndef CRIU_LAZY_LAZY_PREFETCH_H
#define CRIU_LAZY_LAZY_PREFETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lazy/working-set.h"

struct lazy_daemon;
struct lazy_task;

/*
 * A page of the install list: the record's dump-time address and the part
 * of the record it is in.  The part is not in the working-set file (nor
 * needs to be): the file keeps the record in touch order, so it is each
 * entry's position there, worked out when the list is made.
 */
struct pf_entry {
	uint64_t img;
	uint32_t part;			/* 0 .. PF_PARTS - 1, in touch order */
};

struct lazy_prefetch {
	struct pf_entry *e;		/* the earlier record of the task's process, sorted */
	size_t nr, next;		/* next: the first entry not yet looked at */
	size_t hint;			/* model region of the last lookup */
	uint64_t shm_out;		/* shared memory pages asked of a page server, not come */
	bool installed;			/* all of it copied (said once in the log) */
	uint64_t installed_ns;		/* when */
	bool faulted;			/* the task faulted since */
};

#define PF_BATCH_PAGES	256	/* a fault waits behind at most one batch */
#define PF_SCAN_MAX	1024	/* record entries looked at per batch */
#define PF_SPAN_MAX	256	/* pages of one copy (one GET) */
#define PF_WINDOW_PAGES	512	/* prefetch pages in flight per task (a remote source) */
#define PF_PARTS	2	/* the record in touch order, each part in address order */
#define PF_GAP_PAGES	4	/* pages not recorded copied to join two runs (measured) */
#define PF_HOLD_NS	(1000 * 1000000ULL)	/* background held after the install */

/* A process restored with a record of its own gets its install list (else nothing). */
int lazy_prefetch_attach(struct lazy_daemon *d, struct lazy_task *t);
void lazy_prefetch_free(struct lazy_task *t);

/* Has t a working set still to install? (Background delivery waits for it.) */
bool lazy_prefetch_left(const struct lazy_task *t);
/*
 * Does background delivery wait for t: its working set is still going in,
 * or is in and the task runs on it without a fault (PF_HOLD_NS at most)?
 */
bool lazy_prefetch_holds(const struct lazy_task *t, uint64_t now_ns);
/* Could some task send a batch now? */
bool lazy_prefetch_wanted(struct lazy_daemon *d);
/* Is some task's working set still going in (requested or in flight)? */
bool lazy_prefetch_busy(const struct lazy_daemon *d);
/* One batch for the next task in turn: 1 if a request went out, 0, or -errno. */
int lazy_prefetch_step(struct lazy_daemon *d);

/*
 * A thread of t faulted on dump-time page img, the first time in this
 * restore; late: while a prefetch copy of it was in flight.
 */
void lazy_prefetch_fault(struct lazy_daemon *d, struct lazy_task *t, uint64_t img, bool late);
/* A request of t's working set for nr_pages of shared memory is over. */
void lazy_prefetch_shm_done(struct lazy_task *t, uint64_t nr_pages);
/* Of the prefetched pages [img, +len), those not in t's record (filled gaps). */
uint64_t lazy_prefetch_filled(struct lazy_daemon *d, struct lazy_task *t, uint64_t img,
			      uint64_t len);

#endif
