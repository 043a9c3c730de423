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

#include "tcp_raw.h"

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

static void usage(int status)
{
	fputs("usage: tcp_raw [--mode stream|rtt] [--size 1G] [--chunk 4M] [--recv-chunk 4M]\n"
	      "               [--source SIZE] [--uffd-copy] [--copy-thread] [--reps 5]\n"
	      "               [--requests 4096] [--reply 64K] [--sender-cpu N]\n"
	      "               [--receiver-cpu N] [--timeout S]\n",
	      status ? stderr : stdout);
	exit(status);
}

static void print_config(const struct config *cfg)
{
	printf("{\"mode\": \"%s\", \"source\": %llu, \"uffd_copy\": %s, \"copy_thread\": %s, "
	       "\"sender_cpu\": %d, \"receiver_cpu\": %d, ", cfg->rtt ? "rtt" : "stream",
	       (unsigned long long)cfg->source, cfg->uffd_copy ? "true" : "false",
	       cfg->copy_thread ? "true" : "false", cfg->sender_cpu, cfg->receiver_cpu);
}

/* Digits after the point: small figures (a loaded machine's MiB/s, CPU
 * seconds) keep four, so the best and the median equal one of the runs. */
static int prec(double v)
{
	return v < 10 ? 4 : 1;
}

static void print_array(const char *key, const double *v, int n, const char *sep)
{
	printf("\"%s\": [", key);
	for (int i = 0; i < n; i++)
		printf("%s%.*f", i ? ", " : "", prec(v[i]), v[i]);
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
	       "\"best_mib_s\": %.*f, \"median_mib_s\": %.*f, ",
	       (unsigned long long)cfg->size, (unsigned long long)cfg->chunk,
	       (unsigned long long)cfg->recv_chunk, cfg->reps, prec(best), best,
	       prec(median(mibs, cfg->reps)), median(mibs, cfg->reps));
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
	struct config cfg = { .size = 1ULL << 30, .chunk = 4 << 20, .recv_chunk = 4 << 20,
			      .requests = 4096, .reply = 64 << 10, .reps = 5,
			      .sender_cpu = -1, .receiver_cpu = -1 };
	const char *mode = "stream";
	int timeout = 600;
	const struct bench_opt opts[] = {
		{ "mode", BENCH_STR, &mode },
		{ "size", BENCH_SIZE, &cfg.size },
		{ "chunk", BENCH_SIZE, &cfg.chunk },
		{ "recv-chunk", BENCH_SIZE, &cfg.recv_chunk },
		{ "source", BENCH_SIZE, &cfg.source },
		{ "reps", BENCH_INT, &cfg.reps },
		{ "requests", BENCH_U64, &cfg.requests },
		{ "reply", BENCH_SIZE, &cfg.reply },
		{ "sender-cpu", BENCH_INT, &cfg.sender_cpu },
		{ "receiver-cpu", BENCH_INT, &cfg.receiver_cpu },
		{ "timeout", BENCH_INT, &timeout },
		{ "uffd-copy", BENCH_FLAG, &cfg.uffd_copy },
		{ "copy-thread", BENCH_FLAG, &cfg.copy_thread },	/* implies --uffd-copy */
	};
	struct sender s = { .cfg = &cfg };
	struct copy_ring ring = { .lock = PTHREAD_MUTEX_INITIALIZER,
				  .changed = PTHREAD_COND_INITIALIZER };
	char *src, *rbuf;
	int lfd;

	bench_parse_opts(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);
	if (strcmp(mode, "stream") && strcmp(mode, "rtt"))
		usage(1);
	cfg.rtt = !strcmp(mode, "rtt");
	cfg.uffd_copy |= cfg.copy_thread;
	if (!cfg.source)
		cfg.source = cfg.size;
	if ((cfg.rtt && cfg.copy_thread) ||
	    cfg.reps < 1 || cfg.reps > MAX_REPS || timeout < 1 || !cfg.requests ||
	    cfg.reply > cfg.source ||
	    (cfg.uffd_copy && (cfg.size % BENCH_PAGE || cfg.recv_chunk % BENCH_PAGE ||
			       cfg.reply % BENCH_PAGE)))
		usage(1);
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
