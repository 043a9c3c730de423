/*
 * pidfds of the task itself: fd 20 plain, fd 21 PIDFD_NONBLOCK, fd 22
 * PIDFD_THREAD (a thread pidfd, Linux 6.9+).  After the restore each must
 * refer to the restored task (the last NSpid of its fdinfo is our pid),
 * keep its flags, and signal us: pidfd_send_signal(SIGUSR1) through each
 * must arrive, exactly once per call.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#ifndef PIDFD_NONBLOCK
#define PIDFD_NONBLOCK O_NONBLOCK
#endif
#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif

static const struct {
	int fd;
	unsigned int flags;
} pidfds[] = { { 20, 0 }, { 21, PIDFD_NONBLOCK }, { 22, PIDFD_THREAD } };

#define NR_PIDFDS (sizeof(pidfds) / sizeof(pidfds[0]))

static volatile sig_atomic_t usr1;

static void on_usr1(int sig)
{
	(void)sig;
	usr1++;
}

/* The last "NSpid:" number of the fd's fdinfo: the pid in our namespace. */
static long fdinfo_nspid(int fd)
{
	char path[64], buf[1024], *p;
	long pid = -1;
	ssize_t n;
	int f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = open(path, O_RDONLY);
	if (f < 0)
		fail("open %s: %m", path);
	n = read(f, buf, sizeof(buf) - 1);
	close(f);
	if (n <= 0)
		fail("read %s: %m", path);
	buf[n] = '\0';
	p = strstr(buf, "NSpid:");
	if (!p)
		fail("fd %d: no NSpid in its fdinfo:\n%s", fd, buf);
	for (p += 6; *p && *p != '\n';) {
		char *end;
		long v = strtol(p, &end, 10);

		if (end == p)
			break;
		pid = v;
		p = end;
	}
	return pid;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	sigset_t usr1_set;

	test_init(argc, argv, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL))
		fail("sigaction: %m");
	for (unsigned int i = 0; i < NR_PIDFDS; i++) {
		int fd = syscall(SYS_pidfd_open, getpid(), pidfds[i].flags);

		if (fd < 0)
			fail("pidfd_open(flags %#x): %m", pidfds[i].flags);
		if (dup2(fd, pidfds[i].fd) != pidfds[i].fd)
			fail("dup2: %m");
		close(fd);
	}

	test_daemon();
	test_waitsig();

	sigemptyset(&usr1_set);
	sigaddset(&usr1_set, SIGUSR1);
	for (unsigned int i = 0; i < NR_PIDFDS; i++) {
		int fd = pidfds[i].fd, fl = fcntl(fd, F_GETFL);
		long pid = fdinfo_nspid(fd);
		sig_atomic_t before = usr1;

		if (fl < 0)
			fail("fd %d is gone after the restore: %m", fd);
		if ((fl & (O_NONBLOCK | O_EXCL)) != (int)pidfds[i].flags)
			fail("fd %d: pidfd flags %#x after the restore, expected %#x", fd,
			     fl & (O_NONBLOCK | O_EXCL), pidfds[i].flags);
		if (pid != getpid())
			fail("fd %d refers to pid %ld after the restore, not to us (%d)", fd, pid,
			     getpid());
		/* blocked while sending: delivered when unblocked, before we look */
		sigprocmask(SIG_BLOCK, &usr1_set, NULL);
		if (syscall(SYS_pidfd_send_signal, fd, SIGUSR1, NULL, 0))
			fail("pidfd_send_signal through fd %d: %m", fd);
		sigprocmask(SIG_UNBLOCK, &usr1_set, NULL);
		if (usr1 != before + 1)
			fail("SIGUSR1 through fd %d arrived %d times, expected once",
			     fd, (int)(usr1 - before));
	}
	if (usr1 != (int)NR_PIDFDS)
		fail("%d SIGUSR1 in all, expected %zu", (int)usr1, NR_PIDFDS);
	pass();
}
