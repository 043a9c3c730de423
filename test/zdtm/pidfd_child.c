/*
 * pidfds of other processes of the tree: the root holds one of a child
 * that runs (fd 20) and one of a child that has exited and is not reaped
 * yet (a zombie, fd 21).  After the restore the first must still be that
 * child: pidfd_send_signal(SIGUSR1) through it makes it exit with status
 * 7, poll() on the pidfd sees the exit, and waitid(P_PIDFD) reaps it with
 * that status.  The second must show the zombie's exit at once (POLLIN)
 * and reap it with its status, 5.
 *
 * --outsider: fd 22 is a pidfd of our parent, outside the tree; --reaped:
 * fd 22 is a pidfd of a child already reaped.  A dump must refuse both.
 */
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static volatile int expect_status = 7;
static int outsider, reaped;

static void on_usr1(int sig)
{
	(void)sig;
	_exit(7);
}

static int open_pidfd(pid_t pid, int at)
{
	int fd = syscall(SYS_pidfd_open, pid, 0);

	if (fd < 0)
		fail("pidfd_open(%d): %m", pid);
	if (dup2(fd, at) != at)
		fail("dup2: %m");
	close(fd);
	return at;
}

static void reap(int pidfd, pid_t pid, int status, const char *what)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };
	siginfo_t si = { 0 };

	if (poll(&p, 1, 10000) != 1 || !(p.revents & POLLIN))
		fail("%s: poll on its pidfd saw no exit (revents %#x)", what, p.revents);
	if (syscall(SYS_waitid, P_PIDFD, pidfd, &si, WEXITED, NULL))
		fail("%s: waitid(P_PIDFD): %m", what);
	if (si.si_pid != pid || si.si_code != CLD_EXITED || si.si_status != status)
		fail("%s: waitid says pid %d code %d status %d, expected pid %d exit %d", what,
		     si.si_pid, si.si_code, si.si_status, pid, status);
}

int main(int argc, char **argv)
{
	pid_t runner, zombie;
	int fd_runner, fd_zombie;
	siginfo_t si;

	const struct test_opt opts[] = {
		{ "outsider", TEST_OPT_FLAG, &outsider, 0, "fd 22: a pidfd of our parent" },
		{ "reaped", TEST_OPT_FLAG, &reaped, 0, "fd 22: a pidfd of a reaped child" },
		{ NULL, 0, NULL, 0, NULL },
	};

	test_init(argc, argv, opts);
	test_kill_tree_at_exit();
	runner = fork();
	if (runner < 0)
		fail("fork: %m");
	if (runner == 0) {
		signal(SIGTERM, SIG_DFL);
		signal(SIGUSR1, on_usr1);
		for (;;)
			pause();
	}
	zombie = fork();
	if (zombie < 0)
		fail("fork: %m");
	if (zombie == 0)
		_exit(5);
	/* a zombie now: wait for it without reaping it */
	if (waitid(P_PID, zombie, &si, WEXITED | WNOWAIT))
		fail("waitid(WNOWAIT): %m");
	fd_runner = open_pidfd(runner, 20);
	fd_zombie = open_pidfd(zombie, 21);
	if (outsider)
		open_pidfd(getppid(), 22);
	if (reaped) {
		pid_t gone = fork();

		if (gone < 0)
			fail("fork: %m");
		if (gone == 0)
			_exit(0);
		open_pidfd(gone, 22);
		if (waitpid(gone, NULL, 0) != gone)
			fail("waitpid: %m");
	}

	test_msg("expected exit status at %p", (void *)&expect_status);
	test_daemon();
	test_waitsig();

	reap(fd_zombie, zombie, 5, "the zombie child");
	if (syscall(SYS_pidfd_send_signal, fd_runner, SIGUSR1, NULL, 0))
		fail("pidfd_send_signal to the running child: %m");
	reap(fd_runner, runner, expect_status, "the running child");
	pass();
}
