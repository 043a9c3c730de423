/*
 * A task holding a file descriptor of a --kind the tool cannot restore yet
 * (unix, unix-ext, unix-ext-dgram, unix-scm-epoll, unix-scm-self, netlink-connected,
 * tcp, packet, eventfd, pipe, epoll, timerfd, signalfd, userfaultfd), at
 * fd 42 (and 43 for a second end or a helper).  A dump must refuse it and
 * leave it running unharmed; this program then checks, after SIGTERM, that
 * the object still works and still holds what it held (queued data, a
 * counter, a pending signal, ...).  Run without a checkpoint it passes.
 * unix is a socket with a BPF filter.
 * unix-ext-dgram (a datagram socket connected to the test's own socket) is
 * refused only without --ext-unix-sk: with it, it is restored and still
 * sends to the same peer.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/kcmp.h>
#include <linux/netlink.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define FD_A 42
#define FD_B 43

static void expect_read(int fd, const char *want)
{
	char buf[64];
	ssize_t n;

	n = read(fd, buf, sizeof(buf));
	if (n != (ssize_t)strlen(want) || memcmp(buf, want, (size_t)n))
		fail("fd %d: read %zd bytes, expected '%s' (%m)", fd, n, want);
}

/* "fd" with @fd in flight */
static void send_fd(int sk, int fd)
{
	union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr a; } cbuf;
	struct iovec iov = { "fd", 2 };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf.b, .msg_controllen = sizeof(cbuf.b),
	};
	struct cmsghdr *ch = CMSG_FIRSTHDR(&mh);

	ch->cmsg_level = SOL_SOCKET;
	ch->cmsg_type = SCM_RIGHTS;
	ch->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(ch), &fd, sizeof(int));
	if (sendmsg(sk, &mh, 0) != 2)
		fail("sendmsg with fd %d: %m", fd);
}

static int recv_fd(int sk)
{
	union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr a; } cbuf;
	char data[4];
	struct iovec iov = { data, sizeof(data) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf.b, .msg_controllen = sizeof(cbuf.b),
	};
	struct cmsghdr *ch;
	int fd;

	if (recvmsg(sk, &mh, MSG_DONTWAIT) != 2 || !(ch = CMSG_FIRSTHDR(&mh)) ||
	    ch->cmsg_type != SCM_RIGHTS)
		fail("fd %d: the message with a file in flight is gone (%m)", sk);
	memcpy(&fd, CMSG_DATA(ch), sizeof(int));
	return fd;
}

static struct sockaddr_in bound_addr(int fd)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	if (getsockname(fd, (struct sockaddr *)&a, &len))
		fail("getsockname: %m");
	return a;
}

