/*
 * Socket I/O helpers of the page-server protocol (see ps-io.h): waiting
 * whole-buffer transfers with a deadline, and non-blocking partial ones,
 * over plain TCP or through the connection's TLS session.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/mono-time.h"
#include "common/tls.h"
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
	case PS_IOV_FEATURES: return "FEATURES";
	case PS_IOV_GET_SHMEM: return "GET_SHMEM";
	default: return NULL;
	}
}

/* Wait until fd has events, or the deadline passes. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		int64_t left = deadline - mono_ms();
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

void ps_sock_close(struct ps_sock *s)
{
	tls_conn_free(s->tls);
	s->tls = NULL;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

bool ps_sock_pending(const struct ps_sock *s)
{
	return s->tls && tls_pending(s->tls);
}

int ps_wait_readable(struct ps_sock *s, int timeout_ms)
{
	if (ps_sock_pending(s))
		return 0;
	return wait_fd(s->fd, POLLIN, mono_ms() + timeout_ms);
}

int ps_read_full(struct ps_sock *s, void *buf, size_t len, int timeout_ms)
{
	int64_t deadline = mono_ms() + timeout_ms;
	size_t got = 0;

	while (got < len) {
		ssize_t n = ps_recv_some(s, (char *)buf + got, len - got);

		if (n < 0)
			return n;
		got += n;
		if (n == 0 && !ps_sock_pending(s)) {
			int ret = wait_fd(s->fd, POLLIN, deadline);

			if (ret)
				return ret;
		}
	}
	return 0;
}

int ps_write_full(struct ps_sock *s, const void *buf, size_t len, int timeout_ms)
{
	int64_t deadline = mono_ms() + timeout_ms;
	size_t sent = 0;

	while (sent < len) {
		struct iovec iov = { (char *)buf + sent, len - sent };
		ssize_t n = ps_sendv_some(s, &iov, 1);

		if (n < 0)
			return n;
		sent += n;
		if (n == 0) {
			int ret = wait_fd(s->fd, POLLOUT, deadline);

			if (ret)
				return ret;
		}
	}
	return 0;
}

bool ps_peer_alive(int fd)
{
	char byte;
	ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);

	return n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR));
}

ssize_t ps_recv_some(struct ps_sock *s, void *buf, size_t len)
{
	if (s->tls)
		return tls_recv_some(s->tls, buf, len);
	for (;;) {
		ssize_t n = recv(s->fd, buf, len, MSG_DONTWAIT);

		if (n > 0)
			return n;
		if (n == 0)
			return -EPIPE;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN ? 0 : -errno;
	}
}

ssize_t ps_sendv_some(struct ps_sock *s, const struct iovec *iov, int iovcnt)
{
	struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = iovcnt };

	if (s->tls)
		return tls_sendv_some(s->tls, iov, iovcnt);
	for (;;) {
		ssize_t n = sendmsg(s->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);

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
