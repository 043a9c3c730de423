/*
 * Lazy memory touched from a signal handler: the handler runs on an
 * alternate signal stack inside a region that is still lazy (so the kernel
 * itself faults while it writes the signal frame) and reads and writes
 * another lazy region.
 */
#include <signal.h>
#include <string.h>
#include <sys/mman.h>

#include "lib/lazy.h"
#include "lib/zdtmtst.h"

#define WATCHDOG_S 45

#define SEED 0x7369676e616cULL
#define DATA_PAGES 64
#define STACK_SIZE (64 * 1024)

static uint8_t *data;
static volatile sig_atomic_t handler_result = -1;

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	int local;

	/* the frame is on the alternate stack, which was lazy */
	if ((uintptr_t)&local < (uintptr_t)si->si_value.sival_ptr ||
	    (uintptr_t)&local >= (uintptr_t)si->si_value.sival_ptr + STACK_SIZE) {
		handler_result = 2;
		return;
	}
	if (pattern_find_bad(data, DATA_PAGES * PAGE_SIZE, SEED) != DATA_PAGES * PAGE_SIZE) {
		handler_result = 1;
		return;
	}
	memset(data, 0x33, PAGE_SIZE);
	handler_result = 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { 0 };
	uint8_t *stack;
	stack_t ss;

	test_init(argc, argv, NULL);
	data = lazy_map_guarded(DATA_PAGES);
	stack = lazy_map_guarded(STACK_SIZE / PAGE_SIZE);
	pattern_fill(data, DATA_PAGES * PAGE_SIZE, SEED);
	/* make the stack pages exist (and be dumped) with a pattern */
	pattern_fill(stack, STACK_SIZE, SEED ^ 7);

	ss.ss_sp = stack;
	ss.ss_size = STACK_SIZE;
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL))
		fail("sigaltstack: %m");
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL))
		fail("sigaction: %m");

	test_msg("region %p", (void *)data);
	test_daemon();
	test_waitsig();
	lazy_watchdog(WATCHDOG_S, "the checks");
	lazy_premise("the data", data, DATA_PAGES * PAGE_SIZE);
	lazy_premise("the alternate stack", stack, STACK_SIZE);

	/* nothing of data or stack touched since the restore */
	if (sigqueue(getpid(), SIGUSR1, (union sigval){ .sival_ptr = stack }))
		fail("sigqueue: %m");
	if (handler_result == 2)
		fail("the handler did not run on the alternate stack");
	if (handler_result == 1)
		fail("the handler saw wrong data in the lazy region");
	if (handler_result != 0)
		fail("the handler did not run");
	if (data[0] != 0x33 || data[PAGE_SIZE - 1] != 0x33)
		fail("the handler's write is lost");
	for (size_t off = PAGE_SIZE; off < DATA_PAGES * PAGE_SIZE; off++)
		if (data[off] != pattern_byte(SEED, off))
			fail("data byte %zu changed", off);
	pass();
}
