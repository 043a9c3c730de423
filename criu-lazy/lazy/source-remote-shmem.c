/*
 * Shared memory from the page server (see lazy-shmem-remote.c for the
 * daemon's side): whether the server serves it, GET_SHMEM jobs, and the
 * wait of a REMOVE for its pages.  Part of source-remote.c.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "common/evloop.h"
#include "common/log.h"
#include "common/mono-time.h"
#include "lazy/lazy-daemon.h"
#include "lazy/source-remote-int.h"

#define FEATURES_TIMEOUT_MS	5000

/* A shared memory job: the next GET from offset from, or its end. */
int shm_job_next(struct remote_source *rs, struct rc_get *job, uint64_t from)
{
	if (from < job->job_end)
		return send_next(rs, job, from, (job->job_end - from) / LAZY_PAGE_SIZE);
	lazy_shmem_request_done(rs->src.d, job->obj, job->urgent, job->t,
				(job->job_end - job->job_start) / LAZY_PAGE_SIZE);
	return job->urgent ? 0 : refill_background(rs);
}

int remote_request_shmem(struct page_source *src, struct lazy_shm_obj *o, uint64_t off,
			 uint64_t nr_pages, bool urgent, struct lazy_task *pf)
{
	struct remote_source *rs = to_remote(src);
	struct rc_get job = {
		.t = pf,	/* forgotten with the task (remote_release) */
		.obj = o,
		.shmid = lazy_shmem_id(o),
		.job_start = off,
		.job_end = off + nr_pages * LAZY_PAGE_SIZE,
		.urgent = urgent,
	};

	if (rs->broken)
		return -ECONNRESET;
	if (urgent)
		rs->last_fault_ns = mono_ns();
	return send_next(rs, &job, off, nr_pages);
}

/* Serve our connections alone until done(arg); a stop signal ends the wait. */
int remote_sync(struct page_source *src, bool (*done)(void *arg), void *arg,
		       int timeout_ms)
{
	struct remote_source *rs = to_remote(src);
	struct lazy_daemon *d = src->d;
	uint64_t end = mono_ns() + timeout_ms * 1000000ULL;

	while (!done(arg)) {
		struct rc_conn *c[2] = { &rs->fault, &rs->bg };
		struct pollfd pfd[3] = { { .fd = d->signal_fd, .events = POLLIN } };
		uint64_t now = mono_ns();
		int nfds = 1, ret, sig;

		if (rs->broken)
			return -ECONNRESET;
		if (now >= end)
			return -ETIMEDOUT;
		for (int i = 0; i < 2; i++)
			if (c[i]->sk.fd >= 0)
				pfd[nfds++] = (struct pollfd){ c[i]->sk.fd,
					POLLIN | (rc_conn_wants_out(c[i]) ? POLLOUT : 0), 0 };
		if (!remote_pending(src) &&
		    poll(pfd, nfds, (int)((end - now) / 1000000ULL) + 1) < 0 && errno != EINTR) {
			pr_perror("poll the connections to page server %s", rs->peer);
			return -errno;
		}
		if ((pfd[0].revents & POLLIN) && (sig = evloop_read_signal(d->signal_fd))) {
			pr_err("stopped by signal %d (%s) before every page was delivered", sig,
			       strsignal(sig));
			return -EINTR;
		}
		ret = remote_on_ready(src);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Does the server serve shared memory?  Asked on the background connection
 * only: a server without our commands (CRIU's) resets or closes it, and
 * then everything shares the fault connection, which never saw the
 * question.  0, or a negative errno that fails the daemon.
 */
int ask_features(struct remote_source *rs)
{
	uint64_t served = 0;
	int ret = rc_conn_features(&rs->bg, PS_FEAT_SHMEM, &served, FEATURES_TIMEOUT_MS);

	if (ret == -EPROTO || ret == -ENOMEM)
		return ret;
	if (ret) {
		pr_warn("page server %s %s the background connection at FEATURES (%s): not "
			"criu-lazy's (CRIU's takes one connection only); background transfers share "
			"the fault connection, shared memory comes from the images", rs->peer,
			ret == -ETIMEDOUT ? "did not answer on" : "closed",
			strerror(-ret));
		rc_conn_close(&rs->bg);
		rs->shared = true;
		return 0;
	}
	rs->src.shmem = served & PS_FEAT_SHMEM;
	pr_info("page server %s: shared memory %s", rs->peer,
		rs->src.shmem ? "from it (GET_SHMEM)" : "from the images (it serves none)");
	return 0;
}

