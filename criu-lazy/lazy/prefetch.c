/*
 * Installing the recorded working set ahead of the task's faults.
 *
 * The record is installed in address order (a sorted copy of it), not in
 * the order it was touched: a recorded function reads its pages scattered,
 * so in touch order each page is a copy of its own, and a copy costs as
 * much as several pages of a bulk one (Documentation/benchmarks.md).  But
 * in PF_PARTS parts in touch order, each sorted: what the task touched
 * first goes in first, and it meets fewer pages still to come.  A
 * batch takes the next entries still pending in the task's model (at most
 * PF_BATCH_PAGES) and requests them as runs: pages at most PF_GAP_PAGES
 * apart go in one span together with the pending pages between them (not
 * recorded, but delivered once like any: they leave the model with the
 * span; counted in prefetch_filled): one UFFDIO_COPY for the local source,
 * one GET for a page server.  A remote
 * source keeps up to PF_WINDOW_PAGES of them in flight per task
 * (pipelined GETs on the background connection); the local one copies at
 * once.  The loop serves every queued fault before each batch.
 *
 * A batch that stops early (a copy met pending events: the rest went back
 * to the model) is looked at again from its first entry next time: what it
 * delivered is no longer pending and is skipped.
 */
#include <stdlib.h>

#define LOG_PREFIX "lazy: prefetch: "
#include "common/log.h"
#include "common/mono-time.h"
#include "lazy/lazy-daemon.h"
#include "lazy/page-source.h"
#include "lazy/prefetch.h"

struct pf_page {
	uint64_t addr, img;
};

/* By part of the record, then address. */
static int cmp_img(const void *a, const void *b)
{
	const struct pf_entry *x = a, *y = b;

	if (x->part != y->part)
		return x->part < y->part ? -1 : 1;
	return x->img < y->img ? -1 : x->img > y->img;
}

int lazy_prefetch_attach(struct lazy_daemon *d, struct lazy_task *t)
{
	const struct ws_proc *rec = ws_prior(&d->ws, t->pid);
	struct lazy_prefetch *pf;
	uint64_t expected = 0, addr;

	if (!rec || !rec->nr)
		return 0;
	pf = calloc(1, sizeof(*pf));
	if (!pf)
		return -ENOMEM;
	pf->e = malloc(rec->nr * sizeof(*pf->e));
	if (!pf->e) {
		free(pf);
		return -ENOMEM;
	}
	/* the record is in touch order: its first part goes in first */
	for (size_t i = 0; i < rec->nr; i++)
		pf->e[i] = (struct pf_entry){ .img = rec->e[i].img,
					      .part = i * PF_PARTS / rec->nr };
	qsort(pf->e, rec->nr, sizeof(*pf->e), cmp_img);
	pf->nr = rec->nr;
	/* how many faults the record stands for here: its pages still lazy */
	for (size_t i = 0; i < rec->nr; i++)
		if (lazy_model_find_img(&t->model, rec->e[i].img, &pf->hint, &addr) ||
		    lazy_shmem_img_pending(t, rec->e[i].img))
			expected++;
	pf->hint = 0;
	LAZY_COUNT(d, t, ws_expected, expected);
	t->pf = pf;
	pr_info("task %d: %llu of the %zu recorded pages to install first", t->pid,
		(unsigned long long)expected, rec->nr);
	return 0;
}

void lazy_prefetch_free(struct lazy_task *t)
{
	if (t->pf)
		free(t->pf->e);
	free(t->pf);
	t->pf = NULL;
}

bool lazy_prefetch_left(const struct lazy_task *t)
{
	return t->pf && t->pf->next < t->pf->nr && !t->gone;
}

/*
 * Once the working set is in, a task that does not fault has what it
 * needs, and every background copy into it slows its reads of what it
 * has (2.3x, touch_raw in scripts/bench prefetch); its first fault says
 * the record was not all it needs.
 */
bool lazy_prefetch_holds(const struct lazy_task *t, uint64_t now_ns)
{
	if (!t->pf || t->gone)
		return false;
	if (!t->pf->installed)
		return lazy_prefetch_left(t);
	return !t->pf->faulted && now_ns - t->pf->installed_ns < PF_HOLD_NS;
}

/* Prefetch pages of t in flight (a remote source's GETs not yet copied). */
static uint64_t inflight_pages(const struct lazy_task *t)
{
	uint64_t n = t->pf ? t->pf->shm_out : 0;

	for (size_t i = 0; i < t->nr_inflight; i++)
		if (t->inflight[i].prefetch)
			n += t->inflight[i].span.nr_pages;
	return n;
}

/*
 * A batch goes out when a whole one fits in the window: refilled a few
 * pages at a time as replies come in, batches would hold one or two
 * record pages each and never join their runs.
 */
static bool can_send(const struct lazy_task *t)
{
	return lazy_prefetch_left(t) && inflight_pages(t) + PF_BATCH_PAGES <= PF_WINDOW_PAGES;
}

bool lazy_prefetch_wanted(struct lazy_daemon *d)
{
	bool wanted = false;

	for (struct lazy_task *t = d->tasks; t; t = t->next) {
		wanted |= can_send(t);
		/* every batch requested and copied (a page server's replies too) */
		if (t->pf && !t->pf->installed && !t->gone && t->pf->next == t->pf->nr &&
		    !inflight_pages(t)) {
			t->pf->installed = true;
			t->pf->installed_ns = mono_ns();
			lazy_stats_proc(&d->stats, t->img->stats_idx)->ws_installed_ns = mono_ns();
			pr_info("task %d: working set installed (%.3f s)", t->pid,
				(mono_ns() - d->stats.start_ns) / 1e9);
		}
	}
	return wanted;
}

