/*
 * A second thread under a seccomp filter of its own (uname fails with
 * ENOMSG; installed without TSYNC, so the main thread has none).  The
 * thread counts; after SIGTERM the main thread checks that it still counts
 * and is not filtered itself, and the thread that it still is, with one
 * filter, then it is stopped and joined.
 *
 * --user-notif: the filter sends uname to a user-space listener instead
 * (SECCOMP_RET_USER_NOTIF, the listener fd kept open), which a dump must
 * refuse, naming the thread.
 */
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lib/sc.h"
#include "lib/zdtmtst.h"

static volatile unsigned long count;
static volatile int stop, check, filtered = -1;
static char why[100];
static int user_notif;

static void *worker(void *arg)
{
	const struct sc_rule rules[] = { { SYS_uname, SECCOMP_RET_ERRNO | ENOMSG }, { 0, 0 } };

	(void)arg;
	const struct sc_rule notif[] = { { SYS_uname, SECCOMP_RET_USER_NOTIF }, { 0, 0 } };

	if (user_notif)
		filtered = sc_install(notif, SECCOMP_FILTER_FLAG_NEW_LISTENER) >= 0 ? 1 : 0;
	else
		filtered = sc_install(rules, 0) ? 0 : 1;
	while (!stop) {
		if (check == 1) {
			if (!sc_check_status(2, 1, why, sizeof(why)) && sc_uname_errno() != ENOMSG)
				snprintf(why, sizeof(why), "uname is not refused with ENOMSG");
			check = 2;
		}
		struct timespec ms = { 0, 1000000 };

		count++;
		nanosleep(&ms, NULL);
	}
	return NULL;
}

static void wait_for(unsigned long target, const char *when)
{
	for (int i = 0; i < 5000 && count < target; i++) {
		struct timespec ms = { 0, 1000000 };

		nanosleep(&ms, NULL);
	}
	if (count < target)
		fail("the second thread stopped counting %s (%lu)", when, count);
}

int main(int argc, char **argv)
{
	pthread_t th;
	sigset_t term, old;

	const struct test_opt opts[] = {
		{ "user-notif", TEST_OPT_FLAG, &user_notif, 0, "uname goes to a listener" },
		{ NULL, 0, NULL, 0, NULL },
	};

	test_init(argc, argv, opts);

	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	if (pthread_create(&th, NULL, worker, NULL))
		fail("pthread_create failed");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	wait_for(5, "before the checkpoint");
	if (filtered != 1)
		fail("the second thread could not install its seccomp filter");
	if (prctl(PR_GET_SECCOMP) != 0)
		fail("the main thread is under seccomp too");

	test_msg("stop flag %p", (void *)&stop);
	test_daemon();
	test_waitsig();

	wait_for(count + 5, "after SIGTERM");
	if (sc_uname_errno() != EFAULT)
		fail("the main thread is filtered after the restore");
	check = user_notif ? 2 : 1;
	for (int i = 0; i < 5000 && check != 2; i++) {
		struct timespec ms = { 0, 1000000 };

		nanosleep(&ms, NULL);
	}
	if (check != 2)
		fail("the second thread did not check its filter");
	if (why[0])
		fail("the second thread: %s", why);
	stop = 1;
	if (pthread_join(th, NULL))
		fail("pthread_join failed");
	pass();
}
