/*
 * The churn of the soak test (issue 12, point 5): threads that change the
 * layout and contents of memory whose pages are still lazy, all at once,
 * for --seconds after SIGTERM.
 *
 * The region is cut in chunks of 16 pages.  Each chunk has a pthread mutex
 * and a state (in memory that is lazy too, so taking a lock is itself a
 * fault); a thread takes a random chunk's lock, checks every page of it
 * against what it must hold (or, half of the time, not: so that what
 * follows meets pages still lazy), and then does one thing to it:
 *   rewrite   a new generation of the pattern
 *   dontneed  MADV_DONTNEED: zeros from now on (a REMOVE event)
 *   free      MADV_FREE: each page the pattern or zeros, whichever the
 *             kernel kept (a page freed and reclaimed faults as missing)
 *   split     mprotect of the middle read-only and back (a VMA split and
 *             merge with no event at all)
 *   move      mremap to a scratch address and back (two REMAP events)
 *   fork      4 children each check the chunk and exit (FORK events while
 *             pages are lazy, a new uffd for each child)
 * Every page is checked once more at the end.  Any difference is a FAIL
 * naming the chunk, the page, the byte and the state it was in.  The
 * threads never exit (glibc would MADV_DONTNEED their stacks): they wait
 * for the end in pause().
 *
 * stderr gets the counts: "churn: N ops (...), F forks, R pages removed",
 * R bounding the daemon's pages_dropped_event.
 *
 * --child: a child forked before the checkpoint churns its own copy of the
 * region (inherited copy-on-write) at the same time, with threads of its
 * own: after a lazy restore every event above comes from two processes of
 * the tree, each with its own userfaultfd, on one daemon.  It reports on
 * stderr; the root fails naming it if it does.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/lazy.h"
#include "lib/zdtmtst.h"

#define SEED		0x636875726e00ULL
#define CHUNK_PAGES	16
#define CHUNK_LEN	(CHUNK_PAGES * PAGE_SIZE)
#define MAX_THREADS	64
#define FORK_CHILDREN	4
#define WHY_LEN		200

enum chunk_state { C_DATA, C_ZERO, C_FREED };
enum op { OP_VERIFY, OP_REWRITE, OP_DONTNEED, OP_FREE, OP_SPLIT, OP_MOVE, OP_FORK, NR_OPS };

static const char *const op_names[NR_OPS] = {
	"verify", "rewrite", "dontneed", "free", "split", "move", "fork",
};
/* of 16 draws */
static const enum op op_table[16] = {
	OP_VERIFY, OP_VERIFY, OP_VERIFY, OP_VERIFY, OP_VERIFY, OP_REWRITE, OP_REWRITE,
	OP_REWRITE, OP_DONTNEED, OP_DONTNEED, OP_FREE, OP_FREE, OP_SPLIT, OP_SPLIT, OP_MOVE,
	OP_FORK,
};

struct chunk {
	pthread_mutex_t lock;
	uint32_t state, gen;
};

static long nr_pages = 4096, nr_threads = 8, seconds = 2;
static int with_child;
static long nr_chunks;
static uint8_t *region;
static struct chunk *chunks;
static uint8_t *removed;		/* per page: MADV_DONTNEED'd or MADV_FREE'd once */
static uint8_t *scratch[MAX_THREADS];	/* where a thread moves a chunk */
static char result[MAX_THREADS][WHY_LEN];
static atomic_int go, done;
static atomic_ulong op_count[NR_OPS], fork_count;
static struct timespec deadline;

static uint64_t seed_of(size_t page, uint32_t gen)
{
	return SEED + page * 0x100000001b3ULL + gen * 0x9e3779b97f4a7c15ULL;
}

