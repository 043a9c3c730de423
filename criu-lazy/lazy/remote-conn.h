/*
 * One TCP connection of the lazy-pages daemon to a page server: GETs go
 * out non-blocking (queued while the socket is full), replies come back
 * strictly in order and are read in pieces as they arrive, header first,
 * then the data into a buffer of the connection.  Each reply is matched to
 * the oldest GET still waiting (a FIFO) and checked against it.
 *
 * A reply is handed out in slices of at most 256 KiB as they arrive, so
 * the daemon copies one slice into the task while the next is still on the
 * wire, and goes back to its faults between slices of a 4 MiB reply.
 * Replies are read through a buffer: the read that ends a reply also takes
 * up to 64 KiB of what follows, so a run of small replies (a working set's
 * GETs of a few pages) costs a read per 64 KiB, not two per reply.
 */
#ifndef CRIU_LAZY_LAZY_REMOTE_CONN_H
#define CRIU_LAZY_LAZY_REMOTE_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "lazy/lazy-daemon.h"
#include "lazy/page-source.h"
#include "pageserver/ps-io.h"
#include "pageserver/ps-proto.h"

#define RC_MAX_GET_PAGES 1024	/* 4 MiB: the largest GET */
#define RC_SLICE_PAGES	 64	/* replies are handed out in pieces of 256 KiB */
#define RC_READAHEAD	 (64 << 10)	/* read past a reply's end */

/* A GET on the wire, and the request of the driver it belongs to. */
struct rc_get {
	struct lazy_task *t;
	uint64_t job_start, job_end;	/* the driver's request, dump-time addresses */
	uint64_t vaddr, nr_pages;	/* what this GET asks for */
	pid_t pid;			/* dst_id: the image pid */
	bool urgent;			/* a fault waits for it */
	/* GET_SHMEM (t: the working set's task, or NULL): vaddr and job_* are
	 * offsets in this object */
	struct lazy_shm_obj *obj;
	uint64_t shmid;
};

struct rc_conn {
	struct ps_sock sk;		/* fd -1 once closed; with --tls, its session */
	const char *role;		/* "fault", "background": for messages */
	const char *peer;		/* "127.0.0.1:2700" */

	struct rc_get *fifo;		/* sent (or queued) GETs, oldest first */
	size_t head, nr, cap;
	unsigned int nr_background;	/* of them, not urgent */

	char *out;			/* request bytes not yet sent */
	size_t out_len, out_sent, out_cap;

	struct page_server_iov hdr;	/* the reply being read */
	bool have_hdr;
	uint64_t data_done;		/* bytes of it handed out */
	char *buf;			/* what was read: a slice and what follows */
	size_t rpos, rlen;		/* its bytes not handed out yet */

	uint64_t nr_replies;
	uint32_t watched;		/* epoll events set for fd */
	/* the watchdog (rc_conn_watchdog()) */
	uint64_t nr_reads;		/* reads that took bytes, slices handed out */
	uint64_t nr_reads_checked;	/* ... at its last check */
	uint64_t unread_ns;		/* first seen with replies waiting unread */
	/* test only: from reply number test_stop_at on, none is read (0: never) */
	uint64_t test_stop_at;
	bool test_stopped;
	uint64_t reconnected_ns;	/* --page-server-reconnect: when it was opened again */
	uint64_t reconnect_end_ns;	/* ... and the time it had to answer in */
};

int rc_conn_init(struct rc_conn *c, int fd, const char *role, const char *peer);
void rc_conn_close(struct rc_conn *c);
/*
 * Connect to the page server (an error not logged) and, with tls, authenticate
 * it (*logged: that failure is in the log).  retry_why: a failed handshake is
 * a warning and its reason is copied there (a reconnect tries again); NULL:
 * it is an error.
 */
struct tls_creds;
int rc_conn_open(struct rc_conn *c, const char *role, const char *peer, const char *address,
		 int port, struct tls_creds *tls, char *retry_why, size_t why_len, bool *logged);

/*
 * FEATURES on a connection nothing was sent on yet: offer, wait up to
 * timeout_ms for the answer, *served = the bits the server serves.
 * -EPIPE / -ECONNRESET: the server closed the connection instead (CRIU's
 * does at a command it does not know); -EPROTO: another answer (logged).
 */
int rc_conn_features(struct rc_conn *c, uint64_t offer, uint64_t *served, int timeout_ms);

/*
 * Queue a GET (GET_SHMEM if g->obj) and, if now, send what can go now
 * (else the next rc_conn_flush() sends it with the others queued).
 */
int rc_conn_send_get(struct rc_conn *c, const struct rc_get *g, bool now);

/* Send queued requests until done or the socket is full. */
int rc_conn_flush(struct rc_conn *c);

static inline bool rc_conn_wants_out(const struct rc_conn *c)
{
	return c->out_sent < c->out_len;
}

/* A piece of a reply: whole pages. */
struct rc_slice {
	struct rc_get get;		/* the GET it answers */
	uint64_t vaddr, nr_pages;
	const void *data;		/* valid until the next read */
	bool last;			/* the reply is complete (its GET is off the FIFO) */
};

/*
 * Read from the connection.  Returns 1 when a slice of at most max_pages
 * (1 to RC_SLICE_PAGES; more if that much is read already) is complete
 * (*s), 0: nothing more for now.  -EPIPE: EOF; -ECONNRESET: reset;
 * -EPROTO: a bad reply (logged); other negative errno: read error (not
 * logged).
 */
int rc_conn_read_slice(struct rc_conn *c, struct rc_slice *s, uint64_t max_pages);

/*
 * A header or a slice is whole in the buffer: rc_conn_read_slice() needs
 * nothing from the socket, whose events will not say so.
 */
bool rc_conn_ready(const struct rc_conn *c);

/*
 * The end of a session that went well: read and drop the replies still
 * owed (to tasks gone meanwhile), send PS_IOV_CLOSE and read its int32
 * status, each within 5 s; a failure is one warning (every page is there).
 */
void rc_conn_end_session(struct rc_conn *c);

/* Take the oldest GET off the FIFO (its reply will never be read). */
bool rc_conn_pop(struct rc_conn *c, struct rc_get *g);

/*
 * owed() for what each GET the connection holds will bring (page-source.h's
 * list_owed); nothing once it is closed.
 */
int rc_conn_list_owed(const struct rc_conn *c, lazy_owed_fn owed, void *arg);

/* The oldest GET still waiting, or NULL. */
const struct rc_get *rc_conn_oldest(const struct rc_conn *c);

/*
 * At a check of the watchdog (lazy-watchdog.c), for a connection with GETs
 * out: 0, or -EIO (logged) once their replies have waited unread for the
 * grace (on the socket, in the TLS session or whole in the buffer) with
 * nothing read of the connection at any check meanwhile: the daemon
 * stopped reading it, its bug, and what it owes would never be copied.
 * The socket is asked (SIOCINQ) only when nothing was read since the
 * check before.
 */
int rc_conn_watchdog(const struct lazy_daemon *d, struct rc_conn *c, uint64_t now);

/*
 * Test only (CRIU_LAZY_TEST_STOP_READING=N, set on the fault connection):
 * should the daemon not read this connection (from its Nth reply on)?  It
 * says so once, a warning in the log.  False whenever the hook is unset.
 */
bool rc_conn_test_stopped(struct rc_conn *c);

#endif
