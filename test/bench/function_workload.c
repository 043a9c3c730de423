/*
 * function_workload: the function-like process `scripts/bench prefetch`
 * dumps and restores (issue 11, point 5).
 *
 * It maps --size bytes of private anonymous memory, fills every page with
 * a non-zero pattern, writes its pid to --pidfile and waits for signals:
 *
 *   SIGUSR1  one invocation: read every word of a fixed, scattered tenth
 *            of its pages in a fixed pseudo-random order and sum them (the
 *            checksum); take CLOCK_MONOTONIC right then (the bench's clock:
 *            the figure is that moment minus the start of the restore);
 *            only then check each page read against the pattern, and write
 *            {"pages", "checksum", "done_ns", "ok"} to --result (aside and
 *            renamed).  The pages: entries [v * n/20, v * n/20 + n/10) of
 *            a shuffle of all n pages by --seed, v the variant read from
 *            --variant-file at that moment (0 when it is missing): variants
 *            0 and 1 share half their pages, a function whose input changes.
 *   SIGTERM  exit 0.
 *
 * --shared: the memory is MAP_SHARED|MAP_ANONYMOUS (one shmem object) and
 * the process forks a worker after filling it: an invocation's pages are
 * read half by each (the process the first half, the worker the second,
 * at the same time: SIGUSR1 is passed on); the worker sends its checksum,
 * its CLOCK_MONOTONIC at its sum's end and its check's result through a
 * pipe, and the result is the two sums added, done_ns the later of the
 * two.  SIGTERM ends the worker too.
 *
 *   function_workload --pidfile F --result F [--size 1G] [--seed N] [--variant-file F]
 *                     [--shared]
 */
#include <signal.h>
#include <stdbool.h>
#include <sys/wait.h>

#include "bench.h"

#define PATTERN_SEED 0x66756e63ULL	/* "func" */

struct workload {
	char *mem;
	size_t npages;
	uint32_t *perm;			/* the shuffle: made before the dump, so in the image */
	const char *pidfile, *result, *variant_file;
	bool shared;
	pid_t worker;			/* --shared: the other reader, 0 in the worker */
	int pipe[2];			/* the worker's part of a call, to the process */
};

/* What one reader found in pages [from, to) of the shuffle. */
struct part {
	uint64_t sum, done_ns;
	size_t bad_page;		/* SIZE_MAX: every page right */
};

