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
 *   function_workload --pidfile F --result F [--size 1G] [--seed N] [--variant-file F]
 */
#include <signal.h>
#include <stdbool.h>

#include "bench.h"

#define PATTERN_SEED 0x66756e63ULL	/* "func" */

struct workload {
	char *mem;
	size_t npages;
	uint32_t *perm;			/* the shuffle: made before the dump, so in the image */
	const char *pidfile, *result, *variant_file;
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

static void invoke(struct workload *w)
{
	size_t tenth = w->npages / 10, first = read_variant(w->variant_file) * (w->npages / 20);
	uint64_t sum = 0, done;
	size_t bad_page = SIZE_MAX;
	char json[512];

	if (first + tenth > w->npages)
		first = 0;
	for (size_t k = first; k < first + tenth; k++) {
		const uint64_t *p = (const uint64_t *)(w->mem + (size_t)w->perm[k] * BENCH_PAGE);

		for (size_t i = 0; i < BENCH_PAGE / 8; i++)
			sum += p[i];
	}
	done = bench_now_ns();
	for (size_t k = first; k < first + tenth && bad_page == SIZE_MAX; k++) {
		size_t off = (size_t)w->perm[k] * BENCH_PAGE;
		const uint64_t *p = (const uint64_t *)(w->mem + off);

		for (size_t i = 0; i < BENCH_PAGE / 8; i++)
			if (p[i] != bench_pattern_word(PATTERN_SEED, off / 8 + i)) {
				bad_page = w->perm[k];
				break;
			}
	}
	if (bad_page == SIZE_MAX)
		snprintf(json, sizeof(json), "{\"pages\": %zu, \"first\": %zu, \"checksum\": %llu, "
			 "\"done_ns\": %llu, \"ok\": true}\n", tenth, first,
			 (unsigned long long)sum, (unsigned long long)done);
	else
		snprintf(json, sizeof(json), "{\"pages\": %zu, \"ok\": false, \"error\": "
			 "\"page %zu does not hold the pattern\"}\n", tenth, bad_page);
	bench_write_atomic(w->result, json);
}

static void usage(int status)
{
	fputs("usage: function_workload --pidfile F --result F [--size 1G] [--seed N] "
	      "[--variant-file F]\n", status ? stderr : stdout);
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
	};
	char pid[32];
	sigset_t set;

	bench_parse_opts(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);
	if (!w.pidfile || !w.result || !seed || size % BENCH_PAGE ||
	    size / BENCH_PAGE > UINT32_MAX || size / BENCH_PAGE < 20)
		usage(1);
	w.npages = size / BENCH_PAGE;

	bench_block_signals(&set);

	w.mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	w.perm = mmap(NULL, w.npages * sizeof(uint32_t), PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w.mem == MAP_FAILED || w.perm == MAP_FAILED)
		bench_die("mmap: %m");
	bench_pattern_fill(w.mem, size, PATTERN_SEED);
	bench_page_order(w.perm, w.npages, seed);

	snprintf(pid, sizeof(pid), "%d\n", getpid());
	if (bench_write_atomic(w.pidfile, pid))
		bench_die("write the pidfile %s: %m", w.pidfile);

	while (bench_next_signal(&set) != SIGTERM)
		invoke(&w);
	return 0;
}
