/*
 * Small helpers shared by the benchmark programs (each test/bench/NAME.c, or
 * NAME/ directory, is one binary, so these are static inline): sizes with K/M/G
 * suffixes, the monotonic clock, a thread's CPU time, warm fresh memory, a
 * seeded page order, the memory pattern, percentiles, atomic result files,
 * and the command line (one table of options, bench_parse_opts()).
 */
#ifndef CRIU_LAZY_TEST_BENCH_H
#define CRIU_LAZY_TEST_BENCH_H

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define BENCH_PAGE 4096UL

/* "<program>: <message>" on stderr and exit 1 (%m is the errno of the caller). */
static inline void __attribute__((noreturn, format(printf, 1, 2))) bench_die(const char *fmt, ...)
{
	int saved_errno = errno;
	va_list ap;

	fprintf(stderr, "%s: ", program_invocation_short_name);
	errno = saved_errno;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* Keep the calling thread on one CPU (cpu < 0: leave it to the scheduler). */
static inline void bench_pin_self(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		bench_die("pin to CPU %d: %m", cpu);
}

/* "4096", "64K", "4M", "1G" -> bytes; 0 on a malformed or zero size. */
static inline uint64_t bench_parse_size(const char *s)
{
	char *end;
	uint64_t v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return 0;
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	if (*end == 'i' && end[1] == 'B')	/* accept "MiB" and friends */
		end += 2;
	return *end ? 0 : v;
}

/* The kinds of option argument, and what dst points to for each. */
enum bench_arg {
	BENCH_STR,	/* const char *: the argument itself */
	BENCH_SIZE,	/* uint64_t: bench_parse_size(), never 0 */
	BENCH_U64,	/* uint64_t: a whole number, C notation (0x..) */
	BENCH_INT,	/* int: a whole number, may be negative (a CPU of -1) */
	BENCH_FLAG,	/* bool: set to true; the option takes no argument */
};

struct bench_opt {
	const char *name;	/* without the "--" */
	enum bench_arg arg;
	void *dst;
};

#define BENCH_MAX_OPTS 24

/*
 * Parse argv against the table @o of @n options (each --NAME stores its
 * value in its dst; what is not given keeps the caller's default).  --help
 * calls usage(0); an unknown option, a malformed or zero size, a number
 * with trailing text or out of range, or an argument left over calls
 * usage(1).  usage() does not return.  The ranges and the combinations
 * are the caller's to check afterwards.
 */
static inline void bench_parse_opts(int argc, char **argv, const struct bench_opt *o, size_t n,
				    void (*usage)(int status))
{
	struct option lo[BENCH_MAX_OPTS + 2] = { { 0 } };
	int c;

	if (n > BENCH_MAX_OPTS)
		bench_die("%zu options, more than BENCH_MAX_OPTS", n);
	for (size_t i = 0; i < n; i++)
		lo[i] = (struct option){ o[i].name,
					 o[i].arg == BENCH_FLAG ? no_argument : required_argument,
					 NULL, 'A' + (int)i };
	lo[n] = (struct option){ "help", no_argument, NULL, 'h' };
	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		const struct bench_opt *opt;
		char *end = NULL;
		long long v;

		if (c == 'h')
			usage(0);
		if (c < 'A' || c >= 'A' + (int)n)
			usage(1);
		opt = &o[c - 'A'];
		errno = 0;
		switch (opt->arg) {
		case BENCH_STR:
			*(const char **)opt->dst = optarg;
			break;
		case BENCH_SIZE:
			*(uint64_t *)opt->dst = bench_parse_size(optarg);
			if (!*(uint64_t *)opt->dst)
				usage(1);
			break;
		case BENCH_U64:
			if (*optarg == '-')
				usage(1);
			*(uint64_t *)opt->dst = strtoull(optarg, &end, 0);
			break;
		case BENCH_INT:
			v = strtoll(optarg, &end, 0);
			if (v < INT_MIN || v > INT_MAX)
				usage(1);
			*(int *)opt->dst = v;
			break;
		case BENCH_FLAG:
			*(bool *)opt->dst = true;
			break;
		}
		if (end && (errno || end == optarg || *end))
			usage(1);
	}
	if (optind != argc)
		usage(1);
}

/*
 * The workloads are driven by SIGUSR1 (run once) and SIGTERM (end), taken
 * with sigwaitinfo(): block both in *set before anyone can send one (threads
 * started later inherit the mask).
 */
static inline void bench_block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGUSR1);
	sigaddset(set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, set, NULL))
		bench_die("block signals: %m");
}

/* The next signal of @set; a dump interrupts the wait (EINTR): wait on. */
static inline int bench_next_signal(const sigset_t *set)
{
	for (;;) {
		int sig = sigwaitinfo(set, NULL);

		if (sig >= 0)
			return sig;
		if (errno != EINTR)
			bench_die("sigwaitinfo: %m");
	}
}

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* CPU seconds (user + system) the calling thread has used so far. */
static inline double bench_thread_cpu_s(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru))
		bench_die("getrusage: %m");
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/*
 * Fresh memory can be expensive on a VM whose host takes freed guest pages
 * back (free page reporting): the first touch of such a page faults in the
 * host too.  Touch and free len bytes so that what the measurement gets
 * next comes from pages the guest has just used, as the restored workload's
 * memory does (it reuses what the previous run freed).
 */
static inline void bench_warm_memory(size_t len)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return;
	for (size_t off = 0; off < len; off += BENCH_PAGE)
		p[off] = 1;
	munmap(p, len);
}

/* xorshift64*: reproducible orders from a seed, not cryptography. */
static inline uint64_t bench_rand(uint64_t *state)
{
	uint64_t x = *state ? *state : 0x2545f4914f6cdd1dULL;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* order[i] = i, or a Fisher-Yates shuffle of it when seed is non-zero. */
static inline void bench_page_order(uint32_t *order, size_t n, uint64_t seed)
{
	uint64_t state = seed;

	for (size_t i = 0; i < n; i++)
		order[i] = i;
	if (!seed)
		return;
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = bench_rand(&state) % (i + 1);
		uint32_t t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
}

/* Word idx of the pattern for seed: splitmix64, never a zero word. */
static inline uint64_t bench_pattern_word(uint64_t seed, uint64_t idx)
{
	uint64_t z = seed + (idx + 1) * 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return z ? z : 1;
}

static inline void bench_pattern_fill(void *buf, size_t len, uint64_t seed)
{
	uint64_t *w = buf;

	for (size_t i = 0; i < len / 8; i++)
		w[i] = bench_pattern_word(seed, i);
}

/* Offset of the first word that differs from the pattern, or len. */
static inline size_t bench_pattern_check(const void *buf, size_t len, uint64_t seed)
{
	const uint64_t *w = buf;

	for (size_t i = 0; i < len / 8; i++)
		if (w[i] != bench_pattern_word(seed, i))
			return i * 8;
	return len;
}

static inline int bench_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* p-th percentile (0..1) of n samples in ns, in microseconds; sorts v. */
static inline double bench_percentile_us(uint32_t *v, size_t n, double p)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), bench_cmp_u32);
	return v[(size_t)(p * (n - 1) + 0.5)] / 1000.0;
}

/* Write text to path through path.tmp and a rename: a reader never sees half. */
static inline int bench_write_atomic(const char *path, const char *text)
{
	char tmp[4096];
	size_t len = strlen(text);
	int fd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len) {
		close(fd);
		unlink(tmp);
		return -EIO;
	}
	close(fd);
	if (rename(tmp, path))
		return -errno;
	return 0;
}

#endif