static uint64_t next_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static bool all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* Chunk c, now at base: 0, or -1 with why. */
static int check_chunk(long c, const uint8_t *base, char *why, size_t size)
{
	const struct chunk *ch = &chunks[c];

	for (size_t k = 0; k < CHUNK_PAGES; k++) {
		size_t page = c * CHUNK_PAGES + k;
		const uint8_t *p = base + k * PAGE_SIZE;
		size_t bad;

		if (ch->state == C_ZERO) {
			if (all_zero(p, PAGE_SIZE))
				continue;
			snprintf(why, size, "chunk %ld page %zu: zeros expected after MADV_DONTNEED",
				 c, page);
			return -1;
		}
		bad = pattern_find_bad(p, PAGE_SIZE, seed_of(page, ch->gen));
		if (bad == PAGE_SIZE || (ch->state == C_FREED && all_zero(p, PAGE_SIZE)))
			continue;
		snprintf(why, size, "chunk %ld page %zu byte %zu is %#x, generation %u%s", c, page,
			 bad, p[bad], ch->gen, ch->state == C_FREED ? " (MADV_FREE'd)" : "");
		return -1;
	}
	return 0;
}

static void fill_chunk(long c, uint8_t *base)
{
	for (size_t k = 0; k < CHUNK_PAGES; k++)
		pattern_fill(base + k * PAGE_SIZE, PAGE_SIZE, seed_of(c * CHUNK_PAGES + k,
								      chunks[c].gen));
}

/* Children that check chunk c and exit: 0 or -1 with why. */
static int fork_checkers(long c, const uint8_t *base, char *why, size_t size)
{
	pid_t pids[FORK_CHILDREN];
	int n = 0, ret = 0;

	for (; n < FORK_CHILDREN; n++) {
		pids[n] = fork();
		if (pids[n] < 0) {
			snprintf(why, size, "fork: %m");
			ret = -1;
			break;
		}
		if (pids[n] == 0) {
			char msg[WHY_LEN + 1];

			if (!check_chunk(c, base, msg, WHY_LEN))
				_exit(0);
			strcat(msg, "\n");
			if (write(2, msg, strlen(msg)) < 0)
				_exit(2);
			_exit(1);
		}
		atomic_fetch_add(&fork_count, 1);
	}
	for (int i = 0; i < n; i++) {
		int status;

		if (waitpid(pids[i], &status, 0) != pids[i]) {
			snprintf(why, size, "waitpid %d: %m", pids[i]);
			ret = -1;
		} else if (!ret && (!WIFEXITED(status) || WEXITSTATUS(status))) {
			snprintf(why, size, "child %d checking chunk %ld: status %#x", pids[i], c,
				 status);
			ret = -1;
		}
	}
	return ret;
}

/* Chunk c moved to the thread's scratch and back. */
static int move_chunk(long id, long c, uint8_t *base, char *why, size_t size)
{
	uint8_t *away = mremap(base, CHUNK_LEN, CHUNK_LEN, MREMAP_MAYMOVE | MREMAP_FIXED,
			       scratch[id]);

	if (away == MAP_FAILED) {
		snprintf(why, size, "mremap chunk %ld away: %m", c);
		return -1;
	}
	if (check_chunk(c, away, why, size))
		return -1;
	if (mremap(away, CHUNK_LEN, CHUNK_LEN, MREMAP_MAYMOVE | MREMAP_FIXED, base) == MAP_FAILED) {
		snprintf(why, size, "mremap chunk %ld back: %m", c);
		return -1;
	}
	/* keep the scratch address ours */
	if (mmap(scratch[id], CHUNK_LEN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		 -1, 0) == MAP_FAILED) {
		snprintf(why, size, "mmap scratch again: %m");
		return -1;
	}
	return 0;
}

