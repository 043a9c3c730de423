/*
 * From a span taken out of a task's model to pages in the task: the
 * request to the page source, the in-flight bookkeeping while it is out,
 * and the UFFDIO_COPY when the data is here.
 *
 * In-flight requests are kept by run-time address (events move them) with
 * their dump-time address (replies name it).  A reply may cover only part
 * of a request; lazy_request_done() puts back in the model whatever of a
 * request never arrived, so nothing is lost and nothing is copied twice.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/array.h"
#include "common/log.h"
#include "common/mono-time.h"
#include "lazy/lazy-daemon.h"
#include "lazy/page-source.h"
#include "lazy/prefetch.h"
#include "lazy/uffd.h"

static uint64_t span_img_end(const struct lazy_span *s)
{
	return s->img_start + s->nr_pages * LAZY_PAGE_SIZE;
}

static int inflight_add(struct lazy_task *t, const struct lazy_req *req)
{
	if (ARRAY_GROW(t->inflight, t->cap_inflight, t->nr_inflight + 1, 16))
		return -ENOMEM;
	t->inflight[t->nr_inflight++] = *req;
	return 0;
}

static void inflight_remove(struct lazy_task *t, size_t i)
{
	t->inflight[i] = t->inflight[--t->nr_inflight];
}

/* The in-flight request holding dump-time page img, or -1. */
static long inflight_find_img(const struct lazy_task *t, uint64_t img)
{
	for (size_t i = 0; i < t->nr_inflight; i++) {
		const struct lazy_span *s = &t->inflight[i].span;

		if (img >= s->img_start && img < span_img_end(s))
			return i;
	}
	return -1;
}

/*
 * Take [img, img_end) out of in-flight request i (it lies inside it): what
 * is left on either side stays in flight as one or two requests.
 */
static int inflight_cut(struct lazy_task *t, size_t i, uint64_t img, uint64_t img_end)
{
	struct lazy_req req = t->inflight[i], right = req;
	uint64_t end = span_img_end(&req.span);

	inflight_remove(t, i);
	if (img > req.span.img_start) {
		req.span.nr_pages = (img - req.span.img_start) / LAZY_PAGE_SIZE;
		if (inflight_add(t, &req))
			return -ENOMEM;
	}
	if (img_end < end) {
		right.span.start += img_end - right.span.img_start;
		right.span.img_start = img_end;
		right.span.nr_pages = (end - img_end) / LAZY_PAGE_SIZE;
		if (inflight_add(t, &right))
			return -ENOMEM;
	}
	return 0;
}

static int waiting_add(struct lazy_task *t, uint64_t img)
{
	if (ARRAY_GROW(t->waiting, t->cap_waiting, t->nr_waiting + 1, 16))
		return -ENOMEM;
	t->waiting[t->nr_waiting++] = img;
	return 0;
}

/*
 * Waiters whose page lies in the dump-time range [lo, hi) stop waiting:
 * with span given, the page went back to the model and the fault is served
 * again (at the page's current address); without, it was copied (the copy
 * woke the thread) or dropped (the event's wake did).
 */
static int waiting_release(struct lazy_task *t, uint64_t lo, uint64_t hi,
			   const struct lazy_span *span)
{
	size_t i = 0;

	while (i < t->nr_waiting) {
		uint64_t img = t->waiting[i];

		if (img < lo || img >= hi) {
			i++;
			continue;
		}
		t->waiting[i] = t->waiting[--t->nr_waiting];
		if (span && lazy_defer_fault(t, span->start + (img - span->img_start)))
			return -ENOMEM;
	}
	return 0;
}

/* Split in-flight request i at run-time address addr (strictly inside). */
static int inflight_split(struct lazy_task *t, size_t i, uint64_t addr)
{
	struct lazy_req right = t->inflight[i];
	uint64_t left_pages = (addr - right.span.start) / LAZY_PAGE_SIZE;

	right.span.start = addr;
	right.span.img_start += left_pages * LAZY_PAGE_SIZE;
	right.span.nr_pages -= left_pages;
	t->inflight[i].span.nr_pages = left_pages;
	return inflight_add(t, &right);
}

static uint64_t span_end(const struct lazy_span *s)
{
	return s->start + s->nr_pages * LAZY_PAGE_SIZE;
}

