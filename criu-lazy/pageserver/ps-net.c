/*
 * Sockets of the page server and of its clients (see ps-net.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "pageserver/ps-net.h"

#define PS_LISTEN_BACKLOG	16
#define PS_KEEPALIVE_IDLE_S	10
#define PS_KEEPALIVE_INTVL_S	5
#define PS_KEEPALIVE_CNT	3
#define PS_USER_TIMEOUT_MS	30000

static void format_addr(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(buf, len, "%s:%d", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		/* a v4 client of a dual-stack socket: print it as v4 */
		if (!strncmp(host, "::ffff:", 7) && strchr(host, '.'))
			snprintf(buf, len, "%s:%d", host + 7, port);
		else
			snprintf(buf, len, "[%s]:%d", host, port);
	} else {
		snprintf(buf, len, "(family %d)", sa->sa_family);
	}
}

void ps_net_peer_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getpeername(fd, (struct sockaddr *)&ss, &sl))
		snprintf(buf, len, "fd %d", fd);
	else
		format_addr((struct sockaddr *)&ss, buf, len);
}

void ps_net_tune(int fd)
{
	int one = 1, idle = PS_KEEPALIVE_IDLE_S, intvl = PS_KEEPALIVE_INTVL_S;
	int cnt = PS_KEEPALIVE_CNT, user_timeout = PS_USER_TIMEOUT_MS;

	/* best effort: a socket without these still works */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout));
}

static int resolve(const char *address, int port, bool passive, struct addrinfo **res)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0),
	};
	char service[16];
	int ret;

	snprintf(service, sizeof(service), "%d", port);
	ret = getaddrinfo(address, service, &hints, res);
	if (ret) {
		pr_err("cannot resolve address %s: %s", address, gai_strerror(ret));
		return -EADDRNOTAVAIL;
	}
	return 0;
}

static int listen_on(const struct sockaddr *sa, socklen_t sl, int *out)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1, zero = 0;

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, sa, sl) || listen(fd, PS_LISTEN_BACKLOG)) {
		int err = -errno;

		close(fd);
		return err;
	}
	*out = fd;
	return 0;
}

int ps_net_listen(const char *address, int port, int *fd, char *name, size_t name_len)
{
	struct addrinfo *res, *ai;
	int ret;

	if (!address) {
		/* every address: one dual-stack socket, or IPv4 alone without IPv6 */
		struct sockaddr_in6 any6 = { .sin6_family = AF_INET6, .sin6_port = htons(port),
					     .sin6_addr = IN6ADDR_ANY_INIT };
		struct sockaddr_in any4 = { .sin_family = AF_INET, .sin_port = htons(port),
					    .sin_addr.s_addr = htonl(INADDR_ANY) };

		ret = listen_on((struct sockaddr *)&any6, sizeof(any6), fd);
		if (ret == -EAFNOSUPPORT)
			ret = listen_on((struct sockaddr *)&any4, sizeof(any4), fd);
		snprintf(name, name_len, "*:%d", port);
		if (ret) {
			errno = -ret;
			pr_perror("cannot listen on port %d", port);
		}
		return ret;
	}

	ret = resolve(address, port, true, &res);
	if (ret)
		return ret;
	ret = -EADDRNOTAVAIL;
	for (ai = res; ai; ai = ai->ai_next) {
		ret = listen_on(ai->ai_addr, ai->ai_addrlen, fd);
		format_addr(ai->ai_addr, name, name_len);
		if (!ret)
			break;
	}
	if (ret) {
		errno = -ret;
		pr_perror("cannot listen on %s port %d", address, port);
	}
	freeaddrinfo(res);
	return ret;
}

static int connect_one(const struct addrinfo *ai, int timeout_ms, int *out)
{
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct pollfd p;
	socklen_t sl = sizeof(int);
	int err = 0, n;

	if (fd < 0)
		return -errno;
	if (!connect(fd, ai->ai_addr, ai->ai_addrlen))
		goto done;
	if (errno != EINPROGRESS) {
		err = -errno;
		goto fail;
	}
	p.fd = fd;
	p.events = POLLOUT;
	do
		n = poll(&p, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		err = n ? -errno : -ETIMEDOUT;
		goto fail;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) || err) {
		err = err ? -err : -errno;
		goto fail;
	}
done:
	*out = fd;
	return 0;
fail:
	close(fd);
	return err;
}

int ps_net_connect(const char *address, int port, int timeout_ms, int *fd)
{
	struct addrinfo *res, *ai;
	int ret;

	ret = resolve(address, port, false, &res);
	if (ret)
		return ret;
	ret = -EADDRNOTAVAIL;
	for (ai = res; ai; ai = ai->ai_next) {
		ret = connect_one(ai, timeout_ms, fd);
		if (!ret)
			break;
	}
	freeaddrinfo(res);
	return ret;
}
