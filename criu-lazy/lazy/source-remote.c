/*
 * Pages from a page server over TCP (lazy-pages --page-server).
 *
 * Two connections: one for faults, one for background transfers.  The
 * server answers each in order but serves both at once, so a fault's GET
 * never waits behind a 4 MiB background reply.  A server that takes only
 * one connection (CRIU's closes its listening socket after the first) is
 * noticed when the background connection fails before its first reply;
 * then everything shares the fault connection, with at most one background
 * GET out at a time, of 64 KiB while faults are coming in, so a fault
 * waits behind at most that much.
 *
 * Each request of the driver is a job: one GET at a time for the part of
 * it still in flight, until none is.  A reply may bring less than asked
 * (the server clamps at the end of a run), and a copy into the task may
 * stop at an event (EAGAIN): what is left goes out as the next GET, so a
 * thread waiting for a page of the job is always woken by its copy.  When
 * nothing of the job is in flight, lazy_request_done() ends it.
 *
 * A lost connection with pages still to deliver is fatal: the daemon says
 * so, the driver poisons what can no longer arrive, and exits non-zero.
 * With --page-server-reconnect SECONDS it is opened again instead, if the
 * server comes back within SECONDS with the same pages (remote-reconnect.h),
 * and what it owed is asked for again.
 *
 * Shared memory comes from the server too when it says it serves it
 * (FEATURES, asked on the background connection only: see ps-proto.h);
 * its jobs are GET_SHMEM of an object's offsets (lazy-shmem-remote.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/env-number.h"
#include "common/log.h"
#include "common/mono-time.h"
#include "common/tls.h"
#include "lazy/lazy-daemon.h"
#include "lazy/page-source.h"
#include "lazy/prefetch.h"
#include "lazy/remote-conn.h"
#include "lazy/remote-reconnect.h"
#include "lazy/source-remote-int.h"
#include "pageserver/ps-io.h"
#include "pageserver/ps-net.h"

#define SHARED_CHUNK_PAGES	16		/* background GETs on a shared connection ... */
#define FAULTS_ACTIVE_NS	(100 * 1000000ULL)	/* ... within this of a fault */
#define FAULT_SLICES_PER_CALL	64		/* per wake-up: fault replies ... */
#define BG_SLICES_PER_CALL	2		/* ... and 512 KiB of background data, */
#define RECONNECT_SPACING_NS	(1000 * 1000000ULL)	/* lost within 1 s of a reconnect: wait first */
#define BG_BUSY_SLICE_PAGES	16		/* 64 KiB within FAULTS_ACTIVE_NS of a fault */
/*
 * Over TLS the server encrypts every reply: with one background GET per
 * task it sat idle at each reply's end until the next GET came, and the
 * two sides' crypto added up instead of overlapping.  Two in flight keep
 * it working (scripts/bench remote --tls: drain TLS / plain 0.45 -> 0.58
 * in one loaded run, Documentation/benchmarks.md).
 */
#define TLS_BG_GETS_PER_TASK	2

/* The connection background GETs go out on. */
static struct rc_conn *bg_conn(struct remote_source *rs)
{
	return rs->shared ? &rs->fault : &rs->bg;
}

static uint64_t pages_left(struct lazy_daemon *d)
{
	uint64_t n = 0;

	for (struct lazy_task *t = d->tasks; t; t = t->next) {
		if (t->gone)
			continue;
		n += t->model.nr_pending;
		for (size_t i = 0; i < t->nr_inflight; i++)
			n += t->inflight[i].span.nr_pages;
	}
	return n + lazy_shmem_pages_left(d);
}

static int update_watch(struct remote_source *rs, struct rc_conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &rs->src };

	if (c->sk.fd < 0 || rs->src.d->epfd < 0)
		return 0;
	if (rc_conn_wants_out(c))
		ev.events |= EPOLLOUT;
	if (ev.events == c->watched)
		return 0;
	if (epoll_ctl(rs->src.d->epfd, c->watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->sk.fd, &ev)) {
		pr_perror("watch the %s connection to page server %s", c->role, rs->peer);
		return -errno;
	}
	c->watched = ev.events;
	return 0;
}

