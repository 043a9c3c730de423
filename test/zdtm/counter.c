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
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define SEED 0x636f756e74ULL

static char logbuf[8 << 20];

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
	long interval = 1000;
	const struct test_opt opts[] = {
		{ "log", TEST_OPT_STR, &log, 1, "file to append a line to per tick" },
		{ "size", TEST_OPT_SIZE, &size, 0, "bytes of memory to hold" },
		{ "interval-ms", TEST_OPT_INT, &interval, 0, "milliseconds between ticks" },
		{ NULL, 0, NULL, 0, NULL },
	};
	unsigned long tick = 0;
	uint8_t *mem;
	char line[128];
	int fd, n;

	test_init(argc, argv, opts);
	npages = size / PAGE_SIZE;
	if (!npages || interval < 1)
		fail("--size must be at least a page and --interval-ms positive");
	mem = mmap(NULL, npages * PAGE_SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		fail("mmap %zu bytes: %m", npages * PAGE_SIZE);
	for (page = 0; page < npages; page++)
		pattern_fill(mem + page * PAGE_SIZE, PAGE_SIZE, SEED + page);
	fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail("open %s: %m", log);

	test_daemon();
	while (!test_stopped()) {
		struct timespec now;
		long sec;

		tick++;
		page = (tick * 7919) % npages;
		check_page(mem, page);
		clock_gettime(CLOCK_REALTIME, &now);
		sec = now.tv_sec % 86400;
		n = snprintf(line, sizeof(line), "tick %lu pid %d %02ld:%02ld:%02ld UTC page %zu ok\n",
			     tick, getpid(), sec / 3600, sec / 60 % 60, sec % 60, page);
		if (write(fd, line, (size_t)n) != n)
			fail("write %s: %m", log);
		sleep_ms(interval);
	}

	for (page = 0; page < npages; page++)
		check_page(mem, page);
	check_log(log, tick);
	n = snprintf(line, sizeof(line), "stopped after %lu ticks, memory ok\n", tick);
	if (write(fd, line, (size_t)n) != n)
		fail("write %s: %m", log);
	close(fd);
	pass();
}