bool lazy_prefetch_busy(const struct lazy_daemon *d)
{
	for (const struct lazy_task *t = d->tasks; t; t = t->next)
		if (t->pf && !t->pf->installed && !t->gone)
			return true;
	return false;
}

static int cmp_addr(const void *a, const void *b)
{
	const struct pf_page *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/*
 * Would page p join the run of the page before it?  The same test as
 * request_runs() makes, less the span limit: what a batch costs is counted
 * with it.
 */
static bool joins(const struct pf_page *prev, const struct pf_page *p)
{
	return p->addr > prev->addr &&
	       p->addr - prev->addr <= (PF_GAP_PAGES + 1) * LAZY_PAGE_SIZE &&
	       p->img - prev->img == p->addr - prev->addr;
}

/*
 * Request pages[0..n) (sorted, pending) as runs, short gaps filled.  1 when
 * all went out (or were copied), 0 when a copy stopped early (its rest is
 * pending again).
 */
static int request_runs(struct lazy_daemon *d, struct lazy_task *t, const struct pf_page *pages,
			size_t n)
{
	for (size_t i = 0, j; i < n && !t->gone; i = j) {
		struct lazy_span span;
		uint64_t last;
		int ret;

		for (j = i + 1; j < n; j++)
			if (pages[j].addr - pages[i].addr >= PF_SPAN_MAX * LAZY_PAGE_SIZE ||
			    !joins(&pages[j - 1], &pages[j]))
				break;
		/*
		 * A run that crosses regions (two VMAs side by side), or whose gap
		 * holds a page no longer pending, goes page by page.
		 */
		if (!lazy_model_take_range(&t->model, pages[i].addr,
					   (pages[j - 1].addr - pages[i].addr) / LAZY_PAGE_SIZE + 1,
					   &span)) {
			if (!lazy_model_take_range(&t->model, pages[i].addr, 1, &span))
				continue;	/* taken meanwhile: not possible within a batch */
			j = i + 1;
		}
		last = span.start + (span.nr_pages - 1) * LAZY_PAGE_SIZE;
		ret = lazy_request_prefetch(d, t, &span);
		if (ret)
			return ret;
		if (!t->gone && lazy_model_is_pending(&t->model, last))
			return 0;
	}
	return 1;
}

/*
 * The next record pages still pending, as many as their runs fit in room:
 * a page that joins the one before costs the gap it fills too, so a batch
 * asks for at most room pages (a remote window's worth) and never cuts a
 * run that would have fitted.
 */
static int batch(struct lazy_daemon *d, struct lazy_task *t)
{
	struct lazy_prefetch *pf = t->pf;
	struct pf_page pages[PF_BATCH_PAGES];
	uint64_t room = PF_WINDOW_PAGES - inflight_pages(t), cost = 0, addr;
	size_t n = 0, scanned = 0, first = pf->next;
	struct lazy_shm_pf_run run = { 0 };
	int ret;

	if (room > PF_BATCH_PAGES)
		room = PF_BATCH_PAGES;
	while (pf->next < pf->nr && scanned++ < PF_SCAN_MAX && cost < room) {
		uint64_t img = pf->e[pf->next].img, c = 1;
		struct pf_page p;

		if (!lazy_model_find_img(&t->model, img, &pf->hint, &addr)) {
			/* shared memory: from the images into its object at once, a
			 * window a copy; from a page server in runs of windows */
			ret = lazy_shmem_prefetch(d, t, img, &run);
			if (ret < 0)
				return ret;
			cost += ret;
			pf->next++;
			continue;
		}
		p = (struct pf_page){ .addr = addr, .img = img };
		if (n && joins(&pages[n - 1], &p))
			c = (p.addr - pages[n - 1].addr) / LAZY_PAGE_SIZE;
		if (n && cost + c > room)
			break;
		cost += c;
		pages[n++] = p;
		pf->next++;
	}
	ret = lazy_shmem_prefetch_flush(d, t, &run);
	if (ret < 0)
		return ret;
	qsort(pages, n, sizeof(pages[0]), cmp_addr);
	ret = request_runs(d, t, pages, n);
	if (ret == 0)
		pf->next = first;	/* events first; this batch again after them */
	return ret;
}

int lazy_prefetch_step(struct lazy_daemon *d)
{
	struct lazy_task *t = d->pf_next ? d->pf_next : d->tasks;
	struct lazy_task *first = t;

	if (!t)
		return 0;
	do {
		struct lazy_task *next = t->next ? t->next : d->tasks;

		if (can_send(t)) {
			d->pf_next = next;
			return batch(d, t);
		}
		t = next;
	} while (t != first);
	return 0;
}

void lazy_prefetch_fault(struct lazy_daemon *d, struct lazy_task *t, uint64_t img, bool late)
{
	if (!ws_proc_has(ws_prior(&d->ws, t->pid), img))
		return;		/* late on a filled page: neither a hit nor a record fault */
	if (late)
		LAZY_COUNT(d, t, prefetch_late, 1);
	LAZY_COUNT(d, t, ws_faulted, 1);
}

void lazy_prefetch_shm_done(struct lazy_task *t, uint64_t nr_pages)
{
	if (t->pf)
		t->pf->shm_out -= nr_pages < t->pf->shm_out ? nr_pages : t->pf->shm_out;
}

uint64_t lazy_prefetch_filled(struct lazy_daemon *d, struct lazy_task *t, uint64_t img,
			      uint64_t len)
{
	const struct ws_proc *rec = ws_prior(&d->ws, t->pid);
	uint64_t n = 0;

	for (uint64_t a = img; a < img + len; a += LAZY_PAGE_SIZE)
		n += !ws_proc_has(rec, a);
	return n;
}
