/*
 * lazy_workload: the process `scripts/bench lazy` dumps and restores.
 *
 * It maps --size bytes of private anonymous memory, fills every page with a
 * non-zero pattern, writes its pid to --pidfile, and waits for signals:
 *
 *   SIGUSR1  touch every page once (read one word of each), timed with
 *            CLOCK_MONOTONIC inside the process, then check the pattern of
 *            the whole region and write {"pages", "seconds", "order", "ok"}
 *            to --result (written aside and renamed, so a reader never sees
 *            half of it).  The order is read at that moment from
 *            --order-file if it exists ("seq", or "random SEED"), else from
 *            --order: the same image can be restored and touched both ways.
 *            The word "latency" in the order file (or --latency) also
 *            times each touch on its own and counts the page faults it took
 *            (getrusage(RUSAGE_THREAD), outside the timed span): the result
 *            gets "latency" with p50/p99/max of the touches that faulted,
 *            the wait the task itself saw for a missing page, and p50/p99
 *            of all touches.  That costs a syscall per page, so the touch
 *            time of such a run is not a rate to compare.
 *   SIGTERM  exit 0.
 *
 * Nothing is open but what the caller gave as stdin/out/err (the bench uses
 * /dev/null) and nothing runs between signals, so the process is easy to
 * dump and restore.  Run it as a session leader (setsid).
 *
 *   lazy_workload --pidfile F --result F [--size 1G] [--order seq|random]
 *                 [--order-file F] [--seed N] [--latency]
 */
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench.h"

#define PATTERN_SEED 0x6c617a79ULL	/* "lazy" */

struct workload {
	char *mem;
	size_t npages;
	const char *pidfile, *result, *order_file;
	const char *order;		/* from --order: "seq" or "random" */
	uint64_t seed;
	bool latency;			/* from --latency */
};

static void die(const char *msg)
{
	/* stderr is usually /dev/null: the exit status says it */
	fprintf(stderr, "lazy_workload: %s: %m\n", msg);
	exit(1);
}

/* The order of this touch: the order file wins over the command line. */
static void read_order(const struct workload *w, char *order, size_t len, uint64_t *seed,
		       bool *latency)
{
	char buf[128] = "";
	unsigned long long s;
	ssize_t n = 0;
	int fd;

	snprintf(order, len, "%s", w->order);
	*seed = w->seed;
	*latency = w->latency;
	if (!w->order_file)
		return;
	fd = open(w->order_file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	if (!strncmp(buf, "seq", 3)) {
		snprintf(order, len, "seq");
	} else if (!strncmp(buf, "random", 6)) {
		snprintf(order, len, "random");
		if (sscanf(buf + 6, "%llu", &s) == 1 && s)
			*seed = s;
	}
	if (strstr(buf, "latency"))
		*latency = true;
}

static uint64_t thread_faults(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru))
		return 0;
	return ru.ru_minflt + ru.ru_majflt;
}

/*
 * Touch every page in order, each touch timed on its own; a touch that
 * took a page fault (a missing page: the task waited for it to arrive)
 * goes to lat[0..*nr_faulted), every touch to all[].  The fault count is
 * read between touches, so its cost is not in any sample.
 */
static uint64_t touch_timed(struct workload *w, const uint32_t *order, uint32_t *all,
			    uint32_t *lat, size_t *nr_faulted)
{
	uint64_t sum = 0, flt = thread_faults();
	size_t nf = 0;

	for (size_t i = 0; i < w->npages; i++) {
		uint64_t t0, t1, f;

		t0 = bench_now_ns();
		sum += *(volatile uint64_t *)(w->mem + (size_t)order[i] * BENCH_PAGE);
		t1 = bench_now_ns();
		f = thread_faults();
		all[i] = t1 - t0 > UINT32_MAX ? UINT32_MAX : t1 - t0;
		if (f != flt)
			lat[nf++] = all[i];
		flt = f;
	}
	*nr_faulted = nf;
	return sum;
}

/* ", \"latency\": {...}" of a timed touch (sorts the samples). */
static void format_latency(char *out, size_t len, uint32_t *all, size_t n, uint32_t *lat,
			   size_t nf)
{
	double p50 = bench_percentile_us(lat, nf, 0.50), p99 = bench_percentile_us(lat, nf, 0.99);
	double max = nf ? lat[nf - 1] / 1000.0 : 0;	/* sorted by the percentile */

	snprintf(out, len, ", \"latency\": {\"touches\": %zu, \"faulted\": %zu, "
		 "\"fault_p50_us\": %.2f, \"fault_p99_us\": %.2f, \"fault_max_us\": %.2f, "
		 "\"all_p50_us\": %.3f, \"all_p99_us\": %.3f}", n, nf, p50, p99, max,
		 bench_percentile_us(all, n, 0.50), bench_percentile_us(all, n, 0.99));
}