/*
 * The first in-flight span of the job, from its lowest address: where the
 * next GET starts.  False when nothing of the job is in flight any more.
 */
static bool job_next(const struct rc_get *job, uint64_t *vaddr, uint64_t *nr_pages)
{
	const struct lazy_task *t = job->t;
	bool found = false;

	if (!t || t->gone)
		return false;
	for (size_t i = 0; i < t->nr_inflight; i++) {
		const struct lazy_span *s = &t->inflight[i].span;

		if (s->img_start < job->job_start || s->img_start >= job->job_end)
			continue;
		if (!found || s->img_start < *vaddr) {
			*vaddr = s->img_start;
			*nr_pages = s->nr_pages;
			found = true;
		}
	}
	return found;
}

/* Send the next GET of a job on its connection. */
int send_next(struct remote_source *rs, struct rc_get *job, uint64_t vaddr,
		     uint64_t nr_pages)
{
	struct rc_conn *c = job->urgent ? &rs->fault : bg_conn(rs);
	int ret;

	if (c->sk.fd < 0) {
		pr_err("page server %s: the %s connection is closed, %s %llu still needs "
		       "0x%llx (%llu pages)", rs->peer, c->role,
		       job->obj ? "shared memory" : "task",
		       job->obj ? (unsigned long long)job->shmid : (unsigned long long)job->pid,
		       (unsigned long long)vaddr, (unsigned long long)nr_pages);
		rs->broken = true;
		return -ENOTCONN;
	}
	if (nr_pages > RC_MAX_GET_PAGES)
		nr_pages = RC_MAX_GET_PAGES;
	if (!job->urgent && rs->shared && nr_pages > SHARED_CHUNK_PAGES &&
	    mono_ns() - rs->last_fault_ns < FAULTS_ACTIVE_NS)
		nr_pages = SHARED_CHUNK_PAGES;
	job->vaddr = vaddr;
	job->nr_pages = nr_pages;
	/*
	 * A fault's GET goes at once; background ones wait for the end of the
	 * turn (service(), or EPOLLOUT): a working set's batch of a hundred
	 * GETs is one send, not a hundred (each a syscall: a trap to the
	 * hypervisor in the test VM).
	 */
	ret = rc_conn_send_get(c, job, job->urgent);
	if (ret == -ENOMEM)
		return ret;
	if (ret) {
		/* the loss shows on the next read of the connection: reported there */
		pr_debug("GET to %s (%s connection) failed: %d", rs->peer, c->role, ret);
	}
	return update_watch(rs, c);
}

static int remote_request(struct page_source *src, struct lazy_task *t,
			  const struct lazy_span *span, bool urgent)
{
	struct remote_source *rs = to_remote(src);
	struct rc_get job = {
		.t = t,
		.job_start = span->img_start,
		.job_end = span->img_start + span->nr_pages * LAZY_PAGE_SIZE,
		.pid = t->img->pid,
		.urgent = urgent,
	};

	if (rs->broken)
		return -ECONNRESET;
	if (urgent)
		rs->last_fault_ns = mono_ns();
	return send_next(rs, &job, span->img_start, span->nr_pages);
}

/*
 * A background job is done: its successor goes out now, not on the
 * daemon's next idle turn of the loop, so the server is at work on it
 * while the daemon goes back to its events.  One background GET per task
 * at a time is enough: two kept the socket full, which moved the TCP
 * receive work onto the daemon's CPU and drained no faster (scripts/bench
 * remote).  0 or a negative errno: a step's "did one" (1) is no news to the
 * callers, whose loops over jobs stop at anything but 0 (reconnect() and
 * fall_back_to_one() dropped the rest of the jobs they took off a
 * connection after the first that ended here: their pages stayed in
 * flight, never asked for again, and the threads waiting for them waited
 * for ever).
 */
