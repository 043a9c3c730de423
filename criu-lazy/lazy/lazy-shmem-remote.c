/*
 * Lazy shared memory from a page server (lazy-pages --page-server, when
 * the server answers FEATURES with PS_FEAT_SHMEM): the object's pages are
 * asked for by the object's id and offset (GET_SHMEM) and arrive later,
 * so a fault cannot be served at once as from the images (lazy-shmem.c).
 *
 *   - a page asked for is "in flight" (o->inflight) until its data comes:
 *     it is asked for once, however many tasks fault on it meanwhile;
 *   - each fault waits in o->waiters; when the page is copied into the
 *     object (UFFDIO_COPY into our own mapping, as from the images), every
 *     task waiting for it is woken (UFFDIO_WAKE on its uffd);
 *   - a page still pending when its data comes is copied, one that is not
 *     (delivered already: a reply asked for again after a reconnect) is
 *     skipped: each page reaches the object once;
 *   - background: one request of up to 1 MiB per object at a time;
 *   - a working set's pages (lazy-shmem-prefetch.c) are asked for on the
 *     background connection and marked (o->pf) until they come: counted
 *     as prefetched, and a fault that waits for one is late;
 *   - MADV_DONTNEED / MADV_REMOVE: the range's pending pages must be in
 *     the object before the daemon unregisters the range (lazy-events.c),
 *     so they are asked for and the daemon waits for them, serving only
 *     the page source meanwhile (src->ops->sync).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#define LOG_PREFIX "shmem: "
#include "common/array.h"
#include "common/log.h"
#include "common/mono-time.h"
#include "lazy/lazy-daemon.h"
#include "lazy/lazy-shmem-int.h"
#include "lazy/page-source.h"
#include "lazy/prefetch.h"
#include "lazy/uffd.h"

#define REMOVE_WAIT_MS	30000	/* for the pages of a REMOVE to arrive */

int shm_remote_ask(struct lazy_daemon *d, struct lazy_shm_obj *o, uint64_t p, uint64_t n,
		   bool urgent, struct lazy_task *pf)
{
	int ret = 0;

	/* test only: the watchdog must find it (lazy-watchdog.c) */
	if (!lazy_watchdog_test_drop_shmem(d, o->shmid, p * PS, n))
		ret = d->src->ops->request_shmem(d->src, o, p * PS, n, urgent, pf);
	if (ret)
		return ret;
	for (uint64_t q = p; q < p + n; q++) {
		bit_set(o->inflight, q);
		if (pf)
			bit_set(o->pf, q);
	}
	o->nr_inflight += n;
	if (!urgent && !pf)
		o->bg_out++;
	return 0;
}

static int ask(struct lazy_daemon *d, struct lazy_shm_obj *o, uint64_t p, uint64_t n,
	       bool urgent)
{
	return shm_remote_ask(d, o, p, n, urgent, NULL);
}

/* Takes the in-flight marks of page p off: 1 if a working set had asked for it. */
static bool arrived(struct lazy_shm_obj *o, uint64_t p, uint64_t *filled)
{
	bool pf = bit_test(o->pf, p);

	if (bit_test(o->inflight, p)) {
		bit_clear(o->inflight, p);
		o->nr_inflight--;
	}
	*filled += bit_test(o->pf_fill, p);
	bit_clear(o->pf, p);
	bit_clear(o->pf_fill, p);
	return pf;
}

/* The askable run around p inside [lo, hi). */
static void askable_run(const struct lazy_shm_obj *o, uint64_t p, uint64_t lo, uint64_t hi,
			uint64_t *first, uint64_t *n)
{
	uint64_t a = p, b = p + 1;

	if (hi > o->nr_pages)
		hi = o->nr_pages;
	while (a > lo && is_askable(o, a - 1))
		a--;
	while (b < hi && is_askable(o, b))
		b++;
	*first = a;
	*n = b - a;
}

static int add_waiter(struct lazy_shm_obj *o, const struct shm_waiter *w)
{
	if (ARRAY_GROW(o->waiters, o->cap_waiters, o->nr_waiters + 1, 16))
		return -ENOMEM;
	o->waiters[o->nr_waiters++] = *w;
	return 0;
}

