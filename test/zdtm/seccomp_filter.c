/*
 * Two seccomp filters shared by both threads of the process (installed
 * with TSYNC, the second one with SECCOMP_FILTER_FLAG_LOG): uname fails
 * with ENOMSG, getpriority with EXDEV, sysinfo kills the process.  After
 * the restore both threads must still be filtered the same way, /proc must
 * show 2 filters each, and a child forked then must die of SIGSYS on
 * sysinfo (the kill action still acts and is inherited).
 */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "lib/sc.h"
#include "lib/zdtmtst.h"

static volatile int go, done, worker_tid;
static volatile int expect_uname = ENOMSG;	/* what the filter makes uname fail with */
static char worker_err[160];

static const char *check_self(void)
{
	static __thread char why[100];

	if (sc_check_status(2, 2, why, sizeof(why)))
		return why;
	if (sc_uname_errno() != expect_uname)
		return "uname is not refused with the expected errno";
	if (sc_getpriority_errno() != EXDEV)
		return "getpriority is not refused with EXDEV";
	return NULL;
}

static void *worker(void *arg)
{
	(void)arg;
	worker_tid = gettid();
	for (int round = 0; round < 2; round++) {
		const char *why;

		while (!go || done) {
			struct timespec ms = { 0, 1000000 };

			nanosleep(&ms, NULL);
		}
		why = check_self();
		if (why)
			snprintf(worker_err, sizeof(worker_err), "the second thread: %s", why);
		done = 1;
	}
	return NULL;
}

static void wait_done(void)
{
	for (int i = 0; i < 5000 && !done; i++) {
		struct timespec ms = { 0, 1000000 };

		nanosleep(&ms, NULL);
	}
	if (!done)
		fail("the second thread did not check its filters");
	if (worker_err[0])
		fail("%s", worker_err);
}

int main(int argc, char **argv)
{
	const struct sc_rule r1[] = { { SYS_uname, SECCOMP_RET_ERRNO | ENOMSG }, { 0, 0 } };
	const struct sc_rule r2[] = { { SYS_getpriority, SECCOMP_RET_ERRNO | EXDEV },
				      { SYS_sysinfo, SECCOMP_RET_KILL_PROCESS }, { 0, 0 } };
	sigset_t term, old;
	const char *why;
	pthread_t th;
	int status, ret;
	pid_t child;

	test_init(argc, argv, NULL);
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	if (pthread_create(&th, NULL, worker, NULL))
		fail("pthread_create failed");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	while (!worker_tid)
		sched_yield();

	ret = sc_install(r1, SECCOMP_FILTER_FLAG_TSYNC);
	if (!ret)
		ret = sc_install(r2, SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_LOG);
	if (ret)
		fail("seccomp(SECCOMP_SET_MODE_FILTER, TSYNC): %s", strerror(-ret));
	why = check_self();
	if (why)
		fail("before the checkpoint: %s", why);
	go = 1;
	wait_done();
	go = 0;
	done = 0;

	test_msg("expected uname errno at %p", (void *)&expect_uname);
	test_daemon();
	test_waitsig();

	why = check_self();
	if (why)
		fail("the main thread: %s", why);
	go = 1;
	wait_done();
	if (pthread_join(th, NULL))
		fail("pthread_join failed");

	child = fork();
	if (child < 0)
		fail("fork: %m");
	if (child == 0) {
		syscall(SYS_sysinfo, NULL);
		_exit(0);
	}
	alarm(10);
	if (waitpid(child, &status, 0) != child)
		fail("waitpid: %m");
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSYS)
		fail("a child calling sysinfo was not killed by SIGSYS (status %#x)", status);
	pass();
}
