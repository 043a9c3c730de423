/*
 * Kernel objects shared between processes across fork: an eventfd, a
 * timerfd, a signalfd and an epoll that watches the eventfd and a pipe,
 * all held by the root and its child; and an epoll of the child's own that
 * watches the shared eventfd.
 *
 * Before the dump: fd 30 eventfd (counter 5), fd 31 timerfd (100 s), fd 32
 * signalfd (SIGUSR1), fd 33 epoll (fd 30, data 30; fd 34, data 34), fds
 * 34/35 a pipe with one byte in it (the child closes its fd 34: the epoll
 * watches the root's); the child makes fd
 * 36, an epoll watching fd 30 (data 0x3636).
 * After the restore: fds 30-33 are one file in both (kcmp); the root adds
 * 2 to the eventfd; the child sees both watches of fd 33 and its own of
 * fd 36 ready, reads 7 from the eventfd, finds the timer still running,
 * disarms it and turns the signalfd to SIGUSR2; then the root finds the
 * eventfd empty, the timer disarmed, the signalfd on SIGUSR2 and only the
 * pipe ready in fd 33: every change the child made through its fds.
 *
 * --epoll-closed: the root closes its fd 34 after the fork, so its epoll
 * watches a file only the child holds: the restore must watch that file
 * again (through fd 34 for a moment: the watch's key), and the root must
 * not hold it (at the end, with the child gone, the watch is gone too).
 * --epoll-dup: the root moves its fd 34 to fd 37 (the watch's file is
 * the root's own, under another number; the child closes its fd 34).
 * --epoll-replaced: the root then opens /dev/null as its fd 34, which the
 * dump refuses (test_tree.py).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "lib/twoproc.h"
#include "lib/zdtmtst.h"

static void at(int got, int fd, const char *what)
{
	if (got < 0 || (got != fd && dup2(got, fd) != fd))
		fail("%s as fd %d: %m", what, fd);
	if (got != fd)
		close(got);
}

static void watch(int ep, int fd, uint64_t data)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = data };

	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
		twoproc_fail("epoll fd %d: watching fd %d: %s", ep, fd, strerror(errno));
}

/* The data of the ready watches of @ep, in a bit mask of 1 << (data % 64). */
static uint64_t ready(int ep)
{
	struct epoll_event ev[8];
	uint64_t mask = 0;
	int n = epoll_wait(ep, ev, 8, 0);

	if (n < 0)
		twoproc_fail("epoll_wait(%d): %s", ep, strerror(errno));
	for (int i = 0; i < n; i++)
		mask |= 1ull << (ev[i].data.u64 % 64);
	return mask;
}

static void expect_ready(int ep, uint64_t want, const char *who)
{
	uint64_t got = ready(ep);

	if (got != want)
		twoproc_fail("%s: epoll fd %d: ready %#llx, expected %#llx", who, ep,
			     (unsigned long long)got, (unsigned long long)want);
}

static int epoll_closed, epoll_replaced, epoll_dup;

static void root_setup(void)
{
	if (epoll_dup)
		at(dup(34), 37, "fd 34 again");
	if (epoll_closed || epoll_replaced || epoll_dup)
		close(34);
	if (epoll_replaced)
		at(open("/dev/null", O_RDONLY), 34, "/dev/null");
}

static void child_setup(void)
{
	/* the shared epoll watches fd 34 as the root has it: the child needs
	 * none of its own (unless the root closed its, see --epoll-closed) */
	if (!epoll_closed && !epoll_replaced)
		close(34);
	at(epoll_create1(0), 36, "the child's epoll");
	watch(36, 30, 0x3636);
}

static void root_check(pid_t child)
{
	uint64_t two = 2;

	for (int fd = 30; fd <= 33; fd++)
		twoproc_expect_shared(child, fd, fd, "eventfd/timerfd/signalfd/epoll");
	if (write(30, &two, sizeof(two)) != sizeof(two))
		fail("fd 30: adding 2 to the eventfd: %m");
	expect_ready(33, 1ull << 30 | 1ull << 34, "root");
}

