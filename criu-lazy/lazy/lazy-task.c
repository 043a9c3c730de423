/*
 * Tasks served by the daemon: creation (from the handshake or a FORK
 * event), the model built from the images, and the end of a task.
 */
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/log.h"
#include "images/image.h"
#include "images/pagemap.h"
#include "images/vma-status.h"
#include "lazy/lazy-daemon.h"
#include "lazy/page-source.h"
#include "mm.pb-c.h"

struct lazy_task *lazy_task_new(struct lazy_daemon *d, pid_t pid, int uffd, struct lazy_task *owner)
{
	struct lazy_task *t = calloc(1, sizeof(*t)), **tail;

	if (!t)
		return NULL;
	t->pid = pid;
	t->uffd = uffd;
	t->owner = owner ? owner : t;
	t->xfer_pages = LAZY_XFER_MIN_PAGES;
	lazy_model_init(&t->model);

	/* keep list order: background delivery goes through it in turn */
	for (tail = &d->tasks; *tail; tail = &(*tail)->next)
		;
	*tail = t;
	d->stats.tasks++;
	return t;
}

/*
 * The lazy ranges come from the images only: the PE_LAZY runs of the
 * pagemap, cut at the boundaries of the lazy-capable VMAs of the mm image
 * (a copy never crosses a VMA).
 */
int lazy_task_load_model(struct lazy_daemon *d, struct lazy_task *t)
{
	struct pagemap_index pi;
	MmEntry *mm;
	int ret;

	ret = img_read_one(d->dirfd, IMG_MM, t->pid, &mm_entry__descriptor, (ProtobufCMessage **)&mm);
	if (ret)
		return ret;
	ret = pagemap_index_load(d->dirfd, IMG_PAGEMAP, t->pid, false, &pi);
	if (ret)
		goto out_mm;

	for (size_t i = 0; i < mm->n_vmas && !ret; i++) {
		const VmaEntry *vma = mm->vmas[i];

		if (vma_is_lazy_capable(vma))
			ret = lazy_model_add_region(&t->model, vma->start, vma->end, vma->start);
	}
	if (ret) {
		pr_err("mm-%d.img: bad VMA list (overlapping or unaligned)", t->pid);
		goto out_pi;
	}
	for (size_t i = 0; i < pi.nr_runs; i++)
		if (pi.runs[i].flags & PE_LAZY)
			lazy_model_mark_pending(&t->model, pi.runs[i].vaddr, pi.runs[i].nr_pages);

	t->nr_lazy_pages = t->model.nr_pending;
	d->stats.pages_lazy += t->model.nr_pending;
	pr_info("task %d: %llu lazy pages in %zu regions", t->pid,
		(unsigned long long)t->model.nr_pending, t->model.nr_regions);
out_pi:
	pagemap_index_free(&pi);
out_mm:
	mm_entry__free_unpacked(mm, NULL);
	return ret;
}

bool lazy_task_done(const struct lazy_task *t)
{
	return t->gone || (!t->model.nr_pending && !t->nr_inflight && !t->nr_deferred &&
			   !t->nr_waiting);
}

/*
 * The task needs nothing more from us: it exited, or has every page.
 * Closing our uffd unregisters what is left, so later faults there (pages
 * that were never dumped) are zero-filled by the kernel itself.
 */
void lazy_task_close(struct lazy_daemon *d, struct lazy_task *t, const char *why)
{
	if (t->uffd < 0)
		return;
	if (t->model.nr_pending)
		pr_info("%s %d %s with %llu pages still lazy", t->forked ? "a child of task" : "task",
			t->pid, why, (unsigned long long)t->model.nr_pending);
	else
		pr_debug("%s %d %s", t->forked ? "a child of task" : "task", t->pid, why);
	d->stats.pages_dropped_exit += t->model.nr_pending;
	for (size_t i = 0; i < t->nr_inflight; i++)
		d->stats.pages_dropped_exit += t->inflight[i].span.nr_pages;
	epoll_ctl(d->epfd, EPOLL_CTL_DEL, t->uffd, NULL);
	close(t->uffd);
	t->uffd = -1;
	t->gone = true;
	lazy_model_free(&t->model);
	t->nr_deferred = 0;
}

void lazy_task_free_all(struct lazy_daemon *d)
{
	while (d->tasks) {
		struct lazy_task *t = d->tasks;

		d->tasks = t->next;
		if (t->uffd >= 0)
			close(t->uffd);
		lazy_model_free(&t->model);
		free(t->inflight);
		free(t->deferred);
		free(t->waiting);
		free(t);
	}
}
