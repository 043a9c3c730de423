/*
 * Threads dumped while they wait with a timeout, which the kernel restarts
 * through its restart block (restart_syscall) after any stop:
 *
 *   rel   clock_nanosleep(CLOCK_MONOTONIC, relative 3 s, &rem)
 *   norem nanosleep(3 s, NULL)
 *   futex FUTEX_WAIT with a relative 3 s timeout on a word nobody wakes
 *   abs   FUTEX_WAIT_BITSET until an absolute CLOCK_MONOTONIC deadline 3 s on
 *
 * Each measures how long its wait took: never less than asked (a sleep cut
 * short), and not absurdly more.  As a careful program does, each goes on
 * waiting after EINTR (with the time left); --no-eintr makes an EINTR a
 * failure: the restore must restart the wait, not interrupt it.
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define WAIT_S		3
#define SLACK_S		30	/* dumps, restores, a loaded machine */

enum { REL, NOREM, FUTEX, ABS, NR };

struct waiter {
	const char *name;
	volatile int started, done, eintr;
	long elapsed_ms;
	int err;		/* what the wait ended with, 0 or an errno */
	pthread_t th;
};

static struct waiter w[NR] = {
	{ .name = "rel" }, { .name = "norem" }, { .name = "futex" }, { .name = "abs" },
};
static int no_eintr;
static volatile int stop;
static volatile uint32_t word;
static volatile long min_ms = WAIT_S * 1000;

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *waiter_main(void *arg)
{
	struct waiter *me = arg;
	struct timespec req = { WAIT_S, 0 }, rem, deadline;
	long t0 = now_ms();
	int ret;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += WAIT_S;
	me->started = 1;
	for (;;) {
		switch (me - w) {
		case REL:
			ret = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &rem);
			if (ret == EINTR)
				req = rem;
			errno = ret;
			ret = ret ? -1 : 0;
			break;
		case NOREM:
			/* no rem: after EINTR the whole time again, from here */
			ret = syscall(SYS_nanosleep, &req, NULL);
			break;
		case FUTEX:
			ret = syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, &req, NULL, 0);
			break;
		default:
			ret = syscall(SYS_futex, &word, FUTEX_WAIT_BITSET_PRIVATE, 0, &deadline,
				      NULL, FUTEX_BITSET_MATCH_ANY);
			break;
		}
		if (ret == 0 || errno != EINTR)
			break;
		me->eintr++;
	}
	me->err = ret ? errno : 0;
	me->elapsed_ms = now_ms() - t0;
	me->done = 1;
	/* stay: the thread count /proc shows must not change under a dump */
	while (!stop)
		usleep(1000);
	return NULL;
}

int main(int argc, char **argv)
{
	const struct test_opt opts[] = {
		{ "no-eintr", TEST_OPT_FLAG, &no_eintr, 0, "an EINTR fails the test" },
		{ NULL, 0, NULL, 0, NULL },
	};
	sigset_t term, old;

	test_init(argc, argv, opts);
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	for (int i = 0; i < NR; i++)
		if (pthread_create(&w[i].th, NULL, waiter_main, &w[i]))
			fail("pthread_create failed");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	for (int i = 0; i < NR; i++)
		while (!w[i].started)
			sched_yield();
	usleep(50000);		/* into their waits */

	test_msg("shortest acceptable wait (ms) at %p", (void *)&min_ms);
	test_daemon();
	test_waitsig();

	for (int i = 0; i < NR; i++) {
		int want = i == FUTEX || i == ABS ? ETIMEDOUT : 0;

		for (int k = 0; k < 1000 * (WAIT_S + SLACK_S) && !w[i].done; k++)
			usleep(1000);
		if (!w[i].done)
			fail("%s: still waiting %d s after SIGTERM", w[i].name, WAIT_S + SLACK_S);
		if (w[i].err != want)
			fail("%s: the wait ended with %s, expected %s", w[i].name,
			     strerror(w[i].err), strerror(want));
		if (w[i].elapsed_ms < min_ms)
			fail("%s: the wait took %ld ms, less than %ld", w[i].name, w[i].elapsed_ms,
			     min_ms);
		if (w[i].elapsed_ms > (WAIT_S * 2 + SLACK_S) * 1000L)
			fail("%s: the wait took %ld ms", w[i].name, w[i].elapsed_ms);
		if (no_eintr && w[i].eintr)
			fail("%s: the wait was interrupted (EINTR) %d times", w[i].name, w[i].eintr);
	}
	stop = 1;
	for (int i = 0; i < NR; i++)
		pthread_join(w[i].th, NULL);
	pass();
}
