/*
 * One session of the lazy page server: a client connection, its requests
 * and the queue of replies still to send.
 *
 * Requests are read as they come (non-blocking, partial headers kept);
 * each GET queues a reply whose data is a pointer into the mmap'ed pages
 * file, and the queue goes out with sendmsg() straight from the mapping: no
 * copy.  Reading pauses while the queue is long, so a client that does not
 * read cannot make the server buffer without bound.  A request the server
 * cannot serve ends the session (after the replies owed before it), as
 * CRIU's does; CLOSE is answered with 0 and the session ends when the
 * client closes its side.
 */
#ifndef CRIU_LAZY_PAGESERVER_PS_CONN_H
#define CRIU_LAZY_PAGESERVER_PS_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "pageserver/ps-net.h"
#include "pageserver/ps-proto.h"
#include "pageserver/ps-store.h"

enum ps_conn_state {
	PS_CONN_SERVING,	/* reading requests, sending replies */
	PS_CONN_CLOSING,	/* CLOSE read: send the status, then wait for EOF */
	PS_CONN_DROPPING,	/* bad request: send what is owed, then close */
	PS_CONN_DONE,		/* the session is over: free it */
};

struct ps_out {
	union {
		struct page_server_iov iov;
		int32_t status;
	} head;
	uint32_t head_len;
	const void *data;	/* into a pages file mapping, or NULL */
	uint64_t data_len;
};

struct ps_conn {
	int fd;
	char peer[PS_NAME_MAX];
	const struct ps_store *store;
	enum ps_conn_state state;
	bool closed_ok;		/* the session ended with CLOSE */
	uint64_t deadline_ns;	/* CLOSING / DROPPING give up at this time */
	uint32_t watched;	/* the epoll events the loop has set */

	char in[32 * 128];	/* requests read, not yet handled */
	size_t in_len;

	struct ps_out *out;	/* ring of replies to send */
	size_t out_head, out_nr, out_cap;
	uint64_t out_off;	/* bytes of out[out_head] already sent */
	uint64_t out_bytes;	/* bytes queued in all */

	uint64_t nr_gets, nr_pages;
	struct ps_conn *next;
};

struct ps_conn *ps_conn_new(int fd, const struct ps_store *store);
void ps_conn_free(struct ps_conn *c);

/* The fd is ready (epoll events): read, serve, send what can go now. */
void ps_conn_on_event(struct ps_conn *c, uint32_t events, uint64_t now_ns);

/* The epoll events the session wants now. */
uint32_t ps_conn_events(const struct ps_conn *c);

/* Give up on a session whose deadline has passed. */
void ps_conn_check_deadline(struct ps_conn *c, uint64_t now_ns);

#endif
