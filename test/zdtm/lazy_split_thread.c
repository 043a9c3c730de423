/*
 * A thread waits on a lazy page while its region moves (issue 13): after
 * the restore, a reader thread created then reads a lazy region with a
 * stride that makes nearly every read a fault, while the main thread
 * moves the region back and forth with mremap (each move a REMAP event).
 * A reader asleep in a fault on the old range must be woken: it then
 * faults on the range that is gone (SIGSEGV), catches that and reads on at
 * the region's new address.  The main thread joins it with a timeout (a
 * reader left asleep fails the test) and checks every page where the
 * region ended.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "lib/lazy.h"
#include "lib/zdtmtst.h"

#define SEED 0x7468726561ULL
#define NPAGES 16384		/* 64 MiB */
#define STRIDE 16		/* the daemon's fault-around window, in pages */
#define MOVES 16
#define WATCHDOG_S 50
#define JOIN_S 30

static uint8_t *volatile base;		/* where the region is now */
static volatile size_t progress;	/* pages the reader has checked */
static volatile int reader_done, caught;
static pthread_t reader_thread;
static __thread sigjmp_buf reader_jmp;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (!pthread_equal(pthread_self(), reader_thread))
		fail("SIGSEGV at %p in the main thread", si->si_addr);
	caught++;
	siglongjmp(reader_jmp, 1);
}

/* Read page i wherever the region is, starting over when it moved away. */
static void read_page(size_t i)
{
	volatile size_t idx = i;
	size_t bad;

	sigsetjmp(reader_jmp, 1);
	bad = pattern_find_bad(base + idx * PAGE_SIZE, PAGE_SIZE, SEED + idx);
	if (bad != PAGE_SIZE)
		fail("reader: page %zu at %p: byte %#zx is %#x, expected %#x", idx,
		     (void *)(base + idx * PAGE_SIZE), bad, base[idx * PAGE_SIZE + bad],
		     pattern_byte(SEED + idx, bad));
}

static void *reader(void *arg)
{
	(void)arg;
	for (size_t pass = 0; pass < STRIDE; pass++)
		for (size_t i = pass; i < NPAGES; i += STRIDE) {
			read_page(i);
			progress++;
		}
	reader_done = 1;
	return NULL;
}

static uint8_t *reserve(void *at)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | (at ? MAP_FIXED_NOREPLACE : 0);
	uint8_t *p = mmap(at, NPAGES * PAGE_SIZE, PROT_NONE, flags, -1, 0);

	if (p == MAP_FAILED || (at && p != at))
		fail("reserve %zu pages at %p: %m", (size_t)NPAGES, at);
	return p;
}

int main(int argc, char **argv)
{
	size_t len = NPAGES * PAGE_SIZE;
	struct sigaction sa = { .sa_sigaction = on_segv, .sa_flags = SA_SIGINFO | SA_NODEFER };
	uint8_t *mem, *spare, *old, *p;
	struct timespec deadline;
	int moves_while_reading = 0, i, ret;

	test_init(argc, argv, NULL);
	mem = lazy_map_guarded(NPAGES);
	for (size_t n = 0; n < NPAGES; n++)
		pattern_fill(mem + n * PAGE_SIZE, PAGE_SIZE, SEED + n);
	test_msg("region %p", (void *)mem);

	test_daemon();
	test_waitsig();
	lazy_watchdog(WATCHDOG_S, "the reader and the moves");
	lazy_premise("the region", mem, len);

	base = mem;
	spare = reserve(NULL);
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, NULL))
		fail("sigaction(SIGSEGV): %m");
	/* created after the restore, as the issue asks */
	ret = test_thread_create(&reader_thread, NULL, reader, NULL);
	if (ret)
		fail("pthread_create: %s", strerror(ret));
	while (progress < 8 && !reader_done)
		sched_yield();

	for (i = 0; i < MOVES; i++) {
		struct timespec pause = { 0, 500000 };

		old = base;
		p = mremap(old, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, spare);
		if (p != spare)
			fail("mremap move %d to %p: %m", i, (void *)spare);
		if (!reader_done)
			moves_while_reading++;
		base = p;
		spare = reserve(old);
		nanosleep(&pause, NULL);
	}

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += JOIN_S;
	ret = pthread_timedjoin_np(reader_thread, NULL, &deadline);
	if (ret == ETIMEDOUT)
		fail("the reader is still not done %d s after the last move, at page %zu of %d: "
		     "left asleep in a fault?", JOIN_S, (size_t)progress, NPAGES);
	if (ret)
		fail("pthread_timedjoin_np: %s", strerror(ret));
	if (!moves_while_reading)
		fail("premise: the reader was done before the region first moved");
	test_msg("%d moves while the reader read; it faulted on a range gone %d times",
		 moves_while_reading, caught);
	for (size_t n = 0; n < NPAGES; n++) {
		char what[64];

		snprintf(what, sizeof(what), "page %zu after the moves", n);
		pattern_expect(what, base + n * PAGE_SIZE, PAGE_SIZE, SEED + n);
	}
	lazy_watchdog(0, "");
	pass();
}
