/*
 * Shared anonymous memory between the processes of a tree: the root maps
 * MAP_SHARED | MAP_ANONYMOUS memory and forks two children; before the dump
 * child A writes some pages (the root and B must see them).  After
 * SIGTERM: the root checks A's pages and the rest; A writes more pages and
 * exits; the root and B must see those writes too (still one object, not
 * a copy per process).
 */
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define SEED 0x73686172ULL
#define SEED_A1 (SEED ^ 0xa1)
#define SEED_A2 (SEED ^ 0xa2)
#define PAGES 64

static uint8_t *shm;
static volatile sig_atomic_t got_term;

static void on_term(int sig)
{
	(void)sig;
	got_term = 1;
}

/* Pages [0, 8): A before the dump, [8, 16): A after, the rest: the root. */
static uint64_t seed_of(int page, int after)
{
	if (page < 8)
		return SEED_A1 + page;
	if (page < 16 && after)
		return SEED_A2 + page;
	return SEED + page;
}

static int check(int after)
{
	for (int i = 0; i < PAGES; i++)
		if (pattern_find_bad(shm + i * PAGE_SIZE, PAGE_SIZE, seed_of(i, after)) != PAGE_SIZE)
			return i;
	return -1;
}

static void __attribute__((noreturn)) child(int is_a, int ready_w)
{
	struct sigaction sa = { .sa_handler = on_term };
	int bad;

	sigaction(SIGTERM, &sa, NULL);
	if (is_a)
		for (int i = 0; i < 8; i++)
			pattern_fill(shm + i * PAGE_SIZE, PAGE_SIZE, seed_of(i, 0));
	if (write(ready_w, "r", 1) != 1)
		_exit(2);
	close(ready_w);
	test_wait_flag(&got_term, SIGTERM);
	if (is_a) {
		for (int i = 8; i < 16; i++)
			pattern_fill(shm + i * PAGE_SIZE, PAGE_SIZE, seed_of(i, 1));
		_exit(0);
	}
	bad = check(1);
	if (bad >= 0) {
		fprintf(stderr, "%s: child B: shared page %d is wrong\n", test_name(), bad);
		_exit(1);
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	pid_t a, b;
	int p[2], status, bad;
	char c;

	test_init(argc, argv, NULL);
	test_kill_tree_at_exit();
	shm = mmap(NULL, PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		   -1, 0);
	if (shm == MAP_FAILED)
		fail("mmap: %m");
	for (int i = 0; i < PAGES; i++)
		pattern_fill(shm + i * PAGE_SIZE, PAGE_SIZE, SEED + i);
	test_msg("shared region %p", (void *)shm);
	if (pipe(p))
		fail("pipe: %m");
	a = fork();
	if (a == 0) {
		close(p[0]);
		child(1, p[1]);
	}
	b = fork();
	if (b == 0) {
		close(p[0]);
		child(0, p[1]);
	}
	if (a < 0 || b < 0)
		fail("fork: %m");
	close(p[1]);
	for (int i = 0; i < 2; i++)
		if (read(p[0], &c, 1) != 1)
			fail("a child did not get ready");
	close(p[0]);

	test_daemon();
	test_waitsig();

	bad = check(0);
	if (bad >= 0)
		fail("shared page %d is wrong after the restore", bad);
	kill(a, SIGTERM);
	if (waitpid(a, &status, 0) != a || status)
		fail("child A ended with status %#x", status);
	bad = check(1);
	if (bad >= 0)
		fail("shared page %d: the root does not see child A's write after the restore", bad);
	kill(b, SIGTERM);
	if (waitpid(b, &status, 0) != b || status)
		fail("child B ended with status %#x (it does not see A's writes)", status);
	pass();
}
