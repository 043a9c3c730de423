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
 * Each side also reports the CPU time its thread used in each run: the
 * receiver's is what a destination spends on the bytes, no more.
 *
 * --uffd-copy: the receiver also does what the lazy-pages daemon does with
 * the data, no more: each full --recv-chunk it has read goes by one
 * UFFDIO_COPY into the next place of a MISSING-registered anonymous region
 * of --size (a fresh one each run, mapped and registered before the clock
 * starts, on memory warmed as uffd_raw's is: see bench_warm_memory()).  The
 * like-for-like limit of a drain: TCP plus the copy into the task, with
 * nothing else in the way.
 *
 * --copy-thread (implies --uffd-copy): the receiver thread only recv()s,
 * into a ring of --recv-chunk buffers, and a second thread of its own does
 * the UFFDIO_COPYs, wherever the scheduler puts it: what a daemon gains by
 * spreading the copying over another CPU that the sender shares.  The
 * receiver's CPU time then counts both threads.
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
 *           [--source SIZE] [--uffd-copy] [--copy-thread] [--reps 5]
 *           [--requests 4096] [--reply 64K] [--sender-cpu N] [--receiver-cpu N] [--timeout SECONDS]
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
	bool uffd_copy, copy_thread, rtt;
};

struct sender {
	const struct config *cfg;
	const char *src;
	uint16_t port;
	double cpu_s;		/* CPU time of the last stream run */
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
	double cpu0;
	char go;

	if (recv(fd, &go, 1, MSG_WAITALL) != 1)
		bench_die("sender: no go byte: %m");
	cpu0 = bench_thread_cpu_s();
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
	s->cpu_s = bench_thread_cpu_s() - cpu0;
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

/*
 * --copy-thread: full buffers go from the receiver to the copier in order,
 * through a ring of RING_SLOTS; the receiver waits for a free slot, the
 * copier for a full one.
 */
#define RING_SLOTS 8

struct copy_ring {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	uint64_t posted, copied;	/* slots, counting up */
	bool done;			/* the receiver posts no more */
	char *buf[RING_SLOTS];
	uint64_t len[RING_SLOTS], dst_off[RING_SLOTS];
	int uffd;
	char *region;
	double cpu_s;			/* the copier's, when it returns */
};

static void *copier_main(void *arg)
{
	struct copy_ring *ring = arg;
	double cpu0 = bench_thread_cpu_s();

	pthread_mutex_lock(&ring->lock);
	for (;;) {
		int slot;

		while (ring->copied == ring->posted && !ring->done)
			pthread_cond_wait(&ring->changed, &ring->lock);
		if (ring->copied == ring->posted)
			break;
		slot = ring->copied % RING_SLOTS;
		pthread_mutex_unlock(&ring->lock);
		uffd_copy(ring->uffd, ring->region + ring->dst_off[slot], ring->buf[slot],
			  ring->len[slot]);
		pthread_mutex_lock(&ring->lock);
		ring->copied++;
		pthread_cond_broadcast(&ring->changed);
	}
	pthread_mutex_unlock(&ring->lock);
	ring->cpu_s = bench_thread_cpu_s() - cpu0;
	return NULL;
}

/* Receive size bytes into the ring's buffers, chunk by chunk, for the copier. */
static void receive_into_ring(const struct config *cfg, int fd, struct copy_ring *ring)
{
	uint64_t got = 0;

	while (got < cfg->size) {
		uint64_t len = cfg->size - got < cfg->recv_chunk ? cfg->size - got : cfg->recv_chunk;
		int slot;

		pthread_mutex_lock(&ring->lock);
		while (ring->posted - ring->copied == RING_SLOTS)
			pthread_cond_wait(&ring->changed, &ring->lock);
		slot = ring->posted % RING_SLOTS;
		pthread_mutex_unlock(&ring->lock);
		recv_all(fd, ring->buf[slot], len);
		pthread_mutex_lock(&ring->lock);
		ring->len[slot] = len;
		ring->dst_off[slot] = got;
		ring->posted++;
		pthread_cond_broadcast(&ring->changed);
		pthread_mutex_unlock(&ring->lock);
		got += len;
	}
	pthread_mutex_lock(&ring->lock);
	ring->done = true;
	pthread_cond_broadcast(&ring->changed);
	pthread_mutex_unlock(&ring->lock);
}

struct stream_run {
	double mib_s;
	double recv_cpu_s, send_cpu_s;
};

/* One stream run: the receiver's MiB/s, and each side's CPU time. */
static struct stream_run run_stream(const struct config *cfg, int lfd, struct sender *s,
				    char *rbuf, struct copy_ring *ring)
{
	uint64_t got = 0, copied = 0, fill = 0, t0, t1;
	struct stream_run r;
	char *region = NULL;
	int fd, uffd = -1;
	pthread_t th;
	double cpu0;
	char go = 1;

	if (cfg->uffd_copy) {
		bench_warm_memory(cfg->size);
		region = uffd_region(cfg->size, &uffd);
	}
	fd = accept_one(lfd, s, &th);
	cpu0 = bench_thread_cpu_s();
	t0 = bench_now_ns();
	if (send(fd, &go, 1, MSG_NOSIGNAL) != 1)
		bench_die("send the go byte: %m");
	if (ring) {
		pthread_t copier;
		int err;

		ring->posted = ring->copied = 0;
		ring->done = false;
		ring->uffd = uffd;
		ring->region = region;
		err = pthread_create(&copier, NULL, copier_main, ring);
		if (err)
			bench_die("pthread_create: %s", strerror(err));
		receive_into_ring(cfg, fd, ring);
		pthread_join(copier, NULL);
		got = cfg->size;
	}
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
	r.recv_cpu_s = bench_thread_cpu_s() - cpu0 + (ring ? ring->cpu_s : 0);
	close(fd);
	pthread_join(th, NULL);
	r.send_cpu_s = s->cpu_s;
	if (cfg->uffd_copy) {
		close(uffd);
		munmap(region, cfg->size);
	}
	r.mib_s = cfg->size / ((t1 - t0) / 1e9) / (1 << 20);
	return r;
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
	      "               [--source SIZE] [--uffd-copy] [--copy-thread] [--reps 5]\n"
	      "               [--requests 4096] [--reply 64K] [--sender-cpu N]\n"
	      "               [--receiver-cpu N] [--timeout S]\n",
	      stderr);
	exit(1);
}