static void child_check(void)
{
	struct itimerspec its, off = { 0 };
	sigset_t usr2;
	uint64_t v = 0;

	expect_ready(33, 1ull << 30 | 1ull << 34, "child");
	expect_ready(36, 1ull << (0x3636 % 64), "child's own");
	if (read(30, &v, sizeof(v)) != sizeof(v) || v != 7)
		twoproc_child_fail("fd 30: the eventfd reads %llu, expected 7 (%m)",
				   (unsigned long long)v);
	if (timerfd_gettime(31, &its))
		twoproc_child_fail("timerfd_gettime: %m");
	if (its.it_value.tv_sec <= 0 || its.it_value.tv_sec > 100)
		twoproc_child_fail("fd 31: the timer has %lld s left, expected (0, 100]",
				   (long long)its.it_value.tv_sec);
	if (timerfd_settime(31, 0, &off, NULL))
		twoproc_child_fail("disarming fd 31: %m");
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	if (signalfd(32, &usr2, 0) != 32)
		twoproc_child_fail("fd 32: turning the signalfd to SIGUSR2: %m");
}

static void root_after(pid_t child)
{
	struct itimerspec its;
	char info[512], *mask;
	uint64_t v;

	(void)child;
	if (read(30, &v, sizeof(v)) != -1 || errno != EAGAIN)
		fail("fd 30: the eventfd is not empty after the child read it");
	if (timerfd_gettime(31, &its) || its.it_value.tv_sec || its.it_value.tv_nsec)
		fail("fd 31: the timer the child disarmed still runs here");
	read_file("/proc/self/fdinfo/32", info, sizeof(info));
	mask = strstr(info, "sigmask:");
	if (!mask || strtoull(mask + 8, NULL, 16) != 1ull << (SIGUSR2 - 1))
		fail("fd 32: the signalfd's mask is not the child's SIGUSR2: %s", info);
	/* the pipe's read end went with the child, if the root closed its own */
	expect_ready(33, epoll_closed || epoll_replaced ? 0 : 1ull << 34, "root at the end");
	if ((epoll_closed || epoll_dup) && (fcntl(34, F_GETFD) >= 0 || errno != EBADF))
		fail("fd 34, which the root closed, is open again");
}

int main(int argc, char **argv)
{
	static const struct test_opt opts[] = {
		{ "epoll-closed", TEST_OPT_FLAG, &epoll_closed, 0, "the root closes fd 34" },
		{ "epoll-dup", TEST_OPT_FLAG, &epoll_dup, 0, "the root moves fd 34 to fd 37" },
		{ "epoll-replaced", TEST_OPT_FLAG, &epoll_replaced, 0,
		  "the root closes fd 34 and opens /dev/null there" },
		{ NULL },
	};
	static const struct twoproc tp = {
		.root_setup = root_setup, .child_setup = child_setup,
		.root_check = root_check, .child_check = child_check, .root_after = root_after,
	};
	struct itimerspec its = { .it_value.tv_sec = 100 };
	sigset_t usr1;
	int p[2];

	test_init(argc, argv, opts);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigaddset(&usr1, SIGUSR2);
	sigprocmask(SIG_BLOCK, &usr1, NULL);
	sigdelset(&usr1, SIGUSR2);
	at(eventfd(5, EFD_NONBLOCK), 30, "eventfd");
	at(timerfd_create(CLOCK_MONOTONIC, 0), 31, "timerfd");
	if (timerfd_settime(31, 0, &its, NULL))
		fail("timerfd_settime: %m");
	at(signalfd(-1, &usr1, 0), 32, "signalfd");
	at(epoll_create1(0), 33, "epoll");
	if (pipe(p))
		fail("pipe: %m");
	at(p[0], 34, "the pipe's read end");
	at(p[1], 35, "the pipe's write end");
	if (write(35, "x", 1) != 1)
		fail("pipe: %m");
	watch(33, 30, 30);
	watch(33, 34, 34);
	twoproc_run(&tp);
}
