/*
 * Socket I/O for the page-server protocol, both ends.
 *
 * Two kinds: whole-buffer reads and writes that wait (with a timeout) for
 * the short exchanges at the edges of a session (CLOSE and its status),
 * and non-blocking partial I/O for the event loops, which keep their own
 * cursors.  These helpers do not log: they return a negative errno and the
 * caller, who knows the peer and the request, says what failed.
 * A connection is a struct ps_sock: its socket and, with --tls, its TLS
 * session (common/tls.h), which the helpers go through; the protocol code
 * above does not care which it is.
 *   -EPIPE       the peer closed the connection (EOF, or a send after it)
 *   -ECONNRESET  the peer reset it
 *   -ETIMEDOUT   nothing happened within the timeout
 */
#ifndef CRIU_LAZY_PAGESERVER_PS_IO_H
#define CRIU_LAZY_PAGESERVER_PS_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

struct tls_conn;

/* One connection's transport. */
struct ps_sock {
	int fd;			/* -1: closed */
	struct tls_conn *tls;	/* NULL: plain TCP */
};

/* Free the TLS session (close_notify if it can go) and close the socket. */
void ps_sock_close(struct ps_sock *s);

/*
 * Data was read off the socket and waits inside the TLS session: the next
 * read returns it at once, but epoll does not see it.  A loop that sleeps
 * on the fd asks this first.
 */
bool ps_sock_pending(const struct ps_sock *s);

/* Read exactly len bytes, waiting at most timeout_ms in all. */
int ps_read_full(struct ps_sock *s, void *buf, size_t len, int timeout_ms);

/* Write all of buf, waiting at most timeout_ms in all. */
int ps_write_full(struct ps_sock *s, const void *buf, size_t len, int timeout_ms);

/* Wait until s is readable (data or EOF; at once if data is pending). */
int ps_wait_readable(struct ps_sock *s, int timeout_ms);

/* Is the connection still open from the peer's side (no EOF, no reset seen)?
 * (TCP's view: a TLS close_notify waiting unread counts as open.) */
bool ps_peer_alive(int fd);

/* Non-blocking: bytes read (> 0), 0 if nothing is there now, or an error. */
ssize_t ps_recv_some(struct ps_sock *s, void *buf, size_t len);

/* Non-blocking: bytes sent from iov (>= 0; 0 if the socket is full), or an
 * error.  Never raises SIGPIPE. */
ssize_t ps_sendv_some(struct ps_sock *s, const struct iovec *iov, int iovcnt);

/* Move *iov / *iovcnt past n bytes already sent (entries are modified). */
void ps_iov_advance(struct iovec **iov, int *iovcnt, size_t n);

#endif
