/*
 * Interval timers.  ITIMER_REAL fires every 10 ms (SIGALRM counted);
 * ITIMER_VIRTUAL and ITIMER_PROF are armed far in the future (1000 s /
 * 2000 s of CPU time, intervals 500 s / 0).  After SIGTERM: the intervals
 * are exactly as set, the remaining values are > 0 and no larger than
 * before the checkpoint (CPU-time timers only count down; give or take the
 * kernel's tick granularity), and the real timer keeps ticking.
 */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define TICK_US 10000
#define SLACK_US 50000

static volatile long ticks;

static void on_alarm(int sig)
{
	(void)sig;
	ticks++;
}

static long long us(const struct timeval *tv)
{
	return (long long)tv->tv_sec * 1000000 + tv->tv_usec;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void expect_timer(const char *name, int which, const struct itimerval *set,
			 const struct itimerval *before)
{
	struct itimerval cur;

	if (getitimer(which, &cur))
		fail("getitimer(%s): %m", name);
	if (us(&cur.it_interval) != us(&set->it_interval))
		fail("%s interval is %lld us, expected %lld us", name,
		     us(&cur.it_interval), us(&set->it_interval));
	if (us(&cur.it_value) <= 0)
		fail("%s is disarmed (remaining value 0)", name);
	/*
	 * CPU-time timers only count down, but the kernel reports them with
	 * tick granularity (a value just set can read a tick above itself),
	 * so each restore may add a tick or two: allow 50 ms.
	 */
	if (us(&cur.it_value) > us(&before->it_value) + SLACK_US)
		fail("%s remaining value grew: %lld us, it was %lld us before",
		     name, us(&cur.it_value), us(&before->it_value));
}

int main(int argc, char **argv)
{
	struct itimerval real = { { 0, TICK_US }, { 0, TICK_US } };
	struct itimerval virt = { { 500, 0 }, { 1000, 0 } };
	struct itimerval prof = { { 0, 0 }, { 2000, 0 } };
	struct itimerval virt_before, prof_before, cur;
	struct sigaction sa;
	long t0, want;
	int i;
	double deadline;

	test_init(argc, argv, NULL);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL))
		fail("sigaction: %m");
	if (setitimer(ITIMER_REAL, &real, NULL) || setitimer(ITIMER_VIRTUAL, &virt, NULL) ||
	    setitimer(ITIMER_PROF, &prof, NULL))
		fail("setitimer: %m");
	while (ticks < 3)
		pause();
	if (getitimer(ITIMER_VIRTUAL, &virt_before) || getitimer(ITIMER_PROF, &prof_before))
		fail("getitimer: %m");

	test_msg("expected ITIMER_VIRTUAL %p", (void *)&virt);
	test_daemon();
	test_waitsig();

	expect_timer("ITIMER_VIRTUAL", ITIMER_VIRTUAL, &virt, &virt_before);
	expect_timer("ITIMER_PROF", ITIMER_PROF, &prof, &prof_before);
	/* 0 while a SIGALRM is pending: the kernel rearms it on delivery */
	for (i = 0; i < 3; i++) {
		if (getitimer(ITIMER_REAL, &cur))
			fail("getitimer(ITIMER_REAL): %m");
		if (us(&cur.it_value))
			break;
	}
	if (us(&cur.it_interval) != TICK_US)
		fail("ITIMER_REAL interval is %lld us, expected %d us",
		     us(&cur.it_interval), TICK_US);
	if (us(&cur.it_value) <= 0 || us(&cur.it_value) > TICK_US)
		fail("ITIMER_REAL remaining value %lld us is not within (0, %d]",
		     us(&cur.it_value), TICK_US);

	/* 5 more ticks (50 ms) must come within 5 s. */
	t0 = ticks;
	want = t0 + 5;
	deadline = now() + 5.0;
	while (ticks < want && now() < deadline) {
		struct timespec ms = { 0, 1000000 };

		nanosleep(&ms, NULL);	/* not pause(): it would wait forever */
	}
	if (ticks < want)
		fail("ITIMER_REAL stopped ticking: %ld ticks in 5 s after the restore",
		     ticks - t0);
	pass();
}
