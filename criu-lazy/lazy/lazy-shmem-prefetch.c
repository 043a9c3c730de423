/*
 * The working set's shared memory from a page server.
 *
 * From the images a recorded page's fault-around window is copied into the
 * object at once (lazy-shmem.c).  From a page server it is asked for, as
 * the private pages of the working set are (lazy/prefetch.c): a batch
 * joins the windows of its recorded pages into runs of an object (the
 * record is sorted by dump-time address, so the windows of one view come
 * in object order) and asks for each run's pages not yet asked for with
 * one GET_SHMEM on the background connection.  A batch costs the pages it
 * asks for, and they count in the task's window of prefetch pages in
 * flight (lazy_prefetch.shm_out) until their request is over.
 *
 * Faults come first all the same: a fault on a page of the window still to
 * be asked for asks for it on the fault connection; one on a page in
 * flight waits for it (and counts as late).  The pages arrive through
 * lazy_shmem_deliver(), which counts the ones a working set asked for
 * (o->pf) as prefetched and those of them not in the record (o->pf_fill)
 * as filled.
 */
#include <inttypes.h>

#define LOG_PREFIX "shmem: prefetch: "
#include "common/log.h"
#include "lazy/lazy-daemon.h"
#include "lazy/lazy-shmem-int.h"
#include "lazy/prefetch.h"

int lazy_shmem_prefetch_flush(struct lazy_daemon *d, struct lazy_task *t,
			      struct lazy_shm_pf_run *run)
{
	struct lazy_shm_obj *o = run->o;
	int ret = 0;

	run->o = NULL;
	if (!o)
		return 0;
	for (uint64_t p = run->lo; p < run->hi && !ret; p++) {
		uint64_t n = 1;

		if (!is_askable(o, p))
			continue;
		while (p + n < run->hi && is_askable(o, p + n))
			n++;
		ret = shm_remote_ask(d, o, p, n, false, t);
		if (!ret)
			t->pf->shm_out += n;
		pr_debug("task %d: shared memory %" PRIu64 ": asked for %" PRIu64 " pages at offset "
			 "0x%" PRIx64, t->pid, o->shmid, n, p * PS);
		p += n - 1;
	}
	return ret;
}

/*
 * Is page q of the window (object page) in t's record through view v?
 * Pages of the object outside the view are not.
 */
static bool recorded(const struct ws_proc *rec, const struct lazy_shm_vma *v, uint64_t q)
{
	uint64_t off = q * PS;

	return off >= v->pgoff && off - v->pgoff < v->end - v->start &&
	       ws_proc_has(rec, v->img_start + (off - v->pgoff));
}

int shm_prefetch_remote(struct lazy_daemon *d, struct lazy_task *t, const struct lazy_shm_vma *v,
			uint64_t w, struct lazy_shm_pf_run *run)
{
	const struct ws_proc *rec = ws_prior(&d->ws, t->pid);
	struct lazy_shm_obj *o = v->obj;
	uint64_t end = w + LAZY_FAULT_WINDOW_PAGES, cost = 0;
	int ret;

	if (end > o->nr_pages)
		end = o->nr_pages;
	/* a window that neither touches nor overlaps the run starts a new one */
	if (run->o && (run->o != o || w > run->hi || end < run->lo)) {
		ret = lazy_shmem_prefetch_flush(d, t, run);
		if (ret)
			return ret;
	}
	for (uint64_t q = w; q < end; q++) {
		if (!is_askable(o, q) || (run->o && q >= run->lo && q < run->hi))
			continue;
		cost++;
		if (!recorded(rec, v, q))
			bit_set(o->pf_fill, q);
	}
	if (!run->o) {
		*run = (struct lazy_shm_pf_run){ .o = o, .lo = w, .hi = end };
	} else {
		if (w < run->lo)
			run->lo = w;
		if (end > run->hi)
			run->hi = end;
	}
	return cost;
}