int refill_background(struct remote_source *rs)
{
	int ret;

	if (rs->finishing || rs->broken)
		return 0;
	/* the working set first: its window of GETs kept full */
	do
		ret = lazy_prefetch_step(rs->src.d);
	while (ret > 0);
	if (ret == 0)
		ret = lazy_background_step(rs->src.d);
	return ret < 0 ? ret : 0;
}

/*
 * The next GET of a job, or its end when nothing of it is in flight; 0 or
 * a negative errno (the loops over a lost connection's jobs stop at
 * anything else: refill_background()).
 */
static int continue_job(struct remote_source *rs, struct rc_get *job)
{
	uint64_t vaddr = 0, n = 0;
	int ret = 0;

	if (job->obj)	/* asked again from where its last GET started */
		return shm_job_next(rs, job, job->vaddr);
	if (job_next(job, &vaddr, &n))
		return send_next(rs, job, vaddr, n);
	if (job->t)	/* NULL: the task is freed */
		ret = lazy_request_done(rs->src.d, job->t, job->job_start,
					(job->job_end - job->job_start) / LAZY_PAGE_SIZE);
	return ret ?: job->urgent ? 0 : refill_background(rs);
}

/* A slice of a reply is here: into the task; at the end, the rest of the job. */
static int on_slice(struct remote_source *rs, struct rc_slice *sl)
{
	int ret;

	if (rs->finishing)
		return 0;
	if (sl->get.obj) {
		if (sl->vaddr == sl->get.vaddr)
			rc_fingerprint_note_shmem(&rs->fingerprints, sl->get.shmid, sl->vaddr,
						  sl->data);
		ret = lazy_shmem_deliver(rs->src.d, sl->get.obj, sl->vaddr, sl->nr_pages, sl->data,
					 sl->get.urgent);
		if (ret || !sl->last)
			return ret;
		return shm_job_next(rs, &sl->get, sl->vaddr + sl->nr_pages * LAZY_PAGE_SIZE);
	}
	if (sl->vaddr == sl->get.vaddr)	/* a reply's first page */
		rc_fingerprint_note(&rs->fingerprints, sl->get.pid, sl->vaddr, sl->data);
	if (sl->get.t) {	/* NULL: the task is freed, the data goes nowhere */
		ret = lazy_deliver(rs->src.d, sl->get.t, sl->vaddr, sl->nr_pages, sl->data);
		/* -EAGAIN: events first; the part not copied is still in flight */
		if (ret < 0 && ret != -EAGAIN)
			return ret;
	}
	return sl->last ? continue_job(rs, &sl->get) : 0;
}

/*
 * The background connection was reset before its first reply: CRIU's
 * server does that to every connection but the first when it closes its
 * listening socket.  Everything shares the fault connection from now on.
 */
static int fall_back_to_one(struct remote_source *rs)
{
	struct rc_conn *bg = &rs->bg;
	struct rc_get g;
	int ret = 0;

	pr_warn("page server %s reset the background connection before its first reply: "
		"it takes one connection only, background transfers share the fault connection",
		rs->peer);
	rs->shared = true;
	while (!ret && rc_conn_pop(bg, &g))
		ret = continue_job(rs, &g);
	rc_conn_close(bg);
	return ret;
}

static int reopen_conn(void *arg, struct rc_conn *c, const char *role, char *why, size_t len)
{
	struct remote_source *rs = arg;
	bool logged;

	/*
	 * A handshake that fails is tried again too: a server still starting
	 * or dying closes it half-way.  Each failure is a warning in the log;
	 * the last one is what the error at the end of the time names.
	 */
	return rc_conn_open(c, role, rs->peer, rs->address, rs->port, rs->tls, why, len, &logged);
}

/*
 * --page-server-reconnect: the GETs the lost connection owed are taken off
 * it, the connection is opened again (the server checked), and each job
 * asks again for what of it is still in flight.
 */
