/*
 * A connection of the lazy-pages daemon to a page server (see
 * remote-conn.h): the request queue out, the reply reader in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/sockios.h>

#include "common/array.h"
#include "common/log.h"
#include "common/tls.h"
#include "lazy/remote-conn.h"
#include "pageserver/ps-io.h"
#include "pageserver/ps-net.h"

#define CLOSE_TIMEOUT_MS	5000
#define RC_BUF_BYTES		(RC_SLICE_PAGES * PS_PAGE_SIZE + RC_READAHEAD)
#define CONNECT_TIMEOUT_MS	10000

int rc_conn_init(struct rc_conn *c, int fd, const char *role, const char *peer)
{
	memset(c, 0, sizeof(*c));
	c->sk.fd = fd;
	c->role = role;
	c->peer = peer;
	c->buf = malloc(RC_BUF_BYTES);
	if (!c->buf)
		return -ENOMEM;
	return 0;
}

void rc_conn_close(struct rc_conn *c)
{
	ps_sock_close(&c->sk);	/* also takes it out of epoll */
	free(c->buf);
	free(c->fifo);
	free(c->out);
	c->buf = NULL;
	c->fifo = NULL;
	c->out = NULL;
	c->nr = c->nr_background = 0;
	c->out_len = c->out_sent = 0;
}

/* --tls: authenticate the server on a new connection (a failure is logged). */
static int start_tls(struct rc_conn *c, struct tls_creds *tls, const char *address,
		     char *retry_why, size_t why_len)
{
	char why[TLS_WHY_MAX], desc[512];
	int ret = tls_conn_new(tls, c->sk.fd, false, address, &c->sk.tls);

	if (ret) {
		pr_err("out of memory for a TLS session with page server %s", c->peer);
		return ret;
	}
	ret = tls_handshake(c->sk.tls, CONNECT_TIMEOUT_MS, why, sizeof(why));
	if (ret && retry_why) {
		pr_warn("page server %s (%s connection): %s", c->peer, c->role, why);
		snprintf(retry_why, why_len, "%s", why);
		return ret;
	}
	if (ret) {
		pr_err("page server %s (%s connection): %s", c->peer, c->role, why);
		return ret;
	}
	tls_describe(c->sk.tls, desc, sizeof(desc));
	pr_info("page server %s (%s connection): TLS: %s", c->peer, c->role, desc);
	return 0;
}

int rc_conn_open(struct rc_conn *c, const char *role, const char *peer, const char *address,
		 int port, struct tls_creds *tls, char *retry_why, size_t why_len, bool *logged)
{
	int fd, ret;

	*logged = false;
	ret = ps_net_connect(address, port, CONNECT_TIMEOUT_MS, &fd);
	if (ret)
		return ret;
	ps_net_tune(fd);
	ret = rc_conn_init(c, fd, role, peer);
	if (!ret && tls) {
		ret = start_tls(c, tls, address, retry_why, why_len);
		*logged = ret != 0;
	}
	if (ret)
		rc_conn_close(c);
	return ret;
}

static int fifo_push(struct rc_conn *c, const struct rc_get *g)
{
	if (RING_GROW(c->fifo, c->cap, c->head, c->nr, 64))
		return -ENOMEM;
	c->fifo[(c->head + c->nr) % c->cap] = *g;
	c->nr++;
	if (!g->urgent)
		c->nr_background++;
	return 0;
}

static void fifo_pop(struct rc_conn *c, struct rc_get *g)
{
	*g = c->fifo[c->head];
	c->head = (c->head + 1) % c->cap;
	c->nr--;
	if (!g->urgent)
		c->nr_background--;
}

bool rc_conn_pop(struct rc_conn *c, struct rc_get *g)
{
	if (!c->nr)
		return false;
	fifo_pop(c, g);
	return true;
}

const struct rc_get *rc_conn_oldest(const struct rc_conn *c)
{
	return c->nr ? &c->fifo[c->head] : NULL;
}

