/*
 * A session of the lazy page server (see ps-conn.h): requests in, replies
 * out, and the end of the session.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/array.h"
#include "common/env-number.h"
#include "common/log.h"
#include "common/mono-time.h"
#include "common/tls.h"
#include "pageserver/ps-conn.h"
#include "pageserver/ps-io.h"

#define OUT_MAX_ITEMS	1024		/* stop reading requests past this ... */
#define OUT_MAX_BYTES	(64ULL << 20)	/* ... or this much queued */
#define SEND_IOVS	64
#define SEND_BUDGET	(512 << 10)	/* per wake-up, so other sessions get their turn */
#define CLOSE_WAIT_NS	(10ULL * 1000000000)	/* for the client to close after CLOSE */
#define DROP_WAIT_NS	(5ULL * 1000000000)	/* for owed replies before a drop */
#define HANDSHAKE_WAIT_NS (10ULL * 1000000000)	/* for a --tls client to authenticate */
#define READ_IOVS	1024		/* replies filled by one store read (IOV_MAX) */
#define READ_MAX_PAGES	1024		/* a reply the store reads: at most 4 MiB */
/*
 * A connection that sends no request at all within this time is closed.
 * Once it has asked for pages it may stay silent as long as it likes: a
 * lazily restored task can go hours without touching a lazy page, and our
 * daemon's fault connection is silent while the background one drains.  A
 * peer that is gone is found by TCP keepalive (ps-net.c) instead.
 */
#define IDLE_TIMEOUT_S	600
#define IDLE_ENV	"CRIU_LAZY_PS_IDLE_TIMEOUT"	/* seconds, for tests */

/* The idle timeout in ns: IDLE_TIMEOUT_S, or the environment's (read once). */
static uint64_t idle_ns(void)
{
	static uint64_t ns;

	if (!ns)
		ns = (env_number(IDLE_ENV, 86400ULL * 365) ?: IDLE_TIMEOUT_S) * 1000000000ULL;
	return ns;
}

struct ps_conn *ps_conn_new(int fd, const struct ps_store *store)
{
	struct ps_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->sk.fd = fd;
	c->store = store;
	c->state = PS_CONN_SERVING;
	c->deadline_ns = mono_ns() + idle_ns();
	ps_net_peer_name(fd, c->peer, sizeof(c->peer));
	return c;
}

void ps_conn_start_tls(struct ps_conn *c, struct tls_conn *tls, uint64_t now_ns)
{
	c->sk.tls = tls;
	c->state = PS_CONN_HANDSHAKE;
	c->deadline_ns = now_ns + HANDSHAKE_WAIT_NS;
}

static struct ps_out *out_at(struct ps_conn *c, size_t i)
{
	return &c->out[(c->out_head + i) % c->out_cap];
}

void ps_conn_free(struct ps_conn *c)
{
	ps_sock_close(&c->sk);
	for (size_t i = 0; i < c->out_nr; i++)
		free(out_at(c, i)->buf);
	free(c->out);
	free(c);
}