int shm_remote_fault(struct lazy_daemon *d, struct lazy_task *t, struct lazy_shm_obj *o,
		     uint64_t addr, uint64_t p, uint64_t t_ns)
{
	uint64_t w = p & ~(uint64_t)(LAZY_FAULT_WINDOW_PAGES - 1), first, n;
	int ret = add_waiter(o, &(struct shm_waiter){ t, addr, p, t_ns });

	if (ret || !is_askable(o, p))
		return ret;	/* on its way already: its copy wakes us */
	askable_run(o, p, w, w + LAZY_FAULT_WINDOW_PAGES, &first, &n);
	return ask(d, o, first, n, true);
}

void shm_wake_waiters(struct lazy_daemon *d, struct lazy_shm_obj *o, uint64_t p, uint64_t n)
{
	for (size_t i = 0; i < o->nr_waiters;) {
		struct shm_waiter *w = &o->waiters[i];

		if (w->p < p || w->p >= p + n) {
			i++;
			continue;
		}
		if (!w->t->gone) {
			int ret = uffd_wake(w->t->uffd, w->addr, PS);

			lazy_stats_fault_latency(&d->stats, mono_ns() - w->t_ns);
			if (ret == UFFD_GONE_TASK)
				lazy_task_close(d, w->t, "exited");
			else if (ret < 0)
				pr_warn("task %d: cannot wake the thread waiting at 0x%" PRIx64,
					w->t->pid, w->addr);
		}
		*w = o->waiters[--o->nr_waiters];
	}
}

int lazy_shmem_deliver(struct lazy_daemon *d, struct lazy_shm_obj *o, uint64_t off,
		       uint64_t nr_pages, const void *data, bool urgent)
{
	uint64_t p0 = off / PS, end = p0 + nr_pages;

	if (off % PS || end > o->nr_pages) {
		pr_err("shared memory %" PRIu64 ": %" PRIu64 " pages came for offset 0x%" PRIx64
		       ", past its %" PRIu64 " pages", o->shmid, nr_pages, off, o->nr_pages);
		return -EPROTO;
	}
	for (uint64_t p = p0; p < end; p++) {
		uint64_t n = 1, done, pf, filled = 0, existed, first, lost_pf;
		int ret;

		pf = arrived(o, p, &filled);
		if (!is_pending(o, p))
			continue;	/* already there: each page once */
		while (p + n < end && is_pending(o, p + n))
			pf += arrived(o, p + n++, &filled);
		/* a pending page there already came from elsewhere: lost */
		ret = uffd_fill_counted(o->uffd, UFFD_FILL_COPY, (uint64_t)(uintptr_t)(o->map + p * PS),
					(const char *)data + (p - p0) * PS, n * PS, &done, &existed,
					&first);
		if (ret != UFFD_DONE) {
			pr_err("shared memory %" PRIu64 ": cannot fill %" PRIu64 " pages at offset 0x%"
			       PRIx64 " (result %d)", o->shmid, n, p * PS, ret);
			return ret < 0 ? ret : -EIO;
		}
		for (uint64_t q = p; q < p + n; q++)
			bit_clear(o->pending, q);
		o->nr_pending -= n;
		if (existed)
			shm_count_lost(d, o, existed, first - (uint64_t)(uintptr_t)o->map);
		/* which of them were a working set's is not known: the others' count first */
		lost_pf = existed > n - pf ? existed - (n - pf) : 0;
		/* a working set's pages are counted as prefetched, whoever waited */
		if (n - pf > existed - lost_pf)
			shm_count(d, o, n - pf - (existed - lost_pf), !urgent);
		if (pf > lost_pf)
			shm_count_prefetch(d, o, pf - lost_pf,
					   filled < pf - lost_pf ? filled : pf - lost_pf);
		p += n - 1;
	}
	shm_wake_waiters(d, o, p0, nr_pages);
	return 0;
}

void lazy_shmem_request_done(struct lazy_daemon *d, struct lazy_shm_obj *o, bool urgent,
			     struct lazy_task *pf, uint64_t nr_pages)
{
	(void)d;
	if (pf)
		lazy_prefetch_shm_done(pf, nr_pages);
	else if (!urgent && o->bg_out)
		o->bg_out--;
}

bool shm_remote_can_background(const struct lazy_shm_obj *o)
{
	return !o->bg_out && o->nr_pending > o->nr_inflight;
}

int shm_remote_background(struct lazy_daemon *d, struct lazy_shm_obj *o, uint64_t max_pages)
{
	uint64_t p, n = 1;

	for (p = o->cursor; p < o->nr_pages && !is_askable(o, p); p++)
		;
	if (p >= o->nr_pages)		/* wrapped: from the start */
		for (p = 0; p < o->nr_pages && !is_askable(o, p); p++)
			;
	if (p >= o->nr_pages)
		return 0;
	while (n < max_pages && is_askable(o, p + n))
		n++;
	o->cursor = p + n;
	return ask(d, o, p, n, false);
}