int rc_conn_list_owed(const struct rc_conn *c, lazy_owed_fn owed, void *arg)
{
	int ret = 0;

	/* closed, or GETs that would never leave (nothing waits for EPOLLOUT) */
	if (c->sk.fd < 0 || (rc_conn_wants_out(c) && !(c->watched & EPOLLOUT)))
		return 0;
	for (size_t i = 0; i < c->nr && !ret; i++) {
		const struct rc_get *g = &c->fifo[(c->head + i) % c->cap];

		/* a task's job asks again for what of it is still in flight (job_next());
		 * a shared memory job goes on from its GET's start (shm_job_next()) */
		if (g->obj)
			ret = owed(arg, NULL, g->obj, g->vaddr, g->job_end);
		else if (g->t)
			ret = owed(arg, g->t, NULL, g->job_start, g->job_end);
	}
	return ret;
}

int rc_conn_flush(struct rc_conn *c)
{
	while (c->out_sent < c->out_len) {
		struct iovec iov = { c->out + c->out_sent, c->out_len - c->out_sent };
		ssize_t n = ps_sendv_some(&c->sk, &iov, 1);

		if (n < 0)
			return n;
		if (n == 0)
			return 0;	/* full: EPOLLOUT tells when to go on */
		c->out_sent += n;
	}
	c->out_len = c->out_sent = 0;
	return 0;
}

int rc_conn_features(struct rc_conn *c, uint64_t offer, uint64_t *served, int timeout_ms)
{
	struct page_server_iov req = { .cmd = PS_IOV_FEATURES, .vaddr = offer }, rep;
	int ret = ps_write_full(&c->sk, &req, sizeof(req), timeout_ms) ?:
		  ps_read_full(&c->sk, &rep, sizeof(rep), timeout_ms);

	if (ret)
		return ret;
	if (rep.cmd != PS_IOV_FEATURES || rep.nr_pages || rep.dst_id || (rep.vaddr & ~offer)) {
		pr_err("page server %s (%s connection) answered FEATURES 0x%llx with cmd 0x%x, "
		       "%llu pages, 0x%llx, dst_id %llu", c->peer, c->role,
		       (unsigned long long)offer, rep.cmd, (unsigned long long)rep.nr_pages,
		       (unsigned long long)rep.vaddr, (unsigned long long)rep.dst_id);
		return -EPROTO;
	}
	*served = rep.vaddr;
	return 0;
}

static uint64_t get_dst_id(const struct rc_get *g)
{
	return g->obj ? ps_dst_encode(PS_DST_SHMEM, g->shmid) : (uint64_t)g->pid;
}

int rc_conn_send_get(struct rc_conn *c, const struct rc_get *g, bool now)
{
	struct page_server_iov req = {
		.cmd = g->obj ? PS_IOV_GET_SHMEM : PS_IOV_GET,
		.nr_pages = g->nr_pages,
		.vaddr = g->vaddr,
		.dst_id = get_dst_id(g),
	};
	int ret;

	if (ARRAY_GROW(c->out, c->out_cap, c->out_len + sizeof(req), 64 * sizeof(req)))
		return -ENOMEM;
	ret = fifo_push(c, g);
	if (ret)
		return ret;
	memcpy(c->out + c->out_len, &req, sizeof(req));
	c->out_len += sizeof(req);
	return now ? rc_conn_flush(c) : 0;
}

static int check_header(struct rc_conn *c, const struct rc_get *g)
{
	const struct page_server_iov *h = &c->hdr;

	if (ps_cmd_command(h->cmd) == PS_IOV_ADD_F && (ps_cmd_flags(h->cmd) & PS_PE_PRESENT) &&
	    h->vaddr == g->vaddr && h->dst_id == get_dst_id(g) &&
	    h->nr_pages >= 1 && h->nr_pages <= g->nr_pages)
		return 0;
	pr_err("page server %s (%s connection) answered %s %llu 0x%llx (%llu pages) with "
	       "cmd 0x%x, %llu pages at 0x%llx of dst_id 0x%llx", c->peer, c->role,
	       g->obj ? "GET_SHMEM of shared memory" : "GET task",
	       g->obj ? (unsigned long long)g->shmid : (unsigned long long)g->pid,
	       (unsigned long long)g->vaddr, (unsigned long long)g->nr_pages, h->cmd,
	       (unsigned long long)h->nr_pages, (unsigned long long)h->vaddr,
	       (unsigned long long)h->dst_id);
	return -EPROTO;
}

