/*
 * Lazy shared memory (MAP_SHARED|MAP_ANONYMOUS, /dev/zero, memfds): one
 * model per shmem object, not per task.
 *
 * The restore made each lazy object with its size and no page, and every
 * task registered all its VMAs of it with its userfaultfd in MISSING mode
 * (restore/shmem.c).  A shmem page is either in the object's page cache,
 * then every task that maps it just maps it (no userfault), or not, then a
 * task touching it raises a MISSING fault.  So the object is filled once,
 * here, whichever task faulted:
 *
 *   - we map the object ourselves (/proc/PID/map_files of the first task
 *     that maps it) and register that mapping with a userfaultfd of our own,
 *     MISSING mode; UFFDIO_COPY into it puts a whole page into the page
 *     cache atomically (no task ever sees half a page), and a page already
 *     there fails with EEXIST instead of being overwritten;
 *   - a task's fault at a page still to come: its fault-around window is
 *     copied into our mapping, then the task is woken (UFFDIO_WAKE) and its
 *     access, retried, finds the page in the cache;
 *   - a fault at a page that was never dumped gets a zero page, the same
 *     way; at a page already delivered (for another task, or by the
 *     background, while this fault was queued) just the wake;
 *   - background delivery fills the rest into our mapping, in chunks.
 *
 * Minor faults (UFFDIO_REGISTER_MODE_MINOR, UFFDIO_CONTINUE) are for
 * memory whose page cache is already there and only the page tables are
 * missing (the page cache filled by another way): with the cache empty, as
 * here, only MISSING faults happen, and MINOR registration would make every
 * task fault once more on every page the others or the background had
 * already filled.
 *
 * The counts of an object's pages go to the first process that maps it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_PREFIX "shmem: "
#include "common/log.h"
#include "common/mono-time.h"
#include "images/pagemap.h"
#include "lazy/lazy-daemon.h"
#include "lazy/lazy-shmem-int.h"
#include "lazy/prefetch.h"
#include "lazy/uffd.h"

#define BG_PAGES	256	/* a background chunk: 1 MiB */

enum { FILL_FAULT, FILL_BG, FILL_PREFETCH };	/* who a fill counts for */

void shm_count(struct lazy_daemon *d, const struct lazy_shm_obj *o, uint64_t n, bool bg)
{
	struct lazy_proc_stats *ps = lazy_stats_proc(&d->stats, o->stats_idx);

	if (bg) {
		d->stats.pages_background += n;
		ps->pages_background += n;
	} else {
		d->stats.pages_fault += n;
		ps->pages_fault += n;
	}
	d->stats.bytes += n * PS;
	lazy_stats_delivered(&d->stats, ps, mono_ns());
}

void shm_count_prefetch(struct lazy_daemon *d, const struct lazy_shm_obj *o, uint64_t n,
			uint64_t filled)
{
	struct lazy_proc_stats *ps = lazy_stats_proc(&d->stats, o->stats_idx);

	d->stats.pages_prefetched += n;
	ps->pages_prefetched += n;
	d->stats.prefetch_filled += filled;
	ps->prefetch_filled += filled;
	d->stats.bytes += n * PS;
	lazy_stats_delivered(&d->stats, ps, mono_ns());
}

/*
 * Pages that were in the object although they were still to come from us
 * (EEXIST): something else filled them, they never got their data.
 */
void shm_count_lost(struct lazy_daemon *d, const struct lazy_shm_obj *o, uint64_t n,
		    uint64_t first)
{
	struct lazy_proc_stats *ps = lazy_stats_proc(&d->stats, o->stats_idx);

	d->stats.pages_lost += n;
	ps->pages_lost += n;
	if (d->stats.pages_lost <= LAZY_LOST_LINES)
		pr_err("shared memory %" PRIu64 ": %" PRIu64 " lazy page(s) from offset 0x%" PRIx64
		       " were in the object before their data came from us (EEXIST): lost",
		       o->shmid, n, first);
	else
		pr_warn("shared memory %" PRIu64 ": %" PRIu64 " lazy page(s) from offset 0x%"
			PRIx64 " in the object before their data: lost", o->shmid, n, first);
}

