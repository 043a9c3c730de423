/*
 * Socket I/O helpers of the page-server protocol (see ps-io.h): waiting
 * whole-buffer transfers with a deadline, and non-blocking partial ones.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pageserver/ps-io.h"
#include "pageserver/ps-proto.h"

const char *ps_cmd_name(uint32_t command)
{
	switch (command) {
	case PS_IOV_ADD: return "ADD";
	case PS_IOV_HOLE: return "HOLE";
	case PS_IOV_OPEN: return "OPEN";
	case PS_IOV_OPEN2: return "OPEN2";
	case PS_IOV_PARENT: return "PARENT";
	case PS_IOV_ADD_F: return "ADD_F";
	case PS_IOV_GET: return "GET";
	case PS_IOV_CLOSE: return "CLOSE";
	case PS_IOV_FORCE_CLOSE: return "FORCE_CLOSE";
	default: return NULL;
	}
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Wait until fd has events, or the deadline passes. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		int64_t left = deadline - now_ms();
		int n;

		if (left < 0)
			left = 0;
		n = poll(&p, 1, (int)left);
		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

int ps_wait_readable(int fd, int timeout_ms)
{
	return wait_fd(fd, POLLIN, now_ms() + timeout_ms);
}

int ps_read_full(int fd, void *buf, size_t len, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	size_t got = 0;

	while (got < len) {
		ssize_t n = recv(fd, (char *)buf + got, len - got, MSG_DONTWAIT);

		if (n > 0) {
			got += n;
			continue;
		}
		if (n == 0)
			return -EPIPE;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		n = wait_fd(fd, POLLIN, deadline);
		if (n)
			return n;
	}
	return 0;
}

int ps_write_full(int fd, const void *buf, size_t len, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	size_t sent = 0;

	while (sent < len) {
		ssize_t n = send(fd, (const char *)buf + sent, len - sent,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n >= 0) {
			sent += n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		n = wait_fd(fd, POLLOUT, deadline);
		if (n)
			return n;
	}
	return 0;
}

int ps_wait_eof(int fd, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	char byte;

	for (;;) {
		ssize_t n = recv(fd, &byte, 1, MSG_DONTWAIT);
		int ret;

		if (n == 0)
			return 0;
		if (n > 0)
			return -EPROTO;
		if (errno == ECONNRESET)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		ret = wait_fd(fd, POLLIN, deadline);
		if (ret)
			return ret;
	}
}

bool ps_peer_alive(int fd)
{
	char byte;
	ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);

	return n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR));
}

ssize_t ps_recv_some(int fd, void *buf, size_t len)
{
	for (;;) {
		ssize_t n = recv(fd, buf, len, MSG_DONTWAIT);

		if (n > 0)
			return n;
		if (n == 0)
			return -EPIPE;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN ? 0 : -errno;
	}
}

ssize_t ps_sendv_some(int fd, const struct iovec *iov, int iovcnt)
{
	struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = iovcnt };

	for (;;) {
		ssize_t n = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN ? 0 : -errno;
	}
}

void ps_iov_advance(struct iovec **iov, int *iovcnt, size_t n)
{
	while (*iovcnt && n >= (*iov)->iov_len) {
		n -= (*iov)->iov_len;
		(*iov)++;
		(*iovcnt)--;
	}
	if (*iovcnt && n) {
		(*iov)->iov_base = (char *)(*iov)->iov_base + n;
		(*iov)->iov_len -= n;
	}
}