static int reconnect(struct remote_source *rs, struct rc_conn *c, int err, uint64_t left)
{
	struct lazy_daemon *d = rs->src.d;
	const char *role = c->role;
	uint64_t t0 = mono_ns(), end_ns, window_ns = d->o->ps_reconnect_s * 1000000000ULL;
	uint64_t reconnected_ns = c->reconnected_ns, reconnect_end_ns = c->reconnect_end_ns;
	size_t nr = c->nr;
	bool again, recent;
	struct rc_get *jobs = NULL;
	int ret = 0;

	if (nr && !(jobs = malloc(nr * sizeof(*jobs)))) {
		rs->broken = true;
		return -ENOMEM;
	}
	for (size_t i = 0; i < nr; i++)
		rc_conn_pop(c, &jobs[i]);
	/*
	 * The same streak: reconnected a short while ago, lost again with
	 * requests out and no reply since (a server that drops the session at
	 * a GET it cannot serve).  Anything else is a new loss, with the whole
	 * time again (a second kill long after the first, an idle connection).
	 */
	again = reconnected_ns && !c->nr_replies && nr && t0 - reconnected_ns < window_ns;
	end_ns = again ? reconnect_end_ns : t0 + window_ns;
	recent = reconnected_ns && t0 - reconnected_ns < RECONNECT_SPACING_NS;
	pr_warn("page server %s: the %s connection %s with %llu pages still to deliver: "
		"reconnecting for up to %.1f s", rs->peer, role,
		err == -EPIPE ? "was closed" : err == -ECONNRESET ? "was reset" : strerror(-err),
		(unsigned long long)left, end_ns > t0 ? (end_ns - t0) / 1e9 : 0.0);
	rc_conn_close(c);
	ret = rc_reconnect(c, role, end_ns, recent, d->signal_fd, left, &rs->fingerprints,
			   reopen_conn, rs);
	if (ret) {
		rs->broken = true;
		free(jobs);
		return ret == -ENOMEM ? ret : -ECONNRESET;
	}
	c->reconnect_end_ns = end_ns;
	c->reconnected_ns = mono_ns();
	d->stats.ps_reconnects++;
	pr_warn("reconnected to page server %s (%s connection) after %.1f s, %u pages checked, "
		"%zu requests sent again", rs->peer, role, (mono_ns() - t0) / 1e9,
		rs->fingerprints.nr, nr);
	for (size_t i = 0; i < nr && !ret; i++)
		ret = continue_job(rs, &jobs[i]);
	free(jobs);
	return ret ?: update_watch(rs, c);
}

/* A connection failed: -EPIPE (EOF), -ECONNRESET, or another read error. */
static int on_conn_lost(struct remote_source *rs, struct rc_conn *c, int err)
{
	const struct rc_get *g = rc_conn_oldest(c);
	uint64_t left = pages_left(rs->src.d);
	char waiting[128] = "";

	if (c == &rs->bg && !rs->shared && !c->nr_replies && err == -ECONNRESET &&
	    ps_peer_alive(rs->fault.sk.fd))
		return fall_back_to_one(rs);
	if (!left && !c->nr) {
		pr_info("page server %s closed the %s connection", rs->peer, c->role);
		rc_conn_close(c);
		return 0;
	}
	if (rs->src.d->o->ps_reconnect_s)
		return reconnect(rs, c, err, left);
	rs->broken = true;
	if (g)
		snprintf(waiting, sizeof(waiting), " (no reply to %s %llu 0x%llx, %llu pages)",
			 g->obj ? "GET_SHMEM of shared memory" : "GET task",
			 g->obj ? (unsigned long long)g->shmid : (unsigned long long)g->pid,
			 (unsigned long long)g->vaddr, (unsigned long long)g->nr_pages);
	if (err == -EPIPE || err == -ECONNRESET)
		pr_err("page server %s %s the connection with %llu pages still to deliver%s",
		       rs->peer, err == -EPIPE ? "closed" : "reset", (unsigned long long)left,
		       waiting);
	else
		pr_err("connection to page server %s failed (%s) with %llu pages still to "
		       "deliver%s", rs->peer, strerror(-err), (unsigned long long)left, waiting);
	return -ECONNRESET;
}