static unsigned int read_variant(const char *path)
{
	char buf[32] = "";
	ssize_t n;
	int fd;

	if (!path || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? (unsigned int)strtoul(buf, NULL, 10) : 0;
}

/* Sum the pages [from, to) of the shuffle, take the time, then check them. */
static struct part read_part(const struct workload *w, size_t from, size_t to)
{
	struct part r = { .bad_page = SIZE_MAX };

	for (size_t k = from; k < to; k++) {
		const uint64_t *p = (const uint64_t *)(w->mem + (size_t)w->perm[k] * BENCH_PAGE);

		for (size_t i = 0; i < BENCH_PAGE / 8; i++)
			r.sum += p[i];
	}
	r.done_ns = bench_now_ns();
	for (size_t k = from; k < to && r.bad_page == SIZE_MAX; k++) {
		size_t off = (size_t)w->perm[k] * BENCH_PAGE;
		const uint64_t *p = (const uint64_t *)(w->mem + off);

		for (size_t i = 0; i < BENCH_PAGE / 8; i++)
			if (p[i] != bench_pattern_word(PATTERN_SEED, off / 8 + i)) {
				r.bad_page = w->perm[k];
				break;
			}
	}
	return r;
}

/* The invocation's pages: [*first, *first + tenth) of the shuffle. */
static size_t call_pages(const struct workload *w, size_t *first)
{
	size_t tenth = w->npages / 10;

	*first = read_variant(w->variant_file) * (w->npages / 20);
	if (*first + tenth > w->npages)
		*first = 0;
	return tenth;
}

/* --shared: the worker's half of a call, its part to the process. */
static void worker_invoke(struct workload *w)
{
	size_t first, tenth = call_pages(w, &first);
	struct part r = read_part(w, first + tenth / 2, first + tenth);

	if (write(w->pipe[1], &r, sizeof(r)) != sizeof(r))
		bench_die("worker: write its part: %m");
}

static void invoke(struct workload *w)
{
	size_t first, tenth = call_pages(w, &first), half = w->shared ? tenth / 2 : tenth;
	struct part r, theirs = { .bad_page = SIZE_MAX };
	char json[512];

	if (w->shared && kill(w->worker, SIGUSR1))
		bench_die("wake the worker %d: %m", w->worker);
	r = read_part(w, first, first + half);
	if (w->shared) {
		if (read(w->pipe[0], &theirs, sizeof(theirs)) != sizeof(theirs))
			bench_die("read the worker's part: %m");
		r.sum += theirs.sum;
		if (theirs.done_ns > r.done_ns)
			r.done_ns = theirs.done_ns;
		if (r.bad_page == SIZE_MAX)
			r.bad_page = theirs.bad_page;
	}
	if (r.bad_page == SIZE_MAX)
		snprintf(json, sizeof(json), "{\"pages\": %zu, \"first\": %zu, \"checksum\": %llu, "
			 "\"done_ns\": %llu, \"ok\": true}\n", tenth, first,
			 (unsigned long long)r.sum, (unsigned long long)r.done_ns);
	else
		snprintf(json, sizeof(json), "{\"pages\": %zu, \"ok\": false, \"error\": "
			 "\"page %zu does not hold the pattern\"}\n", tenth, r.bad_page);
	bench_write_atomic(w->result, json);
}

/* --shared: the worker waits for its calls; it ends with its process. */
static void start_worker(struct workload *w, const sigset_t *set)
{
	if (pipe(w->pipe))
		bench_die("pipe: %m");
	w->worker = fork();
	if (w->worker < 0)
		bench_die("fork: %m");
	if (w->worker)
		return;
	while (bench_next_signal(set) != SIGTERM)
		worker_invoke(w);
	exit(0);
}

static void usage(int status)
{
	fputs("usage: function_workload --pidfile F --result F [--size 1G] [--seed N] "
	      "[--variant-file F] [--shared]\n", status ? stderr : stdout);
	exit(status);
}

int main(int argc, char **argv)
{
	struct workload w = { 0 };
	uint64_t size = 1ULL << 30, seed = 0xf00d;
	const struct bench_opt opts[] = {
		{ "size", BENCH_SIZE, &size },
		{ "pidfile", BENCH_STR, &w.pidfile },
		{ "result", BENCH_STR, &w.result },
		{ "seed", BENCH_U64, &seed },
		{ "variant-file", BENCH_STR, &w.variant_file },
		{ "shared", BENCH_FLAG, &w.shared },
	};
	char pid[32];
	sigset_t set;

	bench_parse_opts(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);
	if (!w.pidfile || !w.result || !seed || size % BENCH_PAGE ||
	    size / BENCH_PAGE > UINT32_MAX || size / BENCH_PAGE < 20)
		usage(1);
	w.npages = size / BENCH_PAGE;

	bench_block_signals(&set);

	w.mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
		     (w.shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS, -1, 0);
	w.perm = mmap(NULL, w.npages * sizeof(uint32_t), PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w.mem == MAP_FAILED || w.perm == MAP_FAILED)
		bench_die("mmap: %m");
	bench_pattern_fill(w.mem, size, PATTERN_SEED);
	bench_page_order(w.perm, w.npages, seed);
	if (w.shared)
		start_worker(&w, &set);

	snprintf(pid, sizeof(pid), "%d\n", getpid());
	if (bench_write_atomic(w.pidfile, pid))
		bench_die("write the pidfile %s: %m", w.pidfile);

	while (bench_next_signal(&set) != SIGTERM)
		invoke(&w);
	if (w.shared) {
		int status;

		if (kill(w.worker, SIGTERM) || waitpid(w.worker, &status, 0) != w.worker)
			bench_die("end the worker %d: %m", w.worker);
		return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
	}
	return 0;
}
