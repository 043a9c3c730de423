/*
 * A huge sparse reservation with a few lazy pages, forked several times
 * (issue 13): 16 TiB of MAP_NORESERVE address space, as a sanitizer's
 * shadow or a runtime's heap arena reserves, with a handful of pages
 * written before the checkpoint.  After the restore, with those pages
 * still lazy, the program forks four children (one of which forks a
 * grandchild) before anyone reads them; every process reads the pages in
 * its own order, and a hole between them, and writes its own page
 * copy-on-write.  Each child must have inherited the pages lazy (its VMA
 * registered, the pages missing), every read must see the dumped data or
 * zeros in the holes, and nobody may see another's write.  Every child is
 * reaped before the parent judges anything.
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/lazy.h"
#include "lib/zdtmtst.h"

#define SEED 0x737061727365ULL
#define TiB (1ULL << 40)
#define GiB (1ULL << 30)
#define SPAN (16 * TiB)
#define NCHILD 4
#define WATCHDOG_S 50

static const uint64_t offs[] = {
	0, PAGE_SIZE, GiB, TiB + 3 * PAGE_SIZE, 8 * TiB, 8 * TiB + 2 * GiB,
	15 * TiB, SPAN - PAGE_SIZE,
};
#define NPAGES (sizeof(offs) / sizeof(offs[0]))
static const uint64_t hole = 2 * TiB + 5 * PAGE_SIZE;	/* never written */

static uint8_t *span;
static char why[256];		/* the first thing found wrong, judged later */

static uint8_t *at(size_t i)
{
	return span + offs[i];
}

static void note(const char *fmt, size_t i, const char *who)
{
	if (!why[0])
		snprintf(why, sizeof(why), fmt, who, i, offs[i]);
}

/* One process's view: reads in an order of its own, writes page `own`. */
static void check_view(const char *who, size_t first, size_t own, uint64_t own_seed)
{
	for (size_t k = 0; k < NPAGES; k++) {
		size_t i = (first + k * 3) % NPAGES;

		if (pattern_find_bad(at(i), PAGE_SIZE, SEED + i) != PAGE_SIZE)
			note("%s: lazy page %zu (offset %#llx) does not hold its dumped data", i, who);
	}
	for (size_t b = 0; b < PAGE_SIZE; b++)
		if (span[hole + b]) {
			snprintf(why, sizeof(why), "%s: the hole at offset %#llx is not zero", who,
				 (unsigned long long)hole);
			break;
		}
	pattern_fill(at(own), PAGE_SIZE, own_seed);
	for (size_t i = 0; i < NPAGES; i++) {
		uint64_t seed = i == own ? own_seed : SEED + i;

		if (pattern_find_bad(at(i), PAGE_SIZE, seed) != PAGE_SIZE)
			note("%s: page %zu (offset %#llx) is wrong after the writes", i, who);
	}
}

static void premise(const char *who)
{
	char what[64];

	for (size_t i = 0; i < NPAGES; i++) {
		snprintf(what, sizeof(what), "%s's lazy page %zu", who, i);
		lazy_premise(what, at(i), PAGE_SIZE);
	}
}

static pid_t spawn(int n);

/* A child: its own order and own page; child 1 forks a grandchild first. */
static void child(int n)
{
	char who[32];
	pid_t grand = -1;
	int status;

	lazy_watchdog(WATCHDOG_S, "a child's checks");
	snprintf(who, sizeof(who), "child %d", n);
	premise(who);		/* the fork inherited lazy pages, not copies */
	if (n == 1)
		grand = spawn(NCHILD);
	check_view(who, (size_t)n, (size_t)n % NPAGES, SEED ^ (0x1000ULL + (uint64_t)n));
	if (grand > 0) {
		if (waitpid(grand, &status, 0) != grand)
			snprintf(why, sizeof(why), "child 1: waitpid of the grandchild: %m");
		else if (!why[0] && (!WIFEXITED(status) || WEXITSTATUS(status)))
			snprintf(why, sizeof(why), "the grandchild failed (status %#x): see above",
				 status);
	}
	if (why[0])
		fail("%s", why);
	_exit(0);
}

static pid_t spawn(int n)
{
	pid_t pid = fork();

	if (pid < 0)
		fail("fork: %m");
	if (pid == 0)
		child(n);
	return pid;
}

int main(int argc, char **argv)
{
	pid_t kids[NCHILD];
	int status, n, failed = -1, failed_status = 0;

	test_init(argc, argv, NULL);
	span = mmap(NULL, SPAN, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (span == MAP_FAILED)
		fail("mmap 16 TiB with MAP_NORESERVE: %m");
	for (size_t i = 0; i < NPAGES; i++)
		pattern_fill(at(i), PAGE_SIZE, SEED + i);
	test_msg("span %p", (void *)span);

	test_daemon();
	test_waitsig();
	lazy_watchdog(WATCHDOG_S, "the forks and reads");
	premise("the parent");

	/* fork them all before anyone reads: every page still lazy */
	for (n = 0; n < NCHILD; n++)
		kids[n] = spawn(n);
	check_view("parent", 5, 7, SEED ^ 0x9a7eULL);
	for (n = 0; n < NCHILD; n++) {
		if (waitpid(kids[n], &status, 0) != kids[n])
			fail("waitpid of child %d: %m", n);
		if ((!WIFEXITED(status) || WEXITSTATUS(status)) && failed < 0) {
			failed = n;
			failed_status = status;
		}
	}
	/* every child reaped: now judge */
	if (why[0])
		fail("%s", why);
	if (failed >= 0)
		fail("child %d failed (status %#x): see its message above", failed, failed_status);
	lazy_watchdog(0, "");
	pass();
}