/* check first: false lets the op meet pages still lazy */
static int do_op(long id, enum op op, long c, bool check, char *why, size_t size)
{
	uint8_t *base = region + c * CHUNK_LEN;
	struct chunk *ch = &chunks[c];

	if ((check || op == OP_VERIFY) && check_chunk(c, base, why, size))
		return -1;
	switch (op) {
	case OP_VERIFY:
		break;
	case OP_REWRITE:
		ch->gen++;
		ch->state = C_DATA;
		fill_chunk(c, base);
		break;
	case OP_DONTNEED:
		if (madvise(base, CHUNK_LEN, MADV_DONTNEED)) {
			snprintf(why, size, "MADV_DONTNEED chunk %ld: %m", c);
			return -1;
		}
		ch->state = C_ZERO;
		memset(removed + c * CHUNK_PAGES, 1, CHUNK_PAGES);
		break;
	case OP_FREE:
		if (ch->state != C_DATA)
			break;
		if (madvise(base, CHUNK_LEN, MADV_FREE)) {
			snprintf(why, size, "MADV_FREE chunk %ld: %m", c);
			return -1;
		}
		ch->state = C_FREED;
		/* the kernel sends REMOVE for MADV_FREE too: lazy pages may go */
		memset(removed + c * CHUNK_PAGES, 1, CHUNK_PAGES);
		break;
	case OP_SPLIT:
		if (mprotect(base + 4 * PAGE_SIZE, 8 * PAGE_SIZE, PROT_READ)) {
			snprintf(why, size, "mprotect chunk %ld read-only: %m", c);
			return -1;
		}
		if (check_chunk(c, base, why, size))
			return -1;
		if (mprotect(base + 4 * PAGE_SIZE, 8 * PAGE_SIZE, PROT_READ | PROT_WRITE)) {
			snprintf(why, size, "mprotect chunk %ld back: %m", c);
			return -1;
		}
		break;
	case OP_MOVE:
		return move_chunk(id, c, base, why, size);
	case OP_FORK:
		return fork_checkers(c, base, why, size);
	case NR_OPS:
		break;
	}
	return 0;
}

static bool past_deadline(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > deadline.tv_sec ||
	       (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec);
}

static void *worker(void *p)
{
	long id = (long)p;
	uint64_t x = SEED ^ (0x9e3779b97f4a7c15ULL * (id + 1));
	char *why = result[id];

	while (!atomic_load(&go))
		nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	do {
		long c = next_rand(&x) % nr_chunks;
		enum op op = op_table[next_rand(&x) % 16];
		int ret;

		if (pthread_mutex_lock(&chunks[c].lock)) {
			snprintf(why, WHY_LEN, "cannot lock chunk %ld", c);
			break;
		}
		ret = do_op(id, op, c, next_rand(&x) & 1, why, WHY_LEN);
		pthread_mutex_unlock(&chunks[c].lock);
		if (ret)
			break;
		atomic_fetch_add(&op_count[op], 1);
	} while (!past_deadline());
	atomic_fetch_add(&done, 1);
	for (;;)
		pause();
	return NULL;
}

