/*
 * The lazy stress of issue 8: a process with 16 threads and 4 child
 * processes with threads of their own, all faulting at once on random lazy
 * pages, some threads holding or waiting for a mutex that lives inside a
 * lazy page (as the kernel's uffd-stress does with its locking threads).
 *
 * Every process has an area of its own: page i holds a pthread mutex and
 * a counter in its first 64 bytes and pattern (seed + i) in the rest; all
 * of them also read an area the root filled before it forked (private
 * memory inherited, copy-on-write: the same dump addresses in five
 * processes).  Before the checkpoint each process
 * starts its threads: the first quarter each lock the mutex of one page and
 * keep it across the checkpoint, the next quarter each block on one of
 * those mutexes (a futex wait on a lazy page after the restore).  After
 * SIGTERM (in the lazy modes with background delivery off, every page is
 * still lazy then) every thread of every process runs at once: it checks
 * the pattern of random pages (its own area, and the inherited one in a
 * child) and takes random page mutexes to add to their counter; the holders
 * let go after a few rounds.  Each process then checks every page and that
 * its counters add up to the increments it made; a child says why it
 * failed on stderr and exits 1, the root fails naming the child.
 *
 * Ready (the pidfile) once every area is filled and every waiter is
 * blocked in its futex wait (its /proc/thread-self/syscall names the
 * mutex), each wait bounded (READY_WAIT_MS).  What getting there costs is
 * touching the areas (320 MiB): on the test VM the first user access to a
 * page costs some 7 us more than its page fault, so the areas are mapped
 * with MAP_POPULATE (one fault per page less: half the time), and the
 * root fills its own while the children fill theirs.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define SEED		0x74726c73ULL
#define HEADER		64
#define CHILDREN	4
#define MAX_THREADS	64
#define READY_WAIT_MS	20000	/* for a waiter's futex wait, for the children */

struct page_head {
	pthread_mutex_t lock;
	uint64_t count;
};

/* One process's part: its area, its threads and what they found. */
struct stress {
	const char *who;
	uint8_t *area;
	long nr_pages;
	uint64_t seed;
	const uint8_t *inherited;	/* filled by the root before the forks */
	long nr_inherited;
	long nr_threads, holders, rounds;
	pthread_barrier_t ready, go;
	int sysfd[MAX_THREADS];		/* a waiter's /proc/thread-self/syscall, or -errno */
	atomic_uint_fast64_t increments;
	char result[MAX_THREADS][160];
};

struct worker_arg {
	struct stress *s;
	long id;
};

static long root_pages = 8192, child_pages = 4096, inherited_pages = 4096;
static uint8_t *inherited;
static long root_threads = 16, child_threads = 4, rounds = 3000;

static struct page_head *head(const struct stress *s, size_t i)
{
	return (struct page_head *)(s->area + i * PAGE_SIZE);
}

static uint64_t next_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static int check_page(const uint8_t *area, size_t i, uint64_t seed, const char *what,
		      char *why, size_t size)
{
	const uint8_t *p = area + i * PAGE_SIZE + HEADER;
	size_t bad = pattern_find_bad(p, PAGE_SIZE - HEADER, seed + i);

	if (bad == PAGE_SIZE - HEADER)
		return 0;
	snprintf(why, size, "%s page %zu byte %zu is %#x", what, i, bad + HEADER, p[bad]);
	return -1;
}

static void add_to(struct stress *s, size_t i)
{
	if (pthread_mutex_lock(&head(s, i)->lock))
		return;
	head(s, i)->count++;
	pthread_mutex_unlock(&head(s, i)->lock);
	atomic_fetch_add(&s->increments, 1);
}

/* The page holder k holds (waiter k waits for it). */
static size_t held_page(const struct stress *s, long k)
{
	return (size_t)(k + 1) * (s->nr_pages / (s->holders + 1));
}

