/*
 * tcp_raw: the raw loopback TCP limits of this machine, the baselines that
 * `scripts/bench remote` holds the page server and the lazy-pages daemon
 * against.
 *
 * One process, two threads over 127.0.0.1 (loopback only): a sender (the
 * page server's side, --sender-cpu) and a receiver (the daemon's side,
 * --receiver-cpu).  Both sockets get TCP_NODELAY, as the page server's and
 * the daemon's do, and the kernel's default buffer sizes (autotuning), as
 * theirs do.
 *
 * stream (the default): for each run the receiver accepts one connection
 * and the sender pushes --size bytes through it in send()s of --chunk
 * (4 MiB: the page server's largest reply), walking a source region of
 * --source bytes (default: --size, so every byte sent comes from memory not
 * touched since it was filled, as a page server's replies come from a
 * gigabyte of image); the receiver recv()s into a buffer of --recv-chunk
 * and drops the data.
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
 * rtt: the round trip of a fault's GET, --requests times on one
 * connection: the receiver (the daemon's side) sends a 24-byte request and
 * reads a --reply byte answer (64 KiB: the daemon's fault-around window)
 * that the sender (the page server's side) writes from the next place of
 * its source; with --uffd-copy it then copies the answer into the region.
 * Each round trip is timed by the receiver; p50/p99 in microseconds.
 *
 * Prints one JSON object on stdout; errors go to stderr with exit status 1.
 *
 *   tcp_raw [--mode stream|rtt] [--size 1G] [--chunk 4M] [--recv-chunk 4M]
 *           [--source SIZE] [--uffd-copy] [--reps 5] [--requests 4096] [--reply 64K]
 *           [--sender-cpu N] [--receiver-cpu N] [--timeout SECONDS]
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
#define REQUEST_LEN 24			/* a page_server_iov */

struct config {
	uint64_t size, chunk, recv_chunk, source;
	uint64_t requests, reply;	/* rtt */
	int reps;
	int sender_cpu, receiver_cpu;	/* -1: where the scheduler likes */
	bool uffd_copy, rtt;
};

struct sender {
	const struct config *cfg;
	const char *src;
	uint16_t port;
};

static void *xmap(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		bench_die("mmap %zu bytes: %m", len);
	return p;
}

static void set_nodelay(int fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		bench_die("TCP_NODELAY: %m");
}

/* A fresh MISSING-registered region of len bytes and its uffd. */
static char *uffd_region(size_t len, int *uffd)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	char *p = xmap(len);

	*uffd = syscall(SYS_userfaultfd, O_CLOEXEC);
	if (*uffd < 0)
		bench_die("userfaultfd: %m");
	if (ioctl(*uffd, UFFDIO_API, &api))
		bench_die("UFFDIO_API: %m");
	reg.range.start = (uintptr_t)p;
	reg.range.len = len;
	if (ioctl(*uffd, UFFDIO_REGISTER, &reg))
		bench_die("UFFDIO_REGISTER %zu bytes: %m", len);
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
			bench_die("UFFDIO_COPY: %m");
	}
}

static int listen_loopback(uint16_t *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		bench_die("socket: %m");
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 4))
		bench_die("listen on 127.0.0.1: %m");
	if (getsockname(fd, (struct sockaddr *)&sa, &sl))
		bench_die("getsockname: %m");
	*port = ntohs(sa.sin_port);
	return fd;
}

static void send_all(int fd, const char *buf, uint64_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			bench_die("send: %m");
		buf += n;
		len -= n;
	}
}

