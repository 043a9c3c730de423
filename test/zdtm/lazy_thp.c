/*
 * A thread's stack inside a lazy region where transparent huge pages apply
 * (MADV_HUGEPAGE, 2 MiB aligned): the restore fills the page at the
 * thread's stack pointer before the userfaultfd is registered.  If THP
 * applied to that fill, the kernel would allocate a whole huge page of
 * zeros around it and the lazy pages next to it would read as zeros (the
 * daemon's copy gets EEXIST).  Every page but the stack's must hold its
 * dumped data after the restore.
 *
 * The region is 4 MiB (two huge pages) between guard pages; the thread's
 * stack is the 64 KiB at 1 MiB + 32 KiB into it: no 64 KiB block (an mTHP
 * size) is all stack.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/lazy.h"
#include "lib/zdtmtst.h"

#define SEED 0x746870ULL
#define HPAGE (2UL << 20)
#define LEN (2 * HPAGE)
#define STACK_OFF ((1UL << 20) + (32UL << 10))
#define STACK_LEN (64UL << 10)
#define WATCHDOG_S 50

static volatile int stop;

static void *sleeper(void *arg)
{
	(void)arg;
	while (!stop)
		usleep(10000);
	return NULL;
}

static int in_stack(size_t off)
{
	return off >= STACK_OFF && off < STACK_OFF + STACK_LEN;
}

int main(int argc, char **argv)
{
	pthread_attr_t attr;
	pthread_t thread;
	uint8_t *raw, *mem;
	char what[64];
	int ret;

	test_init(argc, argv, NULL);
	/* 2 MiB aligned with a read-only guard page on each side */
	raw = mmap(NULL, LEN + 2 * HPAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		fail("mmap: %m");
	mem = (uint8_t *)(((uintptr_t)raw + HPAGE) & ~(HPAGE - 1));
	if (mprotect(mem, LEN, PROT_READ | PROT_WRITE))
		fail("mprotect: %m");
	if (madvise(mem, LEN, MADV_HUGEPAGE))
		fail("MADV_HUGEPAGE: %m");
	for (size_t off = 0; off < LEN; off += PAGE_SIZE)
		if (!in_stack(off))
			pattern_fill(mem + off, PAGE_SIZE, SEED + off / PAGE_SIZE);
	/* the pattern pages stay 4 KiB pages: the dump sees them one by one
	 * either way, and only the restore's fill must not grow them */
	pthread_attr_init(&attr);
	if (pthread_attr_setstack(&attr, mem + STACK_OFF, STACK_LEN))
		fail("pthread_attr_setstack failed");
	ret = test_thread_create(&thread, &attr, sleeper, NULL);
	if (ret)
		fail("pthread_create: %s", strerror(ret));
	test_msg("region %p, thread stack %p", (void *)mem, (void *)(mem + STACK_OFF));

	test_daemon();
	test_waitsig();
	lazy_watchdog(WATCHDOG_S, "the region's pages");
	/* well below the thread's stack, which the restore fills around its
	 * stack pointer and whose own faults may bring their window in */
	lazy_premise("the region below the thread's stack", mem, STACK_OFF / 2);
	for (size_t off = 0; off < LEN; off += PAGE_SIZE) {
		if (in_stack(off))
			continue;
		snprintf(what, sizeof(what), "page %zu", off / PAGE_SIZE);
		pattern_expect(what, mem + off, PAGE_SIZE, SEED + off / PAGE_SIZE);
	}
	stop = 1;
	ret = pthread_join(thread, NULL);
	if (ret)
		fail("pthread_join: %s", strerror(ret));
	pass();
	return 0;
}
