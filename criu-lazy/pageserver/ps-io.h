/*
 * Socket I/O for the page-server protocol, both ends.
 *
 * Two kinds: whole-buffer reads and writes that wait (with a timeout) for
 * the short exchanges at the edges of a session (CLOSE and its status),
 * and non-blocking partial I/O for the event loops, which keep their own
 * cursors.  These helpers do not log: they return a negative errno and the
 * caller, who knows the peer and the request, says what failed.
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

/* Read exactly len bytes, waiting at most timeout_ms in all. */
int ps_read_full(int fd, void *buf, size_t len, int timeout_ms);

/* Write all of buf, waiting at most timeout_ms in all. */
int ps_write_full(int fd, const void *buf, size_t len, int timeout_ms);

/* Wait until fd is readable (data or EOF). */
int ps_wait_readable(int fd, int timeout_ms);

/* Wait for the peer to close: 0 on EOF, -EPROTO if it sent data instead. */
int ps_wait_eof(int fd, int timeout_ms);

/* Is the connection still open from the peer's side (no EOF, no reset seen)? */
bool ps_peer_alive(int fd);

/* Non-blocking: bytes read (> 0), 0 if nothing is there now, or an error. */
ssize_t ps_recv_some(int fd, void *buf, size_t len);

/* Non-blocking: bytes sent from iov (>= 0; 0 if the socket is full), or an
 * error.  Never raises SIGPIPE. */
ssize_t ps_sendv_some(int fd, const struct iovec *iov, int iovcnt);

/* Move *iov / *iovcnt past n bytes already sent (entries are modified). */
void ps_iov_advance(struct iovec **iov, int *iovcnt, size_t n);

#endif
