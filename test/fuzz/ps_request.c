/*
 * Fuzz target: what a lazy page server reads from a client (CRIU's 32-byte
 * page_server_iov headers: GET, CLOSE, anything else), served from the
 * images of a small dump by one session (ps-conn.c) as the server runs it:
 * non-blocking, events one by one, the client reading what comes back.
 *
 * Input: the bytes the client sends, then it closes its side.
 */
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pageserver/ps-conn.h"
#include "pageserver/ps-store.h"
#include "fuzz-util.h"

static struct ps_store *store;

static void drain(int fd)
{
	static char buf[65536];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

int fuzz_one_input(const uint8_t *data, size_t size)
{
	struct ps_conn *c;
	int sk[2];
	size_t sent = 0;

	if (!store && (fuzz_write_small_dump() || ps_store_images_load(fuzz_dir_fd(), &store)))
		__builtin_trap();	/* the harness itself is broken */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sk))
		return 0;
	c = ps_conn_new(sk[0], store);
	if (!c) {
		close(sk[0]);
		close(sk[1]);
		return 0;
	}
	/* the client writes as the socket takes it; the session serves */
	for (int round = 0; round < 10000 && c->state != PS_CONN_DONE; round++) {
		if (sent < size) {
			ssize_t n = write(sk[1], data + sent, size - sent);

			if (n > 0)
				sent += n;
		}
		if (sent == size)
			shutdown(sk[1], SHUT_WR);
		ps_conn_on_event(c, EPOLLIN | EPOLLOUT, 0);
		drain(sk[1]);
	}
	/* the client said all it had to say and closed its side, and took
	 * every reply: the session must be over, whatever it was told */
	if (c->state != PS_CONN_DONE)
		__builtin_trap();
	ps_conn_free(c);	/* closes sk[0] */
	close(sk[1]);
	return 0;
}
