/*
 * tcp_raw's parts (main.c: the runs and the report; net.c: loopback
 * sockets and the sender thread; uffd.c: the userfaultfd region and the
 * --copy-thread copier).
 */
#ifndef CRIU_LAZY_TEST_BENCH_TCP_RAW_H
#define CRIU_LAZY_TEST_BENCH_TCP_RAW_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

void *xmap(size_t len);

/* uffd.c */
char *uffd_region(size_t len, int *uffd);
void uffd_copy(int uffd, char *dst, const char *src, uint64_t len);
void *copier_main(void *arg);
void receive_into_ring(const struct config *cfg, int fd, struct copy_ring *ring);

/* net.c */
int listen_loopback(uint16_t *port);
void send_all(int fd, const char *buf, uint64_t len);
void recv_all(int fd, char *buf, uint64_t len);
int accept_one(int lfd, struct sender *s, pthread_t *th);

#endif