static void *worker(void *p)
{
	struct worker_arg *a = p;
	struct stress *s = a->s;
	long id = a->id;
	char *res = s->result[id];
	uint64_t x = s->seed ^ (0x9e3779b97f4a7c15ULL * (id + 1));

	bool holding = false;

	/* by the thread itself: a tid would name another task in the pid
	 * namespace /proc was mounted in (lazy-migrate's) */
	if (id >= s->holders && id < 2 * s->holders) {
		s->sysfd[id] = open("/proc/thread-self/syscall", O_RDONLY | O_CLOEXEC);
		if (s->sysfd[id] < 0)
			s->sysfd[id] = -errno;
	}
	if (id < s->holders) {
		if (pthread_mutex_lock(&head(s, held_page(s, id))->lock))
			snprintf(res, 160, "cannot lock page %zu", held_page(s, id));
		else
			holding = true;
	}
	pthread_barrier_wait(&s->ready);
	if (id >= s->holders && id < 2 * s->holders)
		add_to(s, held_page(s, id - s->holders));	/* blocks on a lazy futex */
	else
		pthread_barrier_wait(&s->go);

	for (long r = 0; r < s->rounds && !res[0]; r++) {
		size_t i = next_rand(&x) % s->nr_pages;

		if (r == 16 && holding) {
			head(s, held_page(s, id))->count++;
			atomic_fetch_add(&s->increments, 1);
			pthread_mutex_unlock(&head(s, held_page(s, id))->lock);
			holding = false;
		}
		if (check_page(s->area, i, s->seed, "own", res, 160))
			break;
		if (r % 2 &&
		    check_page(s->inherited, next_rand(&x) % s->nr_inherited, SEED, "inherited",
			       res, 160))
			break;
		if (r % 4 == 0)
			add_to(s, next_rand(&x) % s->nr_pages);
	}
	/* a failure before round 16 must not leave a waiter blocked */
	if (holding) {
		head(s, held_page(s, id))->count++;
		atomic_fetch_add(&s->increments, 1);
		pthread_mutex_unlock(&head(s, held_page(s, id))->lock);
	}
	return NULL;
}

static long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/*
 * Is the thread whose syscall file is fd blocked in a futex wait on word?
 * The file says "202 0x<word> ..." while it is (SYS_futex, the address
 * first), "running" or another call while not yet.
 */
static int in_futex_wait(int fd, const void *word, bool *yes)
{
	char buf[256];
	unsigned long addr;
	long nr;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n < 0)
		return -1;
	buf[n] = 0;
	*yes = sscanf(buf, "%ld 0x%lx", &nr, &addr) == 2 && nr == SYS_futex &&
	       addr == (unsigned long)word;
	return 0;
}

/*
 * Until every waiter sleeps on the mutex it is to wait for (bounded); the
 * waiters' syscall files are closed after, so that the checkpoint sees
 * none of them.
 */
static int wait_waiters(struct stress *s, char *why, size_t size)
{
	long deadline = now_ms() + READY_WAIT_MS;
	int ret = 0;

	for (long k = 0; k < s->holders && !ret; k++) {
		const void *word = &head(s, held_page(s, k))->lock;
		int fd = s->sysfd[s->holders + k];
		bool blocked = false;

		if (fd < 0) {
			snprintf(why, size, "%s: waiter %ld: /proc/thread-self/syscall: %s", s->who,
				 k, strerror(-fd));
			ret = -1;
		}
		while (!ret && !blocked) {
			if (in_futex_wait(fd, word, &blocked)) {
				snprintf(why, size, "%s: waiter %ld: read its syscall file: %m",
					 s->who, k);
				ret = -1;
			} else if (!blocked && now_ms() > deadline) {
				snprintf(why, size, "%s: waiter %ld did not block on the mutex of "
					 "page %zu within %d ms", s->who, k, held_page(s, k),
					 READY_WAIT_MS);
				ret = -1;
			} else if (!blocked) {
				nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
			}
		}
	}
	for (long k = 0; k < s->holders; k++)
		if (s->sysfd[s->holders + k] >= 0)
			close(s->sysfd[s->holders + k]);
	return ret;
}