/*
 * Fill the pending pages [p, p + n) of the object (all pending, in one run
 * of the pagemap) from the pages file into the page cache.
 */
static int fill_span(struct lazy_daemon *d, struct lazy_shm_obj *o, uint64_t p, uint64_t n,
		     const struct page_run *run, int how)
{
	const uint8_t *src = o->pages + run->pages_off + (p * PS - run->vaddr);
	uint64_t done, existed = 0, first = 0;
	int ret = uffd_fill_counted(o->uffd, UFFD_FILL_COPY, (uint64_t)(uintptr_t)(o->map + p * PS),
				    src, n * PS, &done, &existed, &first);

	if (ret != UFFD_DONE) {
		pr_err("shared memory %" PRIu64 ": cannot fill %" PRIu64 " pages at offset 0x%" PRIx64
		       " (result %d)", o->shmid, n, p * PS, ret);
		return ret < 0 ? ret : -EIO;
	}
	for (uint64_t q = p; q < p + n; q++)
		o->pending[q / 64] &= ~(1ULL << (q % 64));
	o->nr_pending -= n;
	if (existed)
		shm_count_lost(d, o, existed, first - (uint64_t)(uintptr_t)o->map);
	n -= existed;
	if (how == FILL_PREFETCH)
		shm_count_prefetch(d, o, n, 0);
	else
		shm_count(d, o, n, how == FILL_BG);
	return 0;
}

/* Fill every pending page of [lo, hi), in spans that stay inside one run. */
static int fill_range(struct lazy_daemon *d, struct lazy_shm_obj *o, uint64_t lo, uint64_t hi,
		      int how)
{
	if (hi > o->nr_pages)
		hi = o->nr_pages;
	for (uint64_t p = lo; p < hi; p++) {
		const struct page_run *run;
		uint64_t n = 1, run_end;
		int ret;

		if (!is_pending(o, p))
			continue;
		run = pagemap_index_find(&o->pi, p * PS);
		if (!run) {	/* pending pages come from present runs only */
			pr_err("shared memory %" PRIu64 ": no pages for offset 0x%" PRIx64,
			       o->shmid, p * PS);
			return -EIO;
		}
		run_end = run->vaddr / PS + run->nr_pages;
		while (p + n < hi && p + n < run_end && is_pending(o, p + n))
			n++;
		ret = fill_span(d, o, p, n, run, how);
		if (ret)
			return ret;
		p += n - 1;
	}
	return 0;
}

int lazy_shmem_fault(struct lazy_daemon *d, struct lazy_task *t, uint64_t addr, uint64_t t_ns)
{
	const struct lazy_shm_vma *v = lazy_shm_find(&t->shm, addr);
	struct lazy_shm_obj *o;
	uint64_t p, w, done;
	int ret;

	if (!v)
		return 1;
	o = v->obj;
	addr &= ~(PS - 1);
	p = (v->pgoff + (addr - v->start)) / PS;
	/* a touch of a page still to come: in the working set, by its dump-time address */
	if (is_pending(o, p) &&
	    ws_touch(&d->ws, t->pid, v->img_start + (addr - v->start), t_ns))
		lazy_prefetch_fault(d, t, v->img_start + (addr - v->start), bit_test(o->pf, p));
	if (o->remote && is_pending(o, p))
		return shm_remote_fault(d, t, o, addr, p, t_ns);
	w = p & ~(uint64_t)(LAZY_FAULT_WINDOW_PAGES - 1);
	ret = o->remote ? 0 : fill_range(d, o, w, w + LAZY_FAULT_WINDOW_PAGES, FILL_FAULT);
	if (ret)
		return ret;
	/* never dumped (or filled since: EEXIST is success here) */
	if (p < o->nr_pages) {
		ret = uffd_fill(o->uffd, UFFD_FILL_ZERO, (uint64_t)(uintptr_t)(o->map + p * PS),
				NULL, PS, &done);
		if (ret != UFFD_DONE) {
			pr_err("shared memory %" PRIu64 ": no zero page at offset 0x%" PRIx64,
			       o->shmid, p * PS);
			return ret < 0 ? ret : -EIO;
		}
	}
	/* the page is in the object: the task's retried access maps it */
	ret = uffd_wake(t->uffd, addr, PS);
	lazy_stats_fault_latency(&d->stats, mono_ns() - t_ns);
	if (ret == UFFD_GONE_TASK) {
		lazy_task_close(d, t, "exited");
		return 0;
	}
	return ret < 0 ? -EIO : 0;
}

