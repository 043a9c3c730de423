/*
 * A deep stack: --depth recursive frames (default 3000), each holding a
 * 1 KiB local array with its own pattern, several MiB of stack in all.
 * The bottom frame waits for SIGTERM; every frame checks its array as the
 * recursion unwinds (which also needs every return address intact).  The
 * [stack] maps line must be the same after as before.
 */
#include <stdio.h>
#include <string.h>

#include "lib/zdtmtst.h"

#define FRAME 1024
#define SEED 0x737461636bULL

static char maps[1 << 20];
static char stack_before[512], stack_after[512];

static void stack_line(char *line, size_t size)
{
	char *s, *start;

	read_file("/proc/self/maps", maps, sizeof(maps));
	s = strstr(maps, "[stack]");
	if (!s)
		fail("no [stack] line in /proc/self/maps");
	start = s;
	while (start > maps && start[-1] != '\n')
		start--;
	if ((size_t)(s - start) + 8 > size)
		fail("[stack] line too long");
	memcpy(line, start, (size_t)(s - start) + 7);
	line[s - start + 7] = '\0';
}

/*
 * Grow the stack 32 KiB below the deepest frame now, so that the calls and
 * the signal frame (the AVX-512 xsave area alone is 2.7 KiB) of the wait
 * do not grow it later and change the [stack] line for a good reason.
 */
static __attribute__((noinline)) void pregrow(void)
{
	volatile uint8_t pad[32 << 10];
	size_t i;

	for (i = 0; i < sizeof(pad); i += 512)
		pad[i] = 1;
}

static void bottom(void *deepest)
{
	unsigned long lo, hi;

	pregrow();
	stack_line(stack_before, sizeof(stack_before));
	if (sscanf(stack_before, "%lx-%lx", &lo, &hi) != 2)
		fail("cannot parse [stack] line '%s'", stack_before);
	if ((unsigned long)deepest < lo || (unsigned long)deepest >= hi)
		fail("deepest frame %p is not inside [stack] %s", deepest, stack_before);
	test_msg("deepest frame %p stack %s", deepest, stack_before);

	test_daemon();
	test_waitsig();

	stack_line(stack_after, sizeof(stack_after));
	if (strcmp(stack_before, stack_after))
		fail("[stack] line changed: before '%s' after '%s'",
		     stack_before, stack_after);
}

static __attribute__((noinline)) void dive(unsigned long depth, unsigned long max)
{
	uint8_t buf[FRAME];

	pattern_fill(buf, sizeof(buf), SEED + depth);
	if (depth < max)
		dive(depth + 1, max);
	else
		bottom(buf);

	if (pattern_find_bad(buf, sizeof(buf), SEED + depth) != sizeof(buf)) {
		char what[64];

		snprintf(what, sizeof(what), "frame at depth %lu", depth);
		pattern_expect(what, buf, sizeof(buf), SEED + depth);
	}
	__asm__ volatile("" ::: "memory");
}

int main(int argc, char **argv)
{
	long depth = 3000;
	const struct test_opt opts[] = {
		{ "depth", TEST_OPT_INT, &depth, 0, "recursion depth (1 KiB frames)" },
		{ NULL, 0, NULL, 0, NULL },
	};

	test_init(argc, argv, opts);
	if (depth < 1 || depth > 6000)
		fail("--depth must be within 1..6000 (8 MiB default stack limit)");
	dive(1, (unsigned long)depth);
	pass();
}
