/*
 * POSIX timers, one of each notification the kernel knows, made with the
 * raw syscalls (glibc's SIGEV_THREAD would start a thread):
 *
 *   tick    SIGEV_SIGNAL, CLOCK_MONOTONIC, every 20 ms, SIGRTMIN, value 0x1234
 *   tid     SIGEV_THREAD_ID to us, CLOCK_REALTIME, every 30 ms, SIGRTMIN+1, 77
 *   none    SIGEV_NONE, CLOCK_MONOTONIC, 500 s left, interval 7 s
 *   thread  SIGEV_THREAD as the kernel takes it (a signal), CLOCK_BOOTTIME,
 *           one-shot, 300 s, SIGRTMIN+2
 *   cpu     SIGEV_NONE, CLOCK_PROCESS_CPUTIME_ID, 1000 s of CPU time
 *   held    SIGEV_SIGNAL, every 10 ms, SIGRTMIN+3 blocked, value 0x5678: its
 *           signal is pending at the checkpoint
 *
 * and a timer deleted between them, so the ids have a hole.  After the
 * restore: every timer has its id, its interval exactly and no more time
 * left than before; the periodic ones keep firing with the right
 * si_value and si_timerid; the signal held pending at the checkpoint
 * arrives with its timer id and value; a held timer counts its overruns
 * again; the deleted id is still free.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define NS 1000000000LL
#define SLACK_NS 50000000LL	/* timer_gettime rounding, clock steps */

enum { T_TICK, T_TID, T_NONE, T_THREAD, T_CPU, T_HELD, NR_T };

struct spec {
	const char *name;
	int clock, notify, sig_off;	/* signal SIGRTMIN + sig_off */
	long long value;		/* sigev_value */
	struct timespec interval, first;
};

static const struct spec specs[NR_T] = {
	[T_TICK] = { "tick", CLOCK_MONOTONIC, SIGEV_SIGNAL, 0, 0x1234, { 0, 20000000 }, { 0, 20000000 } },
	[T_TID] = { "tid", CLOCK_REALTIME, SIGEV_THREAD_ID, 1, 77, { 0, 30000000 }, { 0, 30000000 } },
	[T_NONE] = { "none", CLOCK_MONOTONIC, SIGEV_NONE, 0, 0, { 7, 0 }, { 500, 0 } },
	[T_THREAD] = { "thread", CLOCK_BOOTTIME, SIGEV_THREAD, 2, 0x42, { 0, 0 }, { 300, 0 } },
	[T_CPU] = { "cpu", CLOCK_PROCESS_CPUTIME_ID, SIGEV_NONE, 0, 0, { 0, 0 }, { 1000, 0 } },
	[T_HELD] = { "held", CLOCK_MONOTONIC, SIGEV_SIGNAL, 3, 0x5678, { 0, 10000000 }, { 0, 10000000 } },
};

struct kernel_itimerspec {
	struct timespec interval, value;
};

static int ids[NR_T];
static volatile long fired[NR_T];
static volatile int bad_signal;
static char bad_what[160];

static long long ns(const struct timespec *ts)
{
	return ts->tv_sec * NS + ts->tv_nsec;
}

static int tcreate(int clock, struct sigevent *sev, int *id)
{
	return syscall(SYS_timer_create, clock, sev, id);
}

static void tget(int i, struct kernel_itimerspec *its)
{
	if (syscall(SYS_timer_gettime, ids[i], its))
		fail("timer_gettime(%s, id %d): %m", specs[i].name, ids[i]);
}

static void on_timer(int sig, siginfo_t *si, void *uc)
{
	int i = sig == SIGRTMIN ? T_TICK : T_TID;

	(void)uc;
	if (si->si_code != SI_TIMER || si->si_timerid != ids[i] ||
	    (long long)(long)si->si_value.sival_ptr != specs[i].value) {
		if (!bad_signal)
			snprintf(bad_what, sizeof(bad_what), "signal %d: code %d timer %d value "
				 "%p, expected timer %d value %#llx", sig, si->si_code,
				 si->si_timerid, si->si_value.sival_ptr, ids[i], specs[i].value);
		bad_signal = 1;
	}
	fired[i]++;
}

static void wait_ticks(int i, long more)
{
	long want = fired[i] + more;

	for (int ms = 0; ms < 5000 && fired[i] < want; ms++) {
		struct timespec ts = { 0, 1000000 };

		nanosleep(&ts, NULL);
	}
	if (fired[i] < want)
		fail("timer %s stopped firing: %ld signals in 5 s", specs[i].name,
		     more - (want - fired[i]));
}

/* The pending signal of the held timer: its own one, then a fresh one. */
static siginfo_t take_held(const char *when)
{
	struct timespec five = { 5, 0 };
	siginfo_t si;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN + 3);
	if (sigtimedwait(&set, &si, &five) < 0)
		fail("no held timer signal %s: %m", when);
	if (si.si_code != SI_TIMER || si.si_timerid != ids[T_HELD] ||
	    (long)si.si_value.sival_ptr != 0x5678)
		fail("held timer signal %s: code %d timer %d value %p, expected timer %d "
		     "value 0x5678", when, si.si_code, si.si_timerid, si.si_value.sival_ptr,
		     ids[T_HELD]);
	return si;
}