static void recv_all(int fd, char *buf, uint64_t len)
{
	while (len) {
		ssize_t n = recv(fd, buf, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			bench_die("recv: %s", n ? strerror(errno) : "EOF");
		buf += n;
		len -= n;
	}
}

/* stream: wait for the go byte, send size bytes in chunks. */
static void sender_stream(struct sender *s, int fd)
{
	const struct config *cfg = s->cfg;
	uint64_t sent = 0, off = 0;
	char go;

	if (recv(fd, &go, 1, MSG_WAITALL) != 1)
		bench_die("sender: no go byte: %m");
	while (sent < cfg->size) {
		uint64_t len = cfg->size - sent;

		if (len > cfg->chunk)
			len = cfg->chunk;
		if (len > cfg->source - off)
			len = cfg->source - off;
		send_all(fd, s->src + off, len);
		sent += len;
		off = (off + len) % cfg->source;
	}
}

/* rtt: answer each request with the next reply bytes of the source. */
static void sender_rtt(struct sender *s, int fd)
{
	const struct config *cfg = s->cfg;
	char req[REQUEST_LEN];
	uint64_t off = 0;

	for (uint64_t i = 0; i < cfg->requests; i++) {
		recv_all(fd, req, sizeof(req));
		if (off + cfg->reply > cfg->source)
			off = 0;
		send_all(fd, s->src + off, cfg->reply);
		off += cfg->reply;
	}
}

static void *sender_main(void *arg)
{
	struct sender *s = arg;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(s->port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd;

	bench_pin_self(s->cfg->sender_cpu);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		bench_die("socket: %m");
	set_nodelay(fd);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		bench_die("connect to 127.0.0.1:%u: %m", s->port);
	if (s->cfg->rtt)
		sender_rtt(s, fd);
	else
		sender_stream(s, fd);
	close(fd);
	return NULL;
}

static int accept_one(int lfd, struct sender *s, pthread_t *th)
{
	int err = pthread_create(th, NULL, sender_main, s);
	int fd;

	if (err)
		bench_die("pthread_create: %s", strerror(err));
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		bench_die("accept: %m");
	set_nodelay(fd);
	return fd;
}

/* One stream run: the receiver's MiB/s. */
static double run_stream(const struct config *cfg, int lfd, struct sender *s, char *rbuf)
{
	uint64_t got = 0, copied = 0, fill = 0, t0, t1;
	char *region = NULL;
	int fd, uffd = -1;
	pthread_t th;
	char go = 1;

	if (cfg->uffd_copy)
		region = uffd_region(cfg->size, &uffd);
	fd = accept_one(lfd, s, &th);
	t0 = bench_now_ns();
	if (send(fd, &go, 1, MSG_NOSIGNAL) != 1)
		bench_die("send the go byte: %m");
	while (got < cfg->size) {
		ssize_t n = recv(fd, rbuf + fill, cfg->recv_chunk - fill, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			bench_die("recv after %llu of %llu bytes: %s", (unsigned long long)got,
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

/* One rtt run: each round trip in ns into rtt[]. */
static void run_rtt(const struct config *cfg, int lfd, struct sender *s, char *rbuf,
		    uint32_t *rtt)
{
	char req[REQUEST_LEN] = { 0 };
	char *region = NULL;
	int fd, uffd = -1;
	pthread_t th;

	if (cfg->uffd_copy)
		region = uffd_region(cfg->requests * cfg->reply, &uffd);
	fd = accept_one(lfd, s, &th);
	for (uint64_t i = 0; i < cfg->requests; i++) {
		uint64_t t0 = bench_now_ns(), t;

		send_all(fd, req, sizeof(req));
		recv_all(fd, rbuf, cfg->reply);
		if (cfg->uffd_copy)
			uffd_copy(uffd, region + i * cfg->reply, rbuf, cfg->reply);
		t = bench_now_ns() - t0;
		rtt[i] = t > UINT32_MAX ? UINT32_MAX : t;
	}
	close(fd);
	pthread_join(th, NULL);
	if (cfg->uffd_copy) {
		close(uffd);
		munmap(region, cfg->requests * cfg->reply);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void usage(void)
{
	fputs("usage: tcp_raw [--mode stream|rtt] [--size 1G] [--chunk 4M] [--recv-chunk 4M]\n"
	      "               [--source SIZE] [--uffd-copy] [--reps 5] [--requests 4096]\n"
	      "               [--reply 64K] [--sender-cpu N] [--receiver-cpu N] [--timeout S]\n",
	      stderr);
	exit(1);
}

static void print_config(const struct config *cfg)
{
	printf("{\"mode\": \"%s\", \"source\": %llu, \"uffd_copy\": %s, \"sender_cpu\": %d, "
	       "\"receiver_cpu\": %d, ", cfg->rtt ? "rtt" : "stream",
	       (unsigned long long)cfg->source, cfg->uffd_copy ? "true" : "false",
	       cfg->sender_cpu, cfg->receiver_cpu);
}

static void main_stream(const struct config *cfg, int lfd, struct sender *s, char *rbuf)
{
	double mibs[MAX_REPS], sorted[MAX_REPS];

	run_stream(cfg, lfd, s, rbuf);	/* warm-up, not counted */
	for (int i = 0; i < cfg->reps; i++)
		mibs[i] = sorted[i] = run_stream(cfg, lfd, s, rbuf);
	qsort(sorted, cfg->reps, sizeof(sorted[0]), cmp_double);

	print_config(cfg);
	printf("\"bytes\": %llu, \"chunk\": %llu, \"recv_chunk\": %llu, \"reps\": %d, "
	       "\"best_mib_s\": %.1f, \"median_mib_s\": %.1f, \"runs_mib_s\": [",
	       (unsigned long long)cfg->size, (unsigned long long)cfg->chunk,
	       (unsigned long long)cfg->recv_chunk, cfg->reps, sorted[cfg->reps - 1],
	       sorted[cfg->reps / 2]);
	for (int i = 0; i < cfg->reps; i++)
		printf("%s%.1f", i ? ", " : "", mibs[i]);
	printf("]}\n");
}

static void main_rtt(struct config *cfg, int lfd, struct sender *s, char *rbuf)
{
	uint32_t *rtt = xmap(cfg->requests * sizeof(*rtt));
	uint64_t n = cfg->requests, sum = 0;

	cfg->requests = n < 256 ? n : 256;	/* warm-up, not counted */
	run_rtt(cfg, lfd, s, rbuf, rtt);
	cfg->requests = n;
	run_rtt(cfg, lfd, s, rbuf, rtt);
	for (uint64_t i = 0; i < n; i++)
		sum += rtt[i];

	print_config(cfg);
	printf("\"requests\": %llu, \"reply\": %llu, \"mean_us\": %.2f, ",
	       (unsigned long long)n, (unsigned long long)cfg->reply, sum / 1000.0 / n);
	printf("\"p50_us\": %.2f, ", bench_percentile_us(rtt, n, 0.50));
	printf("\"p99_us\": %.2f, \"max_us\": %.2f}\n", bench_percentile_us(rtt, n, 0.99),
	       rtt[n - 1] / 1000.0);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "size", required_argument, NULL, 's' },
		{ "chunk", required_argument, NULL, 'c' },
		{ "recv-chunk", required_argument, NULL, 'r' },
		{ "source", required_argument, NULL, 'S' },
		{ "reps", required_argument, NULL, 'n' },
		{ "requests", required_argument, NULL, 'q' },
		{ "reply", required_argument, NULL, 'R' },
		{ "sender-cpu", required_argument, NULL, 'x' },
		{ "receiver-cpu", required_argument, NULL, 'y' },
		{ "timeout", required_argument, NULL, 't' },
		{ "uffd-copy", no_argument, NULL, 'u' },
		{ }
	};
	struct config cfg = { .size = 1ULL << 30, .chunk = 4 << 20, .recv_chunk = 4 << 20,
			      .requests = 4096, .reply = 64 << 10, .reps = 5,
			      .sender_cpu = -1, .receiver_cpu = -1 };
	unsigned timeout = 600;
	struct sender s = { .cfg = &cfg };
	char *src, *rbuf;
	int c, lfd;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (strcmp(optarg, "stream") && strcmp(optarg, "rtt"))
				usage();
			cfg.rtt = !strcmp(optarg, "rtt");
			break;
		case 's': cfg.size = bench_parse_size(optarg); break;
		case 'c': cfg.chunk = bench_parse_size(optarg); break;
		case 'r': cfg.recv_chunk = bench_parse_size(optarg); break;
		case 'S': cfg.source = bench_parse_size(optarg); break;
		case 'n': cfg.reps = atoi(optarg); break;
		case 'q': cfg.requests = strtoull(optarg, NULL, 0); break;
		case 'R': cfg.reply = bench_parse_size(optarg); break;
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
	    cfg.reps < 1 || cfg.reps > MAX_REPS || !timeout || !cfg.requests ||
	    !cfg.reply || cfg.reply > cfg.source ||
	    (cfg.uffd_copy && (cfg.size % BENCH_PAGE || cfg.recv_chunk % BENCH_PAGE ||
			       cfg.reply % BENCH_PAGE)))
		usage();
	alarm(timeout);		/* a lost peer must not hang the benchmark */

	src = xmap(cfg.source);
	bench_pattern_fill(src, cfg.source, 0x746370);	/* every page really there */
	if (cfg.rtt && cfg.recv_chunk < cfg.reply)
		cfg.recv_chunk = cfg.reply;
	rbuf = xmap(cfg.recv_chunk);
	memset(rbuf, 0, cfg.recv_chunk);
	s.src = src;
	bench_pin_self(cfg.receiver_cpu);
	lfd = listen_loopback(&s.port);

	if (cfg.rtt)
		main_rtt(&cfg, lfd, &s, rbuf);
	else
		main_stream(&cfg, lfd, &s, rbuf);
	close(lfd);
	return 0;
}
