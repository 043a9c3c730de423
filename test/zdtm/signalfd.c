/*
 * signalfds: fd 20 for SIGUSR1 (which is pending, blocked), fd 21 for
 * SIGUSR2 and SIGRTMIN+1, O_NONBLOCK, FD_CLOEXEC.  After SIGTERM: masks
 * (fdinfo) and flags as they were, fd 20 reads the pending SIGUSR1, fd 21
 * has nothing, then reads a SIGUSR2 sent afterwards.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

static char mask_before[2][64];

static void sigmask_of(int fd, char *out, size_t size)
{
	char path[64], buf[1024], *p, *nl;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	read_file(path, buf, sizeof(buf));
	p = strstr(buf, "sigmask:");
	if (!p)
		fail("%s has no sigmask", path);
	nl = strchr(p, '\n');
	if (nl)
		*nl = '\0';
	snprintf(out, size, "%s", p);
}

static void expect_sig(int fd, int sig)
{
	struct signalfd_siginfo si;

	if (read(fd, &si, sizeof(si)) != sizeof(si))
		fail("fd %d: read: %m", fd);
	if ((int)si.ssi_signo != sig)
		fail("fd %d: read signal %u, expected %d", fd, si.ssi_signo, sig);
}

int main(int argc, char **argv)
{
	sigset_t block, a, b;
	int fl20, fl21, fd20, fd21;
	char now[64];

	test_init(argc, argv, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, SIGRTMIN + 1);
	if (sigprocmask(SIG_BLOCK, &block, NULL))
		fail("sigprocmask: %m");
	sigemptyset(&a);
	sigaddset(&a, SIGUSR1);
	sigemptyset(&b);
	sigaddset(&b, SIGUSR2);
	sigaddset(&b, SIGRTMIN + 1);
	fd_place(signalfd(-1, &a, 0), 20, 0);
	fd_place(signalfd(-1, &b, SFD_NONBLOCK), 21, 1);
	kill(getpid(), SIGUSR1);
	sigmask_of(20, mask_before[0], sizeof(mask_before[0]));
	sigmask_of(21, mask_before[1], sizeof(mask_before[1]));
	fl20 = fcntl(20, F_GETFL);
	fl21 = fcntl(21, F_GETFL);
	fd20 = fcntl(20, F_GETFD);
	fd21 = fcntl(21, F_GETFD);

	test_daemon();
	test_waitsig();

	sigmask_of(20, now, sizeof(now));
	if (strcmp(now, mask_before[0]))
		fail("fd 20: %s, expected %s", now, mask_before[0]);
	sigmask_of(21, now, sizeof(now));
	if (strcmp(now, mask_before[1]))
		fail("fd 21: %s, expected %s", now, mask_before[1]);
	if (fcntl(20, F_GETFL) != fl20 || fcntl(21, F_GETFL) != fl21)
		fail("status flags %#o %#o, expected %#o %#o", fcntl(20, F_GETFL),
		     fcntl(21, F_GETFL), fl20, fl21);
	if (fcntl(20, F_GETFD) != fd20 || fcntl(21, F_GETFD) != fd21)
		fail("fd flags changed");
	expect_sig(20, SIGUSR1);
	{
		struct signalfd_siginfo si;

		if (read(21, &si, sizeof(si)) != -1 || errno != EAGAIN)
			fail("fd 21: a signal was there or the read blocked (%m)");
	}
	kill(getpid(), SIGUSR2);
	expect_sig(21, SIGUSR2);
	pass();
}
