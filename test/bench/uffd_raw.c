/*
 * uffd_raw: the raw userfaultfd limit of this machine, the baseline that
 * `scripts/bench lazy` holds the lazy-pages daemon against.
 *
 * fault: one process, a handler thread and a toucher thread.  The toucher
 *   reads one word of every page of a MISSING-registered anonymous region,
 *   in sequential or random order, and times each touch that faults (the
 *   round trip: fault, handler wake-up, read, UFFDIO_COPY, toucher wake-up).
 *   The handler blocks in read() on the uffd and answers each fault with
 *   one UFFDIO_COPY of --window pages (aligned, 1 by default) from a source
 *   buffer; it also times its own part, from read() returning to the copy
 *   done, which is what the daemon's own latency figures measure.
 *
 * copy: UFFDIO_COPY of the whole region in --chunk pieces (4 MiB), no
 *   faults involved, from an anonymous source buffer and from a MAP_PRIVATE
 *   read-only mapping of a file in the page cache (what the daemon does with
 *   a pages image; --copy-file names one, else a new file of --size is
 *   written in --tmpdir).  Repeated --reps times into a fresh region, after
 *   one pass that is not counted (see bench_warm_memory()).  --copy-file
 *   F1,F2,... (a tree's pages images): a pass copies each file into a region
 *   of its own, all of them registered before the clock starts, and the
 *   anonymous source is as big as all of them; --source file (or anon)
 *   runs only that one.  Each pass's CPU time is printed too (cpu_runs_s).
 *
 * --touchers N (fault mode): N toucher threads share the order, toucher k
 *   taking its pages i = k, k + N, ... at once with the others, one handler
 *   as before: the limit a multi-threaded process meets (scripts/bench tree
 *   holds 16 threads of a lazily restored tree against it).
 *
 * Prints one JSON object on stdout; errors go to stderr with exit status 1.
 *
 *   uffd_raw [--size 1G] [--mode fault|copy|all] [--order seq|random|both]
 *            [--window PAGES] [--chunk 4M] [--reps 3] [--tmpdir DIR] [--copy-file F[,F...]]
 *            [--source file|anon|both] [--seed N] [--timeout SECONDS]
 *            [--handler-cpu N] [--toucher-cpu N]
 */
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"

struct config {
	uint64_t size;
	uint64_t chunk;
	uint64_t window;	/* pages per fault answer */
	uint64_t seed;
	int reps;
	int handler_cpu, toucher_cpu;	/* -1: where the scheduler likes */
	int touchers;			/* toucher threads of the fault test */
	const char *mode;
	const char *order;
	const char *tmpdir;
	const char *copy_file;	/* file sources of the copy test, else a new one */
	const char *source;	/* copy test: file, anon or both */
};

#define MAX_COPY_FILES	64

/* One run of the fault test. */
struct fault_run {
	const struct config *cfg;
	int uffd;
	char *region;
	const char *src;	/* cfg->chunk bytes of pattern */
	size_t npages, nblocks;
	const uint32_t *order;

	uint8_t *delivered;	/* per window block; written by the handler */
	size_t faults, wakes;
	uint32_t *service_ns;	/* handler: read() returned -> copy done */
	uint32_t *rtt_ns;	/* toucher: touch of a not yet delivered block */
	size_t nr_rtt;		/* atomic: the touchers share rtt_ns */
	uint64_t t_start, t_end;	/* the first toucher's start, the last one's end */
};

struct toucher {
	struct fault_run *r;
	int k;
};

static void *xmap(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		bench_die("mmap %zu bytes: %m", len);
	return p;
}

static int uffd_open(void)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	int fd = syscall(SYS_userfaultfd, O_CLOEXEC);

	if (fd < 0)
		bench_die("userfaultfd: %m");
	if (ioctl(fd, UFFDIO_API, &api))
		bench_die("UFFDIO_API: %m");
	return fd;
}

static void uffd_register(int uffd, void *addr, size_t len)
{
	struct uffdio_register r = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	if (ioctl(uffd, UFFDIO_REGISTER, &r))
		bench_die("UFFDIO_REGISTER %zu bytes: %m", len);
	if (!(r.ioctls & (1ULL << _UFFDIO_COPY)))
		bench_die("UFFDIO_COPY is not available on anonymous memory");
}

