/*
 * A workload that shows it carries on: --size bytes of memory with a
 * pattern, and every --interval-ms a line "tick N pid P hh:mm:ss page K ok"
 * appended to --log through an fd held open the whole time, after checking
 * one page of the memory.  The demo (scripts/demo) checkpoints it while it
 * runs; the test suite uses it with a short interval.
 *
 * After SIGTERM: all of the memory is checked, and the log file, read back
 * by path, must be exactly the lines "tick 1" .. "tick N" in order, no
 * line lost, repeated or overwritten (the fd's offset survived).  A last
 * line "stopped after N ticks, memory ok" is appended.
 *
 * --threads N adds N threads that keep checking pages of the memory (each
 * tick line then says how many pages they have checked so far); --children
 * N forks N processes that share the memory copy-on-write, check it the
 * same way and append "child I pid P tick N page K ok" to LOG.child-I.  On
 * SIGTERM the threads are joined (each must have checked pages) and the
 * children are stopped and must exit 0 after checking all of their memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define SEED 0x636f756e74ULL

#define MAX_WORKERS 64

static char logbuf[8 << 20];

struct worker {
	pthread_t thread;
	unsigned idx;
	const uint8_t *mem;
	size_t npages;
	volatile unsigned long checked;
};

static struct worker workers[MAX_WORKERS];
static volatile int workers_stop;

static void sleep_ms(long ms)
{
	struct timespec req = { ms / 1000, (ms % 1000) * 1000000 }, rem;

	/* EINTR: a signal or a checkpoint; SIGTERM ends the sleep for good */
	while (nanosleep(&req, &rem) && errno == EINTR && !test_stopped())
		req = rem;
}

static void check_page(const uint8_t *mem, size_t page)
{
	char what[64];

	if (pattern_find_bad(mem + page * PAGE_SIZE, PAGE_SIZE, SEED + page) == PAGE_SIZE)
		return;
	snprintf(what, sizeof(what), "memory page %zu", page);
	pattern_expect(what, mem + page * PAGE_SIZE, PAGE_SIZE, SEED + page);
}

static unsigned long workers_checked(long nthreads)
{
	unsigned long sum = 0;

	for (long i = 0; i < nthreads; i++)
		sum += workers[i].checked;
	return sum;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t x = 0x9e3779b97f4a7c15ULL * (w->idx + 1);

	while (!workers_stop) {
		struct timespec ms = { 0, 2000000 };

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		check_page(w->mem, x % w->npages);
		w->checked++;
		nanosleep(&ms, NULL);
	}
	return NULL;
}

/* A child: the same memory, copy-on-write; its own log; SIGTERM ends it. */
static void child_main(unsigned idx, const char *log, const uint8_t *mem, size_t npages,
		       long interval, pid_t parent, int opened_w)
{
	char path[4096], line[128];
	unsigned long tick = 0;
	size_t page;
	int fd, n;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
		_exit(2);
	snprintf(path, sizeof(path), "%s.child-%u", log, idx);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		_exit(3);
	/* the parent says it is ready only once every child's log exists */
	if (write(opened_w, "o", 1) != 1)
		_exit(5);
	close(opened_w);
	while (!test_stopped()) {
		tick++;
		page = (tick * 104729 + idx) % npages;
		check_page(mem, page);
		n = snprintf(line, sizeof(line), "child %u pid %d tick %lu page %zu ok\n",
			     idx, getpid(), tick, page);
		if (write(fd, line, (size_t)n) != n)
			_exit(4);
		sleep_ms(interval);
	}
	for (page = 0; page < npages; page++)
		check_page(mem, page);	/* fail() exits non-zero */
	_exit(0);
}

static void stop_children(const pid_t *children, long nchildren)
{
	for (long i = 0; i < nchildren; i++)
		if (kill(children[i], SIGTERM))
			fail("kill child %d: %m", children[i]);
	for (long i = 0; i < nchildren; i++) {
		int status, waited = 0;
		pid_t r;

		/* bounded: 30 s for each child to check its memory and exit */
		while ((r = waitpid(children[i], &status, WNOHANG)) == 0 && waited++ < 3000)
			sleep_ms(10);
		if (r != children[i])
			fail("child %d did not exit after SIGTERM", children[i]);
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			fail("child %d ended with status 0x%x: its memory or log failed", children[i],
			     status);
	}
}

