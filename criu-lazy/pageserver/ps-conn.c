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

#include "common/log.h"
#include "pageserver/ps-conn.h"
#include "pageserver/ps-io.h"

#define OUT_MAX_ITEMS	1024		/* stop reading requests past this ... */
#define OUT_MAX_BYTES	(64ULL << 20)	/* ... or this much queued */
#define SEND_IOVS	64
#define SEND_BUDGET	(512 << 10)	/* per wake-up, so other sessions get their turn */
#define CLOSE_WAIT_NS	(10ULL * 1000000000)	/* for the client to close after CLOSE */
#define DROP_WAIT_NS	(5ULL * 1000000000)	/* for owed replies before a drop */

struct ps_conn *ps_conn_new(int fd, const struct ps_store *store)
{
	struct ps_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fd = fd;
	c->store = store;
	c->state = PS_CONN_SERVING;
	ps_net_peer_name(fd, c->peer, sizeof(c->peer));
	return c;
}

void ps_conn_free(struct ps_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->out);
	free(c);
}

static void finish(struct ps_conn *c, const char *why)
{
	pr_info("%s: session ended (%s) after %llu GETs, %llu pages", c->peer, why,
		(unsigned long long)c->nr_gets, (unsigned long long)c->nr_pages);
	c->state = PS_CONN_DONE;
}