static void start_threads(void)
{
	sigset_t term, old;
	pthread_t th;

	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);	/* SIGTERM is the main thread's */
	for (long i = 0; i < nr_threads; i++) {
		scratch[i] = mmap(NULL, CHUNK_LEN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (scratch[i] == MAP_FAILED)
			fail("mmap scratch: %m");
		if (pthread_create(&th, NULL, worker, (void *)i))
			fail("pthread_create");
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void report(void)
{
	char line[512];
	size_t len = 0;
	unsigned long total = 0, nr_removed = 0;

	for (int op = 0; op < NR_OPS; op++)
		total += atomic_load(&op_count[op]);
	for (long i = 0; i < nr_pages; i++)
		nr_removed += removed[i];
	len += snprintf(line + len, sizeof(line) - len, "churn: %lu ops (", total);
	for (int op = 0; op < NR_OPS; op++)
		len += snprintf(line + len, sizeof(line) - len, "%s%s %lu", op ? ", " : "",
				op_names[op], atomic_load(&op_count[op]));
	snprintf(line + len, sizeof(line) - len, "), %lu forks, %lu pages removed",
		 atomic_load(&fork_count), nr_removed);
	test_msg("%s", line);
}

/* After SIGTERM: the churn, then every page checked: 0, or -1 with why. */
static int churn(char *why, size_t size)
{
	lazy_watchdog(seconds + 90, "the churn");
	lazy_premise("the region", region, nr_pages * PAGE_SIZE);
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += seconds;
	atomic_store(&go, 1);
	while (atomic_load(&done) < nr_threads)
		nanosleep(&(struct timespec){ 0, 5000000 }, NULL);
	for (long i = 0; i < nr_threads; i++)
		if (result[i][0]) {
			snprintf(why, size, "thread %ld: %s", i, result[i]);
			return -1;
		}
	for (long c = 0; c < nr_chunks; c++) {
		char msg[WHY_LEN];

		if (check_chunk(c, region + c * CHUNK_LEN, msg, sizeof(msg))) {
			snprintf(why, size, "at the end: %s", msg);
			return -1;
		}
	}
	lazy_guards_expect("the region", region, nr_pages);
	report();
	return 0;
}

/* --child: the same churn in a process of its own; never returns. */
static void __attribute__((noreturn)) child_churn(void)
{
	char why[WHY_LEN + 64];

	start_threads();
	test_waitsig();
	if (!churn(why, sizeof(why)))
		_exit(0);
	fprintf(stderr, "%s: child %d: %s\n", test_name(), getpid(), why);
	_exit(1);
}

int main(int argc, char **argv)
{
	static const struct test_opt opts[] = {
		{ "pages", TEST_OPT_INT, &nr_pages, 0, "pages of the region (a multiple of 16)" },
		{ "threads", TEST_OPT_INT, &nr_threads, 0, "churning threads (1 to 64)" },
		{ "seconds", TEST_OPT_INT, &seconds, 0, "how long they churn after SIGTERM" },
		{ "child", TEST_OPT_FLAG, &with_child, 0,
		  "a child churns its own copy of the region at the same time" },
		{ NULL },
	};
	pthread_mutexattr_t ma;
	char why[WHY_LEN + 64];
	pid_t child_pid = 0;

	test_init(argc, argv, opts);
	if (nr_pages < CHUNK_PAGES || nr_pages % CHUNK_PAGES || nr_threads < 1 ||
	    nr_threads > MAX_THREADS || seconds < 0)
		fail("bad --pages, --threads or --seconds");
	nr_chunks = nr_pages / CHUNK_PAGES;
	region = lazy_map_guarded(nr_pages);
	chunks = mmap(NULL, nr_chunks * sizeof(*chunks), PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	removed = mmap(NULL, nr_pages, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (chunks == MAP_FAILED || removed == MAP_FAILED)
		fail("mmap: %m");
	pthread_mutexattr_init(&ma);
	for (long c = 0; c < nr_chunks; c++) {
		pthread_mutex_init(&chunks[c].lock, &ma);
		chunks[c].state = C_DATA;
		chunks[c].gen = 0;
		fill_chunk(c, region + c * CHUNK_LEN);
	}
	if (with_child) {
		test_kill_tree_at_exit();
		child_pid = fork();
		if (child_pid < 0)
			fail("fork: %m");
		if (child_pid == 0)
			child_churn();
	}
	start_threads();
	test_msg("region %p, %ld pages, %ld threads", (void *)region, nr_pages, nr_threads);
	test_daemon();
	test_waitsig();
	if (child_pid)
		kill(child_pid, SIGTERM);
	if (churn(why, sizeof(why)))
		fail("%s", why);
	if (child_pid) {
		int status;

		if (waitpid(child_pid, &status, 0) != child_pid)
			fail("waitpid of the churning child %d: %m", child_pid);
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			fail("the churning child %d ended with status %#x", child_pid, status);
	}
	pass();
}