static void check_log(const char *path, unsigned long ticks)
{
	size_t len = read_file(path, logbuf, sizeof(logbuf));
	unsigned long n = 0, t;
	char *s = logbuf;

	while (*s) {
		if (sscanf(s, "tick %lu ", &t) != 1)
			fail("%s line %lu is not a tick line: '%.40s'", path, n + 1, s);
		if (t != n + 1)
			fail("%s line %lu says tick %lu: lines lost, repeated or overwritten",
			     path, n + 1, t);
		n++;
		s = strchr(s, '\n');
		if (!s)
			fail("%s: last line is cut", path);
		s++;
	}
	if (n != ticks)
		fail("%s has %lu tick lines, expected %lu (%zu bytes)", path, n, ticks, len);
}

int main(int argc, char **argv)
{
	const char *log = NULL;
	size_t size = 64 << 20, npages, page;
	long interval = 1000, nthreads = 0, nchildren = 0;
	pid_t children[MAX_WORKERS];
	int opened[2];
	const struct test_opt opts[] = {
		{ "log", TEST_OPT_STR, &log, 1, "file to append a line to per tick" },
		{ "size", TEST_OPT_SIZE, &size, 0, "bytes of memory to hold" },
		{ "interval-ms", TEST_OPT_INT, &interval, 0, "milliseconds between ticks" },
		{ "threads", TEST_OPT_INT, &nthreads, 0, "threads that keep checking pages" },
		{ "children", TEST_OPT_INT, &nchildren, 0, "child processes that check pages" },
		{ NULL, 0, NULL, 0, NULL },
	};
	unsigned long tick = 0;
	uint8_t *mem;
	char line[192];
	int fd, n;

	test_init(argc, argv, opts);
	npages = size / PAGE_SIZE;
	if (!npages || interval < 1)
		fail("--size must be at least a page and --interval-ms positive");
	if (nthreads < 0 || nthreads > MAX_WORKERS || nchildren < 0 || nchildren > MAX_WORKERS)
		fail("--threads and --children take 0..%d", MAX_WORKERS);
	mem = mmap(NULL, npages * PAGE_SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		fail("mmap %zu bytes: %m", npages * PAGE_SIZE);
	for (page = 0; page < npages; page++)
		pattern_fill(mem + page * PAGE_SIZE, PAGE_SIZE, SEED + page);
	fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail("open %s: %m", log);

	if (pipe2(opened, O_CLOEXEC))
		fail("pipe2: %m");
	for (long i = 0; i < nchildren; i++) {
		pid_t parent = getpid();

		children[i] = fork();
		if (children[i] < 0)
			fail("fork: %m");
		if (children[i] == 0) {
			close(opened[0]);
			child_main((unsigned)i, log, mem, npages, interval, parent, opened[1]);
		}
	}
	close(opened[1]);
	for (long i = 0; i < nchildren; i++) {
		char c;

		if (read(opened[0], &c, 1) != 1)
			fail("child %ld did not open its log", i);
	}
	close(opened[0]);
	for (long i = 0; i < nthreads; i++) {
		workers[i] = (struct worker){ .idx = (unsigned)i, .mem = mem, .npages = npages };
		errno = test_thread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
		if (errno)
			fail("pthread_create: %m");
	}

	test_daemon();
	while (!test_stopped()) {
		struct timespec now;
		long sec;

		tick++;
		page = (tick * 7919) % npages;
		check_page(mem, page);
		clock_gettime(CLOCK_REALTIME, &now);
		sec = now.tv_sec % 86400;
		n = snprintf(line, sizeof(line), "tick %lu pid %d %02ld:%02ld:%02ld UTC page %zu ok",
			     tick, getpid(), sec / 3600, sec / 60 % 60, sec % 60, page);
		if (nthreads)
			n += snprintf(line + n, sizeof(line) - (size_t)n, ", %ld threads checked %lu pages",
				      nthreads, workers_checked(nthreads));
		n += snprintf(line + n, sizeof(line) - (size_t)n, "\n");
		if (write(fd, line, (size_t)n) != n)
			fail("write %s: %m", log);
		sleep_ms(interval);
	}

	workers_stop = 1;
	for (long i = 0; i < nthreads; i++) {
		errno = pthread_join(workers[i].thread, NULL);
		if (errno)
			fail("pthread_join: %m");
		if (!workers[i].checked)
			fail("thread %ld checked no page", i);
	}
	stop_children(children, nchildren);
	for (page = 0; page < npages; page++)
		check_page(mem, page);
	check_log(log, tick);
	n = snprintf(line, sizeof(line), "stopped after %lu ticks, memory ok\n", tick);
	if (write(fd, line, (size_t)n) != n)
		fail("write %s: %m", log);
	close(fd);
	pass();
}
