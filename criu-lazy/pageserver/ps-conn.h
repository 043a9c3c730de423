/*
 * One session of the lazy page server: a client connection, its requests
 * and the queue of replies still to send.
 *
 * Requests are read as they come (non-blocking, partial headers kept);
 * each GET queues a reply.  Its data is either a pointer into the store's
 * mapping (images: sent with sendmsg() straight from it, no copy) or a
 * buffer of the reply's own that the store fills (a live task): the GETs
 * parsed from one read are filled together, before anything of them is
 * sent.  Reading pauses while the queue is long, so a client that does not
 * read cannot make the server buffer without bound.  A request the server
 * cannot serve ends the session (after the replies owed before it), as
 * CRIU's does; CLOSE is answered with 0 and the session ends when the
 * client closes its side.
 *
 * The session does not log its end as an error: it records how it ended
 * (c->end) and why, and the server decides what that means.
 *
 * With --tls a session starts with the TLS handshake (PS_CONN_HANDSHAKE,
 * ps_conn_start_tls()): a client whose certificate does not verify, or
 * that does not speak TLS, ends there (PS_END_REFUSED) before a single
 * request is read.
 */
#ifndef CRIU_LAZY_PAGESERVER_PS_CONN_H
#define CRIU_LAZY_PAGESERVER_PS_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "pageserver/ps-io.h"
#include "pageserver/ps-net.h"
#include "pageserver/ps-proto.h"
#include "pageserver/ps-store.h"

enum ps_conn_state {
	PS_CONN_HANDSHAKE,	/* --tls: authenticating the client */
	PS_CONN_SERVING,	/* reading requests, sending replies */
	PS_CONN_CLOSING,	/* CLOSE read: send the status, then wait for EOF */
	PS_CONN_DROPPING,	/* bad request: send what is owed, then close */
	PS_CONN_DONE,		/* the session is over: free it */
};

enum ps_conn_end {
	PS_END_NONE,		/* not over */
	PS_END_CLOSED,		/* with CLOSE: the client took what it wanted */
	PS_END_EOF,		/* closed or reset by the client without CLOSE */
	PS_END_DROPPED,		/* a request we would not serve */
	PS_END_ERROR,		/* a socket error, or CLOSE not followed by EOF */
	PS_END_REFUSED,		/* the TLS handshake failed: never served */
};

struct ps_out {
	union {
		struct page_server_iov iov;
		int32_t status;
	} head;
	uint32_t head_len;
	const void *data;	/* into a mapping, or = buf */
	void *buf;		/* the reply's own data, freed once sent */
	uint64_t data_len;
};

struct ps_conn {
	struct ps_sock sk;
	char peer[PS_NAME_MAX];
	const struct ps_store *store;
	enum ps_conn_state state;
	enum ps_conn_end end;
	char why[256];		/* how it ended, for the server to say */
	uint64_t deadline_ns;	/* HANDSHAKE: refuse at; SERVING: idle until;
				 * CLOSING / DROPPING: give up at */
	bool counted;		/* the server counted it as a session */
	uint32_t watched;	/* the epoll events the loop has set */

	char in[32 * 128];	/* requests read, not yet handled */
	size_t in_len;

	struct ps_out *out;	/* ring of replies to send */
	size_t out_head, out_nr, out_cap;
	uint64_t out_off;	/* bytes of out[out_head] already sent */
	uint64_t out_bytes;	/* bytes queued in all */
	size_t nr_unfilled;	/* the last replies of the queue, from the first not read yet */

	uint64_t nr_gets, nr_pages;
	struct ps_conn *next;
};

struct ps_conn *ps_conn_new(int fd, const struct ps_store *store);

/* --tls: the session begins with the handshake, over tls (taken over). */
void ps_conn_start_tls(struct ps_conn *c, struct tls_conn *tls, uint64_t now_ns);
void ps_conn_free(struct ps_conn *c);

/* The fd is ready (epoll events): read, serve, send what can go now. */
void ps_conn_on_event(struct ps_conn *c, uint32_t events, uint64_t now_ns);

/* The epoll events the session wants now. */
uint32_t ps_conn_events(const struct ps_conn *c);

/* Give up on a session whose deadline has passed. */
void ps_conn_check_deadline(struct ps_conn *c, uint64_t now_ns);

#endif
