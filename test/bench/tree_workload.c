/*
 * tree_workload: the process tree `scripts/bench tree` dumps and restores.
 *
 * The root forks --procs - 1 children; each process (the root too) maps
 * its share of --size bytes of private anonymous memory, fills it with a
 * pattern of its own, and starts --threads - 1 more threads that wait on a
 * barrier: --threads threads a process, its main thread among them, as the
 * issue's "4 processes of 4 threads" and tree_raw's floor have it.
 * The root writes its pid to --pidfile once the whole tree is ready, and
 * every process waits for signals:
 *
 *   SIGUSR1  (to the root, which passes it on to the children) every
 *            thread of every process, the main one too, touches its part
 *            of the process's pages (a random order, thread k taking every
 *            --threads'th page from k), all at once; then the process checks its whole
 *            pattern and writes {"pages", "t0_ns", "t1_ns", "ok"} to
 *            RESULT.I (I: 0 for the root, 1.. for the children), written
 *            aside and renamed.  t0/t1 are CLOCK_MONOTONIC, comparable
 *            between processes: the tree's touch time is max(t1) - min(t0).
 *   SIGTERM  the root ends the children, then everyone exits 0.
 *
 *   tree_workload --pidfile F --result PREFIX [--size 1G] [--procs 4] [--threads 4]
 *                 [--seed N]
 */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include "bench.h"

#define PATTERN_SEED 0x74726565ULL	/* "tree" */
#define MAX_PROCS 64
#define MAX_THREADS 64

struct proc {
	int idx;
	char *mem;
	size_t npages;
	uint32_t *order;		/* made at touch time: not lazy */
	long nr_threads;
	pthread_barrier_t go, done;
	uint64_t sum;
};

static struct proc me;

/* Thread k's part of the pages, between the barriers every thread waits at. */
static void touch_part(long k)
{
	uint64_t sum = 0;

	pthread_barrier_wait(&me.go);
	for (size_t i = k; i < me.npages; i += me.nr_threads)
		sum += *(volatile uint64_t *)(me.mem + (size_t)me.order[i] * BENCH_PAGE);
	__atomic_add_fetch(&me.sum, sum, __ATOMIC_RELAXED);
	pthread_barrier_wait(&me.done);
}

static void *toucher(void *arg)
{
	for (;;)
		touch_part((long)arg);
	return NULL;
}

static void touch(const char *prefix, uint64_t seed)
{
	char path[4096], json[512];
	uint64_t t0, t1;
	size_t bad;

	me.order = mmap(NULL, me.npages * sizeof(uint32_t), PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (me.order == MAP_FAILED)
		bench_die("mmap the order: %m");
	bench_page_order(me.order, me.npages, seed + me.idx);
	t0 = bench_now_ns();
	touch_part(0);		/* the main thread is toucher 0 */
	t1 = bench_now_ns();
	bad = bench_pattern_check(me.mem, me.npages * BENCH_PAGE, PATTERN_SEED + me.idx);
	munmap(me.order, me.npages * sizeof(uint32_t));
	snprintf(json, sizeof(json), "{\"proc\": %d, \"pages\": %zu, \"t0_ns\": %llu, "
		 "\"t1_ns\": %llu, \"ok\": %s, \"bad_offset\": %lld}\n", me.idx, me.npages,
		 (unsigned long long)t0, (unsigned long long)t1,
		 bad == me.npages * BENCH_PAGE ? "true" : "false",
		 bad == me.npages * BENCH_PAGE ? -1LL : (long long)bad);
	snprintf(path, sizeof(path), "%s.%d", prefix, me.idx);
	if (bench_write_atomic(path, json))
		bench_die("write %s: %m", path);
}

/* Memory, pattern and the waiting threads of this process but its main one. */
static void setup(size_t size)
{
	pthread_t th;

	me.npages = size / BENCH_PAGE;
	me.mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (me.mem == MAP_FAILED)
		bench_die("mmap %zu bytes: %m", size);
	bench_pattern_fill(me.mem, size, PATTERN_SEED + me.idx);
	pthread_barrier_init(&me.go, NULL, me.nr_threads);
	pthread_barrier_init(&me.done, NULL, me.nr_threads);
	for (long k = 1; k < me.nr_threads; k++)
		if (pthread_create(&th, NULL, toucher, (void *)k))
			bench_die("pthread_create failed");
}

static void usage(int status)
{
	fputs("usage: tree_workload --pidfile F --result PREFIX [--size 1G] [--procs 4] "
	      "[--threads 4] [--seed N]\n", status ? stderr : stdout);
	exit(status);
}

int main(int argc, char **argv)
{
	const char *pidfile = NULL, *result = NULL;
	uint64_t size = 1ULL << 30, seed = 0x5eed;
	int procs = 4, threads = 4;
	const struct bench_opt opts[] = {
		{ "size", BENCH_SIZE, &size },
		{ "procs", BENCH_INT, &procs },
		{ "threads", BENCH_INT, &threads },
		{ "pidfile", BENCH_STR, &pidfile },
		{ "result", BENCH_STR, &result },
		{ "seed", BENCH_U64, &seed },
	};
	pid_t kids[MAX_PROCS];
	int ready[2], c;
	char pid[32];
	sigset_t set;

	bench_parse_opts(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);
	if (!pidfile || !result || procs < 1 || procs > MAX_PROCS || threads < 1 ||
	    threads > MAX_THREADS || size % ((uint64_t)procs * BENCH_PAGE) ||
	    size / BENCH_PAGE > UINT32_MAX)
		usage(1);
	me.nr_threads = threads;

	bench_block_signals(&set);	/* before the threads: they inherit the mask */
	if (pipe(ready))
		bench_die("pipe: %m");
	for (long i = 1; i < procs; i++) {
		kids[i] = fork();
		if (kids[i] < 0)
			bench_die("fork: %m");
		if (kids[i] == 0) {
			me.idx = i;
			close(ready[0]);
			setup(size / procs);
			if (write(ready[1], "r", 1) != 1)
				bench_die("write: %m");
			close(ready[1]);
			goto wait;
		}
	}
	close(ready[1]);
	setup(size / procs);
	for (long i = 1; i < procs; i++)
		if (read(ready[0], &c, 1) != 1)
			bench_die("child %ld did not get ready", i);
	close(ready[0]);
	snprintf(pid, sizeof(pid), "%d\n", getpid());
	if (bench_write_atomic(pidfile, pid))
		bench_die("write the pidfile: %m");
wait:
	while (bench_next_signal(&set) != SIGTERM) {
		for (long i = 1; !me.idx && i < procs; i++)
			kill(kids[i], SIGUSR1);
		touch(result, seed);
	}
	for (long i = 1; !me.idx && i < procs; i++) {
		kill(kids[i], SIGTERM);
		waitpid(kids[i], NULL, 0);
	}
	return 0;
}
