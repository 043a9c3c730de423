/*
 * POSIX timers aimed at a thread other than the main one:
 *
 *   tick  SIGEV_THREAD_ID to the second thread, CLOCK_MONOTONIC, every
 *         20 ms, SIGRTMIN+2 (blocked in the main thread)
 *   cpu   on the second thread's CPU clock, SIGEV_NONE, armed far ahead
 *
 * The handler counts where the signal lands.  After the restore the tick
 * must still reach the second thread only, and the cpu timer must still
 * be armed on that thread's clock.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

static volatile pid_t worker_tid;
static volatile int stop;
static volatile unsigned long on_worker, elsewhere;

static void on_tick(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)si, (void)uc;
	if (syscall(SYS_gettid) == worker_tid)
		on_worker++;
	else
		elsewhere++;
}

static void *worker(void *arg)
{
	(void)arg;
	worker_tid = syscall(SYS_gettid);
	while (!stop) {
		struct timespec ms = { 0, 1000000 };

		nanosleep(&ms, NULL);
	}
	return NULL;
}

static void expect_ticks(const char *when)
{
	struct timespec ms = { 0, 1000000 };

	on_worker = elsewhere = 0;
	for (int i = 0; i < 3000 && on_worker < 5; i++)
		nanosleep(&ms, NULL);
	if (on_worker < 5 || elsewhere)
		fail("%s: %lu ticks reached the second thread and %lu another one", when,
		     on_worker, elsewhere);
}

int main(int argc, char **argv)
{
	struct itimerspec tick = { { 0, 20000000 }, { 0, 20000000 } };
	struct itimerspec far = { { 0, 0 }, { 3600, 0 } }, cur;
	struct sigaction sa;
	struct sigevent sev;
	sigset_t rt, term, old;
	timer_t t_tick, t_cpu;
	clockid_t cpu_clock;
	pthread_t th;

	test_init(argc, argv, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_tick;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGRTMIN + 2, &sa, NULL);

	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	if (pthread_create(&th, NULL, worker, NULL))
		fail("pthread_create failed");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	sigemptyset(&rt);
	sigaddset(&rt, SIGRTMIN + 2);
	pthread_sigmask(SIG_BLOCK, &rt, NULL);
	while (!worker_tid)
		sched_yield();

	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = SIGRTMIN + 2;
	sev._sigev_un._tid = worker_tid;
	if (timer_create(CLOCK_MONOTONIC, &sev, &t_tick) || timer_settime(t_tick, 0, &tick, NULL))
		fail("the tick timer: %m");
	if (pthread_getcpuclockid(th, &cpu_clock))
		fail("pthread_getcpuclockid failed");
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_NONE;
	if (timer_create(cpu_clock, &sev, &t_cpu) || timer_settime(t_cpu, 0, &far, NULL))
		fail("the cpu timer: %m");
	expect_ticks("before the checkpoint");

	test_msg("recorded tid of the second thread at %p", (void *)&worker_tid);
	test_daemon();
	test_waitsig();

	expect_ticks("after SIGTERM");
	if (timer_gettime(t_cpu, &cur))
		fail("timer_gettime of the cpu timer: %m");
	if (cur.it_value.tv_sec < 3000 || cur.it_value.tv_sec > 3600)
		fail("the cpu timer has %ld s left", (long)cur.it_value.tv_sec);
	timer_delete(t_tick);
	stop = 1;
	pthread_join(th, NULL);
	pass();
}
