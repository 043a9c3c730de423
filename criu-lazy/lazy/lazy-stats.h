/*
 * What the daemon did, printed when it exits.  Every lazy page ends in
 * exactly one of the counts: pages_lazy + pages_inherited == pages_fault +
 * pages_background + pages_prefetched + pages_dropped_event +
 * pages_dropped_exit + pages_lost.
 */
#ifndef CRIU_LAZY_LAZY_STATS_H
#define CRIU_LAZY_LAZY_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/*
 * One dumped process's share (with the tasks it forked after the restore,
 * which read its image): the same accounting holds for each.
 */
struct lazy_proc_stats {
	pid_t pid;			/* in the images */
	uint64_t tasks;			/* it and its forks */
	uint64_t pages_lazy, pages_inherited, pages_fault, pages_background, pages_zero;
	uint64_t pages_dropped_event, pages_dropped_exit, pages_lost;
	uint64_t pages_shmem;
	uint64_t pages_prefetched, prefetch_late, prefetch_filled, ws_expected, ws_faulted;
	uint64_t faults;
	uint64_t faults_installing;	/* of them, while its working set went in */
	uint64_t ws_installed_ns;	/* its working set was in (0: none) */
	uint64_t last_ns;		/* its last page delivered */
	uint64_t half_ns;		/* half of its lazy pages delivered */
	/* the same two moments on a clock in pages that load cannot stretch:
	 * the pages the whole tree had received by then */
	uint64_t last_at, half_at;
};

struct lazy_stats {
	uint64_t tasks;
	uint64_t pages_lazy;		/* lazy pages in the images */
	uint64_t pages_shmem;		/* of those, of shared memory objects (each
					 * counted with the first process mapping it) */
	uint64_t pages_inherited;	/* still lazy in a parent when it forked */
	uint64_t pages_fault;		/* delivered because a thread touched them */
	uint64_t pages_background;	/* delivered ahead of any touch */
	uint64_t pages_zero;		/* zero pages for faults outside the model */
	uint64_t pages_dropped_event;	/* unmapped or discarded (UNMAP, REMOVE, REMAP) */
	uint64_t pages_dropped_exit;	/* still lazy when their task exited */
	uint64_t pages_lost;		/* dropped for any other reason: an error */
	uint64_t pages_prefetched;	/* delivered by the working set's install */
	uint64_t prefetch_late;		/* of them, faulted on while their copy was in flight */
	uint64_t prefetch_filled;	/* of them, not in the record: a short gap's pages */
	uint64_t ws_expected;		/* pages of the earlier record lazy at the start */
	uint64_t ws_faulted;		/* of them, faulted on in this restore */
	uint64_t faults;
	uint64_t faults_installing;	/* of them, while their process's working set went in */
	uint64_t ps_reconnects;		/* connections to the page server opened again */
	uint64_t bytes;
	uint64_t start_ns, end_ns;
	uint64_t finished_ns;		/* the restore finished: background may start */
	uint64_t finished_cpu_ns, end_cpu_ns;	/* our CPU time then, and at the end */
	uint32_t *latency_ns;		/* one per served fault */
	size_t nr_latency, cap_latency;

	struct lazy_proc_stats *procs;	/* per process, in handshake order */
	size_t nr_procs, cap_procs;
	struct lazy_proc_stats lost_track;	/* counts no process could get (ENOMEM) */
};

/* The CPU time this process has used so far (the guardian is another). */
static inline uint64_t lazy_stats_cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts))
		return 0;
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

void lazy_stats_fault_latency(struct lazy_stats *s, uint64_t ns);
/* The index of process @pid's share, made on first use; -1 without memory. */
long lazy_stats_proc_add(struct lazy_stats *s, pid_t pid);
static inline struct lazy_proc_stats *lazy_stats_proc(struct lazy_stats *s, long idx)
{
	return idx >= 0 ? &s->procs[idx] : &s->lost_track;
}

/* Process @ps (its counts already up to date) was delivered pages at @now. */
void lazy_stats_delivered(struct lazy_stats *s, struct lazy_proc_stats *ps, uint64_t now);

/* A lost page is an error line on stderr for the first LAZY_LOST_LINES of
 * them, then a warning: the log gets every one, a flood does not drown the
 * terminal. */
#define LAZY_LOST_LINES	16

/* Add @n to counter @field of the tree and of task @t's process. */
#define LAZY_COUNT(d, t, field, n) do {						\
		uint64_t n_ = (n);						\
		(d)->stats.field += n_;						\
		lazy_stats_proc(&(d)->stats, (t)->img->stats_idx)->field += n_;	\
	} while (0)
/* Print on stdout (and the log) and write DIR/lazy-pages-stats.json. */
void lazy_stats_report(struct lazy_stats *s, int dirfd);
void lazy_stats_free(struct lazy_stats *s);

#endif
