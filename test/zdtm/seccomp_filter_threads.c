/*
 * Threads with different seccomp filters, installed without TSYNC:
 *
 *   main  none                      uname EFAULT, getpriority allowed
 *   t1    F1: uname -> ENOMSG       (then creates t2)
 *   t2    F1 inherited from t1, and F2: getpriority -> EXDEV
 *   t3    F3: uname -> ENOTTY, sysinfo kills the thread
 *
 * After the restore each thread checks its own: the errnos, the number of
 * filters /proc shows, and t3, calling sysinfo, must be killed alone while
 * the others go on.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>

#include "lib/sc.h"
#include "lib/zdtmtst.h"

struct worker {
	const char *name;
	int uname_errno, getpriority_errno, nr_filters;
	volatile int ready, go, done, survived;
	char why[120];
	pthread_t th;
};

static struct worker w[3] = {
	{ .name = "t1", .uname_errno = ENOMSG, .nr_filters = 1 },
	{ .name = "t2", .uname_errno = ENOMSG, .getpriority_errno = EXDEV, .nr_filters = 2 },
	{ .name = "t3", .uname_errno = ENOTTY, .nr_filters = 1 },
};

static void sleep_ms(void)
{
	struct timespec ms = { 0, 1000000 };

	nanosleep(&ms, NULL);
}

static void check(struct worker *me)
{
	int e;

	if (sc_check_status(2, me->nr_filters, me->why, sizeof(me->why)))
		return;
	if ((e = sc_uname_errno()) != me->uname_errno)
		snprintf(me->why, sizeof(me->why), "uname failed with %d, expected %d", e,
			 me->uname_errno);
	else if ((e = sc_getpriority_errno()) != me->getpriority_errno)
		snprintf(me->why, sizeof(me->why), "getpriority failed with %d, expected %d", e,
			 me->getpriority_errno);
}

/* Check once before the checkpoint and once after. */
static void rounds(struct worker *me)
{
	for (int round = 0; round < 2; round++) {
		while (!me->go || me->done)
			sleep_ms();
		check(me);
		me->done = 1;
	}
}

static void *t2_main(void *arg)
{
	const struct sc_rule f2[] = { { SYS_getpriority, SECCOMP_RET_ERRNO | EXDEV }, { 0, 0 } };
	struct worker *me = arg;

	if (sc_install(f2, 0))
		snprintf(me->why, sizeof(me->why), "cannot install F2");
	me->ready = 1;
	rounds(me);
	return NULL;
}

static void *t1_main(void *arg)
{
	const struct sc_rule f1[] = { { SYS_uname, SECCOMP_RET_ERRNO | ENOMSG }, { 0, 0 } };
	struct worker *me = arg;

	if (sc_install(f1, 0))
		snprintf(me->why, sizeof(me->why), "cannot install F1");
	else if (pthread_create(&w[1].th, NULL, t2_main, &w[1]))
		snprintf(me->why, sizeof(me->why), "cannot create t2");
	me->ready = 1;
	rounds(me);
	return NULL;
}

static void *t3_main(void *arg)
{
	const struct sc_rule f3[] = { { SYS_uname, SECCOMP_RET_ERRNO | ENOTTY },
				      { SYS_sysinfo, SECCOMP_RET_KILL_THREAD }, { 0, 0 } };
	struct worker *me = arg;

	if (sc_install(f3, 0))
		snprintf(me->why, sizeof(me->why), "cannot install F3");
	me->ready = 1;
	rounds(me);
	while (me->go != 2)
		sleep_ms();
	syscall(SYS_sysinfo, NULL);	/* killed here */
	me->survived = 1;
	return NULL;
}

static void wait_for(volatile int *flag, const char *what)
{
	for (int i = 0; i < 5000 && !*flag; i++)
		sleep_ms();
	if (!*flag)
		fail("%s", what);
}

static void check_all(const char *when)
{
	for (int i = 0; i < 3; i++)
		w[i].go = 1;
	for (int i = 0; i < 3; i++) {
		wait_for(&w[i].done, "a thread did not check its filters");
		if (w[i].why[0])
			fail("%s, %s: %s", when, w[i].name, w[i].why);
	}
	if (sc_uname_errno() != EFAULT || sc_getpriority_errno())
		fail("%s, the main thread is filtered", when);
}

int main(int argc, char **argv)
{
	sigset_t term, old;

	test_init(argc, argv, NULL);
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	if (pthread_create(&w[0].th, NULL, t1_main, &w[0]) ||
	    pthread_create(&w[2].th, NULL, t3_main, &w[2]))
		fail("pthread_create failed");
	wait_for(&w[0].ready, "t1 did not start");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	wait_for(&w[1].ready, "t2 did not start");
	wait_for(&w[2].ready, "t3 did not start");
	check_all("before the checkpoint");
	for (int i = 0; i < 3; i++) {
		w[i].go = 0;
		w[i].done = 0;
	}
	test_msg("t2's expected getpriority errno at %p", (void *)&w[1].getpriority_errno);
	test_daemon();
	test_waitsig();

	check_all("after SIGTERM");
	w[2].go = 2;
	if (pthread_join(w[2].th, NULL))
		fail("pthread_join of t3 failed");
	if (w[2].survived)
		fail("t3 survived sysinfo");
	if (pthread_join(w[1].th, NULL) || pthread_join(w[0].th, NULL))
		fail("pthread_join failed");
	pass();
}
