/*
 * Nothing in flight is left behind (Documentation/lazy-pages.md).
 *
 * A thread that faults on a page in flight sleeps in the kernel until the
 * page's copy wakes it.  Should the daemon lose track of a request (a GET
 * a reconnect forgot to send again: soak.md, d6d2cd3), the thread would
 * sleep for ever, and the daemon, with nothing else to do, would sit in
 * epoll_wait for ever or exit 0 with the task still stuck.  So at most every
 * tick, between two turns of the loop, every span in flight and every
 * fault waiting for one must have something that will complete it:
 *   - from the images, nothing may be in flight at all: a request is
 *     served before request() returns, and what it could not copy went
 *     back to the model (source-local.c);
 *   - from a page server, a GET out or queued on a connection still open
 *     (page-source.h's list_owed).  A slow or stopped server holds its GETs on
 *     an open connection; a lost one is opened again, and its jobs asked
 *     for again, within the turn that finds it lost (remote-reconnect.h),
 *     or the daemon fails: neither is an orphan here;
 *   - a fault deferred (t->deferred) is served again at every turn.
 * A GET out counts as owed however long its reply takes; so the source
 * also says when replies have waited unread on one of its connections
 * (page-source.h's watchdog: the daemon stopped reading it).
 * One found with nothing behind it at two checks the grace apart (a turn
 * of the loop always comes between, so a stopped daemon is no orphan) is
 * a bug of the daemon: one error line, and it fails as for any other
 * error: its tasks' pages are poisoned (SIGBUS, never zeros) and it exits
 * non-zero.  Never a blind UFFDIO_WAKE instead: the thread would retry,
 * and a page the daemon counted as delivered would read as zeros.
 */
#include <stdlib.h>

#include "common/array.h"
#include "common/env-number.h"
#include "common/log.h"
#include "common/mono-time.h"
#include "lazy/lazy-daemon.h"
#include "lazy/page-source.h"

#define TICK_MS		200
#define GRACE_MS	2000
#define GRACE_ENV	"CRIU_LAZY_WATCHDOG_MS"		/* for tests */
#define DROP_ENV	"CRIU_LAZY_TEST_DROP_REQUEST"	/* test only */
#define DROP_SHMEM_ENV	"CRIU_LAZY_TEST_DROP_SHMEM_REQUEST"	/* test only */

void lazy_watchdog_init(struct lazy_daemon *d)
{
	struct lazy_watchdog *w = &d->watchdog;
	uint64_t grace_ms = env_number(GRACE_ENV, 3600 * 1000);

	w->grace_ns = (grace_ms ?: GRACE_MS) * 1000000ULL;
	w->drop_request = env_number(DROP_ENV, 1000000000);
	w->last_ns = mono_ns();
	if (w->drop_request)
		pr_warn("test hook %s=%llu: the daemon's request %llu will be forgotten", DROP_ENV,
			(unsigned long long)w->drop_request, (unsigned long long)w->drop_request);
	w->drop_shmem = env_number(DROP_SHMEM_ENV, 1000000000);
	if (w->drop_shmem)
		pr_warn("test hook %s=%llu: the daemon's request %llu of shared memory will be "
			"forgotten", DROP_SHMEM_ENV, (unsigned long long)w->drop_shmem,
			(unsigned long long)w->drop_shmem);
}

bool lazy_watchdog_test_drop(struct lazy_daemon *d, const struct lazy_task *t,
			     const struct lazy_span *span)
{
	struct lazy_watchdog *w = &d->watchdog;

	if (!w->drop_request || ++w->nr_requests != w->drop_request)
		return false;
	pr_warn("test hook %s: request %llu (task %d, 0x%llx-0x%llx) forgotten", DROP_ENV,
		(unsigned long long)w->nr_requests, t->pid, (unsigned long long)span->start,
		(unsigned long long)(span->start + span->nr_pages * LAZY_PAGE_SIZE));
	return true;
}

bool lazy_watchdog_test_drop_shmem(struct lazy_daemon *d, uint64_t shmid, uint64_t off,
				   uint64_t nr_pages)
{
	struct lazy_watchdog *w = &d->watchdog;

	if (!w->drop_shmem || ++w->nr_shmem_requests != w->drop_shmem)
		return false;
	pr_warn("test hook %s: request %llu (shared memory %llu, 0x%llx-0x%llx) forgotten",
		DROP_SHMEM_ENV, (unsigned long long)w->nr_shmem_requests, (unsigned long long)shmid,
		(unsigned long long)off, (unsigned long long)(off + nr_pages * LAZY_PAGE_SIZE));
	return true;
}

bool lazy_watchdog_wanted(const struct lazy_daemon *d)
{
	for (const struct lazy_task *t = d->tasks; t; t = t->next)
		if (!t->gone && (t->nr_inflight || t->nr_waiting))
			return true;
	return lazy_shmem_in_flight(d);
}

/*
 * What the source owes, as one sorted array a check looks up: a scan of
 * every GET out for each span in flight would cost their product (a
 * working set's install has hundreds of each per task).
 */
struct lazy_owed {
	uintptr_t key;			/* the task, or the shared memory object */
	uint64_t start, end;
	uint64_t reach;			/* the highest end of this key's so far */
};

static int add_owed(void *arg, const struct lazy_task *t, const struct lazy_shm_obj *o,
		    uint64_t start, uint64_t end)
{
	struct lazy_watchdog *w = arg;

	if (ARRAY_GROW(w->owed, w->cap_owed, w->nr_owed + 1, 64))
		return -ENOMEM;
	w->owed[w->nr_owed++] = (struct lazy_owed){
		.key = o ? (uintptr_t)o : (uintptr_t)t, .start = start, .end = end,
	};
	return 0;
}

