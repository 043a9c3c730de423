/*
 * A task with a second thread, which the tool cannot dump yet: a dump must
 * refuse it and leave both threads running.  The thread counts; after
 * SIGTERM the main thread checks that it counted before and still counts,
 * then stops and joins it.  Run without a checkpoint it passes.
 */
#include <pthread.h>
#include <time.h>

#include "lib/zdtmtst.h"

static volatile unsigned long count;
static volatile int stop;

static void *worker(void *arg)
{
	(void)arg;
	while (!stop) {
		struct timespec ms = { 0, 1000000 };

		count++;
		nanosleep(&ms, NULL);
	}
	return NULL;
}

static void wait_for(unsigned long target, const char *when)
{
	int i;

	for (i = 0; i < 5000 && count < target; i++) {
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
	unsigned long c;

	test_init(argc, argv, NULL);

	/* the thread must not take the SIGTERM meant for the main thread */
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	if (pthread_create(&th, NULL, worker, NULL))
		fail("pthread_create failed");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	wait_for(5, "before the checkpoint");

	test_msg("stop flag %p", (void *)&stop);
	test_daemon();
	test_waitsig();

	c = count;
	wait_for(c + 5, "after SIGTERM");
	stop = 1;
	if (pthread_join(th, NULL))
		fail("pthread_join failed");
	pass();
}