int main(int argc, char **argv)
{
	const char *kind = NULL, *peer = NULL;
	const struct test_opt opts[] = {
		{ "kind", TEST_OPT_STR, &kind, 1,
		  "unix | unix-ext | unix-ext-dgram | tcp | packet | eventfd | pipe | epoll | timerfd | signalfd | userfaultfd" },
		{ "peer", TEST_OPT_STR, &peer, 0,
		  "unix-ext: the abstract name (without its \\0) of a listener outside" },
		{ NULL, 0, NULL, 0, NULL },
	};
	struct sockaddr_in addr = { .sin_family = AF_INET };
	struct sockaddr_in before = { 0 };
	struct sockaddr_un ext = { .sun_family = AF_UNIX };
	socklen_t ext_len = 0;
	int sv[2];

	test_init(argc, argv, opts);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

	if (!strcmp(kind, "unix")) {
		/* a socketpair whose end 42 has a socket filter (BPF, accept
		 * all) and "ping" queued by 43 */
		struct sock_filter all = BPF_STMT(BPF_RET | BPF_K, 0xffff);
		struct sock_fprog prog = { 1, &all };

		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
			fail("socketpair: %m");
		fd_place(sv[0], FD_A, 0);
		fd_place(sv[1], FD_B, 0);
		if (setsockopt(FD_A, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)))
			fail("SO_ATTACH_FILTER: %m");
		if (write(FD_B, "ping", 4) != 4)
			fail("write: %m");
	} else if (!strcmp(kind, "unix-ext") || !strcmp(kind, "unix-ext-dgram")) {
		/* connected to a peer outside the tree: the test's socket */
		bool dgram = !strcmp(kind, "unix-ext-dgram");

		if (!peer)
			fail("--kind %s needs --peer", kind);
		ext_len = offsetof(struct sockaddr_un, sun_path) + 1 +
			  snprintf(ext.sun_path + 1, sizeof(ext.sun_path) - 1, "%s", peer);
		fd_place(socket(AF_UNIX, dgram ? SOCK_DGRAM : SOCK_STREAM, 0), FD_A, 0);
		if (connect(FD_A, (struct sockaddr *)&ext, ext_len))
			fail("connect to @%s: %m", peer);
		if (write(FD_A, "ping", 4) != 4)
			fail("write: %m");
	} else if (!strcmp(kind, "unix-scm-epoll") || !strcmp(kind, "unix-scm-self")) {
		/* in flight in the queue of 42: an epoll fd (watching the
		 * eventfd 44), or the socket 42 itself */
		bool self = !strcmp(kind, "unix-scm-self");
		int passed;

		if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv))
			fail("socketpair: %m");
		fd_place(sv[0], FD_A, 0);
		fd_place(sv[1], FD_B, 0);
		passed = self ? FD_A : epoll_create1(0);
		if (!self) {
			struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0xabc };
			int efd = eventfd(1, 0);

			/* kept at 44: a closed file leaves every epoll */
			fd_place(efd, 44, 0);
			if (passed < 0 || epoll_ctl(passed, EPOLL_CTL_ADD, 44, &ev))
				fail("epoll: %m");
		}
		send_fd(FD_B, passed);
		if (!self)
			close(passed);
	} else if (!strcmp(kind, "netlink-connected")) {
		/* 42 connected to 43 (NETLINK_USERSOCK), a message from 43 queued */
		struct sockaddr_nl a = { .nl_family = AF_NETLINK, .nl_pid = 0x60000000u | getpid() };
		struct sockaddr_nl b = { .nl_family = AF_NETLINK, .nl_pid = 0x61000000u | getpid() };

		fd_place(socket(AF_NETLINK, SOCK_RAW, NETLINK_USERSOCK), FD_A, 0);
		fd_place(socket(AF_NETLINK, SOCK_RAW, NETLINK_USERSOCK), FD_B, 0);
		if (bind(FD_A, (struct sockaddr *)&a, sizeof(a)) ||
		    bind(FD_B, (struct sockaddr *)&b, sizeof(b)) ||
		    connect(FD_A, (struct sockaddr *)&b, sizeof(b)) ||
		    sendto(FD_B, "ping", 4, 0, (struct sockaddr *)&a, sizeof(a)) != 4)
			fail("netlink: %m");
	} else if (!strcmp(kind, "tcp")) {
		/* an established connection: its client at 42, accepted at 43 */
		int l = socket(AF_INET, SOCK_STREAM, 0);

		if (l < 0 || bind(l, (struct sockaddr *)&addr, sizeof(addr)) || listen(l, 4))
			fail("bind/listen: %m");
		before = bound_addr(l);
		fd_place(socket(AF_INET, SOCK_STREAM, 0), FD_A, 0);
		if (connect(FD_A, (struct sockaddr *)&before, sizeof(before)))
			fail("connect: %m");
		fd_place(accept(l, NULL, NULL), FD_B, 0);
		close(l);
		if (write(FD_A, "ping", 4) != 4)
			fail("write: %m");
	} else if (!strcmp(kind, "packet")) {
		fd_place(socket(AF_PACKET, SOCK_DGRAM, 0), FD_A, 0);
	} else if (!strcmp(kind, "eventfd")) {
		fd_place(eventfd(5, 0), FD_A, 0);
	} else if (!strcmp(kind, "pipe")) {
		if (pipe(sv))
			fail("pipe: %m");
		fd_place(sv[0], FD_A, 0);
		fd_place(sv[1], FD_B, 0);
		if (write(FD_B, "hello", 5) != 5)
			fail("write: %m");
	} else if (!strcmp(kind, "epoll")) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0xabc };

		fd_place(epoll_create1(0), FD_A, 0);
		fd_place(eventfd(1, 0), FD_B, 0);
		if (epoll_ctl(FD_A, EPOLL_CTL_ADD, FD_B, &ev))
			fail("epoll_ctl: %m");
	} else if (!strcmp(kind, "timerfd")) {
		struct itimerspec its = { { 0, 10000000 }, { 0, 10000000 } };

		fd_place(timerfd_create(CLOCK_MONOTONIC, 0), FD_A, 0);
		if (timerfd_settime(FD_A, 0, &its, NULL))
			fail("timerfd_settime: %m");
	} else if (!strcmp(kind, "signalfd")) {
		sigset_t set;

		sigemptyset(&set);
		sigaddset(&set, SIGUSR1);
		if (sigprocmask(SIG_BLOCK, &set, NULL))
			fail("sigprocmask: %m");
		fd_place(signalfd(-1, &set, 0), FD_A, 0);
		raise(SIGUSR1);
	} else if (!strcmp(kind, "userfaultfd")) {
		struct uffdio_api api = { .api = UFFD_API };

		fd_place(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK), FD_A, 0);
		if (ioctl(FD_A, UFFDIO_API, &api))
			fail("UFFDIO_API: %m");
	} else {
		fail("unknown --kind '%s'", kind);
	}

	test_daemon();
	test_waitsig();

	if (!strcmp(kind, "unix")) {
		expect_read(FD_A, "ping");
	} else if (!strcmp(kind, "unix-ext")) {
		expect_read(FD_A, "pong");	/* the test answers after the dump */
	} else if (!strcmp(kind, "netlink-connected")) {
		expect_read(FD_A, "ping");
	} else if (!strcmp(kind, "unix-scm-epoll") || !strcmp(kind, "unix-scm-self")) {
		struct epoll_event ev;
		int got = recv_fd(FD_A);

		if (!strcmp(kind, "unix-scm-self")) {
			if (syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, got, FD_A))
				fail("fd 42 received another file than itself");
		} else if (epoll_wait(got, &ev, 1, 0) != 1 || ev.data.u64 != 0xabc) {
			fail("the epoll fd in flight lost its eventfd");
		}
	} else if (!strcmp(kind, "unix-ext-dgram")) {
		struct sockaddr_un got;
		socklen_t len = sizeof(got);

		if (getpeername(FD_A, (struct sockaddr *)&got, &len) || len != ext_len ||
		    memcmp(got.sun_path, ext.sun_path, len - offsetof(struct sockaddr_un, sun_path)))
			fail("fd %d is no longer connected to @%s (%m)", FD_A, peer);
		if (write(FD_A, "pong", 4) != 4)
			fail("write after the restore: %m");
	} else if (!strcmp(kind, "tcp")) {
		expect_read(FD_B, "ping");
		if (write(FD_B, "pong", 4) != 4)
			fail("write: %m");
		expect_read(FD_A, "pong");
	} else if (!strcmp(kind, "packet")) {
		int type = 0;
		socklen_t len = sizeof(type);

		if (getsockopt(FD_A, SOL_SOCKET, SO_TYPE, &type, &len) || type != SOCK_DGRAM)
			fail("the packet socket changed");
	} else if (!strcmp(kind, "eventfd")) {
		uint64_t v = 0;

		if (read(FD_A, &v, 8) != 8 || v != 5)
			fail("eventfd counter is %llu, expected 5", (unsigned long long)v);
	} else if (!strcmp(kind, "pipe")) {
		expect_read(FD_A, "hello");
	} else if (!strcmp(kind, "epoll")) {
		struct epoll_event ev;

		if (epoll_wait(FD_A, &ev, 1, 0) != 1 || ev.data.u64 != 0xabc)
			fail("epoll lost its eventfd");
	} else if (!strcmp(kind, "timerfd")) {
		struct itimerspec its;
		uint64_t n = 0;

		if (timerfd_gettime(FD_A, &its) || its.it_interval.tv_nsec != 10000000)
			fail("timerfd interval changed");
		if (read(FD_A, &n, 8) != 8 || n < 1)
			fail("timerfd does not expire");
	} else if (!strcmp(kind, "signalfd")) {
		struct signalfd_siginfo si;
		struct pollfd p = { .fd = FD_A, .events = POLLIN };

		if (poll(&p, 1, 0) != 1 || read(FD_A, &si, sizeof(si)) != sizeof(si) ||
		    si.ssi_signo != SIGUSR1)
			fail("the pending SIGUSR1 is not readable from the signalfd");
	} else if (!strcmp(kind, "userfaultfd")) {
		char link[64];
		ssize_t n = readlink("/proc/self/fd/42", link, sizeof(link) - 1);
		struct uffdio_api api = { .api = UFFD_API };

		if (n < 0 || (link[n] = '\0', strcmp(link, "anon_inode:[userfaultfd]")))
			fail("fd 42 is no longer the userfaultfd (%s)", n < 0 ? "gone" : link);
		/* the handshake was done: a second one is refused */
		if (!ioctl(FD_A, UFFDIO_API, &api))
			fail("fd 42: a second UFFDIO_API was accepted: not the same userfaultfd");
	}
	pass();
}
