/*
 * Threads that come and go while the task is being dumped: --spawners
 * threads each create a short-lived thread (which lives --linger-ms, or
 * not at all), join it and start again, all the time, so the dump meets
 * threads being created and exiting while it seizes them.  Every
 * short-lived thread adds its number to a sum; after SIGTERM the spawners
 * stop, and the sum must match what they created (no thread lost or run
 * twice), and they must have gone on creating threads after the restore.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define MAX_SPAWNERS	16

static long nr_spawners = 4, linger_ms;
static atomic_ulong created, finished, sum_expected, sum_done;
static atomic_int stop;

static void *short_lived(void *arg)
{
	unsigned long n = (unsigned long)arg;

	if (linger_ms) {
		struct timespec ts = { linger_ms / 1000, (linger_ms % 1000) * 1000000 };

		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
	atomic_fetch_add(&sum_done, n);
	atomic_fetch_add(&finished, 1);
	return NULL;
}

static void *spawner(void *arg)
{
	unsigned long base = (unsigned long)arg << 32, n = 0;

	while (!atomic_load(&stop)) {
		pthread_t t;
		unsigned long v = base | ++n;

		if (pthread_create(&t, NULL, short_lived, (void *)v))
			return (void *)1;
		atomic_fetch_add(&created, 1);
		atomic_fetch_add(&sum_expected, v);
		if (pthread_join(t, NULL))
			return (void *)2;
	}
	return NULL;
}

static void wait_more(unsigned long than, const char *when)
{
	for (int i = 0; i < 5000 && atomic_load(&finished) < than + 50; i++)
		usleep(1000);
	if (atomic_load(&finished) < than + 50)
		fail("threads stopped coming and going %s (%lu finished)", when,
		     atomic_load(&finished));
}

int main(int argc, char **argv)
{
	const struct test_opt opts[] = {
		{ "spawners", TEST_OPT_INT, &nr_spawners, 0, "threads that create threads" },
		{ "linger-ms", TEST_OPT_INT, &linger_ms, 0,
		  "how long each short-lived thread lives (default: not at all)" },
		{ NULL },
	};
	pthread_t th[MAX_SPAWNERS];
	sigset_t term, old;
	unsigned long before;

	test_init(argc, argv, opts);
	if (nr_spawners < 1 || nr_spawners > MAX_SPAWNERS)
		fail("--spawners %ld: 1..%d", nr_spawners, MAX_SPAWNERS);
	if (linger_ms < 0 || linger_ms > 1000)
		fail("--linger-ms %ld: 0..1000", linger_ms);

	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	for (long i = 0; i < nr_spawners; i++)
		if (pthread_create(&th[i], NULL, spawner, (void *)(i + 1)))
			fail("pthread_create failed");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	wait_more(0, "before the checkpoint");
	test_msg("expected sum at %p", (void *)&sum_expected);

	test_daemon();
	test_waitsig();

	before = atomic_load(&finished);
	wait_more(before, "after SIGTERM");
	atomic_store(&stop, 1);
	for (long i = 0; i < nr_spawners; i++) {
		void *ret;

		if (pthread_join(th[i], &ret))
			fail("pthread_join failed");
		if (ret)
			fail("spawner %ld: pthread_%s failed", i, ret == (void *)1 ? "create" : "join");
	}
	if (atomic_load(&created) != atomic_load(&finished))
		fail("%lu threads created, %lu ran", atomic_load(&created), atomic_load(&finished));
	if (atomic_load(&sum_expected) != atomic_load(&sum_done))
		fail("the threads' numbers add up to %#lx, expected %#lx", atomic_load(&sum_done),
		     atomic_load(&sum_expected));
	test_msg("%lu threads came and went", atomic_load(&finished));
	pass();
}
