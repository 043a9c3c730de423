/*
 * A second thread under a seccomp filter of its own (allow everything,
 * installed without TSYNC, so the main thread has none), which the tool
 * cannot dump yet: a dump must refuse it, naming that thread, and leave
 * both threads running.  The thread counts; after SIGTERM the main thread
 * checks that it still counts, then stops and joins it.  Run without a
 * checkpoint it passes.
 */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

static volatile unsigned long count;
static volatile int stop, filtered = -1;

static void *worker(void *arg)
{
	struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	struct sock_fprog prog = { .len = 1, .filter = &allow };

	(void)arg;
	filtered = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) ? 0 : 1;
	while (!stop) {
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

	test_init(argc, argv, NULL);

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
	stop = 1;
	if (pthread_join(th, NULL))
		fail("pthread_join failed");
	pass();
}