/* Copy len bytes to dst, following partial progress; 0 or an errno. */
static int uffd_copy(int uffd, uint64_t dst, const void *src, uint64_t len)
{
	uint64_t done = 0;

	while (done < len) {
		struct uffdio_copy c = {
			.dst = dst + done,
			.src = (uintptr_t)src + done,
			.len = len - done,
		};

		if (!ioctl(uffd, UFFDIO_COPY, &c))
			return 0;
		if (c.copy > 0) {
			done += c.copy;
			continue;
		}
		if (errno != EAGAIN)
			return errno;
	}
	return 0;
}

static void *fault_handler(void *arg)
{
	struct fault_run *r = arg;
	uint64_t block_len = r->cfg->window * BENCH_PAGE;
	size_t left = r->nblocks;

	bench_pin_self(r->cfg->handler_cpu);

	while (left) {
		struct uffd_msg msg;
		ssize_t n = read(r->uffd, &msg, sizeof(msg));
		uint64_t t0, off, block;
		int err;

		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n != sizeof(msg))
			bench_die("read from the uffd: %s", n < 0 ? strerror(errno) : "short read");
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		t0 = bench_now_ns();
		off = msg.arg.pagefault.address - (uintptr_t)r->region;
		block = off / block_len;
		if (r->delivered[block]) {
			/* cannot happen with one toucher; wake it all the same */
			struct uffdio_range wr = { .start = msg.arg.pagefault.address & ~(BENCH_PAGE - 1),
						   .len = BENCH_PAGE };

			ioctl(r->uffd, UFFDIO_WAKE, &wr);
			r->wakes++;
			continue;
		}
		err = uffd_copy(r->uffd, (uintptr_t)r->region + block * block_len,
				r->src + (block * block_len) % r->cfg->chunk, block_len);
		if (err && err != EEXIST) {
			/* the toucher waits for this page: end here, not in a hang */
			errno = err;
			bench_die("UFFDIO_COPY at 0x%llx: %m", (unsigned long long)msg.arg.pagefault.address);
		}
		__atomic_store_n(&r->delivered[block], 1, __ATOMIC_RELEASE);
		r->service_ns[r->faults++] = bench_now_ns() - t0;
		left--;
	}
	return NULL;
}

static void *fault_toucher(void *arg)
{
	struct toucher *me = arg;
	struct fault_run *r = me->r;
	size_t block_pages = r->cfg->window, step = r->cfg->touchers;
	uint64_t sum = 0, t;

	bench_pin_self(r->cfg->toucher_cpu);
	t = bench_now_ns();
	for (uint64_t cur = __atomic_load_n(&r->t_start, __ATOMIC_RELAXED); !cur || t < cur;)
		if (__atomic_compare_exchange_n(&r->t_start, &cur, t, false, __ATOMIC_RELAXED,
						__ATOMIC_RELAXED))
			break;
	for (size_t i = me->k; i < r->npages; i += step) {
		size_t page = r->order[i];
		bool faults = !__atomic_load_n(&r->delivered[page / block_pages], __ATOMIC_ACQUIRE);
		uint64_t t0 = bench_now_ns();

		sum += *(volatile uint64_t *)(r->region + page * BENCH_PAGE);
		if (faults)
			r->rtt_ns[__atomic_fetch_add(&r->nr_rtt, 1, __ATOMIC_RELAXED)] =
				bench_now_ns() - t0;
	}
	t = bench_now_ns();
	for (uint64_t cur = __atomic_load_n(&r->t_end, __ATOMIC_RELAXED); t > cur;)
		if (__atomic_compare_exchange_n(&r->t_end, &cur, t, false, __ATOMIC_RELAXED,
						__ATOMIC_RELAXED))
			break;
	if (!sum)
		bench_die("the toucher read zeros: the copies did not land");
	return NULL;
}

