/*
 * PR_SET_CHILD_SUBREAPER: set before the checkpoint.  After the restore
 * PR_GET_CHILD_SUBREAPER must say 1, and it must work: a child of ours
 * forks a grandchild and exits; the orphaned grandchild must be
 * reparented to us (it reports its new parent through a pipe), and we
 * reap both.
 */
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define WAIT_MS 5000

/* what the check expects, recorded where the self-check can change it */
static volatile int want = 1;

/* waitpid with a deadline: the test never hangs. */
static void reap(pid_t pid, const char *who)
{
	int status;

	for (int ms = 0; ms < WAIT_MS; ms++) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		struct timespec ts = { 0, 1000000 };

		if (r == pid)
			return;
		if (r < 0)
			fail("waitpid(%s %d): %m", who, pid);
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	fail("the %s %d did not exit within %d ms", who, pid, WAIT_MS);
}

int main(int argc, char **argv)
{
	int fds[2], val = -1;
	pid_t self, child, grandchild, parent_seen;

	test_init(argc, argv, NULL);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
		fail("PR_SET_CHILD_SUBREAPER: %m");

	test_msg("expected flag at %p", (void *)&want);
	test_daemon();
	test_waitsig();

	if (prctl(PR_GET_CHILD_SUBREAPER, &val, 0, 0, 0))
		fail("PR_GET_CHILD_SUBREAPER: %m");
	if (val != want)
		fail("child subreaper is %d after the restore, expected %d", val, want);

	self = getpid();
	if (pipe(fds))
		fail("pipe: %m");
	child = fork();
	if (child < 0)
		fail("fork: %m");
	if (child == 0) {
		pid_t g = fork();

		if (g == 0) {
			/* once our parent is gone: who adopted us? */
			for (int ms = 0; ms < WAIT_MS && getppid() != self; ms++) {
				struct timespec ts = { 0, 1000000 };

				nanosleep(&ts, NULL);
			}
			parent_seen = getppid();
			if (write(fds[1], &parent_seen, sizeof(parent_seen)) < 0)
				_exit(2);
			_exit(0);
		}
		if (write(fds[1], &g, sizeof(g)) < 0)
			_exit(2);
		_exit(g < 0 ? 1 : 0);
	}
	close(fds[1]);
	if (read(fds[0], &grandchild, sizeof(grandchild)) != sizeof(grandchild) || grandchild <= 0)
		fail("the child could not fork");
	reap(child, "child");
	if (read(fds[0], &parent_seen, sizeof(parent_seen)) != sizeof(parent_seen))
		fail("no word from the grandchild");
	reap(grandchild, "grandchild");
	if (parent_seen != self)
		fail("the orphaned grandchild went to %d, not to us (%d)", parent_seen, self);
	pass();
}
