/*
 * touch_raw: what a function's reads cost on this machine by who put its
 * pages there, the floor under `scripts/bench prefetch`'s figures.
 *
 * A region of --size is read the way function_workload reads it (every
 * word of a scattered tenth of its pages, in a shuffled order), once per
 * way of filling it, each into a fresh region:
 *
 *   self     the process wrote every page itself (how the function ran
 *            before its dump);
 *   uffd     every page was copied in with UFFDIO_COPY (4 MiB pieces)
 *            before the reads, by another thread (what a restore whose
 *            prefetch finished gives the task);
 *   uffd_bg  the pages read were copied in first, one copy each, and a
 *            second thread copies the others while the reads run (prefetch
 *            done, background delivery beside the function).
 *
 * Prints one JSON object: {"pages", "self_s", "uffd_s", "uffd_bg_s"} (the
 * reads only).  Errors go to stderr with exit status 1.
 *
 *   touch_raw [--size 1G] [--seed N] [--timeout SECONDS]
 */
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

#include "bench.h"

#define CHUNK_PAGES 1024

struct region {
	char *mem, *src;
	size_t npages;
	int uffd;
	const uint8_t *read;	/* uffd_bg: pages the reads take (copied already) */
};

static char *map_region(size_t len)
{
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED)
		bench_die("mmap %zu bytes: %m", len);
	return m;
}

static int register_uffd(char *mem, size_t len)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)mem, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	int fd = syscall(SYS_userfaultfd, O_CLOEXEC);

	if (fd < 0 || ioctl(fd, UFFDIO_API, &api) || ioctl(fd, UFFDIO_REGISTER, &reg))
		bench_die("userfaultfd: %m");
	return fd;
}

static void copy_pages(const struct region *r, size_t first, size_t n)
{
	struct uffdio_copy c = {
		.dst = (uintptr_t)(r->mem + first * BENCH_PAGE),
		.src = (uintptr_t)(r->src + first * BENCH_PAGE),
		.len = n * BENCH_PAGE,
	};

	if (ioctl(r->uffd, UFFDIO_COPY, &c))
		bench_die("UFFDIO_COPY of %zu pages: %m", n);
}

/* Every page not read, in runs of at most CHUNK_PAGES (r->read NULL: all). */
static void *copy_rest(void *arg)
{
	const struct region *r = arg;

	for (size_t p = 0, q; p < r->npages; p = q) {
		if (r->read && r->read[p]) {
			q = p + 1;
			continue;
		}
		for (q = p + 1; q < r->npages && q - p < CHUNK_PAGES && !(r->read && r->read[q]); q++)
			;
		copy_pages(r, p, q - p);
	}
	return NULL;
}

static double timed_reads(const char *mem, const uint32_t *order, size_t n)
{
	uint64_t t0 = bench_now_ns(), sum = 0;

	for (size_t k = 0; k < n; k++) {
		const uint64_t *p = (const uint64_t *)(mem + (size_t)order[k] * BENCH_PAGE);

		for (size_t w = 0; w < BENCH_PAGE / 8; w++)
			sum += p[w];
	}
	__asm__ volatile("" : : "r"(sum));
	return (bench_now_ns() - t0) / 1e9;
}

static void usage(int status)
{
	fprintf(status ? stderr : stdout, "%susage: touch_raw [--size 1G] [--seed N] "
		"[--timeout SECONDS]%s\n", status ? "touch_raw: bad arguments (" : "",
		status ? "; --size a multiple of 4 KiB, at least 20 pages)" : "");
	exit(status);
}

int main(int argc, char **argv)
{
	uint64_t size = 1ULL << 30, seed = 0xf00d;
	int timeout = 0;
	const struct bench_opt opts[] = {
		{ "size", BENCH_SIZE, &size },
		{ "seed", BENCH_U64, &seed },
		{ "timeout", BENCH_INT, &timeout },
	};
	struct region r = { 0 };
	double self_s, uffd_s, bg_s;
	uint32_t *order;
	uint8_t *read;
	size_t tenth;
	pthread_t th;

	bench_parse_opts(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);
	if (timeout < 0 || size % BENCH_PAGE || size / BENCH_PAGE < 20 ||
	    size / BENCH_PAGE > UINT32_MAX)
		usage(1);
	alarm(timeout);		/* a hung copy ends the run (SIGALRM) */
	r.npages = size / BENCH_PAGE;
	tenth = r.npages / 10;
	order = malloc(r.npages * sizeof(*order));
	read = calloc(r.npages, 1);
	if (!order || !read)
		bench_die("out of memory");
	bench_page_order(order, r.npages, seed);
	for (size_t k = 0; k < tenth; k++)
		read[order[k]] = 1;
	r.src = map_region(size);
	memset(r.src, 0x5a, size);

	r.mem = map_region(size);
	memset(r.mem, 0x5a, size);
	self_s = timed_reads(r.mem, order, tenth);
	munmap(r.mem, size);

	r.mem = map_region(size);
	r.uffd = register_uffd(r.mem, size);
	if (pthread_create(&th, NULL, copy_rest, &r) || pthread_join(th, NULL))
		bench_die("copy thread: %m");
	uffd_s = timed_reads(r.mem, order, tenth);
	munmap(r.mem, size);
	close(r.uffd);

	r.mem = map_region(size);
	r.uffd = register_uffd(r.mem, size);
	for (size_t k = 0; k < tenth; k++)
		copy_pages(&r, order[k], 1);
	r.read = read;
	if (pthread_create(&th, NULL, copy_rest, &r))
		bench_die("copy thread: %m");
	bg_s = timed_reads(r.mem, order, tenth);
	if (pthread_join(th, NULL))
		bench_die("copy thread: %m");

	printf("{\"pages\": %zu, \"self_s\": %.6f, \"uffd_s\": %.6f, \"uffd_bg_s\": %.6f}\n", tenth,
	       self_s, uffd_s, bg_s);
	return 0;
}