struct fill_wait {
	const struct lazy_shm_obj *o;
	uint64_t lo, hi;
};

static bool filled(void *arg)
{
	const struct fill_wait *f = arg;

	for (uint64_t p = f->lo; p < f->hi; p++)
		if (is_pending(f->o, p))
			return false;
	return true;
}

int shm_remote_fill(struct lazy_daemon *d, struct lazy_shm_obj *o, uint64_t lo, uint64_t hi)
{
	struct fill_wait f = { o, lo, hi < o->nr_pages ? hi : o->nr_pages };
	int ret = 0;

	for (uint64_t p = f.lo; p < f.hi && !ret; p++) {
		uint64_t first, n;

		if (!is_askable(o, p))
			continue;
		askable_run(o, p, p, f.hi, &first, &n);
		ret = ask(d, o, first, n, true);
		p = first + n - 1;
	}
	if (!ret && !filled(&f))
		ret = d->src->ops->sync(d->src, filled, &f, REMOVE_WAIT_MS);
	if (ret == -ETIMEDOUT)
		pr_err("shared memory %" PRIu64 ": the pages at offsets 0x%" PRIx64 "-0x%" PRIx64
		       " of a discarded range did not arrive within %.1f s", o->shmid, lo * PS,
		       hi * PS, REMOVE_WAIT_MS / 1000.0);
	return ret;
}

void lazy_shmem_forget_task(struct lazy_daemon *d, const struct lazy_task *t)
{
	for (struct lazy_shm_obj *o = d->shm_objs; o; o = o->next)
		for (size_t i = 0; i < o->nr_waiters;)
			if (o->waiters[i].t == t)
				o->waiters[i] = o->waiters[--o->nr_waiters];
			else
				i++;
}

bool lazy_shmem_in_flight(const struct lazy_daemon *d)
{
	for (const struct lazy_shm_obj *o = d->shm_objs; o; o = o->next)
		if (o->remote && (o->nr_inflight || o->nr_waiters))
			return true;
	return false;
}

/* Will a request of the source bring page p of o? */
static bool owed(struct lazy_daemon *d, const struct lazy_shm_obj *o, uint64_t p)
{
	return bit_test(o->inflight, p) && lazy_watchdog_owes(d, o, p * PS);
}

/* The first page of o left behind (a waiter's first): true, *p and the waiting *w. */
static bool orphan(struct lazy_daemon *d, const struct lazy_shm_obj *o, uint64_t *p,
		   const struct shm_waiter **w)
{
	*w = NULL;
	for (size_t i = 0; i < o->nr_waiters; i++)
		if (!o->waiters[i].t->gone && !owed(d, o, o->waiters[i].p)) {
			*w = &o->waiters[i];
			*p = (*w)->p;
			return true;
		}
	for (uint64_t q = 0; o->nr_inflight && q < o->nr_pages; q++) {
		if (!o->inflight[q / 64]) {
			q |= 63;	/* a word of none */
			continue;
		}
		if (bit_test(o->inflight, q) && !owed(d, o, q)) {
			*p = q;
			return true;
		}
	}
	return false;
}

int lazy_shmem_watchdog(struct lazy_daemon *d, uint64_t now)
{
	for (struct lazy_shm_obj *o = d->shm_objs; o; o = o->next) {
		const struct shm_waiter *w;
		uint64_t p = 0;
		bool left;

		if (!o->remote)
			continue;
		left = orphan(d, o, &p, &w);
		if (!lazy_watchdog_overdue(d, &o->orphan_ns, left, now))
			continue;
		if (w)
			pr_err("task %d: a fault at 0x%" PRIx64 " has waited %.1f s for offset 0x%"
			       PRIx64 " of shared memory %" PRIu64 ", with no GET for it on an open "
			       "connection to the page server: a bug of the daemon, which fails "
			       "rather than leave it waiting", w->t->pid, w->addr,
			       (now - o->orphan_ns) / 1e9, p * PS, o->shmid);
		else
			pr_err("shared memory %" PRIu64 ": offset 0x%" PRIx64 " has been in flight "
			       "for %.1f s with no GET for it on an open connection to the page "
			       "server: a bug of the daemon, which fails rather than leave it "
			       "undelivered", o->shmid, p * PS, (now - o->orphan_ns) / 1e9);
		return -EIO;
	}
	return 0;
}