static void run_fault(const struct config *cfg, const char *src, bool random, bool last)
{
	struct fault_run r = { .cfg = cfg, .src = src };
	pthread_t handler, toucher[cfg->touchers];
	struct toucher args[cfg->touchers];
	uint32_t *order;
	double secs;

	/* a whole number of window blocks */
	r.nblocks = (cfg->size / BENCH_PAGE + cfg->window - 1) / cfg->window;
	r.npages = r.nblocks * cfg->window;
	r.region = xmap(r.npages * BENCH_PAGE);
	r.delivered = calloc(r.nblocks, 1);
	r.service_ns = calloc(r.nblocks, sizeof(uint32_t));
	r.rtt_ns = calloc(r.npages, sizeof(uint32_t));
	order = malloc(r.npages * sizeof(uint32_t));
	if (!r.delivered || !r.service_ns || !r.rtt_ns || !order)
		bench_die("out of memory");
	bench_page_order(order, r.npages, random ? cfg->seed : 0);
	r.order = order;

	bench_warm_memory(r.npages * BENCH_PAGE);
	r.uffd = uffd_open();
	uffd_register(r.uffd, r.region, r.npages * BENCH_PAGE);
	if (pthread_create(&handler, NULL, fault_handler, &r))
		bench_die("pthread_create failed");
	for (int k = 0; k < cfg->touchers; k++) {
		args[k] = (struct toucher){ &r, k };
		if (pthread_create(&toucher[k], NULL, fault_toucher, &args[k]))
			bench_die("pthread_create failed");
	}
	for (int k = 0; k < cfg->touchers; k++)
		pthread_join(toucher[k], NULL);
	pthread_join(handler, NULL);

	secs = (r.t_end - r.t_start) / 1e9;
	printf("    \"%s\": {\"touchers\": %d, \"pages\": %zu, \"faults\": %zu, \"seconds\": %.6f, "
	       "\"faults_per_s\": %.0f, \"pages_per_s\": %.0f, "
	       "\"rtt_p50_us\": %.2f, \"rtt_p99_us\": %.2f, "
	       "\"service_p50_us\": %.2f, \"service_p99_us\": %.2f}%s\n",
	       random ? "random" : "seq", cfg->touchers, r.npages, r.faults, secs,
	       r.faults / secs, r.npages / secs,
	       bench_percentile_us(r.rtt_ns, r.nr_rtt, 0.50),
	       bench_percentile_us(r.rtt_ns, r.nr_rtt, 0.99),
	       bench_percentile_us(r.service_ns, r.faults, 0.50),
	       bench_percentile_us(r.service_ns, r.faults, 0.99), last ? "" : ",");

	close(r.uffd);
	munmap(r.region, r.npages * BENCH_PAGE);
	free(order);
	free(r.rtt_ns);
	free(r.service_ns);
	free(r.delivered);
}

/* This thread's CPU time to the nanosecond (getrusage()'s can stand still
 * over a short pass). */
static double thread_cpu_s(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts))
		bench_die("clock_gettime: %m");
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * One pass: UFFDIO_COPY each of the n sources into a fresh registered
 * region of its own (all of them mapped and registered before the clock
 * starts, as the lazy-pages daemon has every task's memory registered
 * before it drains), front to back in cfg->chunk pieces.
 */
