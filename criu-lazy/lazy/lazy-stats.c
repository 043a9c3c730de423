#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/array.h"
#include "common/log.h"
#include "lazy/lazy-stats.h"

void lazy_stats_fault_latency(struct lazy_stats *s, uint64_t ns)
{
	if (ARRAY_GROW(s->latency_ns, s->cap_latency, s->nr_latency + 1, 4096))
		return;	/* the statistics lose a sample, nothing else */
	s->latency_ns[s->nr_latency++] = ns > UINT32_MAX ? UINT32_MAX : ns;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static double percentile_us(const struct lazy_stats *s, double p)
{
	size_t i;

	if (!s->nr_latency)
		return 0;
	i = (size_t)(p * (s->nr_latency - 1) + 0.5);
	return s->latency_ns[i] / 1000.0;
}

void lazy_stats_delivered(struct lazy_stats *s, struct lazy_proc_stats *ps, uint64_t now)
{
	uint64_t tree = s->pages_fault + s->pages_background + s->pages_prefetched;

	ps->last_ns = now;
	ps->last_at = tree;
	if (!ps->half_ns && (ps->pages_fault + ps->pages_background + ps->pages_prefetched) * 2 >=
			    ps->pages_lazy + ps->pages_inherited) {
		ps->half_ns = now;
		ps->half_at = tree;
	}
}

long lazy_stats_proc_add(struct lazy_stats *s, pid_t pid)
{
	for (size_t i = 0; i < s->nr_procs; i++)
		if (s->procs[i].pid == pid)
			return i;
	if (ARRAY_GROW(s->procs, s->cap_procs, s->nr_procs + 1, 8)) {
		pr_warn("no memory for the statistics of process %d: counted apart", pid);
		return -1;
	}
	s->procs[s->nr_procs] = (struct lazy_proc_stats){ .pid = pid };
	return s->nr_procs++;
}

/*
 * Prefetch hits: prefetched pages installed before any fault named them
 * (the late ones were faulted on while their copy was in flight).  Faults
 * avoided: pages of the earlier record, lazy at the start, that this
 * restore never faulted on (each was a fault of an earlier restore).
 */
/* Pages of the record installed before any fault named them. */
static uint64_t hits(uint64_t prefetched, uint64_t late, uint64_t filled)
{
	return prefetched > late + filled ? prefetched - late - filled : 0;
}

static uint64_t avoided(uint64_t expected, uint64_t faulted)
{
	return expected > faulted ? expected - faulted : 0;
}

/* The tree's: the sums of the processes' (each clamped on its own). */
static uint64_t tree_hits(const struct lazy_stats *s)
{
	uint64_t n = hits(s->lost_track.pages_prefetched, s->lost_track.prefetch_late,
			  s->lost_track.prefetch_filled);

	for (size_t i = 0; i < s->nr_procs; i++)
		n += hits(s->procs[i].pages_prefetched, s->procs[i].prefetch_late,
			  s->procs[i].prefetch_filled);
	return n;
}

static uint64_t tree_avoided(const struct lazy_stats *s)
{
	uint64_t n = avoided(s->lost_track.ws_expected, s->lost_track.ws_faulted);

	for (size_t i = 0; i < s->nr_procs; i++)
		n += avoided(s->procs[i].ws_expected, s->procs[i].ws_faulted);
	return n;
}

/* Seconds from the daemon's start to @ns (a process's page), 0 if none came. */
static double since_start_s(const struct lazy_stats *s, uint64_t ns)
{
	return ns > s->start_ns ? (ns - s->start_ns) / 1e9 : 0.0;
}

/* When the last process's working set was in (0: none was). */
static uint64_t installed_ns(const struct lazy_stats *s)
{
	uint64_t ns = 0;

	for (size_t i = 0; i < s->nr_procs; i++)
		if (s->procs[i].ws_installed_ns > ns)
			ns = s->procs[i].ws_installed_ns;
	return ns;
}

static void print_procs(const struct lazy_stats *s)
{
	if (s->nr_procs < 2)
		return;
	for (size_t i = 0; i < s->nr_procs; i++) {
		const struct lazy_proc_stats *p = &s->procs[i];

		printf("lazy-pages:   process %d (%llu task(s)): %llu lazy (+%llu inherited): "
		       "%llu by fault, %llu in background, %llu prefetched (%llu hits, %llu faults "
		       "avoided); dropped: %llu by events, %llu at exit, "
		       "%llu lost; last page at %.3f s\n", p->pid, (unsigned long long)p->tasks,
		       (unsigned long long)p->pages_lazy, (unsigned long long)p->pages_inherited,
		       (unsigned long long)p->pages_fault, (unsigned long long)p->pages_background,
		       (unsigned long long)p->pages_prefetched,
		       (unsigned long long)hits(p->pages_prefetched, p->prefetch_late, p->prefetch_filled),
		       (unsigned long long)avoided(p->ws_expected, p->ws_faulted),
		       (unsigned long long)p->pages_dropped_event,
		       (unsigned long long)p->pages_dropped_exit, (unsigned long long)p->pages_lost,
		       since_start_s(s, p->last_ns));
	}
}

/* "processes": [...] of the JSON file, one object per process. */
static void write_procs(FILE *f, const struct lazy_stats *s)
{
	fputs(", \"processes\": [", f);
	for (size_t i = 0; i < s->nr_procs; i++) {
		const struct lazy_proc_stats *p = &s->procs[i];

		fprintf(f, "%s{\"pid\": %d, \"tasks\": %llu, \"pages_lazy\": %llu, "
			"\"pages_inherited\": %llu, \"pages_fault\": %llu, \"pages_background\": %llu, "
			"\"pages_dropped_event\": %llu, \"pages_dropped_exit\": %llu, "
			"\"pages_lost\": %llu, \"pages_zero\": %llu, \"faults\": %llu, "
			"\"pages_shmem\": %llu, "
			"\"pages_prefetched\": %llu, \"prefetch_hits\": %llu, "
			"\"prefetch_late\": %llu, \"prefetch_filled\": %llu, "
			"\"faults_avoided\": %llu, \"faults_installing\": %llu, "
			"\"working_set_installed_s\": %.6f, "
			"\"half_pages_s\": %.6f, \"last_page_s\": %.6f, "
			"\"half_pages_at\": %llu, \"last_page_at\": %llu}", i ? ", " : "", p->pid,
			(unsigned long long)p->tasks,
			(unsigned long long)p->pages_lazy, (unsigned long long)p->pages_inherited,
			(unsigned long long)p->pages_fault, (unsigned long long)p->pages_background,
			(unsigned long long)p->pages_dropped_event,
			(unsigned long long)p->pages_dropped_exit, (unsigned long long)p->pages_lost,
			(unsigned long long)p->pages_zero, (unsigned long long)p->faults,
			(unsigned long long)p->pages_shmem,
			(unsigned long long)p->pages_prefetched,
			(unsigned long long)hits(p->pages_prefetched, p->prefetch_late, p->prefetch_filled),
			(unsigned long long)p->prefetch_late, (unsigned long long)p->prefetch_filled,
			(unsigned long long)avoided(p->ws_expected, p->ws_faulted),
			(unsigned long long)p->faults_installing, since_start_s(s, p->ws_installed_ns),
			since_start_s(s, p->half_ns), since_start_s(s, p->last_ns),
			(unsigned long long)p->half_at, (unsigned long long)p->last_at);
	}
	fputs("]", f);
}

void lazy_stats_report(struct lazy_stats *s, int dirfd)
{
	double secs = (s->end_ns - s->start_ns) / 1e9;
	double p50, p99;
	FILE *f;
	int fd;

	/* no fault at all (possible since the rseq pages are eager): no array */
	if (s->nr_latency)
		qsort(s->latency_ns, s->nr_latency, sizeof(s->latency_ns[0]), cmp_u32);
	p50 = percentile_us(s, 0.50);
	p99 = percentile_us(s, 0.99);

	printf("lazy-pages: %llu task(s), %llu lazy pages (+%llu inherited by forks): %llu by fault, "
	       "%llu in background, %llu prefetched; dropped: %llu by events, %llu at exit, "
	       "%llu lost; %llu zero pages\n",
	       (unsigned long long)s->tasks, (unsigned long long)s->pages_lazy,
	       (unsigned long long)s->pages_inherited,
	       (unsigned long long)s->pages_fault, (unsigned long long)s->pages_background,
	       (unsigned long long)s->pages_prefetched,
	       (unsigned long long)s->pages_dropped_event, (unsigned long long)s->pages_dropped_exit,
	       (unsigned long long)s->pages_lost, (unsigned long long)s->pages_zero);
	print_procs(s);
	if (s->pages_shmem)
		printf("lazy-pages: %llu of the lazy pages are shared memory\n",
		       (unsigned long long)s->pages_shmem);
	if (s->pages_prefetched || s->ws_expected)
		printf("lazy-pages: working set: %llu pages prefetched, %llu hits (%llu late, "
		       "%llu filled gaps), %llu faults avoided of %llu recorded; installed at "
		       "%.3f s, %llu faults meanwhile\n",
		       (unsigned long long)s->pages_prefetched,
		       (unsigned long long)tree_hits(s),
		       (unsigned long long)s->prefetch_late,
		       (unsigned long long)s->prefetch_filled,
		       (unsigned long long)tree_avoided(s),
		       (unsigned long long)s->ws_expected, since_start_s(s, installed_ns(s)),
		       (unsigned long long)s->faults_installing);
	printf("lazy-pages: %llu faults, latency p50 %.1f us, p99 %.1f us; "
	       "%llu bytes in %.3f s (%.1f MiB/s)\n",
	       (unsigned long long)s->faults, p50, p99, (unsigned long long)s->bytes, secs,
	       secs > 0 ? s->bytes / secs / (1 << 20) : 0.0);
	fflush(stdout);

	fd = openat(dirfd, "lazy-pages-stats.json", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		pr_warn("cannot write lazy-pages-stats.json: %m");
		if (fd >= 0)
			close(fd);
		return;
	}
	fprintf(f, "{\"tasks\": %llu, \"pages_lazy\": %llu, \"pages_inherited\": %llu, "
		"\"pages_fault\": %llu, "
		"\"pages_background\": %llu, \"pages_dropped_event\": %llu, "
		"\"pages_dropped_exit\": %llu, \"pages_lost\": %llu, \"pages_zero\": %llu, "
		"\"faults\": %llu, \"fault_latency_p50_us\": %.2f, "
		"\"fault_latency_p99_us\": %.2f, \"bytes\": %llu, \"duration_s\": %.6f, "
		"\"restore_finished_s\": %.6f, \"pages_shmem\": %llu, \"pages_prefetched\": %llu, "
		"\"prefetch_hits\": %llu, \"prefetch_late\": %llu, \"prefetch_filled\": %llu, "
		"\"faults_avoided\": %llu, \"faults_installing\": %llu, "
		"\"working_set_installed_s\": %.6f, \"page_server_reconnects\": %llu, "
		"\"cpu_after_restore_s\": %.6f",
		(unsigned long long)s->tasks, (unsigned long long)s->pages_lazy,
		(unsigned long long)s->pages_inherited,
		(unsigned long long)s->pages_fault, (unsigned long long)s->pages_background,
		(unsigned long long)s->pages_dropped_event,
		(unsigned long long)s->pages_dropped_exit, (unsigned long long)s->pages_lost,
		(unsigned long long)s->pages_zero, (unsigned long long)s->faults, p50, p99,
		(unsigned long long)s->bytes, secs,
		s->finished_ns > s->start_ns ? (s->finished_ns - s->start_ns) / 1e9 : 0.0,
		(unsigned long long)s->pages_shmem,
		(unsigned long long)s->pages_prefetched,
		(unsigned long long)tree_hits(s),
		(unsigned long long)s->prefetch_late,
		(unsigned long long)s->prefetch_filled,
		(unsigned long long)tree_avoided(s),
		(unsigned long long)s->faults_installing, since_start_s(s, installed_ns(s)),
		(unsigned long long)s->ps_reconnects,
		s->finished_ns && s->end_cpu_ns > s->finished_cpu_ns ?
		(s->end_cpu_ns - s->finished_cpu_ns) / 1e9 : 0.0);
	write_procs(f, s);
	fputs("}\n", f);
	if (fclose(f))
		pr_warn("cannot write lazy-pages-stats.json: %m");
}

void lazy_stats_free(struct lazy_stats *s)
{
	free(s->latency_ns);
	s->latency_ns = NULL;
	s->nr_latency = s->cap_latency = 0;
	free(s->procs);
	s->procs = NULL;
	s->nr_procs = s->cap_procs = 0;
}
