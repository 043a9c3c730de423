/*
 * Fork after restore while the region is still lazy: parent and child both
 * read and write it, and copy-on-write must hold -- each sees its own writes
 * and the dumped data everywhere else, never the other's.
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/lazy.h"
#include "lib/zdtmtst.h"

#define WATCHDOG_S 45

#define SEED 0x666f726bULL
#define NPAGES 2048		/* 8 MiB */
#define CHILD_SEED (SEED ^ 0xc41dULL)
#define PARENT_SEED (SEED ^ 0x9a7eULL)

/* Pages 0..NPAGES: i%4==1 written by the child, i%4==2 by the parent. */
static void check_view(uint8_t *mem, uint64_t own_seed, int own_mod, const char *who)
{
	char what[96];

	for (size_t i = 0; i < NPAGES; i++) {
		uint8_t *page = mem + i * PAGE_SIZE;

		snprintf(what, sizeof(what), "%s: page %zu", who, i);
		if ((int)(i % 4) == own_mod)
			pattern_expect(what, page, PAGE_SIZE, own_seed + i);
		else
			pattern_expect(what, page, PAGE_SIZE, SEED + i);
	}
}

static void write_pages(uint8_t *mem, uint64_t seed, int mod)
{
	for (size_t i = 0; i < NPAGES; i++)
		if ((int)(i % 4) == mod)
			pattern_fill(mem + i * PAGE_SIZE, PAGE_SIZE, seed + i);
}

int main(int argc, char **argv)
{
	uint8_t *mem;
	size_t bad = NPAGES;	/* first bad page of the parent's first read */
	pid_t child;
	int status;

	test_init(argc, argv, NULL);
	mem = lazy_map_guarded(NPAGES);
	for (size_t i = 0; i < NPAGES; i++)
		pattern_fill(mem + i * PAGE_SIZE, PAGE_SIZE, SEED + i);

	test_msg("region %p", (void *)mem);
	test_daemon();
	test_waitsig();
	lazy_watchdog(WATCHDOG_S, "the checks");
	lazy_premise("the region", mem, NPAGES * PAGE_SIZE);

	/* fork before touching anything: every page is still lazy here */
	child = fork();
	if (child < 0)
		fail("fork: %m");
	if (child == 0) {
		lazy_watchdog(WATCHDOG_S, "the child's checks");
		/* the fork inherited lazy pages, not copies */
		lazy_premise("the child's region", mem, NPAGES * PAGE_SIZE);
		/* the child touches the second half first, then writes */
		for (size_t i = NPAGES / 2; i < NPAGES; i++)
			pattern_expect("child: first read", mem + i * PAGE_SIZE, PAGE_SIZE, SEED + i);
		write_pages(mem, CHILD_SEED, 1);
		check_view(mem, CHILD_SEED, 1, "child");
		_exit(0);
	}
	/* the parent reads the first half meanwhile, then writes its own;
	 * what it finds is judged once the child is reaped */
	for (size_t i = 0; i < NPAGES / 2 && bad == NPAGES; i++)
		if (pattern_find_bad(mem + i * PAGE_SIZE, PAGE_SIZE, SEED + i) != PAGE_SIZE)
			bad = i;
	write_pages(mem, PARENT_SEED, 2);

	if (waitpid(child, &status, 0) != child)
		fail("waitpid: %m");
	if (bad != NPAGES)
		fail("parent: first read: page %zu at %p differs from the dumped data", bad,
		     (void *)(mem + bad * PAGE_SIZE));
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		fail("the child failed (status %#x): see its message above", status);
	check_view(mem, PARENT_SEED, 2, "parent");
	pass();
}