static double copy_once(const struct config *cfg, int n, const char *const *src,
			const uint64_t *size, double *cpu_s)
{
	char *dst[MAX_COPY_FILES];
	uint64_t t0, t1, total = 0;
	int uffd = uffd_open();
	double cpu0;

	for (int i = 0; i < n; i++) {
		dst[i] = xmap(size[i]);
		uffd_register(uffd, dst[i], size[i]);
		total += size[i];
	}
	cpu0 = thread_cpu_s();
	t0 = bench_now_ns();
	for (int i = 0; i < n; i++) {
		for (uint64_t off = 0; off < size[i]; off += cfg->chunk) {
			uint64_t len = size[i] - off < cfg->chunk ? size[i] - off : cfg->chunk;
			int err = uffd_copy(uffd, (uintptr_t)dst[i] + off, src[i] + off, len);

			if (err) {
				errno = err;
				bench_die("UFFDIO_COPY at offset %llu: %m", (unsigned long long)off);
			}
		}
	}
	t1 = bench_now_ns();
	*cpu_s = thread_cpu_s() - cpu0;
	for (int i = 0; i < n; i++) {
		uint64_t last = size[i] - BENCH_PAGE;

		if (memcmp(dst[i] + last, src[i] + last, BENCH_PAGE))
			bench_die("the copied region does not hold the source");
	}
	close(uffd);
	for (int i = 0; i < n; i++)
		munmap(dst[i], size[i]);
	return total / ((t1 - t0) / 1e9) / (1 << 20);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void print_copy(const char *name, const double *mibs, const double *cpu, int reps,
		       bool last)
{
	double sorted[reps];

	memcpy(sorted, mibs, sizeof(sorted));
	qsort(sorted, reps, sizeof(double), cmp_double);
	printf("    \"%s\": {\"median_mib_s\": %.1f, \"best_mib_s\": %.1f, \"runs_mib_s\": [",
	       name, sorted[reps / 2], sorted[reps - 1]);
	for (int i = 0; i < reps; i++)
		printf("%s%.1f", i ? ", " : "", mibs[i]);
	printf("], \"cpu_runs_s\": [");
	for (int i = 0; i < reps; i++)
		printf("%s%.6f", i ? ", " : "", cpu[i]);
	printf("]}%s\n", last ? "" : ",");
}

/* A new file of cfg->size bytes of pattern, in the page cache and written back. */
static int make_source_file(const struct config *cfg)
{
	char path[4096], *buf = xmap(cfg->chunk);
	int fd;

	snprintf(path, sizeof(path), "%s/uffd_raw.XXXXXX", cfg->tmpdir);
	fd = mkstemp(path);
	if (fd < 0)
		bench_die("create a file in %s: %m", cfg->tmpdir);
	unlink(path);
	for (uint64_t off = 0; off < cfg->size; off += cfg->chunk) {
		uint64_t len = cfg->size - off < cfg->chunk ? cfg->size - off : cfg->chunk;

		bench_pattern_fill(buf, len, cfg->seed + off);
		if (write(fd, buf, len) != (ssize_t)len)
			bench_die("write %s: %m", path);
	}
	munmap(buf, cfg->chunk);
	/* no writeback racing with the measurement */
	if (fsync(fd))
		bench_die("fsync %s: %m", path);
	return fd;
}

/* The file sources of the copy test: fds, their sizes, their total in cfg->size. */
struct copy_files {
	int n;
	int fd[MAX_COPY_FILES];
	uint64_t size[MAX_COPY_FILES];
};

/* Existing files (pages images, comma-separated): their whole pages. */
static void open_source_files(struct config *cfg, struct copy_files *f)
{
	char *list = strdup(cfg->copy_file), *save = NULL;

	if (!list)
		bench_die("strdup: %m");
	cfg->size = 0;
	for (char *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
		struct stat st;
		int fd;

		if (f->n == MAX_COPY_FILES)
			bench_die("--copy-file: more than %d files", MAX_COPY_FILES);
		fd = open(name, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st))
			bench_die("%s: %m", name);
		f->fd[f->n] = fd;
		f->size[f->n] = st.st_size & ~(BENCH_PAGE - 1);
		if (!f->size[f->n])
			bench_die("%s: shorter than a page", name);
		cfg->size += f->size[f->n++];
	}
	if (!f->n)
		bench_die("--copy-file: no file named");
	free(list);
}

/* The files mapped afresh each time, as the daemon maps a pages image. */
static double copy_files_once(const struct config *cfg, const struct copy_files *f,
			      double *cpu_s)
{
	const char *map[MAX_COPY_FILES];
	double v;

	for (int i = 0; i < f->n; i++) {
		void *m = mmap(NULL, f->size[i], PROT_READ, MAP_PRIVATE, f->fd[i], 0);

		if (m == MAP_FAILED)
			bench_die("mmap a source file: %m");
		madvise(m, f->size[i], MADV_SEQUENTIAL);	/* as the daemon does */
		map[i] = m;
	}
	v = copy_once(cfg, f->n, map, f->size, cpu_s);
	for (int i = 0; i < f->n; i++)
		munmap((void *)map[i], f->size[i]);
	return v;
}

static void run_copy(struct config *cfg)
{
	struct copy_files f = { 0 };
	bool anon_too = strcmp(cfg->source, "file"), file_too = strcmp(cfg->source, "anon");
	double anon[cfg->reps], file[cfg->reps], anon_cpu[cfg->reps], file_cpu[cfg->reps], cpu;
	char *src;

	if (cfg->copy_file) {
		open_source_files(cfg, &f);
	} else if (file_too) {
		f.fd[0] = make_source_file(cfg);
		f.size[0] = cfg->size;
		f.n = 1;
	}
	bench_pin_self(cfg->handler_cpu);
	/*
	 * Each source: one pass to warm up (see bench_warm_memory), then the measured
	 * ones.  The file first: the gigabyte of anonymous source freed at the
	 * end would otherwise be handed back to the host during the file runs.
	 */
	for (int i = -1; file_too && i < cfg->reps; i++) {
		double v = copy_files_once(cfg, &f, &cpu);

		if (i >= 0) {
			file[i] = v;
			file_cpu[i] = cpu;
		}
	}
	for (int i = 0; i < f.n; i++)
		close(f.fd[i]);

	if (anon_too) {
		src = xmap(cfg->size);
		bench_pattern_fill(src, cfg->size, cfg->seed);
		for (int i = -1; i < cfg->reps; i++) {
			double v = copy_once(cfg, 1, (const char *const *)&src, &cfg->size, &cpu);

			if (i >= 0) {
				anon[i] = v;
				anon_cpu[i] = cpu;
			}
		}
		munmap(src, cfg->size);
	}

	printf("  \"copy\": {\n    \"chunk\": %llu, \"bytes\": %llu, \"files\": %d, \"reps\": %d%s\n",
	       (unsigned long long)cfg->chunk, (unsigned long long)cfg->size, f.n, cfg->reps,
	       anon_too || file_too ? "," : "");
	if (anon_too)
		print_copy("anon", anon, anon_cpu, cfg->reps, !file_too);
	if (file_too)
		print_copy("file", file, file_cpu, cfg->reps, true);
	printf("  }");
}

