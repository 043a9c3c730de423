/*
 * tcp_raw: the raw loopback TCP bandwidth of this machine, the baseline
 * that `scripts/bench remote` holds the page server -> lazy-pages daemon
 * drain against.
 *
 * One process, two threads over 127.0.0.1 (loopback only).  For each run a
 * receiver accepts one connection and a sender pushes --size bytes through
 * it in send()s of --chunk (4 MiB: the size of the page server's largest
 * reply), walking a source region of --source bytes (default: --size, so
 * every byte sent comes from memory not touched since it was filled, as a
 * page server's replies come from a gigabyte of image); the receiver
 * recv()s into a buffer of --recv-chunk and drops the data.  Both sockets
 * get TCP_NODELAY, as the page server's and the daemon's do, and the
 * kernel's default buffer sizes (autotuning), as theirs do.
 *
 * A run is timed by the receiver: from the moment it tells the sender to go
 * (one byte back on the connection) until the last byte is in.  One run
 * that is not counted warms up, then --reps runs; the limit is the best.
 *
 * --uffd-copy: the receiver also does what the lazy-pages daemon does with
 * the data, no more: each full --recv-chunk it has read goes by one
 * UFFDIO_COPY into the next place of a MISSING-registered anonymous region
 * of --size (a fresh one each run, mapped and registered before the clock
 * starts).  The like-for-like limit of a drain: TCP plus the copy into the
 * task, with nothing else in the way.
 *
 * Prints one JSON object on stdout; errors go to stderr with exit status 1.
 *
 *   tcp_raw [--size 1G] [--chunk 4M] [--recv-chunk 4M] [--source SIZE] [--uffd-copy]
 *           [--reps 5] [--sender-cpu N] [--receiver-cpu N] [--timeout SECONDS]
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"

#define MAX_REPS 100

struct config {
	uint64_t size, chunk, recv_chunk, source;
	int reps;
	int sender_cpu, receiver_cpu;	/* -1: where the scheduler likes */
	bool uffd_copy;
};

struct sender {
	const struct config *cfg;
	const char *src;
	uint16_t port;
};

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("tcp_raw: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void pin_self(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set))
		die("pin to CPU %d: %m", cpu);
}

static void *xmap(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("mmap %zu bytes: %m", len);
	return p;
}

static void set_nodelay(int fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		die("TCP_NODELAY: %m");
}

/* A fresh MISSING-registered region of len bytes and its uffd. */
static char *uffd_region(size_t len, int *uffd)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	char *p = xmap(len);

	*uffd = syscall(SYS_userfaultfd, O_CLOEXEC);
	if (*uffd < 0)
		die("userfaultfd: %m");
	if (ioctl(*uffd, UFFDIO_API, &api))
		die("UFFDIO_API: %m");
	reg.range.start = (uintptr_t)p;
	reg.range.len = len;
	if (ioctl(*uffd, UFFDIO_REGISTER, &reg))
		die("UFFDIO_REGISTER %zu bytes: %m", len);
	return p;
}

/* UFFDIO_COPY of len bytes to dst, following partial progress. */
static void uffd_copy(int uffd, char *dst, const char *src, uint64_t len)
{
	uint64_t done = 0;

	while (done < len) {
		struct uffdio_copy c = {
			.dst = (uintptr_t)dst + done,
			.src = (uintptr_t)src + done,
			.len = len - done,
		};

		if (!ioctl(uffd, UFFDIO_COPY, &c))
			return;
		if (c.copy > 0)
			done += c.copy;
		else if (errno != EAGAIN)
			die("UFFDIO_COPY: %m");
	}
}

static int listen_loopback(uint16_t *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket: %m");
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 4))
		die("listen on 127.0.0.1: %m");
	if (getsockname(fd, (struct sockaddr *)&sa, &sl))
		die("getsockname: %m");
	*port = ntohs(sa.sin_port);
	return fd;
}