/* The session is over; @end and the reason are the server's to judge. */
static void finish(struct ps_conn *c, enum ps_conn_end end, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void finish(struct ps_conn *c, enum ps_conn_end end, const char *fmt, ...)
{
	va_list args;

	/* the first end counts: a drop stays a drop whatever follows */
	if (c->end == PS_END_NONE)
		c->end = end;
	if (!c->why[0]) {
		va_start(args, fmt);
		vsnprintf(c->why, sizeof(c->why), fmt, args);
		va_end(args);
	}
	pr_info("%s: session ended (%s) after %llu GETs, %llu pages", c->peer, c->why,
		(unsigned long long)c->nr_gets, (unsigned long long)c->nr_pages);
	c->state = PS_CONN_DONE;
}

/* A request we will not serve: note why, send what is owed, then close. */
static void drop(struct ps_conn *c, uint64_t now_ns, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void drop(struct ps_conn *c, uint64_t now_ns, const char *fmt, ...)
{
	va_list args;

	c->end = PS_END_DROPPED;
	va_start(args, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, args);
	va_end(args);
	pr_debug("%s: %s: dropping the connection once the owed replies are sent", c->peer,
		 c->why);
	c->state = PS_CONN_DROPPING;
	c->deadline_ns = now_ns + DROP_WAIT_NS;
}

static int queue_reply(struct ps_conn *c, const struct ps_out *item)
{
	if (RING_GROW(c->out, c->out_cap, c->out_head, c->out_nr, 64))
		return -ENOMEM;
	*out_at(c, c->out_nr) = *item;
	c->out_nr++;
	c->out_bytes += item->head_len + item->data_len;
	return 0;
}

/* Forget the last n replies of the queue (never sent). */
static void out_truncate(struct ps_conn *c, size_t n)
{
	while (n--) {
		struct ps_out *o = out_at(c, c->out_nr - 1);

		c->out_bytes -= o->head_len + o->data_len;
		free(o->buf);
		c->out_nr--;
	}
}

/*
 * Read the data of the replies queued since the last call: consecutive
 * replies of one task in one store read.  Replies that point into a
 * mapping among them need nothing.  A read that fails drops the session;
 * the replies it was for are never sent.
 */
static void fill_replies(struct ps_conn *c, uint64_t now_ns)
{
	struct iovec local[READ_IOVS], remote[READ_IOVS];
	char why[192];

	while (c->nr_unfilled) {
		size_t first = c->out_nr - c->nr_unfilled, i;
		pid_t pid;
		int n = 0, ret;

		if (!out_at(c, first)->buf) {
			c->nr_unfilled--;
			continue;
		}
		pid = out_at(c, first)->head.iov.dst_id;
		for (i = first; i < c->out_nr && n < READ_IOVS; i++, n++) {
			struct ps_out *o = out_at(c, i);

			if ((pid_t)o->head.iov.dst_id != pid || !o->buf)
				break;
			local[n] = (struct iovec){ o->buf, o->data_len };
			remote[n] = (struct iovec){ (void *)(uintptr_t)o->head.iov.vaddr, o->data_len };
		}
		ret = ps_store_read(c->store, pid, local, remote, n, why, sizeof(why));
		if (ret) {
			out_truncate(c, c->nr_unfilled);
			c->nr_unfilled = 0;
			return drop(c, now_ns, "%s", why);
		}
		c->nr_unfilled -= n;
	}
}

static void serve_get(struct ps_conn *c, const struct page_server_iov *req, uint64_t now_ns)
{
	struct ps_out reply = { .head_len = sizeof(reply.head.iov) };
	uint64_t n = req->nr_pages;
	const void *data;
	pid_t pid = (pid_t)req->dst_id;

	if (!n || n > PS_GET_MAX_PAGES)
		return drop(c, now_ns, "GET of %llu pages at 0x%llx of task %llu",
			    (unsigned long long)n, (unsigned long long)req->vaddr,
			    (unsigned long long)req->dst_id);
	if (req->vaddr % PS_PAGE_SIZE || req->vaddr + n * PS_PAGE_SIZE < req->vaddr)
		return drop(c, now_ns, "GET at a bad address 0x%llx (%llu pages) of task %llu",
			    (unsigned long long)req->vaddr, (unsigned long long)n,
			    (unsigned long long)req->dst_id);
	if (!req->dst_id || req->dst_id > 0x7fffffff)
		return drop(c, now_ns, "GET for task %llu, which is no pid",
			    (unsigned long long)req->dst_id);

	switch (ps_store_find(c->store, pid, req->vaddr, &n, &data)) {
	case PS_FOUND:
		break;
	case PS_NO_TASK:
		return drop(c, now_ns, "GET for task %d, which has no memory in these images", pid);
	case PS_NOT_LAZY:
		return drop(c, now_ns, "GET for task %d at 0x%llx, where it has no lazy page",
			    pid, (unsigned long long)req->vaddr);
	case PS_NOT_PRESENT:
		return drop(c, now_ns, "GET for task %d at 0x%llx, a lazy page whose data is "
			    "not in the images (dumped with --lazy-pages?)",
			    pid, (unsigned long long)req->vaddr);
	}

	if (!data && n > READ_MAX_PAGES)
		n = READ_MAX_PAGES;	/* a shorter reply is CRIU's protocol too */
	reply.head.iov = (struct page_server_iov){
		.cmd = PS_GET_REPLY_CMD,
		.nr_pages = n,
		.vaddr = req->vaddr,
		.dst_id = req->dst_id,
	};
	reply.data_len = n * PS_PAGE_SIZE;
	reply.data = data;
	if (!data) {
		/* the store reads it: fill_replies(), before anything is sent */
		reply.buf = malloc(reply.data_len);
		reply.data = reply.buf;
	}
	if (!reply.data || queue_reply(c, &reply)) {
		free(reply.buf);
		return drop(c, now_ns, "out of memory for the reply to GET task %d at 0x%llx",
			    pid, (unsigned long long)req->vaddr);
	}
	if (reply.buf || c->nr_unfilled)	/* from the first one to read on */
		c->nr_unfilled++;
	c->nr_gets++;
	c->nr_pages += n;
	pr_debug("%s: GET task %d 0x%llx: %llu of %llu pages", c->peer, pid,
		 (unsigned long long)req->vaddr, (unsigned long long)n,
		 (unsigned long long)req->nr_pages);
}

/* FEATURES: the client's offer (vaddr) answered with what we serve of it. */
static void serve_features(struct ps_conn *c, const struct page_server_iov *req,
			   uint64_t now_ns)
{
	uint64_t ours = c->store->ops->find_shmem ? PS_FEAT_SHMEM : 0;
	struct ps_out reply = { .head_len = sizeof(reply.head.iov) };

	reply.head.iov = (struct page_server_iov){
		.cmd = PS_IOV_FEATURES,
		.vaddr = req->vaddr & ours,
	};
	if (queue_reply(c, &reply))
		return drop(c, now_ns, "out of memory for the reply to FEATURES");
	if (c->nr_unfilled)	/* keeps its place among replies still to read */
		c->nr_unfilled++;
	pr_info("%s: features 0x%llx asked, 0x%llx served", c->peer,
		(unsigned long long)req->vaddr, (unsigned long long)reply.head.iov.vaddr);
}

/* GET_SHMEM: a GET of a shared memory object, by its offset; the same reply. */
static void serve_get_shmem(struct ps_conn *c, const struct page_server_iov *req,
			    uint64_t now_ns)
{
	struct ps_out reply = { .head_len = sizeof(reply.head.iov) };
	uint64_t n = req->nr_pages, shmid = ps_dst_id(req->dst_id);
	const void *data = NULL;

	if (!c->store->ops->find_shmem)
		return drop(c, now_ns, "GET_SHMEM, but this server has no shared memory to serve");
	if (ps_dst_type(req->dst_id) != PS_DST_SHMEM || (req->dst_id & 0xff) != PS_DST_SHMEM)
		return drop(c, now_ns, "GET_SHMEM for 0x%llx, which names no shared memory",
			    (unsigned long long)req->dst_id);
	if (!n || n > PS_GET_MAX_PAGES || req->vaddr % PS_PAGE_SIZE ||
	    req->vaddr + n * PS_PAGE_SIZE < req->vaddr)
		return drop(c, now_ns, "GET_SHMEM of %llu pages at offset 0x%llx of shared memory "
			    "%llu", (unsigned long long)n, (unsigned long long)req->vaddr,
			    (unsigned long long)shmid);
	switch (c->store->ops->find_shmem(c->store, shmid, req->vaddr, &n, &data)) {
	case PS_FOUND:
		break;
	case PS_NO_TASK:
		return drop(c, now_ns, "GET_SHMEM for shared memory %llu, which is not in these "
			    "images", (unsigned long long)shmid);
	default:
		return drop(c, now_ns, "GET_SHMEM for shared memory %llu at offset 0x%llx, where "
			    "no page was dumped", (unsigned long long)shmid,
			    (unsigned long long)req->vaddr);
	}
	reply.head.iov = (struct page_server_iov){
		.cmd = PS_GET_REPLY_CMD,
		.nr_pages = n,
		.vaddr = req->vaddr,
		.dst_id = req->dst_id,
	};
	reply.data = data;
	reply.data_len = n * PS_PAGE_SIZE;
	if (queue_reply(c, &reply))
		return drop(c, now_ns, "out of memory for the reply to GET_SHMEM");
	if (c->nr_unfilled)	/* keeps its place among replies still to read */
		c->nr_unfilled++;
	c->nr_gets++;
	c->nr_pages += n;
	pr_debug("%s: GET_SHMEM %llu 0x%llx: %llu of %llu pages", c->peer,
		 (unsigned long long)shmid, (unsigned long long)req->vaddr,
		 (unsigned long long)n, (unsigned long long)req->nr_pages);
}

static void serve_close(struct ps_conn *c, uint64_t now_ns)
{
	struct ps_out reply = { .head.status = 0, .head_len = sizeof(int32_t) };

	fill_replies(c, now_ns);	/* only GET replies are ever left unfilled */
	if (c->state != PS_CONN_SERVING)
		return;
	if (queue_reply(c, &reply))
		return drop(c, now_ns, "out of memory for the reply to CLOSE");
	c->state = PS_CONN_CLOSING;
	c->end = PS_END_CLOSED;
	c->deadline_ns = now_ns + CLOSE_WAIT_NS;
}

/* TLS's first record (handshake, version 3.x) read as a request header */
static bool looks_like_tls(const struct ps_conn *c, const struct page_server_iov *req)
{
	return !c->nr_gets && (req->cmd & 0xffff) == 0x0316;
}

static void serve_request(struct ps_conn *c, const struct page_server_iov *req, uint64_t now_ns)
{
	uint32_t cmd = ps_cmd_command(req->cmd);
	const char *name = ps_cmd_name(cmd);

	switch (cmd) {
	case PS_IOV_GET:
		return serve_get(c, req, now_ns);
	case PS_IOV_GET_SHMEM:
		return serve_get_shmem(c, req, now_ns);
	case PS_IOV_FEATURES:
		return serve_features(c, req, now_ns);
	case PS_IOV_CLOSE:
	case PS_IOV_FORCE_CLOSE:
		return serve_close(c, now_ns);
	default:
		if (looks_like_tls(c, req))
			return drop(c, now_ns, "a TLS client (its first bytes are a TLS handshake), "
				    "but this server runs without --tls");
		if (name)
			return drop(c, now_ns, "command %s (%u) is not served by a lazy page server",
				    name, cmd);
		return drop(c, now_ns, "unknown command 0x%x", req->cmd);
	}
}

static bool out_full(const struct ps_conn *c)
{
	return c->out_nr >= OUT_MAX_ITEMS || c->out_bytes >= OUT_MAX_BYTES;
}

/* Serve the whole requests read so far, until the queue is full. */
static void parse_requests(struct ps_conn *c, uint64_t now_ns)
{
	const size_t hdr = sizeof(struct page_server_iov);
	size_t used = 0;

	while (c->in_len - used >= hdr && c->state == PS_CONN_SERVING && !out_full(c)) {
		struct page_server_iov req;

		memcpy(&req, c->in + used, hdr);
		used += hdr;
		serve_request(c, &req, now_ns);
	}
	if (c->state == PS_CONN_CLOSING && c->in_len > used)
		pr_warn("%s: %zu bytes after CLOSE ignored", c->peer, c->in_len - used);
	memmove(c->in, c->in + used, c->in_len - used);
	c->in_len -= used;
	fill_replies(c, now_ns);
}

/* Read and serve requests until none is there or the queue is full. */
static void read_requests(struct ps_conn *c, uint64_t now_ns)
{
	parse_requests(c, now_ns);	/* what waited for room in the queue */
	while (c->state == PS_CONN_SERVING && !out_full(c)) {
		ssize_t n = ps_recv_some(&c->sk, c->in + c->in_len, sizeof(c->in) - c->in_len);

		if (n == 0)
			return;
		if (n == -EPIPE || n == -ECONNRESET)
			return finish(c, PS_END_EOF, "%s the connection without CLOSE%s",
				      n == -EPIPE ? "closed" : "reset",
				      c->in_len ? ", in the middle of a request" : "");
		if (n < 0)
			return finish(c, PS_END_ERROR, "cannot read a request: %s", strerror(-n));
		c->in_len += n;
		parse_requests(c, now_ns);
	}
}

static void out_consume(struct ps_conn *c, uint64_t n)
{
	while (n) {
		struct ps_out *o = &c->out[c->out_head];
		uint64_t len = o->head_len + o->data_len, left = len - c->out_off;

		if (n < left) {
			c->out_off += n;
			return;
		}
		n -= left;
		c->out_bytes -= len;
		free(o->buf);
		c->out_off = 0;
		c->out_head = (c->out_head + 1) % c->out_cap;
		c->out_nr--;
	}
}

/* Cut the iovec array to at most max bytes. */
static void limit_iov(struct iovec *iov, int *cnt, uint64_t max)
{
	for (int i = 0; i < *cnt; i++) {
		if (iov[i].iov_len >= max) {
			iov[i].iov_len = max;
			*cnt = i + 1;
			return;
		}
		max -= iov[i].iov_len;
	}
}

/*
 * Send queued replies, straight from the mappings, until the socket is
 * full or this turn's budget is spent (EPOLLOUT brings us back).
 */
static void send_replies(struct ps_conn *c)
{
	uint64_t budget = SEND_BUDGET;

	while (c->out_nr && budget) {
		struct iovec iov[SEND_IOVS], *v = iov;
		int cnt = 0;
		ssize_t n;

		for (size_t i = 0; i < c->out_nr && cnt + 2 <= SEND_IOVS; i++) {
			struct ps_out *o = out_at(c, i);

			iov[cnt++] = (struct iovec){ &o->head, o->head_len };
			if (o->data_len)
				iov[cnt++] = (struct iovec){ (void *)o->data, o->data_len };
		}
		ps_iov_advance(&v, &cnt, c->out_off);
		limit_iov(v, &cnt, budget);
		n = ps_sendv_some(&c->sk, v, cnt);
		if (n == 0)
			return;
		if (n < 0) {
			size_t unsent = c->out_nr;

			out_truncate(c, c->out_nr);
			if (n == -EPIPE || n == -ECONNRESET)
				return finish(c, c->end == PS_END_CLOSED ? PS_END_CLOSED : PS_END_EOF,
					      "gone with %zu replies unsent", unsent);
			return finish(c, PS_END_ERROR, "cannot send a reply: %s", strerror(-n));
		}
		out_consume(c, n);
		budget -= n < (ssize_t)budget ? (uint64_t)n : budget;
	}
}

/* The client's side of the end: EOF after CLOSE. */
static void wait_close(struct ps_conn *c)
{
	char buf[64];
	ssize_t n = ps_recv_some(&c->sk, buf, sizeof(buf));

	if (n == 0)
		return;
	if (n > 0)
		pr_warn("%s: %zd bytes after CLOSE ignored", c->peer, n);
	finish(c, PS_END_CLOSED, n > 0 ? "data after CLOSE" : "closed after CLOSE");
}

/* --tls: the next step of the handshake; a failure refuses the client. */
static void handshake(struct ps_conn *c, uint64_t now_ns)
{
	char why[TLS_WHY_MAX], desc[512];
	int ret = tls_handshake_step(c->sk.tls, why, sizeof(why));

	if (ret == -EAGAIN)
		return;
	if (ret)
		return finish(c, PS_END_REFUSED, "%s", why);
	tls_describe(c->sk.tls, desc, sizeof(desc));
	pr_info("%s: TLS: %s", c->peer, desc);
	c->state = PS_CONN_SERVING;
	c->deadline_ns = now_ns + idle_ns();
}

void ps_conn_on_event(struct ps_conn *c, uint32_t events, uint64_t now_ns)
{
	bool paused;

	if (c->state == PS_CONN_HANDSHAKE) {
		handshake(c, now_ns);
		if (c->state != PS_CONN_SERVING)
			return;
		events |= EPOLLIN;	/* requests may have come with the last record */
	}
	paused = out_full(c);

	if (c->state == PS_CONN_SERVING && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		read_requests(c, now_ns);
	if (c->state != PS_CONN_DONE)
		send_replies(c);
	/*
	 * The queue was too long to read requests, and now is not; or it
	 * filled up in the middle of what was read: requests wait in c->in,
	 * and with nothing more on the socket no event would bring us back to
	 * them (a client that waits for their replies hung).
	 */
	if (c->state == PS_CONN_SERVING && (paused || c->in_len) && !out_full(c))
		read_requests(c, now_ns);
	if (c->state == PS_CONN_SERVING && c->out_nr)
		send_replies(c);

	if (c->state == PS_CONN_DROPPING && !c->out_nr) {
		shutdown(c->sk.fd, SHUT_RDWR);
		finish(c, PS_END_DROPPED, "dropped");
	}
	if (c->state == PS_CONN_CLOSING && !c->out_nr && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		wait_close(c);
	/* serving: a session that has asked for nothing yet gets no longer */
	if (c->state == PS_CONN_SERVING)
		c->deadline_ns = c->nr_gets ? 0 : c->deadline_ns;
}

uint32_t ps_conn_events(const struct ps_conn *c)
{
	switch (c->state) {
	case PS_CONN_HANDSHAKE:
		return tls_wants_write(c->sk.tls) ? EPOLLOUT : EPOLLIN;
	case PS_CONN_SERVING:
		return (out_full(c) ? 0 : EPOLLIN) | (c->out_nr ? EPOLLOUT : 0);
	case PS_CONN_CLOSING:
		return c->out_nr ? EPOLLOUT : EPOLLIN;
	case PS_CONN_DROPPING:
		return EPOLLOUT;
	default:
		return 0;
	}
}

void ps_conn_check_deadline(struct ps_conn *c, uint64_t now_ns)
{
	if (!c->deadline_ns || now_ns < c->deadline_ns)
		return;
	if (c->state == PS_CONN_HANDSHAKE)
		return finish(c, PS_END_REFUSED, "no TLS handshake within %llu s",
			      HANDSHAKE_WAIT_NS / 1000000000);
	if (c->state == PS_CONN_SERVING) {
		if (c->out_nr)
			return;
		/* the server closes it once it has said why */
		return finish(c, PS_END_ERROR, "no request within %llu s: session closed",
			      (unsigned long long)(idle_ns() / 1000000000));
	}
	if (c->state != PS_CONN_CLOSING && c->state != PS_CONN_DROPPING)
		return;
	if (c->state == PS_CONN_CLOSING) {
		pr_warn("%s: did not close within %llu s after CLOSE", c->peer,
			CLOSE_WAIT_NS / 1000000000);
		return finish(c, PS_END_CLOSED, "timed out after CLOSE");
	}
	finish(c, PS_END_DROPPED, "timed out sending the replies owed before the drop");
}
