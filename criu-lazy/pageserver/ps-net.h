/*
 * TCP endpoints of the page-server protocol: the server's listening
 * socket, the client's connection, the options both sides set, and the
 * printable names that every log line about a peer uses.  Listening logs
 * its errors; a failed connect is the caller's to report (a refused second
 * connection is no error), except an address that does not resolve.
 */
#ifndef CRIU_LAZY_PAGESERVER_PS_NET_H
#define CRIU_LAZY_PAGESERVER_PS_NET_H

#include <stddef.h>

#define PS_NAME_MAX 64		/* "[ffff:...:ffff]:65535" and its NUL */

/*
 * Listen on address:port (address NULL: every address, IPv6 and IPv4),
 * SO_REUSEADDR, non-blocking, close-on-exec.  *name gets "address:port".
 */
int ps_net_listen(const char *address, int port, int *fd, char *name, size_t name_len);

/* Connect to address:port within timeout_ms; the socket is left non-blocking.
 * -EADDRNOTAVAIL (logged) if the address does not resolve. */
int ps_net_connect(const char *address, int port, int timeout_ms, int *fd);

/*
 * Per-connection options: TCP_NODELAY (every reply and request goes out at
 * once) and keepalive with a user timeout, so that a peer that vanished
 * from the network is noticed instead of waited for.
 */
void ps_net_tune(int fd);

/* "127.0.0.1:2700" / "[::1]:2700" for the peer of fd. */
void ps_net_peer_name(int fd, char *buf, size_t len);

#endif