/*
 * MADV_REMOVE of [lo, hi) of the object: the kernel punches a hole there,
 * so its pending pages will never come (and a fault there gets a zero
 * page); a fault waiting for one is woken to see the hole.
 */
static void drop_range(struct lazy_daemon *d, struct lazy_shm_obj *o, uint64_t lo, uint64_t hi)
{
	uint64_t n = 0;

	if (hi > o->nr_pages)
		hi = o->nr_pages;
	for (uint64_t p = lo; p < hi; p++) {
		if (!is_pending(o, p))
			continue;
		bit_clear(o->pending, p);
		if (o->remote && bit_test(o->inflight, p)) {
			bit_clear(o->inflight, p);	/* its data is skipped on arrival */
			bit_clear(o->pf, p);
			bit_clear(o->pf_fill, p);
			o->nr_inflight--;
		}
		n++;
	}
	o->nr_pending -= n;
	d->stats.pages_dropped_event += n;
	lazy_stats_proc(&d->stats, o->stats_idx)->pages_dropped_event += n;
	if (o->remote && lo < hi)
		shm_wake_waiters(d, o, lo, hi - lo);
	pr_debug("shared memory %" PRIu64 ": offsets 0x%" PRIx64 "-0x%" PRIx64 " punched out, "
		 "%" PRIu64 " pending pages dropped", o->shmid, lo * PS, hi * PS, n);
}

/* The view and object page of dump-time page img of t, if it is still to come. */
static const struct lazy_shm_vma *img_page(const struct lazy_task *t, uint64_t img, uint64_t *p)
{
	const struct lazy_shm_vma *v = lazy_shm_find_img(&t->shm, img);

	if (!v)
		return NULL;
	*p = (v->pgoff + (img - v->img_start)) / PS;
	return is_pending(v->obj, *p) ? v : NULL;
}

bool lazy_shmem_img_pending(const struct lazy_task *t, uint64_t img)
{
	uint64_t p;

	return img_page(t, img, &p) != NULL;
}

/*
 * The record names the first touch of each fault-around window (a fault
 * fills the window, so its other pages never fault): the prefetch fills the
 * whole window too, and counts the pages of it the record lacks as filled.
 * A page server's windows are asked for in runs (lazy-shmem-prefetch.c).
 */
int lazy_shmem_prefetch(struct lazy_daemon *d, struct lazy_task *t, uint64_t img,
			struct lazy_shm_pf_run *run)
{
	const struct ws_proc *rec = ws_prior(&d->ws, t->pid);
	const struct lazy_shm_vma *v;
	struct lazy_proc_stats *ps;
	struct lazy_shm_obj *o;
	uint64_t p, w, filled = 0, before;
	int ret;

	v = img_page(t, img, &p);
	if (!v)
		return 0;
	o = v->obj;
	w = p & ~(uint64_t)(LAZY_FAULT_WINDOW_PAGES - 1);
	if (o->remote)
		return shm_prefetch_remote(d, t, v, w, run);
	for (uint64_t q = w; q < w + LAZY_FAULT_WINDOW_PAGES && q < o->nr_pages; q++) {
		uint64_t off = q * PS;

		if (is_pending(o, q) &&
		    (off < v->pgoff || off - v->pgoff >= v->end - v->start ||
		     !ws_proc_has(rec, v->img_start + (off - v->pgoff))))
			filled++;
	}
	before = o->nr_pending;
	ret = fill_range(d, o, w, w + LAZY_FAULT_WINDOW_PAGES, FILL_PREFETCH);
	if (ret)
		return ret;
	ps = lazy_stats_proc(&d->stats, o->stats_idx);
	d->stats.prefetch_filled += filled;
	ps->prefetch_filled += filled;
	return before - o->nr_pending;
}