int lazy_inflight_drop(struct lazy_task *t, uint64_t start, uint64_t end, uint64_t *dropped)
{
	size_t i = 0;

	while (i < t->nr_inflight) {
		struct lazy_span s = t->inflight[i].span;
		uint64_t lo, hi;

		if (s.start >= end || span_end(&s) <= start) {
			i++;
			continue;
		}
		lo = s.start > start ? s.start : start;
		hi = span_end(&s) < end ? span_end(&s) : end;
		*dropped += (hi - lo) / LAZY_PAGE_SIZE;
		/* entry i is replaced: look at it again */
		if (inflight_cut(t, i, s.img_start + (lo - s.start), s.img_start + (hi - s.start)) ||
		    waiting_release(t, s.img_start + (lo - s.start), s.img_start + (hi - s.start), NULL))
			return -ENOMEM;
	}
	return 0;
}

int lazy_inflight_remap(struct lazy_task *t, uint64_t from, uint64_t to, uint64_t len)
{
	uint64_t end = from + len;

	for (size_t i = 0; i < t->nr_inflight; i++) {
		struct lazy_span *s = &t->inflight[i].span;

		if (s->start < from && span_end(s) > from && inflight_split(t, i, from))
			return -ENOMEM;
	}
	for (size_t i = 0; i < t->nr_inflight; i++) {
		struct lazy_span *s = &t->inflight[i].span;

		if (s->start < end && span_end(s) > end && inflight_split(t, i, end))
			return -ENOMEM;
	}
	for (size_t i = 0; i < t->nr_inflight; i++) {
		struct lazy_span *s = &t->inflight[i].span;

		if (s->start >= from && span_end(s) <= end)
			s->start = s->start - from + to;
	}
	return 0;
}

int lazy_wait_inflight(struct lazy_task *t, uint64_t addr, uint64_t *img)
{
	for (size_t i = 0; i < t->nr_inflight; i++) {
		const struct lazy_span *s = &t->inflight[i].span;

		if (addr >= s->start && addr < span_end(s)) {
			*img = s->img_start + (addr - s->start);
			return waiting_add(t, *img);
		}
	}
	return 1;
}

/* In flight from now on, until its copy or lazy_request_done(). */
static int request(struct lazy_daemon *d, struct lazy_task *t, const struct lazy_req *req)
{
	int ret = inflight_add(t, req);

	if (ret) {
		lazy_model_put_back(&t->model, &req->span);
		return ret;
	}
	/* test only: the watchdog must find it (lazy-watchdog.c) */
	if (lazy_watchdog_test_drop(d, t, &req->span))
		return 0;
	return d->src->ops->request(d->src, t, &req->span, req->urgent);
}

int lazy_request(struct lazy_daemon *d, struct lazy_task *t, const struct lazy_span *span,
		 bool urgent, uint64_t t_ns)
{
	return request(d, t, &(struct lazy_req){ .span = *span, .t_ns = t_ns, .urgent = urgent });
}

int lazy_request_prefetch(struct lazy_daemon *d, struct lazy_task *t, const struct lazy_span *span)
{
	return request(d, t, &(struct lazy_req){ .span = *span, .prefetch = true });
}

bool lazy_inflight_is_prefetch(const struct lazy_task *t, uint64_t addr)
{
	for (size_t i = 0; i < t->nr_inflight; i++) {
		const struct lazy_span *s = &t->inflight[i].span;

		if (addr >= s->start && addr < span_end(s))
			return t->inflight[i].prefetch;
	}
	return false;
}

/* The in-flight request with the lowest dump-time start in [img, img_end), or -1. */
static long inflight_first_in(const struct lazy_task *t, uint64_t img, uint64_t img_end)
{
	long best = -1;

	for (size_t i = 0; i < t->nr_inflight; i++) {
		const struct lazy_span *s = &t->inflight[i].span;

		if (span_img_end(s) > img && s->img_start < img_end &&
		    (best < 0 || s->img_start < t->inflight[best].span.img_start))
			best = i;
	}
	return best;
}

/*
 * [img, img + len) of in-flight request i is settled in the task; existed
 * of its pages were there already (EEXIST) although we held them in
 * flight: something else filled them, they never got their data from us.
 */
static int delivered(struct lazy_daemon *d, struct lazy_task *t, size_t i, uint64_t img,
		     uint64_t len, uint64_t existed, uint64_t first_existed)
{
	const struct lazy_req *req = &t->inflight[i];
	struct lazy_proc_stats *ps = lazy_stats_proc(&d->stats, t->img->stats_idx);
	uint64_t now = mono_ns(), n = len / LAZY_PAGE_SIZE - existed;

	if (existed) {
		LAZY_COUNT(d, t, pages_lost, existed);
		if (d->stats.pages_lost <= LAZY_LOST_LINES)
			pr_err("task %d: %llu lazy page(s) from 0x%llx were present before their data "
			       "came from us (EEXIST): lost", t->pid, (unsigned long long)existed,
			       (unsigned long long)first_existed);
		else
			pr_warn("task %d: %llu lazy page(s) from 0x%llx present before their data: "
				"lost", t->pid, (unsigned long long)existed,
				(unsigned long long)first_existed);
	}
	if (req->prefetch) {
		LAZY_COUNT(d, t, pages_prefetched, n);
		LAZY_COUNT(d, t, prefetch_filled, lazy_prefetch_filled(d, t, img, len));
	} else if (req->urgent) {
		LAZY_COUNT(d, t, pages_fault, n);
		lazy_stats_fault_latency(&d->stats, now - req->t_ns);
	} else {
		LAZY_COUNT(d, t, pages_background, n);
	}
	lazy_stats_delivered(&d->stats, ps, now);
	d->stats.bytes += len;
	if (inflight_cut(t, i, img, img + len) || waiting_release(t, img, img + len, NULL))
		return -ENOMEM;
	return 0;
}