static int cmp_owed(const void *a, const void *b)
{
	const struct lazy_owed *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->start < y->start ? -1 : x->start > y->start;
}

static int index_owed(struct lazy_daemon *d)
{
	struct lazy_watchdog *w = &d->watchdog;
	int ret;

	w->nr_owed = 0;
	if (!d->src->ops->list_owed)
		return 0;
	ret = d->src->ops->list_owed(d->src, add_owed, w);
	if (ret) {
		pr_err("watchdog: no memory for the %zu requests of the page source", w->nr_owed);
		return ret;
	}
	if (w->nr_owed)	/* nothing owed: w->owed may still be NULL */
		qsort(w->owed, w->nr_owed, sizeof(*w->owed), cmp_owed);
	/* ranges may overlap: an address is owed if any before it reaches past it */
	for (size_t i = 0; i < w->nr_owed; i++) {
		struct lazy_owed *e = &w->owed[i];

		e->reach = e->end;
		if (i && e[-1].key == e->key && e[-1].reach > e->reach)
			e->reach = e[-1].reach;
	}
	return 0;
}

bool lazy_watchdog_owes(const struct lazy_daemon *d, const void *key, uint64_t addr)
{
	const struct lazy_watchdog *w = &d->watchdog;
	size_t lo = 0, hi = w->nr_owed;

	/* the last entry at or before (key, addr) */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct lazy_owed *e = &w->owed[mid];

		if (e->key < (uintptr_t)key || (e->key == (uintptr_t)key && e->start <= addr))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo && w->owed[lo - 1].key == (uintptr_t)key && addr < w->owed[lo - 1].reach;
}

bool lazy_watchdog_overdue(const struct lazy_daemon *d, uint64_t *since, bool orphan,
			   uint64_t now)
{
	if (!orphan) {
		*since = 0;
		return false;
	}
	if (!*since) {
		*since = now;
		return false;
	}
	return now - *since >= d->watchdog.grace_ns;
}

static size_t waiters_in(const struct lazy_task *t, const struct lazy_span *s)
{
	uint64_t end = s->img_start + s->nr_pages * LAZY_PAGE_SIZE;
	size_t n = 0;

	for (size_t i = 0; i < t->nr_waiting; i++)
		n += t->waiting[i] >= s->img_start && t->waiting[i] < end;
	return n;
}

static bool in_flight(const struct lazy_task *t, uint64_t img)
{
	for (size_t i = 0; i < t->nr_inflight; i++) {
		const struct lazy_span *s = &t->inflight[i].span;

		if (img >= s->img_start && img < s->img_start + s->nr_pages * LAZY_PAGE_SIZE)
			return true;
	}
	return false;
}

static void report_span(struct lazy_daemon *d, const struct lazy_task *t,
			const struct lazy_req *req, uint64_t now)
{
	const struct lazy_span *s = &req->span;
	size_t waiters = waiters_in(t, s);

	pr_err("task %d: 0x%llx-0x%llx (%llu pages, 0x%llx when dumped) has been in flight for "
	       "%.1f s with %s (%s%s, %zu other faults waiting): a bug of the daemon, which fails "
	       "rather than leave it undelivered", t->pid, (unsigned long long)s->start,
	       (unsigned long long)(s->start + s->nr_pages * LAZY_PAGE_SIZE),
	       (unsigned long long)s->nr_pages, (unsigned long long)s->img_start,
	       (now - req->orphan_ns) / 1e9,
	       d->src->ops->list_owed ? "no GET for it on an open connection to the page server" :
	       "no read of the images to come",
	       req->prefetch ? "a working set's request" : req->urgent ? "a fault's request" :
	       "a background request", req->urgent ? ", its fault waiting" : "", waiters);
}

static int check_task(struct lazy_daemon *d, struct lazy_task *t, uint64_t now)
{
	bool stray = false;
	uint64_t img = 0;

	for (size_t i = 0; i < t->nr_inflight; i++) {
		struct lazy_req *req = &t->inflight[i];

		if (lazy_watchdog_overdue(d, &req->orphan_ns, !lazy_watchdog_owes(d, t, req->span.img_start), now)) {
			report_span(d, t, req, now);
			return -EIO;
		}
	}
	/* a fault waits for a copy in flight (lazy_wait_inflight()): it must be */
	for (size_t i = 0; i < t->nr_waiting && !stray; i++)
		if (!in_flight(t, t->waiting[i])) {
			img = t->waiting[i];
			stray = true;
		}
	if (lazy_watchdog_overdue(d, &t->stray_ns, stray, now)) {
		pr_err("task %d: a fault has waited %.1f s for the page at 0x%llx when dumped, "
		       "which is not in flight: nothing will wake it, a bug of the daemon, which "
		       "fails rather than leave it waiting", t->pid, (now - t->stray_ns) / 1e9,
		       (unsigned long long)img);
		return -EIO;
	}
	return 0;
}

int lazy_watchdog_tick(struct lazy_daemon *d)
{
	uint64_t now = mono_ns();
	int ret = 0;

	if (now - d->watchdog.last_ns < TICK_MS * 1000000ULL)
		return 0;
	d->watchdog.last_ns = now;
	ret = index_owed(d);
	for (struct lazy_task *t = d->tasks; t && !ret; t = t->next)
		if (!t->gone)
			ret = check_task(d, t, now);
	ret = ret ?: lazy_shmem_watchdog(d, now);
	if (!ret && d->src->ops->watchdog)
		ret = d->src->ops->watchdog(d->src, now);
	free(d->watchdog.owed);		/* a few KiB at most, five times a second */
	d->watchdog.owed = NULL;
	d->watchdog.nr_owed = d->watchdog.cap_owed = 0;
	return ret;
}
