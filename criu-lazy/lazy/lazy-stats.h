/*
 * What the daemon did, printed when it exits.  Every lazy page ends in
 * exactly one of the counts: pages_lazy + pages_inherited == pages_fault +
 * pages_background + pages_dropped_event + pages_dropped_exit + pages_lost.
 */
#ifndef CRIU_LAZY_LAZY_STATS_H
#define CRIU_LAZY_LAZY_STATS_H

#include <stddef.h>
#include <stdint.h>

struct lazy_stats {
	uint64_t tasks;
	uint64_t pages_lazy;		/* lazy pages in the images */
	uint64_t pages_inherited;	/* still lazy in a parent when it forked */
	uint64_t pages_fault;		/* delivered because a thread touched them */
	uint64_t pages_background;	/* delivered ahead of any touch */
	uint64_t pages_zero;		/* zero pages for faults outside the model */
	uint64_t pages_dropped_event;	/* unmapped or discarded (UNMAP, REMOVE, REMAP) */
	uint64_t pages_dropped_exit;	/* still lazy when their task exited */
	uint64_t pages_lost;		/* dropped for any other reason: an error */
	uint64_t faults;
	uint64_t bytes;
	uint64_t start_ns, end_ns;
	uint32_t *latency_ns;		/* one per served fault */
	size_t nr_latency, cap_latency;
};

void lazy_stats_fault_latency(struct lazy_stats *s, uint64_t ns);
/* Print on stdout (and the log) and write DIR/lazy-pages-stats.json. */
void lazy_stats_report(struct lazy_stats *s, int dirfd);
void lazy_stats_free(struct lazy_stats *s);

#endif