static void print_config(const struct config *cfg)
{
	printf("{\"mode\": \"%s\", \"source\": %llu, \"uffd_copy\": %s, \"copy_thread\": %s, "
	       "\"sender_cpu\": %d, \"receiver_cpu\": %d, ", cfg->rtt ? "rtt" : "stream",
	       (unsigned long long)cfg->source, cfg->uffd_copy ? "true" : "false",
	       cfg->copy_thread ? "true" : "false", cfg->sender_cpu, cfg->receiver_cpu);
}

static void print_array(const char *key, const double *v, int n, const char *sep)
{
	printf("\"%s\": [", key);
	for (int i = 0; i < n; i++)
		printf("%s%.*f", i ? ", " : "", v[i] < 10 ? 4 : 1, v[i]);
	printf("]%s", sep);
}

static double median(const double *v, int n)
{
	double sorted[MAX_REPS];

	memcpy(sorted, v, n * sizeof(*v));
	qsort(sorted, n, sizeof(sorted[0]), cmp_double);
	return sorted[n / 2];
}

static void main_stream(const struct config *cfg, int lfd, struct sender *s, char *rbuf,
			struct copy_ring *ring)
{
	double mibs[MAX_REPS], recv_cpu[MAX_REPS], send_cpu[MAX_REPS], best = 0;

	run_stream(cfg, lfd, s, rbuf, ring);	/* warm-up, not counted */
	for (int i = 0; i < cfg->reps; i++) {
		struct stream_run r = run_stream(cfg, lfd, s, rbuf, ring);

		mibs[i] = r.mib_s;
		recv_cpu[i] = r.recv_cpu_s;
		send_cpu[i] = r.send_cpu_s;
		if (r.mib_s > best)
			best = r.mib_s;
	}

	print_config(cfg);
	printf("\"bytes\": %llu, \"chunk\": %llu, \"recv_chunk\": %llu, \"reps\": %d, "
	       "\"best_mib_s\": %.1f, \"median_mib_s\": %.1f, ",
	       (unsigned long long)cfg->size, (unsigned long long)cfg->chunk,
	       (unsigned long long)cfg->recv_chunk, cfg->reps, best, median(mibs, cfg->reps));
	print_array("runs_mib_s", mibs, cfg->reps, ", ");
	printf("\"recv_cpu_median_s\": %.4f, \"send_cpu_median_s\": %.4f, ",
	       median(recv_cpu, cfg->reps), median(send_cpu, cfg->reps));
	print_array("recv_cpu_s", recv_cpu, cfg->reps, ", ");
	print_array("send_cpu_s", send_cpu, cfg->reps, "}\n");
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
		{ "copy-thread", no_argument, NULL, 'T' },
		{ }
	};
	struct config cfg = { .size = 1ULL << 30, .chunk = 4 << 20, .recv_chunk = 4 << 20,
			      .requests = 4096, .reply = 64 << 10, .reps = 5,
			      .sender_cpu = -1, .receiver_cpu = -1 };
	unsigned timeout = 600;
	struct sender s = { .cfg = &cfg };
	struct copy_ring ring = { .lock = PTHREAD_MUTEX_INITIALIZER,
				  .changed = PTHREAD_COND_INITIALIZER };
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
		case 'T': cfg.uffd_copy = cfg.copy_thread = true; break;
		default: usage();
		}
	}
	if (!cfg.source)
		cfg.source = cfg.size;
	if (optind != argc || !cfg.size || !cfg.chunk || !cfg.recv_chunk || !cfg.source ||
	    (cfg.rtt && cfg.copy_thread) ||
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
	for (int i = 0; cfg.copy_thread && i < RING_SLOTS; i++) {
		ring.buf[i] = xmap(cfg.recv_chunk);
		memset(ring.buf[i], 0, cfg.recv_chunk);
	}
	s.src = src;
	bench_pin_self(cfg.receiver_cpu);
	lfd = listen_loopback(&s.port);

	if (cfg.rtt)
		main_rtt(&cfg, lfd, &s, rbuf);
	else
		main_stream(&cfg, lfd, &s, rbuf, cfg.copy_thread ? &ring : NULL);
	close(lfd);
	return 0;
}
