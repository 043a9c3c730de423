/*
 * The heap grown with brk(2): grown by 3 MiB and a bit, filled, shrunk to
 * 2 MiB and a bit (the break is not page aligned on purpose).  After
 * SIGTERM the kernel's break and start_brk are the same, the [heap] maps
 * line is the same, the data is there, and the heap still grows and
 * shrinks.  brk is called directly: glibc's sbrk caches the break, which
 * would hide a break the restore got wrong.  Nothing here calls malloc.
 */
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define SEED 0x62726bULL

static unsigned long sys_brk(unsigned long addr)
{
	return (unsigned long)syscall(SYS_brk, addr);
}

int main(int argc, char **argv)
{
	static char maps[1 << 20], before[512], after[512];
	unsigned long start, cur, grown, start_brk;
	size_t len;

	test_init(argc, argv, NULL);

	start = sys_brk(0);
	grown = start + (3UL << 20) + 123;
	if (sys_brk(grown) != grown)
		fail("brk(%#lx) failed", grown);
	pattern_fill((void *)start, grown - start, SEED);
	cur = start + (2UL << 20) + 77;
	if (sys_brk(cur) != cur)
		fail("brk(%#lx) (shrink) failed", cur);
	start_brk = proc_stat_field(47);
	test_msg("heap %#lx break %#lx start_brk %#lx", start, cur, start_brk);

	read_file("/proc/self/maps", maps, sizeof(maps));
	if (!strstr(maps, "[heap]"))
		fail("no [heap] line in /proc/self/maps");
	if (maps_line_at(maps, start_brk, before, sizeof(before)) ||
	    !strstr(before, "[heap]"))
		fail("no [heap] line at start_brk %#lx", start_brk);

	test_daemon();
	test_waitsig();

	if (sys_brk(0) != cur)
		fail("break is %#lx, expected %#lx", sys_brk(0), cur);
	if (proc_stat_field(47) != start_brk)
		fail("start_brk is %#llx, expected %#lx", proc_stat_field(47), start_brk);
	read_file("/proc/self/maps", maps, sizeof(maps));
	if (maps_line_at(maps, start_brk, after, sizeof(after)))
		fail("no maps line at start_brk %#lx any more", start_brk);
	if (strcmp(before, after))
		fail("heap maps line changed: before '%s' after '%s'", before, after);

	/* Up to the end of the break's page: shrinking kept that page whole. */
	len = ((cur + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)) - start;
	pattern_expect("heap", (void *)start, len, SEED);

	/* It still grows, and the new memory is zero and usable. */
	grown = cur + (8UL << 20);
	if (sys_brk(grown) != grown)
		fail("brk(%#lx) after restore failed: heap cannot grow", grown);
	zero_expect("new heap beyond the old page",
		    (void *)((cur + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)),
		    grown - ((cur + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)));
	pattern_fill((void *)(start + len), grown - (start + len), SEED + 1);
	pattern_expect("grown heap", (void *)(start + len), grown - (start + len), SEED + 1);
	pattern_expect("heap", (void *)start, len, SEED);
	if (sys_brk(cur) != cur)
		fail("brk(%#lx) after restore (shrink) failed", cur);
	pass();
}