/* Data or EOF while no GET is waiting. */
static int read_unexpected(struct rc_conn *c)
{
	char byte;
	ssize_t n = c->rlen > c->rpos ? 1 : ps_recv_some(&c->sk, &byte, 1);

	if (n <= 0)
		return n;
	pr_err("page server %s (%s connection) sent data nobody asked for", c->peer, c->role);
	return -EPROTO;
}

/*
 * At least need bytes not handed out in the buffer, reading up to ahead
 * more if the socket has them: 1, 0 (not yet), or what the read returned.
 * need + ahead fits the buffer; what is moved to its start is less than
 * need.
 */
static int fill(struct rc_conn *c, size_t need, size_t ahead)
{
	while (c->rlen - c->rpos < need) {
		size_t want;
		ssize_t n;

		if (c->rpos + need + ahead > RC_BUF_BYTES) {
			memmove(c->buf, c->buf + c->rpos, c->rlen - c->rpos);
			c->rlen -= c->rpos;
			c->rpos = 0;
		}
		want = c->rpos + need + ahead - c->rlen;
		n = ps_recv_some(&c->sk, c->buf + c->rlen, want);
		if (n <= 0)
			return n;
		c->rlen += n;
		c->nr_reads++;
	}
	return 1;
}

/* The bytes of the next slice of the reply being read, at most limit. */
static uint64_t next_slice(const struct rc_conn *c, uint64_t limit)
{
	uint64_t left = c->hdr.nr_pages * PS_PAGE_SIZE - c->data_done;

	return left < limit ? left : limit;
}

bool rc_conn_ready(const struct rc_conn *c)
{
	size_t have = c->rlen - c->rpos;

	if (!c->nr || c->sk.fd < 0)
		return false;
	if (!c->have_hdr)
		return have >= sizeof(c->hdr);
	return have >= next_slice(c, RC_SLICE_PAGES * PS_PAGE_SIZE);
}

int rc_conn_read_slice(struct rc_conn *c, struct rc_slice *s, uint64_t max_pages)
{
	const size_t hdr_len = sizeof(c->hdr);
	uint64_t total, slice;
	int ret;

	if (!c->nr)
		return read_unexpected(c);

	if (!c->have_hdr) {
		ret = fill(c, hdr_len, RC_READAHEAD);
		if (ret <= 0)
			return ret;
		memcpy(&c->hdr, c->buf + c->rpos, hdr_len);
		c->rpos += hdr_len;
		ret = check_header(c, &c->fifo[c->head]);
		if (ret)
			return ret;
		c->have_hdr = true;
		c->data_done = 0;
	}
	if (max_pages < 1 || max_pages > RC_SLICE_PAGES)
		max_pages = RC_SLICE_PAGES;
	total = c->hdr.nr_pages * PS_PAGE_SIZE;
	slice = next_slice(c, max_pages * PS_PAGE_SIZE);
	/* the read that ends the reply takes the next ones' start with it */
	ret = fill(c, slice, c->data_done + slice == total ? RC_READAHEAD : 0);
	if (ret <= 0)
		return ret;
	s->get = c->fifo[c->head];
	s->vaddr = c->hdr.vaddr + c->data_done;
	s->nr_pages = slice / PS_PAGE_SIZE;
	s->data = c->buf + c->rpos;
	c->rpos += slice;
	c->data_done += slice;
	c->nr_reads++;
	s->last = c->data_done == total;
	if (s->last) {
		fifo_pop(c, &s->get);
		c->have_hdr = false;
		c->nr_replies++;
	}
	return 1;
}