/*
 * A single page of an in-flight request (run-time addr, dump-time img) is
 * in no VMA registered with the task's uffd, and yet no event took it out
 * of the model.  Every event that changes the layout makes the ioctls fail
 * with EAGAIN until it is read, so with messages queued the page is tried
 * again after them.  Otherwise a forked task never had it (MADV_DONTFORK
 * keeps a VMA out of the child), and for any other task it is lost: said
 * loudly, and the daemon fails at the end.
 * Returns 1 when the page is settled, 0 when it stays in flight, or -ENOMEM.
 */
static int page_unreachable(struct lazy_daemon *d, struct lazy_task *t, uint64_t addr,
			    uint64_t img)
{
	long i;

	if (uffd_has_msgs(t->uffd))
		return 0;
	if (t->forked) {
		pr_debug("a child of task %d does not have 0x%llx (not inherited)", t->pid,
			 (unsigned long long)addr);
		LAZY_COUNT(d, t, pages_inherited, -1);
	} else {
		LAZY_COUNT(d, t, pages_lost, 1);
		if (d->stats.pages_lost <= LAZY_LOST_LINES)
			pr_err("task %d: lazy page 0x%llx (0x%llx at dump time) is in no VMA of its "
			       "userfaultfd and no event removed it: lost", t->pid,
			       (unsigned long long)addr, (unsigned long long)img);
		else
			pr_warn("task %d: lazy page 0x%llx (0x%llx at dump time) lost", t->pid,
				(unsigned long long)addr, (unsigned long long)img);
	}
	i = inflight_find_img(t, img);
	if (i >= 0 && (inflight_cut(t, i, img, img + LAZY_PAGE_SIZE) ||
		       waiting_release(t, img, img + LAZY_PAGE_SIZE, NULL)))
		return -ENOMEM;
	/* nobody can wait there, but a thread that does must not sleep for ever */
	return uffd_wake(t->uffd, addr, LAZY_PAGE_SIZE) < 0 ? -EIO : 1;
}

/*
 * Copy what arrived for dump-time [img_start, +nr_pages) into the task, one
 * in-flight request at a time (events may have cut a request in pieces or
 * dropped parts of it).  What is not copied stays in flight: the source
 * fetches it again or lazy_request_done() puts it back in the model, and
 * the threads waiting for it are served again.  -EAGAIN when an urgent
 * copy must wait for events.
 */
int lazy_deliver(struct lazy_daemon *d, struct lazy_task *t, uint64_t img_start,
		 uint64_t nr_pages, const void *data)
{
	uint64_t img = img_start, img_end = img_start + nr_pages * LAZY_PAGE_SIZE;

	while (img < img_end && !t->gone) {
		long i = inflight_first_in(t, img, img_end);
		uint64_t lo, hi, dst, done = 0, existed = 0, first_existed = 0;
		bool urgent;
		int ret, err;

		if (i < 0)	/* dropped by events meanwhile */
			break;
		lo = t->inflight[i].span.img_start > img ? t->inflight[i].span.img_start : img;
		hi = span_img_end(&t->inflight[i].span) < img_end ?
		     span_img_end(&t->inflight[i].span) : img_end;
		dst = t->inflight[i].span.start + (lo - t->inflight[i].span.img_start);
		urgent = t->inflight[i].urgent;

		ret = uffd_fill_counted(t->uffd, UFFD_FILL_COPY, dst,
					(const char *)data + (lo - img_start), hi - lo, &done,
					&existed, &first_existed);
		if (ret < 0)
			return ret;
		if (done && (err = delivered(d, t, i, lo, done, existed, first_existed)))
			return err;
		img = lo + done;

		switch (ret) {
		case UFFD_DONE:
			break;
		case UFFD_RETRY:
			return urgent ? -EAGAIN : 0;
		case UFFD_GONE_TASK:
			lazy_task_close(d, t, "exited");
			return 0;
		case UFFD_GONE_RANGE:
			err = page_unreachable(d, t, dst + done, img);
			if (err <= 0)
				return err ?: (urgent ? -EAGAIN : 0);
			img += LAZY_PAGE_SIZE;
			break;
		}
	}
	return 0;
}

