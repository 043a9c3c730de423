/*
 * Stress of a lazily restored tree: four children, each with its own
 * private memory and a part of the root's inherited memory, fault on their
 * pages at the same time, each in its own random order, and check every
 * byte; the root does the same meanwhile.  With background delivery off,
 * every page reaches its process through a fault, from five processes at
 * once on one daemon.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define SEED 0x73747265ULL
#define CHILDREN 4

static long npages = 2048;	/* 8 MiB each */
static volatile sig_atomic_t got_term;

static void on_term(int sig)
{
	(void)sig;
	got_term = 1;
}

/* Every page of @mem in a random order (xorshift, seeded per process). */
static long check_random(const uint8_t *mem, size_t n, uint64_t seed, uint64_t rnd)
{
	size_t *order = malloc(n * sizeof(*order));

	if (!order)
		return -2;
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = n - 1; i > 0; i--) {
		size_t j, tmp;

		rnd ^= rnd << 13;
		rnd ^= rnd >> 7;
		rnd ^= rnd << 17;
		j = rnd % (i + 1);
		tmp = order[i];
		order[i] = order[j];
		order[j] = tmp;
	}
	for (size_t i = 0; i < n; i++) {
		size_t p = order[i];

		if (pattern_find_bad(mem + p * PAGE_SIZE, PAGE_SIZE, seed + p) != PAGE_SIZE) {
			free(order);
			return p;
		}
	}
	free(order);
	return -1;
}

static uint8_t *map_filled(size_t n, uint64_t seed)
{
	uint8_t *m = mmap(NULL, n * PAGE_SIZE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED)
		return NULL;
	for (size_t i = 0; i < n; i++)
		pattern_fill(m + i * PAGE_SIZE, PAGE_SIZE, seed + i);
	return m;
}

int main(int argc, char **argv)
{
	const struct test_opt opts[] = {
		{ "pages", TEST_OPT_INT, &npages, 0, "pages of each process's own memory" },
		{ NULL, 0, NULL, 0, NULL },
	};
	pid_t kids[CHILDREN];
	uint8_t *inherited, *own;
	int p[2], status;
	long bad;
	char c;

	test_init(argc, argv, opts);
	test_kill_tree_at_exit();
	inherited = map_filled(npages, SEED);
	if (!inherited || pipe(p))
		fail("setup: %m");
	for (int k = 0; k < CHILDREN; k++) {
		kids[k] = fork();
		if (kids[k] < 0)
			fail("fork: %m");
		if (kids[k] == 0) {
			struct sigaction sa = { .sa_handler = on_term };
			uint64_t seed = SEED + (k + 1) * 0x100000ULL;

			sigaction(SIGTERM, &sa, NULL);
			close(p[0]);
			own = map_filled(npages, seed);
			if (!own || write(p[1], "r", 1) != 1)
				_exit(2);
			close(p[1]);
			test_wait_flag(&got_term, SIGTERM);
			bad = check_random(own, npages, seed, 0x9e3779b97f4a7c15ULL * (k + 1));
			if (bad == -1)
				bad = check_random(inherited, npages, SEED, 0xdeadbeefULL + k);
			if (bad != -1) {
				fprintf(stderr, "%s: child %d: page %ld is wrong\n", test_name(), k, bad);
				_exit(1);
			}
			_exit(0);
		}
	}
	close(p[1]);
	for (int k = 0; k < CHILDREN; k++)
		if (read(p[0], &c, 1) != 1)
			fail("child %d did not get ready", k);
	close(p[0]);
	own = map_filled(npages, SEED ^ 0x5a5a);
	if (!own)
		fail("mmap: %m");
	test_msg("own region %p", (void *)own);

	test_daemon();
	test_waitsig();

	/* all at once: the children start while the root checks its own */
	for (int k = 0; k < CHILDREN; k++)
		kill(kids[k], SIGTERM);
	bad = check_random(own, npages, SEED ^ 0x5a5a, 0x1234567ULL);
	if (bad != -1)
		fail("root: page %ld of its own memory is wrong", bad);
	bad = check_random(inherited, npages, SEED, 0x7654321ULL);
	if (bad != -1)
		fail("root: inherited page %ld is wrong", bad);
	for (int k = 0; k < CHILDREN; k++) {
		if (waitpid(kids[k], &status, 0) != kids[k])
			fail("waitpid: %m");
		if (status)
			fail("child %d ended with status %#x", k, status);
	}
	pass();
}
