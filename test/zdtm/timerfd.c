/*
 * timerfds:
 *   fd 20  CLOCK_MONOTONIC, one shot in 1000 s
 *   fd 21  CLOCK_REALTIME, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, at
 *          now + 2000 s, O_NONBLOCK
 *   fd 22  CLOCK_MONOTONIC, fired once (10 ms) and not read, interval 1 h
 *   fd 23  CLOCK_BOOTTIME, disarmed, O_NONBLOCK, FD_CLOEXEC
 *   fd 24  CLOCK_MONOTONIC every 5 ms, never read: ticks pile up
 * After SIGTERM: clocks, flags, settime flags (fdinfo), time left no more
 * than before and not much less, the intervals, the unread expirations.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define NR_FDS 5
static const int all_fds[NR_FDS] = { 20, 21, 22, 23, 24 };
static int getfl[NR_FDS], getfd[NR_FDS];
static char clock_before[NR_FDS][32], flags_before[NR_FDS][32];

static void arm(int fd, int flags, time_t vs, long vns, time_t is)
{
	struct itimerspec its = { .it_value = { vs, vns }, .it_interval = { is, 0 } };

	if (timerfd_settime(fd, flags, &its, NULL))
		fail("timerfd_settime fd %d: %m", fd);
}

static void field(int fd, const char *key, char *out, size_t size)
{
	char path[64], buf[1024], *p, *nl;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	read_file(path, buf, sizeof(buf));
	p = strstr(buf, key);
	if (!p)
		fail("%s has no %s", path, key);
	nl = strchr(p, '\n');
	if (nl)
		*nl = '\0';
	snprintf(out, size, "%s", p);
}

static unsigned long long ticks(int fd)
{
	char v[64];

	field(fd, "ticks:", v, sizeof(v));
	return strtoull(v + 6, NULL, 10);
}

static double left(int fd, double *interval)
{
	struct itimerspec its;

	if (timerfd_gettime(fd, &its))
		fail("timerfd_gettime %d: %m", fd);
	if (interval)
		*interval = its.it_interval.tv_sec + its.it_interval.tv_nsec / 1e9;
	return its.it_value.tv_sec + its.it_value.tv_nsec / 1e9;
}

static void expect_left(int fd, double before, double slack)
{
	double now = left(fd, NULL);

	if (now > before || now < before - slack)
		fail("fd %d: %.3f s left, %.3f s before the checkpoint", fd, now, before);
}

int main(int argc, char **argv)
{
	struct timespec rt;
	double left20, left21, ival;
	unsigned long long t24;
	uint64_t v;

	test_init(argc, argv, NULL);
	fd_place(timerfd_create(CLOCK_MONOTONIC, 0), 20, 0);
	arm(20, 0, 1000, 0, 0);
	fd_place(timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK), 21, 0);
	clock_gettime(CLOCK_REALTIME, &rt);
	arm(21, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, rt.tv_sec + 2000, 0, 0);
	fd_place(timerfd_create(CLOCK_MONOTONIC, 0), 22, 0);
	arm(22, 0, 0, 10 * 1000 * 1000, 3600);
	fd_place(timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK), 23, 1);
	fd_place(timerfd_create(CLOCK_MONOTONIC, 0), 24, 0);
	arm(24, 0, 0, 5 * 1000 * 1000, 0);
	{
		struct itimerspec its = { { 0, 5 * 1000 * 1000 }, { 0, 5 * 1000 * 1000 } };

		timerfd_settime(24, 0, &its, NULL);
	}
	usleep(50 * 1000);
	if (ticks(22) != 1)
		fail("fd 22 should have fired once, ticks %llu", ticks(22));
	for (int i = 0; i < NR_FDS; i++) {
		getfl[i] = fcntl(all_fds[i], F_GETFL);
		getfd[i] = fcntl(all_fds[i], F_GETFD);
		field(all_fds[i], "clockid:", clock_before[i], sizeof(clock_before[i]));
		field(all_fds[i], "settime flags:", flags_before[i], sizeof(flags_before[i]));
	}
	left20 = left(20, NULL);
	left21 = left(21, NULL);
	t24 = ticks(24);

	test_daemon();
	test_waitsig();

	for (int i = 0; i < NR_FDS; i++) {
		char now[32];

		if (fcntl(all_fds[i], F_GETFL) != getfl[i] ||
		    fcntl(all_fds[i], F_GETFD) != getfd[i])
			fail("fd %d: status or fd flags changed", all_fds[i]);
		field(all_fds[i], "clockid:", now, sizeof(now));
		if (strcmp(now, clock_before[i]))
			fail("fd %d: %s, expected %s", all_fds[i], now, clock_before[i]);
		field(all_fds[i], "settime flags:", now, sizeof(now));
		if (strcmp(now, flags_before[i]))
			fail("fd %d: %s, expected %s", all_fds[i], now, flags_before[i]);
	}
	expect_left(20, left20, 120);
	expect_left(21, left21, 120);
	if (left(22, &ival) > 3600 || ival != 3600)
		fail("fd 22: %.3f s left, interval %.3f s, expected at most 3600 and 3600",
		     left(22, NULL), ival);
	if (read(22, &v, sizeof(v)) != sizeof(v) || v != 1)
		fail("fd 22: read %llu expirations, expected 1 (%m)", (unsigned long long)v);
	if (left(23, &ival) != 0 || ival != 0)
		fail("fd 23: armed after the restore");
	if (read(23, &v, sizeof(v)) != -1 || errno != EAGAIN)
		fail("fd 23: a disarmed timer expired (%m)");
	if (read(24, &v, sizeof(v)) != sizeof(v) || v < t24)
		fail("fd 24: read %llu expirations, fewer than the %llu before the checkpoint",
		     (unsigned long long)v, t24);
	pass();
}