int lazy_request_done(struct lazy_daemon *d, struct lazy_task *t, uint64_t img_start,
		      uint64_t nr_pages)
{
	uint64_t img_end = img_start + nr_pages * LAZY_PAGE_SIZE;
	size_t i = 0;
	int ret = 0;

	/* whatever of this request is still in flight never arrived */
	while (i < t->nr_inflight) {
		struct lazy_span s = t->inflight[i].span;

		if (s.img_start < img_start || span_img_end(&s) > img_end) {
			i++;
			continue;
		}
		if (!t->gone) {
			int err = lazy_model_put_back(&t->model, &s);

			if (err) {
				/* still in flight: poisoned with the rest when the daemon fails */
				ret = err;
				i++;
				continue;
			}
			if (waiting_release(t, s.img_start, span_img_end(&s), &s))
				ret = -ENOMEM;
		}
		inflight_remove(t, i);
	}
	return ret;
}

/*
 * Background delivery shares the bandwidth between the tasks in proportion
 * to the lazy pages each still has (stride scheduling): a chunk of c pages
 * to a task with r left moves its pass on by c / r, and the task with the
 * lowest pass comes next.  The sum of c / r over a task's chunks is about
 * ln(r0 / r), so equal passes mean every task has the same fraction of its
 * pages left: all are complete at about the same time, and at any moment
 * a touch in any process is as likely as in any other to find its page
 * there.  (Round robin per chunk gave each the same pages per turn: small
 * processes were done early while a big one still missed most of its.)
 * A task that comes later (a fork) starts at the pass of the last chunk.
 */
#define PASS_ONE	(1ull << 32)	/* a pass of c / r == 1 */
#define BG_SHARE_STEPS	16	/* a chunk: at most 1/16 of the pages left, or 256 KiB */

static struct lazy_task *lowest_pass(struct lazy_daemon *d, uint64_t step)
{
	struct lazy_task *best = NULL;
	uint64_t now = mono_ns();

	for (struct lazy_task *t = d->tasks; t; t = t->next) {
		if (t->gone || !t->model.nr_pending || t->bg_tried == step ||
		    lazy_prefetch_holds(t, now) || !d->src->ops->can_prefetch(d->src, t))
			continue;
		if (!best || t->bg_pass < best->bg_pass)
			best = t;
	}
	return best;
}

/*
 * One chunk of background delivery for the task with the lowest pass that
 * has something left, its working set installed and room for a request;
 * the chunk grows while nothing interrupts it, but stays at 256 KiB while
 * faults come in (a fault waits for the chunk being copied: a 4 MiB copy
 * takes over 10 ms in a loaded VM, and a task that faults every few ms
 * would spend its time behind them).  Only once the restore has finished,
 * and not with --no-background-fetch.
 */
int lazy_background_step(struct lazy_daemon *d)
{
	uint64_t step = ++d->bg_step, max;
	struct lazy_task *t;

	if (!d->tasks || !d->restore_finished || d->o->no_background)
		return 0;
	max = mono_ns() - d->last_fault_ns < LAZY_FAULTS_ACTIVE_NS ?
	      LAZY_XFER_BUSY_PAGES : LAZY_XFER_MAX_PAGES;
	while ((t = lowest_pass(d, step))) {
		uint64_t left = t->model.nr_pending, n = t->xfer_pages < max ? t->xfer_pages : max;
		struct lazy_span span;

		/* a chunk moves the task's share on by little: once faults stopped
		 * keeping chunks small, a 16 MiB child's next one was 4 MiB, a third
		 * of what it had left, and it was half there with the root at a
		 * quarter (test_lazy_tree under load) */
		if (n > LAZY_XFER_BUSY_PAGES && n > left / BG_SHARE_STEPS)
			n = left / BG_SHARE_STEPS > LAZY_XFER_BUSY_PAGES ? left / BG_SHARE_STEPS :
			    LAZY_XFER_BUSY_PAGES;
		t->bg_tried = step;
		if (!lazy_model_take_next(&t->model, n, &span))
			continue;
		t->bg_pass += span.nr_pages * PASS_ONE / left;
		d->bg_pass = t->bg_pass;
		if (t->xfer_pages < LAZY_XFER_MAX_PAGES)
			t->xfer_pages *= 2;
		return lazy_request(d, t, &span, false, 0) ?: 1;
	}
	return 0;
}
