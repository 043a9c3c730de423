/*
 * Many threads faulting at once on lazy pages, some of them holding or
 * waiting for a mutex that lives inside a lazy page (as the kernel's
 * uffd-stress does with its locking threads).
 *
 * The area is --pages pages; page i holds a pthread mutex and a counter in
 * its first 64 bytes and pattern (SEED + i) in the rest.  Before the
 * checkpoint --threads threads start; the first HOLDERS of them each lock
 * the mutex of one page and keep it across the checkpoint, the next
 * WAITERS each block on one of those mutexes (a futex wait on a lazy page
 * after the restore).  After SIGTERM (in the lazy modes every page is still
 * lazy then) all threads run together: each checks the pattern of random
 * pages and takes random page mutexes to add to their counter; the holders
 * let go after a few rounds.  At the end the main thread checks every
 * page's pattern and that the counters add up to the increments made.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "lib/zdtmtst.h"

#define SEED		0x7374726573ULL
#define HEADER		64
#define HOLDERS		4
#define WAITERS		4
#define MAX_THREADS	64

struct page_head {
	pthread_mutex_t lock;
	uint64_t count;
};

static uint8_t *area;
static long nr_pages = 16384, nr_threads = 16, rounds = 4000;
static pthread_barrier_t ready, go;
static atomic_uint_fast64_t increments;
static char result[MAX_THREADS][160];

static struct page_head *head(size_t i)
{
	return (struct page_head *)(area + i * PAGE_SIZE);
}

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int check_page(size_t i, char *why, size_t size)
{
	uint8_t *p = area + i * PAGE_SIZE + HEADER;
	size_t bad = pattern_find_bad(p, PAGE_SIZE - HEADER, SEED + i);

	if (bad == PAGE_SIZE - HEADER)
		return 0;
	snprintf(why, size, "page %zu byte %zu is %#x", i, bad + HEADER, p[bad]);
	return -1;
}

static void add_to(size_t i)
{
	if (pthread_mutex_lock(&head(i)->lock))
		return;
	head(i)->count++;
	pthread_mutex_unlock(&head(i)->lock);
	atomic_fetch_add(&increments, 1);
}

/* The page a holder holds (a waiter waits for it). */
static size_t held_page(long k)
{
	return (size_t)(k + 1) * (nr_pages / (HOLDERS + 1));
}

static void *worker(void *arg)
{
	long id = (long)arg;
	uint64_t s = SEED ^ (0x9e3779b97f4a7c15ULL * (id + 1));

	if (id < HOLDERS && pthread_mutex_lock(&head(held_page(id))->lock))
		snprintf(result[id], sizeof(result[id]), "cannot lock page %zu", held_page(id));
	pthread_barrier_wait(&ready);
	if (id >= HOLDERS && id < HOLDERS + WAITERS) {
		/* blocks (a futex on that page) until the holder lets go */
		add_to(held_page(id - HOLDERS));
	} else {
		pthread_barrier_wait(&go);
	}

	for (long r = 0; r < rounds && !result[id][0]; r++) {
		size_t i = next_rand(&s) % nr_pages;

		if (r == 16 && id < HOLDERS) {
			head(held_page(id))->count++;
			atomic_fetch_add(&increments, 1);
			pthread_mutex_unlock(&head(held_page(id))->lock);
		}
		if (check_page(i, result[id], sizeof(result[id])))
			break;
		if (r % 4 == 0)
			add_to(next_rand(&s) % nr_pages);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const struct test_opt opts[] = {
		{ "pages", TEST_OPT_INT, &nr_pages, 0, "size of the area in pages" },
		{ "threads", TEST_OPT_INT, &nr_threads, 0, "faulting threads (at least 8)" },
		{ "rounds", TEST_OPT_INT, &rounds, 0, "pages each thread checks" },
		{ NULL },
	};
	pthread_mutexattr_t ma;
	pthread_t th[MAX_THREADS];
	uint64_t total = 0;
	sigset_t term, old;
	char why[160];

	test_init(argc, argv, opts);
	if (nr_threads < HOLDERS + WAITERS || nr_threads > MAX_THREADS || nr_pages < 64)
		fail("--threads %ld (%d..%d) --pages %ld (>= 64)", nr_threads,
		     HOLDERS + WAITERS, MAX_THREADS, nr_pages);
	area = mmap(NULL, nr_pages * PAGE_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		fail("mmap: %m");
	pthread_mutexattr_init(&ma);
	for (long i = 0; i < nr_pages; i++) {
		pthread_mutex_init(&head(i)->lock, &ma);
		head(i)->count = 0;
		pattern_fill(area + i * PAGE_SIZE + HEADER, PAGE_SIZE - HEADER, SEED + i);
	}
	pthread_barrier_init(&ready, NULL, nr_threads + 1);
	pthread_barrier_init(&go, NULL, nr_threads - WAITERS + 1);

	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	for (long i = 0; i < nr_threads; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)i))
			fail("pthread_create failed");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_barrier_wait(&ready);
	test_msg("area %p", (void *)area);
	/* let the waiters reach their futex */
	nanosleep(&(struct timespec){ 0, 50000000 }, NULL);

	test_daemon();
	test_waitsig();

	pthread_barrier_wait(&go);
	for (long i = 0; i < nr_threads; i++)
		if (pthread_join(th[i], NULL))
			fail("pthread_join failed");
	for (long i = 0; i < nr_threads; i++)
		if (result[i][0])
			fail("thread %ld: %s", i, result[i]);
	for (long i = 0; i < nr_pages; i++) {
		if (check_page(i, why, sizeof(why)))
			fail("after the threads: %s", why);
		if (pthread_mutex_trylock(&head(i)->lock))
			fail("the mutex of page %ld is still locked", i);
		total += head(i)->count;
	}
	if (total != atomic_load(&increments))
		fail("the page counters add up to %llu, %llu increments were made",
		     (unsigned long long)total, (unsigned long long)atomic_load(&increments));
	pass();
}
