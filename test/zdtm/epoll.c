/*
 * epoll instances and their watches:
 *   fds 20/21 a pipe holding data, fd 22 an eventfd at 0
 *   fd 30 watches 20 (EPOLLIN, data 0x1111222233334444), 21 (EPOLLOUT |
 *         EPOLLET, data 7) and 22 (EPOLLIN | EPOLLONESHOT, data 9)
 *   fd 31 O_NONBLOCK, FD_CLOEXEC, watches 22 (EPOLLIN | EPOLLOUT, data
 *         0xdead)
 * With --stale, fd 30 also watches the eventfd under fd 40, closed since
 * (the watch lives on while fd 22 holds the file): the restore must watch
 * it again (data 40), and leave no fd 40.
 * With --in-flight, fd 30 also watches the read end of a pipe under fd
 * 43, which was sent through the socketpair 41/42 (SCM_RIGHTS) and closed
 * since: only the message in flight holds it, which a dump must refuse.
 * After SIGTERM: the watches as fdinfo lists them (fd, events, data),
 * flags, and what epoll_wait reports: 20 and 21 ready, 22 not until the
 * eventfd is written, then once only on 30 (one shot).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

static char watches_before[2][1024];

static void watch(int ep, int fd, unsigned int events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };

	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
		fail("epoll_ctl %d += %d: %m", ep, fd);
}

/* A pipe's read end watched by @ep as fd 43, then sent through the
 * socketpair 41/42 and closed: only the message holds it. */
static void send_away(int ep)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { "f", 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	int p[2], sv[2], fd = 43;

	if (pipe(p) || socketpair(AF_UNIX, SOCK_DGRAM, 0, sv))
		fail("pipe, socketpair: %m");
	fd_place(p[0], 43, 0);
	fd_place(p[1], 44, 0);
	fd_place(sv[0], 41, 0);
	fd_place(sv[1], 42, 0);
	watch(ep, 43, EPOLLIN, 43);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(fd));
	if (sendmsg(41, &mh, 0) != 1)
		fail("sendmsg fd 43: %m");
	close(43);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "tfd: N events: X data: Y" of each watch, without pos/ino/sdev, sorted
 * (the kernel lists them in the order of its tree, by file address) */
static void watches(int ep, char *out, size_t size)
{
	char path[64], buf[4096], *line, *save, *lines[16];
	size_t len = 0, nr = 0;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", ep);
	read_file(path, buf, sizeof(buf));
	out[0] = '\0';
	for (line = strtok_r(buf, "\n", &save); line && nr < 16;
	     line = strtok_r(NULL, "\n", &save)) {
		char *pos = strstr(line, "pos:");

		if (strncmp(line, "tfd:", 4))
			continue;
		if (pos)
			*pos = '\0';
		lines[nr++] = line;
	}
	qsort(lines, nr, sizeof(lines[0]), cmp_str);
	for (size_t i = 0; i < nr; i++)
		len += snprintf(out + len, size - len, "%s|", lines[i]);
}

static int wait_one(int ep, struct epoll_event *evs, int max)
{
	int n = epoll_wait(ep, evs, max, 0);

	if (n < 0)
		fail("epoll_wait %d: %m", ep);
	return n;
}

static const struct epoll_event *find(const struct epoll_event *evs, int n, uint64_t data)
{
	for (int i = 0; i < n; i++)
		if (evs[i].data.u64 == data)
			return &evs[i];
	return NULL;
}

int main(int argc, char **argv)
{
	struct epoll_event evs[8];
	const struct epoll_event *e;
	int p[2], n, fl31, fd31;
	char now[1024];
	uint64_t one = 1;
	int stale = 0, in_flight = 0;
	const struct test_opt opts[] = {
		{ "stale", TEST_OPT_FLAG, &stale, 0, "leave a watch of a closed fd" },
		{ "in-flight", TEST_OPT_FLAG, &in_flight, 0,
		  "watch a file only a message in flight holds" },
		{ NULL, 0, NULL, 0, NULL },
	};

	test_init(argc, argv, opts);
	if (pipe(p))
		fail("pipe: %m");
	fd_place(p[0], 900, 0);
	fd_place(p[1], 901, 0);
	fd_place(900, 20, 0);
	fd_place(901, 21, 0);
	if (write(21, "data", 4) != 4)
		fail("write: %m");
	fd_place(eventfd(0, EFD_NONBLOCK), 22, 0);
	fd_place(epoll_create1(0), 30, 0);
	fd_place(epoll_create1(0), 31, 1);
	fcntl(31, F_SETFL, O_NONBLOCK);
	watch(30, 20, EPOLLIN, 0x1111222233334444ULL);
	watch(30, 21, EPOLLOUT | EPOLLET, 7);
	watch(30, 22, EPOLLIN | EPOLLONESHOT, 9);
	watch(31, 22, EPOLLIN | EPOLLOUT, 0xdead);
	if (stale) {
		fd_place(dup(22), 40, 0);
		watch(30, 40, EPOLLIN, 40);
		close(40);
	}
	if (in_flight)
		send_away(30);
	watches(30, watches_before[0], sizeof(watches_before[0]));
	watches(31, watches_before[1], sizeof(watches_before[1]));
	fl31 = fcntl(31, F_GETFL);
	fd31 = fcntl(31, F_GETFD);

	test_daemon();
	test_waitsig();

	watches(30, now, sizeof(now));
	if (strcmp(now, watches_before[0]))
		fail("fd 30 watches %s, expected %s", now, watches_before[0]);
	watches(31, now, sizeof(now));
	if (strcmp(now, watches_before[1]))
		fail("fd 31 watches %s, expected %s", now, watches_before[1]);
	if (fcntl(31, F_GETFL) != fl31 || fcntl(31, F_GETFD) != fd31)
		fail("fd 31: flags %#o/%#x, expected %#o/%#x", fcntl(31, F_GETFL),
		     fcntl(31, F_GETFD), fl31, fd31);

	n = wait_one(30, evs, 8);
	e = find(evs, n, 0x1111222233334444ULL);
	if (!e || !(e->events & EPOLLIN))
		fail("fd 30: the pipe's read end is not reported readable (%d events)", n);
	if (!find(evs, n, 7))
		fail("fd 30: the pipe's write end is not reported writable");
	if (find(evs, n, 9) || find(evs, n, 40))
		fail("fd 30: the eventfd is reported readable at 0");
	if (write(22, &one, sizeof(one)) != sizeof(one))
		fail("write eventfd: %m");
	n = wait_one(30, evs, 8);
	if (!find(evs, n, 9) || stale != !!find(evs, n, 40))
		fail("fd 30: the eventfd is not reported once written");
	n = wait_one(30, evs, 8);
	if (find(evs, n, 9))
		fail("fd 30: the one-shot watch of the eventfd fired twice");
	n = wait_one(31, evs, 8);
	e = find(evs, n, 0xdead);
	if (!e || (e->events & (EPOLLIN | EPOLLOUT)) != (EPOLLIN | EPOLLOUT))
		fail("fd 31: the eventfd is not reported readable and writable");
	pass();
}
