/*
 * A thread in seccomp strict mode (only read, write, exit and sigreturn),
 * blocked in read() on a pipe when it is dumped: it answers each byte the
 * main thread sends with the next one.  After the restore it must still
 * answer (its read restarted, read and write still allowed), then, told
 * to call getppid, it must be killed by the kernel (the thread alone) and
 * never say it survived.  The main thread is not in strict mode.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/seccomp.h>

#include "lib/zdtmtst.h"

static int to_strict[2], from_strict[2];
static volatile int entered = -1;
static volatile char expect_reply = 'b';	/* what it answers to 'a' */

static void *strict_thread(void *arg)
{
	(void)arg;
	entered = prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT) ? 0 : 1;
	for (;;) {
		char c;

		if (syscall(SYS_read, to_strict[0], &c, 1) != 1)
			continue;
		if (c == 'k') {
			syscall(SYS_getppid);	/* killed here */
			c = 'S';		/* survived: must never be sent */
		} else {
			c++;
		}
		syscall(SYS_write, from_strict[1], &c, 1);
	}
	return NULL;
}

static char ask(char c, int wait_ms)
{
	struct timespec ms = { 0, 1000000 };
	char r;

	if (write(to_strict[1], &c, 1) != 1)
		fail("write to the strict thread: %m");
	for (int i = 0; i < wait_ms; i++) {
		if (read(from_strict[0], &r, 1) == 1)
			return r;
		nanosleep(&ms, NULL);
	}
	return 0;
}

int main(int argc, char **argv)
{
	char status[64], r;
	sigset_t term, old;
	pthread_t th;

	test_init(argc, argv, NULL);
	if (pipe(to_strict) || pipe2(from_strict, O_NONBLOCK))
		fail("pipe: %m");
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	if (pthread_create(&th, NULL, strict_thread, NULL))
		fail("pthread_create failed");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	r = ask('a', 5000);
	if (entered != 1)
		fail("the thread could not enter strict mode");
	if (r != 'b')
		fail("the strict thread answered %#x to 'a' before the checkpoint", r);

	test_msg("expected reply at %p", (void *)&expect_reply);
	test_daemon();
	test_waitsig();

	r = ask('a', 5000);
	if (r != expect_reply)
		fail("the strict thread answered %#x to 'a', expected '%c'", r, expect_reply);
	proc_status_value("Seccomp", status, sizeof(status));
	if (atoi(status) != 0)
		fail("the main thread is under seccomp mode %s", status);
	r = ask('k', 300);
	if (r)
		fail("the strict thread called getppid and answered %#x", r);
	/* the kernel clears its tid as it exits: join returns */
	if (pthread_join(th, NULL))
		fail("pthread_join failed");
	pass();
}
