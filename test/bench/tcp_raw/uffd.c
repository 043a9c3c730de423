/* tcp_raw: the MISSING-registered region the receiver copies into, and
 * the --copy-thread copier fed through a ring of buffers. */
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
#include "tcp_raw.h"

void *xmap(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		bench_die("mmap %zu bytes: %m", len);
	return p;
}

/* A fresh MISSING-registered region of len bytes and its uffd. */
char *uffd_region(size_t len, int *uffd)
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
void uffd_copy(int uffd, char *dst, const char *src, uint64_t len)
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

void *copier_main(void *arg)
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
void receive_into_ring(const struct config *cfg, int fd, struct copy_ring *ring)
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
