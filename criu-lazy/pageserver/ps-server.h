/*
 * A lazy page server: a listening socket, the sessions of the clients
 * (ps-conn.c) and one epoll loop over them, serving the pages of one store.
 * Used by `page-server --lazy-pages` (images) and by `dump --lazy-pages`
 * (the frozen tasks themselves).
 *
 * Any number of sessions at once: our daemon opens two, one for faults and
 * one for background transfers, so a fault is never queued behind a bulk
 * reply.  The run ends once a session has ended with CLOSE and no other is
 * open or waiting to be accepted; or on SIGTERM, SIGINT or SIGHUP (blocked
 * and read from a signalfd while the server exists).
 *
 * What a session that ends otherwise means is the owner's choice:
 *   lenient (page-server)  a dropped session is logged as an error, one that
 *                          closes without CLOSE as info, and the others go on;
 *   strict  (dump)         the run fails at once: the client gave up before
 *                          it had every page.  Nothing is logged as an error;
 *                          s->why says what happened, for the owner's one line.
 *
 * With --tls (s->tls set between listen and setup) every session starts
 * with the TLS handshake; a client that fails it is refused with a warning
 * naming it and why, in either mode: it never was a session (not counted
 * in nr_accepted: for the dump, no destination has connected).
 */
#ifndef CRIU_LAZY_PAGESERVER_PS_SERVER_H
#define CRIU_LAZY_PAGESERVER_PS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pageserver/ps-net.h"
#include "pageserver/ps-store.h"

struct ps_conn;
struct tls_creds;

struct ps_server {
	int listen_fd, epfd, signal_fd;
	char name[PS_NAME_MAX];		/* where it listens */
	const struct ps_store *store;
	bool strict;
	struct tls_creds *tls;		/* --tls: freed by ps_server_fini() */

	struct ps_conn *conns;
	size_t nr_conns;
	unsigned int nr_accepted;	/* sessions in all (with --tls: authenticated) */
	unsigned int nr_refused;	/* TLS handshakes that failed */
	unsigned int nr_closed;		/* sessions that ended with CLOSE */
	uint64_t nr_gets, nr_pages;	/* served by sessions that ended */
	int stop_signal;		/* the signal that ended the run, or 0 */
	char why[512];			/* strict: why the run failed */
};

/* Listen on address:port (NULL: any); the rest of *s is reset. */
int ps_server_listen(struct ps_server *s, const char *address, int port);

/* The loop's fds: the listening socket, the signals. */
int ps_server_setup(struct ps_server *s, const struct ps_store *store, bool strict);


/*
 * Serve until done.  0: every session ended with CLOSE (at least one);
 * -EINTR: stopped by s->stop_signal; -ECONNABORTED (strict): a session
 * ended without CLOSE, s->why says how; another negative errno (logged):
 * the loop itself failed.
 */
int ps_server_run(struct ps_server *s);

/* GETs answered and pages sent so far, by every session. */
void ps_server_served(const struct ps_server *s, uint64_t *gets, uint64_t *pages);

/* Close every session and fd (harmless on a server that never listened). */
void ps_server_fini(struct ps_server *s);

#endif
