/*
 * Threads checkpointed inside blocking syscalls: one in a futex wait with
 * no timeout, one in read() on an empty pipe, one in nanosleep().  After
 * the restore each must go on as the kernel would have it: the futex wait
 * and the read are restarted transparently (they return only once the
 * main thread, after SIGTERM, wakes the futex and writes to the pipe, with
 * the right result, never EINTR); nanosleep, whose restart state lives in
 * the kernel and is lost (as with CRIU), may return EINTR once, and the
 * thread sleeps again for what remains.
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

static atomic_int futex_word;
static int pipefd[2];
static volatile int futex_ret = 1, futex_err, read_ret = -2, read_err, sleep_done;
static volatile int woken;		/* set before the futex is woken */
static volatile int sleep_eintr;
static char read_byte;
static volatile char expected_byte = 'z';	/* what the main thread writes */
static atomic_int started;

static void *futex_waiter(void *arg)
{
	(void)arg;
	atomic_fetch_add(&started, 1);
	/* one wait: a spurious return shows as a wrong result */
	futex_ret = syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
	futex_err = errno;
	if (!woken)
		futex_ret = -100;
	return NULL;
}

static void *reader(void *arg)
{
	(void)arg;
	atomic_fetch_add(&started, 1);
	read_ret = read(pipefd[0], &read_byte, 1);
	read_err = errno;
	return NULL;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *sleeper(void *arg)
{
	struct timespec req = { 2, 0 }, rem;

	(void)arg;
	atomic_fetch_add(&started, 1);
	/* until the main thread stops us: a checkpoint lands in one of these */
	while (!test_stopped()) {
		double t0 = now();

		while (nanosleep(&req, &rem)) {
			if (errno != EINTR) {
				sleep_done = -errno;
				return NULL;
			}
			sleep_eintr++;
			req = rem;
		}
		if (now() - t0 < 1.9 && !sleep_eintr) {
			sleep_done = -1000;
			return NULL;
		}
		req = (struct timespec){ 2, 0 };
	}
	sleep_done = 1;
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th[3];
	void *(*fn[3])(void *) = { futex_waiter, reader, sleeper };
	sigset_t term, old;

	test_init(argc, argv, NULL);
	if (pipe(pipefd))
		fail("pipe: %m");

	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	for (int i = 0; i < 3; i++)
		if (pthread_create(&th[i], NULL, fn[i], NULL))
			fail("pthread_create failed");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	while (atomic_load(&started) < 3)
		usleep(1000);
	usleep(100000);		/* into their syscalls */
	test_msg("expected byte at %p", (void *)&expected_byte);

	test_daemon();
	test_waitsig();

	/* they are still blocked: nothing woke them yet */
	usleep(100000);
	if (futex_ret != 1)
		fail("the futex wait returned %d (%s) before it was woken", futex_ret,
		     strerror(futex_err));
	if (read_ret != -2)
		fail("read returned %d (%s) before anything was written", read_ret,
		     strerror(read_err));

	woken = 1;
	atomic_store(&futex_word, 1);
	syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	if (write(pipefd[1], "z", 1) != 1)
		fail("write: %m");
	for (int i = 0; i < 3; i++)
		if (pthread_join(th[i], NULL))
			fail("pthread_join failed");

	if (futex_ret != 0)
		fail("the futex wait returned %d (%s), expected 0 after the wake", futex_ret,
		     futex_ret == -100 ? "before the wake" : strerror(futex_err));
	if (read_ret != 1 || read_byte != expected_byte)
		fail("read returned %d (%s), byte '%c', expected 1 byte '%c'", read_ret,
		     read_ret < 0 ? strerror(read_err) : "-", read_byte, expected_byte);
	if (sleep_done != 1)
		fail("nanosleep failed: %s", sleep_done == -1000 ? "returned 0 too early" :
		     strerror(-sleep_done));
	test_msg("nanosleep returned EINTR %d times", sleep_eintr);
	pass();
}
