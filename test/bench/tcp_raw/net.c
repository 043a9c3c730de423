/* tcp_raw: loopback sockets with TCP_NODELAY, and the sender thread (the
 * page server's side) of a stream or rtt run. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"
#include "tcp_raw.h"

static void set_nodelay(int fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		bench_die("TCP_NODELAY: %m");
}

int listen_loopback(uint16_t *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		bench_die("socket: %m");
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 4))
		bench_die("listen on 127.0.0.1: %m");
	if (getsockname(fd, (struct sockaddr *)&sa, &sl))
		bench_die("getsockname: %m");
	*port = ntohs(sa.sin_port);
	return fd;
}

void send_all(int fd, const char *buf, uint64_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			bench_die("send: %m");
		buf += n;
		len -= n;
	}
}

void recv_all(int fd, char *buf, uint64_t len)
{
	while (len) {
		ssize_t n = recv(fd, buf, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			bench_die("recv: %s", n ? strerror(errno) : "EOF");
		buf += n;
		len -= n;
	}
}

/* stream: wait for the go byte, send size bytes in chunks. */
static void sender_stream(struct sender *s, int fd)
{
	const struct config *cfg = s->cfg;
	uint64_t sent = 0, off = 0;
	double cpu0;
	char go;

	if (recv(fd, &go, 1, MSG_WAITALL) != 1)
		bench_die("sender: no go byte: %m");
	cpu0 = bench_thread_cpu_s();
	while (sent < cfg->size) {
		uint64_t len = cfg->size - sent;

		if (len > cfg->chunk)
			len = cfg->chunk;
		if (len > cfg->source - off)
			len = cfg->source - off;
		send_all(fd, s->src + off, len);
		sent += len;
		off = (off + len) % cfg->source;
	}
	s->cpu_s = bench_thread_cpu_s() - cpu0;
}

/* rtt: answer each request with the next reply bytes of the source. */
static void sender_rtt(struct sender *s, int fd)
{
	const struct config *cfg = s->cfg;
	char req[REQUEST_LEN];
	uint64_t off = 0;

	for (uint64_t i = 0; i < cfg->requests; i++) {
		recv_all(fd, req, sizeof(req));
		if (off + cfg->reply > cfg->source)
			off = 0;
		send_all(fd, s->src + off, cfg->reply);
		off += cfg->reply;
	}
}

static void *sender_main(void *arg)
{
	struct sender *s = arg;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(s->port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd;

	bench_pin_self(s->cfg->sender_cpu);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		bench_die("socket: %m");
	set_nodelay(fd);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		bench_die("connect to 127.0.0.1:%u: %m", s->port);
	if (s->cfg->rtt)
		sender_rtt(s, fd);
	else
		sender_stream(s, fd);
	close(fd);
	return NULL;
}

int accept_one(int lfd, struct sender *s, pthread_t *th)
{
	int err = pthread_create(th, NULL, sender_main, s);
	int fd;

	if (err)
		bench_die("pthread_create: %s", strerror(err));
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		bench_die("accept: %m");
	set_nodelay(fd);
	return fd;
}