/* Is a page of [lo, hi) of o still to come?  *first: the first. */
static bool any_pending(const struct lazy_shm_obj *o, uint64_t lo, uint64_t hi, uint64_t *first)
{
	for (*first = lo; *first < hi && *first < o->nr_pages; (*first)++)
		if (is_pending(o, *first))
			return true;
	return false;
}

int lazy_shmem_remove(struct lazy_daemon *d, struct lazy_task *t, uint64_t start, uint64_t end)
{
	enum lazy_discard kind = lazy_shmem_discard_kind(t, start, end);
	bool punch = kind == LAZY_DISCARD_PUNCH;

	for (size_t i = 0; i < t->shm.nr; i++) {
		const struct lazy_shm_vma *v = &t->shm.vmas[i];
		uint64_t lo = v->start > start ? v->start : start;
		uint64_t hi = v->end < end ? v->end : end;
		uint64_t plo = (v->pgoff + lo - v->start) / PS;
		uint64_t phi = (v->pgoff + hi - v->start + PS - 1) / PS;
		uint64_t first;
		int ret;

		if (lo >= hi)
			continue;
		if (kind == LAZY_DISCARD_UNKNOWN && any_pending(v->obj, plo, phi, &first)) {
			/* a fill or a drop could be wrong memory: fail; failing
			 * already, the pages stay to come (poisoned) */
			if (d->failed)
				continue;
			if (t->forked && !t->proc_pid) {
				pr_err("a child of task %d: REMOVE event 0x%" PRIx64 "-0x%" PRIx64
				       " of shared memory %" PRIu64 " (pages still to come from offset "
				       "0x%" PRIx64 "): its pid is not known (said above), so its "
				       "threads could not say whether it was MADV_DONTNEED (data kept) "
				       "or MADV_REMOVE (a hole)", t->pid, start, end, v->obj->shmid,
				       first * PS);
				return -EIO;
			}
			pr_err("task %d: REMOVE event 0x%" PRIx64 "-0x%" PRIx64 " of shared memory %"
			       PRIu64 " (pages still to come from offset 0x%" PRIx64 "): its threads "
			       "seen in madvise before the read do not say whether it was "
			       "MADV_DONTNEED (data kept) or MADV_REMOVE (a hole)", t->pid, start,
			       end, v->obj->shmid, first * PS);
			return -EIO;
		}
		if (punch) {
			drop_range(d, v->obj, plo, phi);
			continue;
		}
		ret = v->obj->remote ? shm_remote_fill(d, v->obj, plo, phi) :
				       fill_range(d, v->obj, plo, phi, FILL_FAULT);
		if (ret)
			return ret;
	}
	return 0;
}

bool lazy_shmem_task_done(const struct lazy_task *t)
{
	for (size_t i = 0; i < t->shm.nr; i++)
		if (t->shm.vmas[i].obj->nr_pending)
			return false;
	return true;
}

/* Does a live task still map @o? */
static bool obj_wanted(const struct lazy_daemon *d, const struct lazy_shm_obj *o)
{
	if (!o->nr_pending)
		return false;
	for (const struct lazy_task *t = d->tasks; t; t = t->next)
		for (size_t i = 0; !t->gone && i < t->shm.nr; i++)
			if (t->shm.vmas[i].obj == o)
				return true;
	return false;
}

bool lazy_shmem_background_wanted(struct lazy_daemon *d)
{
	for (const struct lazy_shm_obj *o = d->shm_objs; o; o = o->next)
		if (obj_wanted(d, o) && (!o->remote || shm_remote_can_background(o)))
			return true;
	return false;
}