/*
 * Send what waits, take up to max slices of at most slice_pages of
 * replies; 0 or a negative errno.
 */
static int service(struct remote_source *rs, struct rc_conn *c, int max, uint64_t slice_pages)
{
	int ret;

	if (c->sk.fd < 0)
		return 0;
	ret = rc_conn_flush(c);
	if (ret)
		return on_conn_lost(rs, c, ret);
	while (max-- > 0 && c->sk.fd >= 0 && !rc_conn_test_stopped(c)) {
		struct rc_slice sl;

		ret = rc_conn_read_slice(c, &sl, slice_pages);
		if (ret == 0)
			break;
		if (ret == -EPROTO) {
			rs->broken = true;
			return ret;
		}
		if (ret < 0)
			return on_conn_lost(rs, c, ret);
		ret = on_slice(rs, &sl);
		if (ret)
			return ret;
	}
	if (c != bg_conn(rs) && (ret = update_watch(rs, c)))
		return ret;
	/* the GETs the replies' handlers queued go now, in one send */
	c = bg_conn(rs);
	if (c->sk.fd >= 0 && (ret = rc_conn_flush(c)))
		return on_conn_lost(rs, c, ret);
	return update_watch(rs, c);
}

/*
 * Fault replies first; then a slice or two of background data, and back to
 * the loop: a fault waits behind at most that much copying.  While faults
 * come in, one small slice: the next fault is read sooner, at some cost to
 * the drain.
 */
int remote_on_ready(struct page_source *src)
{
	struct remote_source *rs = to_remote(src);
	/*
	 * The working set's replies go in whole: the task faults because it
	 * has caught up with them, and what it wants next is in them.
	 */
	bool faulting = mono_ns() - rs->last_fault_ns < FAULTS_ACTIVE_NS &&
			!lazy_prefetch_busy(src->d);

	return service(rs, &rs->fault, FAULT_SLICES_PER_CALL, RC_SLICE_PAGES) ?:
	       service(rs, &rs->bg, faulting ? 1 : BG_SLICES_PER_CALL,
		       faulting ? BG_BUSY_SLICE_PAGES : RC_SLICE_PAGES) ?:
	       service(rs, &rs->fault, FAULT_SLICES_PER_CALL, RC_SLICE_PAGES);
}

static bool remote_can_prefetch(struct page_source *src, struct lazy_task *t)
{
	struct remote_source *rs = to_remote(src);
	struct rc_conn *c = bg_conn(rs);

	if (rs->broken)
		return false;
	if (rs->shared)
		return c->nr_background == 0;
	unsigned int n = 0, max = rs->tls ? TLS_BG_GETS_PER_TASK : 1;

	for (size_t i = 0; i < c->nr; i++)
		if (c->fifo[(c->head + i) % c->cap].t == t && ++n >= max)
			return false;
	return true;
}

static int remote_attach(struct page_source *src, struct lazy_task *t)
{
	return 0;
}

/* GETs still out for a freed task: their replies are read and dropped. */
static void forget_task(struct rc_conn *c, const struct lazy_task *t)
{
	for (size_t i = 0; i < c->nr; i++) {
		struct rc_get *g = &c->fifo[(c->head + i) % c->cap];

		if (g->t == t)
			g->t = NULL;
	}
}

static void remote_release(struct page_source *src, struct lazy_task *t)
{
	struct remote_source *rs = to_remote(src);

	forget_task(&rs->fault, t);
	forget_task(&rs->bg, t);
}

static int remote_watch(struct page_source *src)
{
	struct remote_source *rs = to_remote(src);

	return update_watch(rs, &rs->fault) ?: update_watch(rs, &rs->bg);
}