static void touch_all(struct workload *w)
{
	char order_name[16], json[1024], lat_json[512] = "";
	bool random, latency;
	uint32_t *order, *all = NULL, *lat = NULL;
	uint64_t seed, sum = 0, t0, t1;
	size_t bad, nr_faulted = 0, arrays;

	read_order(w, order_name, sizeof(order_name), &seed, &latency);
	random = !strcmp(order_name, "random");
	/* new memory, allocated after any restore: its pages are not lazy */
	arrays = (latency ? 3 : 1) * w->npages;
	order = mmap(NULL, arrays * sizeof(uint32_t), PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (order == MAP_FAILED) {
		snprintf(json, sizeof(json), "{\"ok\": false, \"error\": \"mmap the order: %m\"}\n");
		bench_write_atomic(w->result, json);
		return;
	}
	if (latency) {
		all = order + w->npages;
		lat = all + w->npages;
	}
	bench_page_order(order, w->npages, random ? seed : 0);

	t0 = bench_now_ns();
	if (latency) {
		sum = touch_timed(w, order, all, lat, &nr_faulted);
	} else {
		for (size_t i = 0; i < w->npages; i++)
			sum += *(volatile uint64_t *)(w->mem + (size_t)order[i] * BENCH_PAGE);
	}
	t1 = bench_now_ns();

	bad = bench_pattern_check(w->mem, w->npages * BENCH_PAGE, PATTERN_SEED);
	if (latency)
		format_latency(lat_json, sizeof(lat_json), all, w->npages, lat, nr_faulted);
	munmap(order, arrays * sizeof(uint32_t));
	if (bad == w->npages * BENCH_PAGE)
		snprintf(json, sizeof(json),
			 "{\"pages\": %zu, \"seconds\": %.6f, \"order\": \"%s\", \"ok\": true, "
			 "\"sum\": %llu%s}\n", w->npages, (t1 - t0) / 1e9, order_name,
			 (unsigned long long)sum, lat_json);
	else
		snprintf(json, sizeof(json),
			 "{\"pages\": %zu, \"seconds\": %.6f, \"order\": \"%s\", \"ok\": false, "
			 "\"error\": \"page %zu (offset %zu) does not hold the pattern\"}\n",
			 w->npages, (t1 - t0) / 1e9, order_name, bad / BENCH_PAGE, bad);
	bench_write_atomic(w->result, json);
}

static void usage(int status)
{
	fputs("usage: lazy_workload --pidfile F --result F [--size 1G] [--order seq|random]\n"
	      "                     [--order-file F] [--seed N] [--latency]\n",
	      status ? stderr : stdout);
	exit(status);
}

int main(int argc, char **argv)
{
	struct workload w = { .order = "seq", .seed = 0x5eed };
	uint64_t size = 1ULL << 30;
	const struct bench_opt opts[] = {
		{ "size", BENCH_SIZE, &size },
		{ "pidfile", BENCH_STR, &w.pidfile },
		{ "result", BENCH_STR, &w.result },
		{ "order", BENCH_STR, &w.order },
		{ "order-file", BENCH_STR, &w.order_file },
		{ "seed", BENCH_U64, &w.seed },
		{ "latency", BENCH_FLAG, &w.latency },
	};
	char pid[32];
	sigset_t set;

	bench_parse_opts(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);
	if (!w.pidfile || !w.result || !w.seed || size % BENCH_PAGE ||
	    size / BENCH_PAGE > UINT32_MAX || (strcmp(w.order, "seq") && strcmp(w.order, "random")))
		usage(1);
	w.npages = size / BENCH_PAGE;

	bench_block_signals(&set);

	w.mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w.mem == MAP_FAILED)
		die("mmap the region");
	bench_pattern_fill(w.mem, size, PATTERN_SEED);

	snprintf(pid, sizeof(pid), "%d\n", getpid());
	if (bench_write_atomic(w.pidfile, pid))
		die("write the pidfile");

	while (bench_next_signal(&set) != SIGTERM)
		touch_all(&w);
	return 0;
}