int main(int argc, char **argv)
{
	struct kernel_itimerspec before[NR_T], cur;
	struct sigaction sa;
	sigset_t held, pending;
	int gap;

	test_init(argc, argv, NULL);

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_timer;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGRTMIN, &sa, NULL) || sigaction(SIGRTMIN + 1, &sa, NULL))
		fail("sigaction: %m");
	sigemptyset(&held);
	sigaddset(&held, SIGRTMIN + 2);	/* 300 s: never fires, blocked anyway */
	sigaddset(&held, SIGRTMIN + 3);
	if (sigprocmask(SIG_BLOCK, &held, NULL))
		fail("sigprocmask: %m");

	for (int i = 0; i < NR_T; i++) {
		struct sigevent sev;

		memset(&sev, 0, sizeof(sev));
		sev.sigev_notify = specs[i].notify;
		sev.sigev_signo = SIGRTMIN + specs[i].sig_off;
		sev.sigev_value.sival_ptr = (void *)(long)specs[i].value;
		if (specs[i].notify == SIGEV_THREAD_ID)
			sev._sigev_un._tid = gettid();
		if (tcreate(specs[i].clock, &sev, &ids[i]))
			fail("timer_create(%s): %m", specs[i].name);
		if (i == T_NONE) {	/* a hole in the ids */
			if (tcreate(CLOCK_MONOTONIC, NULL, &gap) || syscall(SYS_timer_delete, gap))
				fail("timer_create/delete of the gap: %m");
		}
	}
	for (int i = 0; i < NR_T; i++) {
		struct kernel_itimerspec its = { specs[i].interval, specs[i].first };

		if (syscall(SYS_timer_settime, ids[i], 0, &its, NULL))
			fail("timer_settime(%s): %m", specs[i].name);
	}
	wait_ticks(T_TICK, 3);
	wait_ticks(T_TID, 2);
	if (bad_signal)
		fail("before the checkpoint: %s", bad_what);
	/* the held timer's signal is pending from now on */
	for (int ms = 0; ms < 5000; ms++) {
		struct timespec ts = { 0, 1000000 };

		if (sigpending(&pending))
			fail("sigpending: %m");
		if (sigismember(&pending, SIGRTMIN + 3))
			break;
		nanosleep(&ts, NULL);
	}
	if (!sigismember(&pending, SIGRTMIN + 3))
		fail("the held timer's signal never became pending");
	for (int i = 0; i < NR_T; i++)
		tget(i, &before[i]);
	test_msg("timer ids %d %d %d %d %d %d, gap %d, recorded at %p", ids[0], ids[1], ids[2],
		 ids[3], ids[4], ids[5], gap, (void *)ids);

	test_daemon();
	test_waitsig();

	for (int i = 0; i < NR_T; i++) {
		tget(i, &cur);
		if (ns(&cur.interval) != ns(&specs[i].interval))
			fail("timer %s: interval %lld ns, expected %lld ns", specs[i].name,
			     ns(&cur.interval), ns(&specs[i].interval));
		if (ns(&specs[i].interval) || i == T_HELD)
			continue;	/* periodic: checked by their signals */
		if (ns(&cur.value) <= 0)
			fail("timer %s is disarmed after the restore", specs[i].name);
		if (ns(&cur.value) > ns(&before[i].value) + SLACK_NS)
			fail("timer %s: %lld ns left, more than the %lld ns left before",
			     specs[i].name, ns(&cur.value), ns(&before[i].value));
	}
	tget(T_NONE, &cur);
	if (ns(&cur.value) < ns(&before[T_NONE].value) - 60 * NS)
		fail("timer none lost more than a minute: %lld ns left, %lld ns before",
		     ns(&cur.value), ns(&before[T_NONE].value));
	if (syscall(SYS_timer_gettime, gap, &cur) == 0 || errno != EINVAL)
		fail("the deleted timer id %d exists after the restore", gap);

	wait_ticks(T_TICK, 5);
	wait_ticks(T_TID, 3);
	if (bad_signal)
		fail("after the restore: %s", bad_what);

	/* the signal pending at the checkpoint, then the timer's own next one:
	 * held 50 ms, it must have counted its overruns */
	take_held("pending at the checkpoint");
	{
		struct timespec ms50 = { 0, 50000000 };
		siginfo_t si;
		long over;

		/* the ticks interrupt the sleep: sleep what is left */
		while (nanosleep(&ms50, &ms50) && errno == EINTR)
			;
		si = take_held("50 ms after the restore");
		over = syscall(SYS_timer_getoverrun, ids[T_HELD]);
		if (si.si_overrun < 2)
			fail("held timer: si_overrun %d after 50 ms of a 10 ms timer held",
			     si.si_overrun);
		if (over != si.si_overrun)
			fail("held timer: timer_getoverrun %ld, its last signal said %d", over,
			     si.si_overrun);
	}
	pass();
}
