/*
 * pid_launch PID PROG [ARGS...]
 *
 * Not a test: a test's squatter.  It starts PROG with exactly pid PID
 * (clone3 with set_tid) and exits at once: 0 once PROG's process exists,
 * 3 when PID is taken, 1 on any other failure (one line on stderr).  PROG
 * is reparented to our nearest child subreaper (the test), which adopts
 * it.
 *
 * Why not ns_last_pid = PID - 1 and a fork: that is the cursor of the
 * whole machine's pid allocation, and while it is back there every fork
 * anywhere (another test run on the host) walks through the pids freed
 * since -- one of them the pid a dump just freed for its restore, which
 * then fails with "pid N is already in use".  set_tid takes the one pid
 * and moves no cursor.
 */
#include <errno.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct clone_args ca = { .exit_signal = SIGCHLD, .set_tid_size = 1 };
	char *end;
	long want;
	pid_t tid, pid;

	if (argc < 3) {
		fprintf(stderr, "usage: %s PID PROG [ARGS...]\n", argv[0]);
		return 2;
	}
	want = strtol(argv[1], &end, 10);
	if (*end || want <= 1 || want > INT32_MAX) {
		fprintf(stderr, "pid_launch: %s: not a pid\n", argv[1]);
		return 2;
	}
	tid = (pid_t)want;
	ca.set_tid = (uint64_t)(uintptr_t)&tid;
	pid = syscall(SYS_clone3, &ca, sizeof(ca));
	if (pid < 0) {
		fprintf(stderr, "pid_launch: clone3 with pid %d: %s\n", tid, strerror(errno));
		return errno == EEXIST ? 3 : 1;
	}
	if (pid == 0) {
		execvp(argv[2], argv + 2);
		fprintf(stderr, "pid_launch: exec %s: %s\n", argv[2], strerror(errno));
		_exit(127);
	}
	return 0;
}