/* A request we will not serve: log why, send what is owed, then close. */
static void drop(struct ps_conn *c, uint64_t now_ns, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void drop(struct ps_conn *c, uint64_t now_ns, const char *fmt, ...)
{
	char why[256];
	va_list args;

	va_start(args, fmt);
	vsnprintf(why, sizeof(why), fmt, args);
	va_end(args);
	pr_err("%s: %s: dropping the connection", c->peer, why);
	c->state = PS_CONN_DROPPING;
	c->deadline_ns = now_ns + DROP_WAIT_NS;
}

static int queue_reply(struct ps_conn *c, const struct ps_out *item)
{
	if (c->out_nr == c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap * 2 : 64;
		struct ps_out *grown = malloc(cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		/* unroll the ring into the new array */
		for (size_t i = 0; i < c->out_nr; i++)
			grown[i] = c->out[(c->out_head + i) % c->out_cap];
		free(c->out);
		c->out = grown;
		c->out_cap = cap;
		c->out_head = 0;
	}
	c->out[(c->out_head + c->out_nr) % c->out_cap] = *item;
	c->out_nr++;
	c->out_bytes += item->head_len + item->data_len;
	return 0;
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

	reply.head.iov = (struct page_server_iov){
		.cmd = PS_GET_REPLY_CMD,
		.nr_pages = n,
		.vaddr = req->vaddr,
		.dst_id = req->dst_id,
	};
	reply.data = data;
	reply.data_len = n * PS_PAGE_SIZE;
	if (queue_reply(c, &reply))
		return drop(c, now_ns, "out of memory for the reply to GET task %d at 0x%llx",
			    pid, (unsigned long long)req->vaddr);
	c->nr_gets++;
	c->nr_pages += n;
	pr_debug("%s: GET task %d 0x%llx: %llu of %llu pages", c->peer, pid,
		 (unsigned long long)req->vaddr, (unsigned long long)n,
		 (unsigned long long)req->nr_pages);
}

static void serve_close(struct ps_conn *c, uint64_t now_ns)
{
	struct ps_out reply = { .head.status = 0, .head_len = sizeof(int32_t) };

	if (queue_reply(c, &reply))
		return drop(c, now_ns, "out of memory for the reply to CLOSE");
	c->state = PS_CONN_CLOSING;
	c->closed_ok = true;
	c->deadline_ns = now_ns + CLOSE_WAIT_NS;
}

static void serve_request(struct ps_conn *c, const struct page_server_iov *req, uint64_t now_ns)
{
	uint32_t cmd = ps_cmd_command(req->cmd);
	const char *name = ps_cmd_name(cmd);

	switch (cmd) {
	case PS_IOV_GET:
		return serve_get(c, req, now_ns);
	case PS_IOV_CLOSE:
	case PS_IOV_FORCE_CLOSE:
		return serve_close(c, now_ns);
	default:
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

/* Read and serve requests until none is there or the queue is full. */
static void read_requests(struct ps_conn *c, uint64_t now_ns)
{
	const size_t hdr = sizeof(struct page_server_iov);

	while (c->state == PS_CONN_SERVING && !out_full(c)) {
		ssize_t n = ps_recv_some(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
		size_t used = 0;

		if (n == 0)
			return;
		if (n == -EPIPE || n == -ECONNRESET) {
			if (c->in_len)
				pr_warn("%s: closed in the middle of a request", c->peer);
			return finish(c, "closed by the client without CLOSE");
		}
		if (n < 0) {
			errno = -n;
			pr_perror("%s: read a request", c->peer);
			return finish(c, "read error");
		}
		c->in_len += n;
		while (c->in_len - used >= hdr && c->state == PS_CONN_SERVING) {
			struct page_server_iov req;

			memcpy(&req, c->in + used, hdr);
			used += hdr;
			serve_request(c, &req, now_ns);
		}
		if (c->state == PS_CONN_CLOSING && c->in_len > used)
			pr_warn("%s: %zu bytes after CLOSE ignored", c->peer, c->in_len - used);
		memmove(c->in, c->in + used, c->in_len - used);
		c->in_len -= used;
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
			struct ps_out *o = &c->out[(c->out_head + i) % c->out_cap];

			iov[cnt++] = (struct iovec){ &o->head, o->head_len };
			if (o->data_len)
				iov[cnt++] = (struct iovec){ (void *)o->data, o->data_len };
		}
		ps_iov_advance(&v, &cnt, c->out_off);
		limit_iov(v, &cnt, budget);
		n = ps_sendv_some(c->fd, v, cnt);
		if (n == 0)
			return;
		if (n < 0) {
			if (n == -EPIPE || n == -ECONNRESET) {
				pr_warn("%s: gone with %zu replies unsent", c->peer, c->out_nr);
			} else {
				errno = -n;
				pr_perror("%s: send a reply", c->peer);
			}
			c->out_nr = 0;
			return finish(c, "write error");
		}
		out_consume(c, n);
		budget -= n < (ssize_t)budget ? (uint64_t)n : budget;
	}
}

/* The client's side of the end: EOF after CLOSE. */
static void wait_close(struct ps_conn *c)
{
	char buf[64];
	ssize_t n = ps_recv_some(c->fd, buf, sizeof(buf));

	if (n == 0)
		return;
	if (n > 0)
		pr_warn("%s: %zd bytes after CLOSE ignored", c->peer, n);
	finish(c, n > 0 ? "data after CLOSE" : "closed after CLOSE");
}

void ps_conn_on_event(struct ps_conn *c, uint32_t events, uint64_t now_ns)
{
	bool paused = out_full(c);

	if (c->state == PS_CONN_SERVING && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		read_requests(c, now_ns);
	if (c->state != PS_CONN_DONE)
		send_replies(c);
	/* the queue was too long to read requests, and now is not */
	if (c->state == PS_CONN_SERVING && paused && !out_full(c))
		read_requests(c, now_ns);
	if (c->state == PS_CONN_SERVING && c->out_nr)
		send_replies(c);

	if (c->state == PS_CONN_DROPPING && !c->out_nr) {
		shutdown(c->fd, SHUT_RDWR);
		finish(c, "dropped");
	}
	if (c->state == PS_CONN_CLOSING && !c->out_nr && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		wait_close(c);
}

uint32_t ps_conn_events(const struct ps_conn *c)
{
	switch (c->state) {
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
	if (c->state != PS_CONN_CLOSING && c->state != PS_CONN_DROPPING)
		return;
	if (now_ns < c->deadline_ns)
		return;
	if (c->state == PS_CONN_CLOSING)
		pr_warn("%s: did not close within %llu s after CLOSE", c->peer,
			CLOSE_WAIT_NS / 1000000000);
	finish(c, "timed out");
}