/* The sender: connect, wait for the go byte, send size bytes in chunks. */
static void *sender_main(void *arg)
{
	struct sender *s = arg;
	const struct config *cfg = s->cfg;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(s->port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	uint64_t sent = 0, off = 0;
	char go;
	int fd;

	pin_self(cfg->sender_cpu);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket: %m");
	set_nodelay(fd);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		die("connect to 127.0.0.1:%u: %m", s->port);
	if (recv(fd, &go, 1, MSG_WAITALL) != 1)
		die("sender: no go byte: %m");
	while (sent < cfg->size) {
		uint64_t len = cfg->size - sent;
		ssize_t n;

		if (len > cfg->chunk)
			len = cfg->chunk;
		if (len > cfg->source - off)
			len = cfg->source - off;
		n = send(fd, s->src + off, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("send: %m");
		}
		sent += n;
		off = (off + n) % cfg->source;
	}
	close(fd);
	return NULL;
}

/* One run: the receiver's MiB/s. */
static double run_once(const struct config *cfg, int lfd, struct sender *s, char *rbuf)
{
	pthread_t th;
	uint64_t got = 0, copied = 0, fill = 0, t0, t1;
	char *region = NULL;
	int fd, err, uffd = -1;
	char go = 1;

	if (cfg->uffd_copy)
		region = uffd_region(cfg->size, &uffd);
	err = pthread_create(&th, NULL, sender_main, s);
	if (err)
		die("pthread_create: %s", strerror(err));
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		die("accept: %m");
	set_nodelay(fd);
	t0 = bench_now_ns();
	if (send(fd, &go, 1, MSG_NOSIGNAL) != 1)
		die("send the go byte: %m");
	while (got < cfg->size) {
		ssize_t n = recv(fd, rbuf + fill, cfg->recv_chunk - fill, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("recv after %llu of %llu bytes: %s", (unsigned long long)got,
			    (unsigned long long)cfg->size, n ? strerror(errno) : "EOF");
		got += n;
		if (!cfg->uffd_copy)
			continue;
		fill += n;
		if (fill == cfg->recv_chunk || got == cfg->size) {
			uffd_copy(uffd, region + copied, rbuf, fill);
			copied += fill;
			fill = 0;
		}
	}
	t1 = bench_now_ns();
	close(fd);
	pthread_join(th, NULL);
	if (cfg->uffd_copy) {
		close(uffd);
		munmap(region, cfg->size);
	}
	return cfg->size / ((t1 - t0) / 1e9) / (1 << 20);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void usage(void)
{
	fputs("usage: tcp_raw [--size 1G] [--chunk 4M] [--recv-chunk 4M] [--source SIZE] [--uffd-copy]\n"
	      "               [--reps 5] [--sender-cpu N] [--receiver-cpu N] [--timeout SECONDS]\n",
	      stderr);
	exit(1);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "chunk", required_argument, NULL, 'c' },
		{ "recv-chunk", required_argument, NULL, 'r' },
		{ "source", required_argument, NULL, 'S' },
		{ "reps", required_argument, NULL, 'n' },
		{ "sender-cpu", required_argument, NULL, 'x' },
		{ "receiver-cpu", required_argument, NULL, 'y' },
		{ "timeout", required_argument, NULL, 't' },
		{ "uffd-copy", no_argument, NULL, 'u' },
		{ }
	};
	struct config cfg = { .size = 1ULL << 30, .chunk = 4 << 20, .recv_chunk = 4 << 20,
			      .reps = 5, .sender_cpu = -1, .receiver_cpu = -1 };
	double mibs[MAX_REPS], sorted[MAX_REPS];
	unsigned timeout = 600;
	struct sender s = { .cfg = &cfg };
	char *src, *rbuf;
	int c, lfd;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': cfg.size = bench_parse_size(optarg); break;
		case 'c': cfg.chunk = bench_parse_size(optarg); break;
		case 'r': cfg.recv_chunk = bench_parse_size(optarg); break;
		case 'S': cfg.source = bench_parse_size(optarg); break;
		case 'n': cfg.reps = atoi(optarg); break;
		case 'x': cfg.sender_cpu = atoi(optarg); break;
		case 'y': cfg.receiver_cpu = atoi(optarg); break;
		case 't': timeout = atoi(optarg); break;
		case 'u': cfg.uffd_copy = true; break;
		default: usage();
		}
	}
	if (!cfg.source)
		cfg.source = cfg.size;
	if (optind != argc || !cfg.size || !cfg.chunk || !cfg.recv_chunk || !cfg.source ||
	    cfg.reps < 1 || cfg.reps > MAX_REPS || !timeout ||
	    (cfg.uffd_copy && (cfg.size % BENCH_PAGE || cfg.recv_chunk % BENCH_PAGE)))
		usage();
	alarm(timeout);		/* a lost peer must not hang the benchmark */

	src = xmap(cfg.source);
	bench_pattern_fill(src, cfg.source, 0x746370);	/* every page really there */
	rbuf = xmap(cfg.recv_chunk);
	memset(rbuf, 0, cfg.recv_chunk);
	s.src = src;
	pin_self(cfg.receiver_cpu);
	lfd = listen_loopback(&s.port);

	run_once(&cfg, lfd, &s, rbuf);	/* warm-up, not counted */
	for (int i = 0; i < cfg.reps; i++)
		mibs[i] = sorted[i] = run_once(&cfg, lfd, &s, rbuf);
	close(lfd);
	qsort(sorted, cfg.reps, sizeof(sorted[0]), cmp_double);

	printf("{\"bytes\": %llu, \"chunk\": %llu, \"recv_chunk\": %llu, \"source\": %llu, "
	       "\"uffd_copy\": %s, \"reps\": %d, \"sender_cpu\": %d, \"receiver_cpu\": %d, "
	       "\"best_mib_s\": %.1f, \"median_mib_s\": %.1f, \"runs_mib_s\": [",
	       (unsigned long long)cfg.size, (unsigned long long)cfg.chunk,
	       (unsigned long long)cfg.recv_chunk, (unsigned long long)cfg.source,
	       cfg.uffd_copy ? "true" : "false", cfg.reps,
	       cfg.sender_cpu, cfg.receiver_cpu, sorted[cfg.reps - 1], sorted[cfg.reps / 2]);
	for (int i = 0; i < cfg.reps; i++)
		printf("%s%.1f", i ? ", " : "", mibs[i]);
	printf("]}\n");
	return 0;
}