int lazy_shmem_background_step(struct lazy_daemon *d)
{
	for (struct lazy_shm_obj *o = d->shm_objs; o; o = o->next) {
		uint64_t p;

		if (!obj_wanted(d, o))
			continue;
		if (o->remote) {
			if (!shm_remote_can_background(o))
				continue;
			return shm_remote_background(d, o, BG_PAGES) ?: 1;
		}
		for (p = o->cursor; p < o->nr_pages && !is_pending(o, p); p++)
			;
		if (p == o->nr_pages) {		/* wrapped: from the start */
			for (p = 0; p < o->nr_pages && !is_pending(o, p); p++)
				;
		}
		o->cursor = p + BG_PAGES;
		return fill_range(d, o, p, p + BG_PAGES, FILL_BG) ?: 1;
	}
	return 0;
}

/*
 * One walk over @t's views of shared memory: every page its object still
 * lacks poisoned.  A pending event fails the ioctl (EAGAIN): UFFD_RETRY,
 * the walk stops there for the events to be read (they may move or cut
 * the views).  @missed: pages that could not be poisoned.
 */
static int poison_walk(struct lazy_task *t, uint64_t *poisoned, uint64_t *missed)
{
	*missed = 0;
	for (size_t i = 0; !t->gone && i < t->shm.nr; i++) {
		const struct lazy_shm_vma *v = &t->shm.vmas[i];

		for (uint64_t a = v->start; a < v->end; a += PS) {
			uint64_t done, existed, first;
			int ret;

			if (!is_pending(v->obj, (v->pgoff + a - v->start) / PS))
				continue;
			/* (poisoned by an earlier walk: there already, not counted) */
			ret = uffd_fill_counted(t->uffd, UFFD_FILL_POISON, a, NULL, PS, &done,
						&existed, &first);
			if (ret == UFFD_RETRY)
				return ret;
			if (ret == UFFD_GONE_TASK) {
				pr_info("task %d ended while its shared memory was poisoned",
					t->pid);
				return 0;
			}
			if (ret == UFFD_DONE)
				*poisoned += !existed;
			else if (ret != UFFD_GONE_RANGE)
				++*missed;
		}
	}
	return 0;
}

/* What @t's views still lack (given up on: none of it poisoned for sure). */
static uint64_t pending_in_views(const struct lazy_task *t)
{
	uint64_t n = 0;

	for (size_t i = 0; i < t->shm.nr; i++) {
		const struct lazy_shm_vma *v = &t->shm.vmas[i];

		for (uint64_t a = v->start; a < v->end; a += PS)
			n += is_pending(v->obj, (v->pgoff + a - v->start) / PS);
	}
	return n;
}

uint64_t lazy_shmem_poison_task(struct lazy_daemon *d, struct lazy_task *t)
{
	uint64_t poisoned = 0, missed = 0;
	int tries = 0;

	/* the events read, as for private memory: the walk again from the start */
	while (poison_walk(t, &poisoned, &missed) == UFFD_RETRY) {
		if (lazy_poison_await_events(d, t, &tries) < 0) {
			missed = pending_in_views(t);
			break;
		}
	}
	if (poisoned)
		pr_warn("task %d: %" PRIu64 " pages of shared memory that can no longer "
			"arrive will raise SIGBUS", t->pid, poisoned);
	if (missed)
		pr_warn("task %d: %" PRIu64 " pages of shared memory could not be poisoned "
			"and will read what the object has there (zeros)", t->pid, missed);
	return poisoned;
}

uint64_t lazy_shmem_id(const struct lazy_shm_obj *o)
{
	return o->shmid;
}

uint64_t lazy_shmem_pages_left(const struct lazy_daemon *d)
{
	uint64_t n = 0;

	for (const struct lazy_shm_obj *o = d->shm_objs; o; o = o->next)
		n += o->nr_pending;
	return n;
}

void lazy_shmem_finish(struct lazy_daemon *d)
{
	for (struct lazy_shm_obj *o = d->shm_objs; o; o = o->next) {
		if (!o->nr_pending)
			continue;
		pr_info("shared memory %" PRIu64 ": %" PRIu64 " pages no task maps any more",
			o->shmid, o->nr_pending);
		d->stats.pages_dropped_exit += o->nr_pending;
		lazy_stats_proc(&d->stats, o->stats_idx)->pages_dropped_exit += o->nr_pending;
		o->nr_pending = 0;
	}
}