static void usage(int status)
{
	fputs("usage: uffd_raw [--size 1G] [--mode fault|copy|all] [--order seq|random|both]\n"
	      "                [--window PAGES] [--chunk 4M] [--reps 3] [--tmpdir DIR] [--copy-file F[,F...]]\n"
	      "                [--source file|anon|both] [--seed N] [--timeout SECONDS]\n"
	      "                [--handler-cpu N] [--toucher-cpu N] [--touchers N]\n",
	      status ? stderr : stdout);
	exit(status);
}

int main(int argc, char **argv)
{
	struct config cfg = {
		.size = 1ULL << 30, .chunk = 4ULL << 20, .window = 1, .seed = 0x5eed,
		.reps = 3, .handler_cpu = -1, .toucher_cpu = -1, .touchers = 1,
		.mode = "all", .order = "both", .tmpdir = "/var/tmp", .source = "both",
	};
	int timeout = 600;
	const struct bench_opt opts[] = {
		{ "size", BENCH_SIZE, &cfg.size },
		{ "mode", BENCH_STR, &cfg.mode },
		{ "order", BENCH_STR, &cfg.order },
		{ "window", BENCH_U64, &cfg.window },
		{ "chunk", BENCH_SIZE, &cfg.chunk },
		{ "reps", BENCH_INT, &cfg.reps },
		{ "tmpdir", BENCH_STR, &cfg.tmpdir },
		{ "copy-file", BENCH_STR, &cfg.copy_file },
		{ "source", BENCH_STR, &cfg.source },
		{ "seed", BENCH_U64, &cfg.seed },
		{ "timeout", BENCH_INT, &timeout },
		{ "handler-cpu", BENCH_INT, &cfg.handler_cpu },
		{ "toucher-cpu", BENCH_INT, &cfg.toucher_cpu },
		{ "touchers", BENCH_INT, &cfg.touchers },
	};
	bool do_fault, do_copy, seq, rnd;

	bench_parse_opts(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);
	if (cfg.touchers < 1 || cfg.touchers > 256 || !cfg.window || cfg.reps < 1 || !cfg.seed ||
	    timeout < 1 || cfg.size % BENCH_PAGE || cfg.chunk % BENCH_PAGE ||
	    cfg.window > cfg.chunk / BENCH_PAGE || cfg.size / BENCH_PAGE > UINT32_MAX)
		usage(1);
	do_fault = !strcmp(cfg.mode, "fault") || !strcmp(cfg.mode, "all");
	do_copy = !strcmp(cfg.mode, "copy") || !strcmp(cfg.mode, "all");
	seq = !strcmp(cfg.order, "seq") || !strcmp(cfg.order, "both");
	rnd = !strcmp(cfg.order, "random") || !strcmp(cfg.order, "both");
	if (!(do_fault || do_copy) || !(seq || rnd) ||
	    (strcmp(cfg.source, "file") && strcmp(cfg.source, "anon") && strcmp(cfg.source, "both")))
		usage(1);
	alarm(timeout);		/* a lost wake-up must not hang the benchmark */

	printf("{\n  \"page_size\": %lu, \"size\": %llu, \"window_pages\": %llu,\n", BENCH_PAGE,
	       (unsigned long long)cfg.size, (unsigned long long)cfg.window);
	if (do_fault) {
		char *src = xmap(cfg.chunk);

		bench_pattern_fill(src, cfg.chunk, cfg.seed);
		printf("  \"fault\": {\n");
		if (seq)
			run_fault(&cfg, src, false, !rnd);
		if (rnd)
			run_fault(&cfg, src, true, true);
		printf("  }%s\n", do_copy ? "," : "");
		munmap(src, cfg.chunk);
	}
	fflush(stdout);
	if (do_copy) {
		run_copy(&cfg);
		printf("\n");
	}
	printf("}\n");
	return 0;
}