int remote_finish(struct page_source *src)
{
	struct remote_source *rs = to_remote(src);

	rs->finishing = true;
	if (!rs->broken && !src->d->failed) {
		rc_conn_end_session(&rs->fault);
		rc_conn_end_session(&rs->bg);
		pr_info("page server %s: %llu + %llu replies", rs->peer,
			(unsigned long long)rs->fault.nr_replies,
			(unsigned long long)rs->bg.nr_replies);
	}
	rc_conn_close(&rs->fault);
	rc_conn_close(&rs->bg);
	tls_creds_free(rs->tls);
	free(rs);
	return 0;
}

/*
 * Replies already read into a connection's buffer, or records the TLS
 * sessions decrypted: epoll cannot announce either.
 */
bool remote_pending(struct page_source *src)
{
	struct remote_source *rs = to_remote(src);

	return rc_conn_ready(&rs->fault) || rc_conn_ready(&rs->bg) ||
	       ps_sock_pending(&rs->fault.sk) || ps_sock_pending(&rs->bg.sk);
}

static const struct page_source_ops remote_ops = {
	.name = "page server",
	.attach = remote_attach,
	.request = remote_request,
	.can_prefetch = remote_can_prefetch,
	.watch = remote_watch,
	.on_ready = remote_on_ready,
	.pending = remote_pending,
	.release = remote_release,
	.finish = remote_finish,
	.request_shmem = remote_request_shmem,
	.sync = remote_sync,
	.list_owed = remote_list_owed,
	.watchdog = remote_watchdog,
};

/*
 * Connect now, before the restore is let in: an unreachable server fails
 * the daemon at once, while no task depends on it yet.
 */
int page_source_remote_new(struct lazy_daemon *d, const char *address, int port,
			   struct page_source **out)
{
	struct remote_source *rs = calloc(1, sizeof(*rs));
	bool v6 = strchr(address, ':') != NULL, logged;
	int ret;

	if (!rs)
		return -ENOMEM;
	if (d->o->tls.enabled) {
		ret = tls_creds_load(&d->o->tls, &rs->tls);
		if (ret) {
			free(rs);
			return ret;
		}
	}
	rs->src.ops = &remote_ops;
	rs->src.d = d;
	rs->fault.sk.fd = rs->bg.sk.fd = -1;
	snprintf(rs->peer, sizeof(rs->peer), "%s%s%s:%d", v6 ? "[" : "", address, v6 ? "]" : "",
		 port);
	rs->address = address;
	rs->port = port;
	ret = rc_conn_open(&rs->fault, "fault", rs->peer, address, port, rs->tls, NULL, 0, &logged);
	if (ret) {
		if (ret != -ENOMEM && ret != -EADDRNOTAVAIL && !logged)
			pr_err("cannot connect to page server %s: %s", rs->peer, strerror(-ret));
		tls_creds_free(rs->tls);
		free(rs);
		return ret;
	}
	/* test only (remote-conn.h) */
	rs->fault.test_stop_at = env_number("CRIU_LAZY_TEST_STOP_READING", UINT32_MAX);
	ret = rc_conn_open(&rs->bg, "background", rs->peer, address, port, rs->tls, NULL, 0, &logged);
	if (ret == -ENOMEM) {
		rc_conn_close(&rs->fault);
		tls_creds_free(rs->tls);
		free(rs);
		return ret;
	}
	if (ret) {
		pr_warn("page server %s refused a second connection (%s): background transfers "
			"share the fault connection", rs->peer,
			logged ? "its TLS handshake failed" : strerror(-ret));
		rs->shared = true;
	} else if ((ret = ask_features(rs)) < 0) {
		remote_finish(&rs->src);
		return ret;
	}
	pr_info("connected to page server %s (%s%s)", rs->peer,
		rs->shared ? "one connection" : "fault and background connections",
		rs->tls ? ", TLS" : "");
	*out = &rs->src;
	return 0;
}