static int stress_setup(struct stress *s, pthread_t *th, struct worker_arg *args, char *why,
			size_t size)
{
	pthread_mutexattr_t ma;
	sigset_t term, old;

	/* populated: each page is touched below anyway, and so costs no fault */
	s->area = mmap(NULL, s->nr_pages * PAGE_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (s->area == MAP_FAILED) {
		snprintf(why, size, "%s: mmap of %ld pages: %m", s->who, s->nr_pages);
		return -1;
	}
	pthread_mutexattr_init(&ma);
	for (long i = 0; i < s->nr_pages; i++) {
		pthread_mutex_init(&head(s, i)->lock, &ma);
		head(s, i)->count = 0;
		pattern_fill(s->area + i * PAGE_SIZE + HEADER, PAGE_SIZE - HEADER, s->seed + i);
	}
	s->holders = s->nr_threads / 4;
	pthread_barrier_init(&s->ready, NULL, s->nr_threads + 1);
	pthread_barrier_init(&s->go, NULL, s->nr_threads - s->holders + 1);

	/* SIGTERM is the main thread's */
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	for (long i = 0; i < s->nr_threads; i++) {
		args[i] = (struct worker_arg){ s, i };
		errno = pthread_create(&th[i], NULL, worker, &args[i]);
		if (errno) {
			snprintf(why, size, "%s: thread %ld: %m", s->who, i);
			return -1;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_barrier_wait(&s->ready);
	return wait_waiters(s, why, size);
}

/* After the go: every thread's outcome, every page, the counters. */
static int stress_finish(struct stress *s, pthread_t *th, char *why, size_t size)
{
	uint64_t total = 0;

	pthread_barrier_wait(&s->go);
	for (long i = 0; i < s->nr_threads; i++)
		if (pthread_join(th[i], NULL)) {
			snprintf(why, size, "%s: pthread_join failed", s->who);
			return -1;
		}
	for (long i = 0; i < s->nr_threads; i++)
		if (s->result[i][0]) {
			snprintf(why, size, "%s: thread %ld: %s", s->who, i, s->result[i]);
			return -1;
		}
	for (long i = 0; i < s->nr_pages; i++) {
		char what[160];

		if (check_page(s->area, i, s->seed, "own", what, sizeof(what))) {
			snprintf(why, size, "%s: after the threads: %s", s->who, what);
			return -1;
		}
		if (pthread_mutex_trylock(&head(s, i)->lock)) {
			snprintf(why, size, "%s: the mutex of page %ld is still locked", s->who, i);
			return -1;
		}
		total += head(s, i)->count;
	}
	for (long i = 0; i < s->nr_inherited; i++) {
		char what[160];

		if (check_page(s->inherited, i, SEED, "inherited", what, sizeof(what))) {
			snprintf(why, size, "%s: %s", s->who, what);
			return -1;
		}
	}
	if (total != atomic_load(&s->increments)) {
		snprintf(why, size, "%s: the page counters add up to %llu, %llu increments were made",
			 s->who, (unsigned long long)total,
			 (unsigned long long)atomic_load(&s->increments));
		return -1;
	}
	return 0;
}

static struct stress root_s, child_s;
static pthread_t th[MAX_THREADS];
static struct worker_arg args[MAX_THREADS];

static void __attribute__((noreturn)) child_main(int k, int ready_w)
{
	char who[32], why[512];
	sigset_t term;
	int sig;

	snprintf(who, sizeof(who), "child %d", k);
	child_s = (struct stress){
		.who = who, .nr_pages = child_pages, .seed = SEED + (k + 1) * 0x1000000ULL,
		.inherited = inherited, .nr_inherited = inherited_pages,
		.nr_threads = child_threads, .rounds = rounds,
	};
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, NULL);
	if (stress_setup(&child_s, th, args, why, sizeof(why))) {
		fprintf(stderr, "%s: %s\n", test_name(), why);
		_exit(2);
	}
	if (write(ready_w, "r", 1) != 1)
		_exit(2);
	close(ready_w);
	if (sigwait(&term, &sig))
		_exit(2);
	if (stress_finish(&child_s, th, why, sizeof(why))) {
		fprintf(stderr, "%s: %s\n", test_name(), why);
		_exit(1);
	}
	_exit(0);
}

/* One byte from each child on ready_r once it is ready (bounded). */
static void wait_children(int ready_r, const pid_t *kids)
{
	long deadline = now_ms() + READY_WAIT_MS;
	int ready = 0, status;
	char c;

	while (ready < CHILDREN) {
		struct pollfd pfd = { .fd = ready_r, .events = POLLIN };

		if (poll(&pfd, 1, 100) > 0) {
			if (read(ready_r, &c, 1) != 1)
				fail("the children's ready pipe: %m");
			ready++;
			continue;
		}
		for (int k = 0; k < CHILDREN; k++)
			if (waitpid(kids[k], &status, WNOHANG) == kids[k])
				fail("child %d exited before it was ready (status %#x; its reason "
				     "is on its stderr)", k, status);
		if (now_ms() > deadline)
			fail("%d of the %d children ready within %d ms", ready, CHILDREN,
			     READY_WAIT_MS);
	}
}

int main(int argc, char **argv)
{
	const struct test_opt opts[] = {
		{ "pages", TEST_OPT_INT, &root_pages, 0, "pages of the root's area" },
		{ "child-pages", TEST_OPT_INT, &child_pages, 0, "pages of each child's area" },
		{ "threads", TEST_OPT_INT, &root_threads, 0, "threads of the root (8..64)" },
		{ "child-threads", TEST_OPT_INT, &child_threads, 0, "threads of each child (4..64)" },
		{ "inherited-pages", TEST_OPT_INT, &inherited_pages, 0,
		  "pages every process reads of the root's area from before the forks" },
		{ "rounds", TEST_OPT_INT, &rounds, 0, "pages each thread checks" },
		{ NULL, 0, NULL, 0, NULL },
	};
	pid_t kids[CHILDREN];
	char why[512];
	int p[2], status;

	test_init(argc, argv, opts);
	if (root_threads < 8 || root_threads > MAX_THREADS || child_threads < 4 ||
	    child_threads > MAX_THREADS || root_pages < 64 || child_pages < 64 ||
	    inherited_pages < 1)
		fail("--threads %ld (8..%d) --child-threads %ld (4..%d) --pages %ld "
		     "--child-pages %ld (>= 64) --inherited-pages %ld (>= 1)", root_threads,
		     MAX_THREADS, child_threads, MAX_THREADS, root_pages, child_pages,
		     inherited_pages);
	test_kill_tree_at_exit();
	inherited = mmap(NULL, inherited_pages * PAGE_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (inherited == MAP_FAILED)
		fail("mmap: %m");
	for (long i = 0; i < inherited_pages; i++)
		pattern_fill(inherited + i * PAGE_SIZE + HEADER, PAGE_SIZE - HEADER, SEED + i);
	if (pipe(p))
		fail("pipe: %m");
	for (int k = 0; k < CHILDREN; k++) {
		kids[k] = fork();
		if (kids[k] < 0)
			fail("fork: %m");
		if (kids[k] == 0) {
			close(p[0]);
			child_main(k, p[1]);
		}
	}
	close(p[1]);
	/* the root fills its area while the children fill theirs */
	root_s = (struct stress){
		.who = "root", .nr_pages = root_pages, .seed = SEED ^ 0x5a5a5a5aULL,
		.inherited = inherited, .nr_inherited = inherited_pages,
		.nr_threads = root_threads, .rounds = rounds,
	};
	if (stress_setup(&root_s, th, args, why, sizeof(why)))
		fail("%s", why);
	wait_children(p[0], kids);
	close(p[0]);
	test_msg("area %p", (void *)root_s.area);

	test_daemon();
	test_waitsig();

	/* all at once: the children start while the root's threads run */
	for (int k = 0; k < CHILDREN; k++)
		kill(kids[k], SIGTERM);
	if (stress_finish(&root_s, th, why, sizeof(why)))
		fail("%s", why);
	for (int k = 0; k < CHILDREN; k++) {
		if (waitpid(kids[k], &status, 0) != kids[k])
			fail("waitpid of child %d: %m", k);
		if (status)
			fail("child %d ended with status %#x (its reason is on its stderr)", k,
			     status);
	}
	pass();
}
