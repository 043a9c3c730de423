/*
 * Advice a parent gave after its fork is not its child's: the root maps 32
 * pages of private anonymous memory (read-only neighbours on each side),
 * fills them and forks its child; then the root marks pages 0-15
 * MADV_DONTDUMP and the child marks its own pages 0-15 MADV_HUGEPAGE.  Both
 * now have the same two VMAs, with other VmFlags: an eager restore that
 * passes the child the root's VMA copy-on-write (the same bounds and kind)
 * must not pass it the root's advice too, which the restore gives a VMA
 * mapped at its own address at once (premap-place.c).
 *
 * Each process records the maps lines and VmFlags of its region before the
 * checkpoint (the kernel's bookkeeping flags left out: sd, ac, um, uw, ui)
 * and checks them and the contents after it.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define SEED 0x61647666ULL
#define PAGES 32

static uint8_t *region;
static char before[1 << 14], after[1 << 14];
static volatile sig_atomic_t got_term;

static void on_term(int sig)
{
	(void)sig;
	got_term = 1;
}

/* The maps line and VmFlags of each VMA of the region and its neighbours. */
static void record(char *out, size_t size)
{
	smaps_vmas_record((unsigned long)region - PAGE_SIZE,
			  (unsigned long)region + (PAGES + 1) * PAGE_SIZE, out, size);
}

/* 0, or the first page (from 1) whose contents are wrong. */
static int bad_page(void)
{
	for (int i = 0; i < PAGES; i++)
		if (pattern_find_bad(region + i * PAGE_SIZE, PAGE_SIZE, SEED + i) != PAGE_SIZE)
			return i + 1;
	return 0;
}

static void child(int ready)
{
	struct sigaction sa = { .sa_handler = on_term };
	int bad;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) ||
	    madvise(region, 16 * PAGE_SIZE, MADV_HUGEPAGE))
		_exit(2);
	sigaction(SIGTERM, &sa, NULL);	/* the root's is test_init()'s */
	record(before, sizeof(before));
	if (write(ready, "c", 1) != 1)
		_exit(2);
	close(ready);
	test_wait_flag(&got_term, SIGTERM);
	record(after, sizeof(after));
	if (strcmp(before, after)) {
		fprintf(stderr, "%s: child: its region's VMAs changed:\nbefore:\n%safter:\n%s",
			test_name(), before, after);
		_exit(1);
	}
	bad = bad_page();
	if (bad) {
		fprintf(stderr, "%s: child: page %d is wrong after the restore\n", test_name(),
			bad - 1);
		_exit(1);
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	int ready[2], status, bad;
	uint8_t *base;
	pid_t pid;
	char c;

	test_init(argc, argv, NULL);
	test_kill_tree_at_exit();
	base = mmap(NULL, (PAGES + 2) * PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		fail("mmap: %m");
	region = base + PAGE_SIZE;
	if (mmap(region, PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
		fail("mmap the region: %m");
	for (int i = 0; i < PAGES; i++)
		pattern_fill(region + i * PAGE_SIZE, PAGE_SIZE, SEED + i);
	if (pipe(ready))
		fail("pipe: %m");
	pid = fork();
	if (pid < 0)
		fail("fork: %m");
	if (pid == 0) {
		close(ready[0]);
		child(ready[1]);
	}
	close(ready[1]);
	if (read(ready[0], &c, 1) != 1)
		fail("the child did not get ready");
	close(ready[0]);
	if (madvise(region, 16 * PAGE_SIZE, MADV_DONTDUMP))
		fail("madvise(MADV_DONTDUMP): %m");
	record(before, sizeof(before));
	if (!strstr(before, " dd"))
		fail("MADV_DONTDUMP does not show in VmFlags:\n%s", before);
	test_msg("region %p, child %d, recorded maps %p", (void *)region, pid, (void *)before);

	test_daemon();
	test_waitsig();

	record(after, sizeof(after));
	if (strcmp(before, after))
		fail("the region's VMAs changed:\nbefore:\n%safter:\n%s", before, after);
	bad = bad_page();
	if (bad)
		fail("page %d is wrong after the restore", bad - 1);
	kill(pid, SIGTERM);
	if (waitpid(pid, &status, 0) != pid || status)
		fail("the child ended with status %#x (its reason is in the output)", status);
	pass();
}
