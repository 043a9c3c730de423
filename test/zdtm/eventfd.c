/*
 * eventfds: fd 20 counter 42, O_NONBLOCK; fd 21 EFD_SEMAPHORE with 3,
 * O_NONBLOCK and FD_CLOEXEC; fd 22 counter 0, blocking; fd 23 a counter
 * above 32 bits.  After SIGTERM: flags, fd flags and counters as they were
 * (the semaphore gives 1 three times, then EAGAIN), and they still count.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define BIG ((1ULL << 40) + 7)

static const int all_fds[] = { 20, 21, 22, 23 };
#define NR_FDS 4

static int getfl[NR_FDS], getfd[NR_FDS];

static unsigned long long count(int fd)
{
	char path[64], buf[1024];
	const char *p;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	read_file(path, buf, sizeof(buf));
	p = strstr(buf, "eventfd-count:");
	if (!p)
		fail("%s has no eventfd-count", path);
	return strtoull(p + 14, NULL, 16);
}

static void expect_read(int fd, uint64_t want)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) != sizeof(v))
		fail("fd %d: read: %m", fd);
	if (v != want)
		fail("fd %d: read %llu, expected %llu", fd, (unsigned long long)v,
		     (unsigned long long)want);
}

int main(int argc, char **argv)
{
	uint64_t v;

	test_init(argc, argv, NULL);
	fd_place(eventfd(42, EFD_NONBLOCK), 20, 0);
	fd_place(eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK), 21, 1);
	fd_place(eventfd(0, 0), 22, 0);
	fd_place(eventfd(0, 0), 23, 0);
	v = BIG;
	if (write(23, &v, sizeof(v)) != sizeof(v))
		fail("write: %m");
	for (int i = 0; i < NR_FDS; i++) {
		getfl[i] = fcntl(all_fds[i], F_GETFL);
		getfd[i] = fcntl(all_fds[i], F_GETFD);
	}

	test_daemon();
	test_waitsig();

	for (int i = 0; i < NR_FDS; i++) {
		if (fcntl(all_fds[i], F_GETFL) != getfl[i])
			fail("fd %d: status flags %#o, expected %#o", all_fds[i],
			     fcntl(all_fds[i], F_GETFL), getfl[i]);
		if (fcntl(all_fds[i], F_GETFD) != getfd[i])
			fail("fd %d: fd flags %#x, expected %#x", all_fds[i],
			     fcntl(all_fds[i], F_GETFD), getfd[i]);
	}
	if (count(20) != 42 || count(21) != 3 || count(22) != 0 || count(23) != BIG)
		fail("counters %llu %llu %llu %llu, expected 42 3 0 %llu", count(20), count(21),
		     count(22), count(23), BIG);
	expect_read(20, 42);
	for (int i = 0; i < 3; i++)
		expect_read(21, 1);
	if (read(21, &v, sizeof(v)) != -1 || errno != EAGAIN)
		fail("fd 21: the semaphore is not empty after 3 reads (%m)");
	v = 5;
	if (write(22, &v, sizeof(v)) != sizeof(v))
		fail("write: %m");
	expect_read(22, 5);
	expect_read(23, BIG);
	pass();
}