/* Replies still owed (to tasks gone meanwhile) are read and dropped. */
static int drain(struct rc_conn *c)
{
	while (c->nr) {
		struct rc_slice sl;
		/* GETs still queued go out: the server has room once we read */
		int ret = rc_conn_flush(c) ?: rc_conn_read_slice(c, &sl, RC_SLICE_PAGES);

		if (ret < 0)
			return ret;
		if (ret == 0) {
			ret = ps_wait_readable(&c->sk, CLOSE_TIMEOUT_MS);
			if (ret)
				return ret;
		}
	}
	return 0;
}

void rc_conn_end_session(struct rc_conn *c)
{
	struct page_server_iov req = { .cmd = PS_IOV_CLOSE };
	int32_t status;
	int ret;

	if (c->sk.fd < 0)
		return;
	ret = drain(c);
	if (!ret)
		ret = rc_conn_flush(c);
	if (!ret)
		ret = ps_write_full(&c->sk, &req, sizeof(req), CLOSE_TIMEOUT_MS);
	if (!ret)
		ret = ps_read_full(&c->sk, &status, sizeof(status), CLOSE_TIMEOUT_MS);
	if (ret)
		pr_warn("page server %s: no answer to CLOSE on the %s connection (%s)",
			c->peer, c->role, strerror(-ret));
	else if (status)
		pr_warn("page server %s: CLOSE on the %s connection answered %d", c->peer,
			c->role, status);
}

/*
 * Bytes of replies waiting for the daemon to read them, on the socket and
 * in the buffer; 0 if none.
 */
static int unread_bytes(const struct rc_conn *c)
{
	int queued = 0;

	if (ioctl(c->sk.fd, SIOCINQ, &queued) || queued < 0)
		queued = 0;
	if (rc_conn_ready(c))
		queued += c->rlen - c->rpos;
	return queued;
}

int rc_conn_watchdog(const struct lazy_daemon *d, struct rc_conn *c, uint64_t now)
{
	const struct rc_get *g = rc_conn_oldest(c);
	bool stalled = false;
	int queued = 0;

	/* a read since the last check, or nothing owed: the cheap way out */
	if (c->sk.fd >= 0 && g && c->nr_reads == c->nr_reads_checked)
		stalled = (queued = unread_bytes(c)) > 0 || ps_sock_pending(&c->sk);
	c->nr_reads_checked = c->nr_reads;
	if (stalled && !c->unread_ns)
		pr_debug("page server %s (%s connection): %d bytes unread since the last check",
			 c->peer, c->role, queued);
	if (!lazy_watchdog_overdue(d, &c->unread_ns, stalled, now))
		return 0;
	pr_err("page server %s (%s connection): replies have waited unread for %.1f s (%d bytes "
	       "here), %zu GET(s) out, the oldest %s %llu 0x%llx (%llu pages): the daemon stopped "
	       "reading the connection, a bug of the daemon, which fails rather than leave "
	       "their pages undelivered", c->peer, c->role, (now - c->unread_ns) / 1e9, queued,
	       c->nr, g->obj ? "GET_SHMEM of shared memory" : "GET task",
	       g->obj ? (unsigned long long)g->shmid : (unsigned long long)g->pid,
	       (unsigned long long)g->vaddr, (unsigned long long)g->nr_pages);
	return -EIO;
}

bool rc_conn_test_stopped(struct rc_conn *c)
{
	if (c->test_stopped)
		return true;
	if (!c->test_stop_at || c->have_hdr || !c->nr || c->nr_replies + 1 < c->test_stop_at)
		return false;
	pr_warn("test hook CRIU_LAZY_TEST_STOP_READING=%llu: the %s connection to page server %s "
		"is read no more", (unsigned long long)c->test_stop_at, c->role, c->peer);
	c->test_stopped = true;
	return true;
}
