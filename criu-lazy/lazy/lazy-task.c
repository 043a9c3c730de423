/*
 * Tasks served by the daemon: creation (from the handshake or a FORK
 * event), the model built from the images, and the end of a task.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/array.h"
#include "common/log.h"
#include "common/pm-scan.h"
#include "images/image.h"
#include "images/pagemap.h"
#include "images/vma-status.h"
#include "lazy/lazy-daemon.h"
#include "lazy/page-source.h"
#include "lazy/prefetch.h"
#include "mm.pb-c.h"

struct lazy_task *lazy_task_new(struct lazy_daemon *d, pid_t pid, pid_t host_pid, int uffd,
				struct lazy_image *img)
{
	struct lazy_task *t = calloc(1, sizeof(*t)), **tail;
	bool forked = img != NULL;	/* a FORK's child reads its parent's image */

	if (!t)
		return NULL;
	if (!img) {
		img = calloc(1, sizeof(*img));
		if (!img) {
			free(t);
			return NULL;
		}
		img->pid = pid;
		img->stats_idx = lazy_stats_proc_add(&d->stats, pid);
	}
	img->users++;
	t->img = img;
	t->pid = pid;
	t->host_pid = host_pid;
	t->proc_pid = forked || host_pid < 0 ? 0 : host_pid;	/* a fork's: lazy-fork-pid.c */
	t->uffd = uffd;
	t->xfer_pages = LAZY_XFER_MIN_PAGES;
	t->bg_pass = d->bg_pass;	/* no catching up for a late one */
	lazy_model_init(&t->model);
	/* not fatal: the guardian only matters if this daemon is killed */
	guardian_hold(&d->guardian, uffd, pid, host_pid, forked, &t->guardian_id);

	/* keep list order: prefetch goes through it in turn */
	for (tail = &d->tasks; *tail; tail = &(*tail)->next)
		;
	*tail = t;
	LAZY_COUNT(d, t, tasks, 1);
	return t;
}

struct lost_pages {
	const struct lazy_region *reg;
	uint64_t *addr;
	size_t nr, cap;
};

/* A run that is there in the task: its pages still pending in reg are lost. */
static int note_lost(uint64_t start, uint64_t end, void *arg)
{
	struct lost_pages *l = arg;
	const struct lazy_region *reg = l->reg;

	for (uint64_t a = start; a < end; a += LAZY_PAGE_SIZE) {
		uint64_t p = (a - reg->start) / LAZY_PAGE_SIZE;

		if (!(reg->pending[p / 64] & (1ULL << (p % 64))))
			continue;
		if (ARRAY_GROW(l->addr, l->cap, l->nr + 1, 16))
			return -ENOMEM;
		l->addr[l->nr++] = a;
	}
	return 0;
}

/*
 * Before we deliver anything, every lazy page must be missing in the task:
 * one that is present already got its contents elsewhere (a huge page of
 * zeros allocated around a page the restore filled before the uffd was
 * registered, lazy-pages.md) and would never fault.  Each such page is
 * named and counted lost (the daemon then exits 1), and left alone.  One
 * PAGEMAP_SCAN per region (common/pm-scan.c): this runs while the rest of
 * the tree is still being restored, on the same CPUs.
 */
static int check_missing(struct lazy_daemon *d, struct lazy_task *t)
{
	struct lazy_model *m = &t->model;
	struct lost_pages lost = { 0 };
	char path[64];
	int fd, ret = 0;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", t->host_pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		pr_warn("task %d: %s: %s: its lazy pages not checked missing", t->pid, path,
			strerror(errno));
		return 0;
	}
	for (size_t r = 0; r < m->nr_regions && !ret; r++) {
		lost.reg = &m->regions[r];
		ret = pm_scan_present(fd, lost.reg->start, lost.reg->end, note_lost, &lost);
	}
	close(fd);
	if (ret && ret != -ENOMEM) {
		pr_warn("task %d: %s: cannot read it (%s): its lazy pages not checked missing",
			t->pid, path, strerror(-ret));
		free(lost.addr);
		return 0;
	}
	for (size_t k = 0; k < lost.nr && !ret; k++) {
		if (k < LAZY_LOST_LINES)
			pr_err("task %d: lazy page 0x%llx was present before we delivered anything "
			       "(a huge page or a write during the restore filled it): lost", t->pid,
			       (unsigned long long)lost.addr[k]);
		else
			pr_warn("task %d: lazy page 0x%llx present before any delivery: lost",
				t->pid, (unsigned long long)lost.addr[k]);
		lazy_model_drop(m, lost.addr[k], lost.addr[k] + LAZY_PAGE_SIZE);
		LAZY_COUNT(d, t, pages_lost, 1);
	}
	free(lost.addr);
	return ret;
}

/*
 * The lazy ranges come from the images only: the PE_LAZY runs of the
 * pagemap, cut at the boundaries of the lazy-capable VMAs of the mm image
 * (a copy never crosses a VMA).
 */
static int build_model(struct lazy_daemon *d, pid_t pid, MmEntry **mmp, struct lazy_model *m)
{
	struct pagemap_index pi;
	MmEntry *mm;
	int ret;

	lazy_model_init(m);
	ret = img_read_one(d->dirfd, IMG_MM, pid, &mm_entry__descriptor, (ProtobufCMessage **)&mm);
	if (ret)
		return ret;
	ret = pagemap_index_load(d->dirfd, IMG_PAGEMAP, pid, false, &pi);
	if (ret)
		goto out_mm;

	/* both lists are sorted: one walk over the runs for all the VMAs */
	for (size_t i = 0, r = 0; i < mm->n_vmas && !ret; i++) {
		const VmaEntry *vma = mm->vmas[i];
		bool new_vma = true;

		if (!vma_is_lazy_capable(vma))
			continue;
		while (r < pi.nr_runs &&
		       pi.runs[r].vaddr + pi.runs[r].nr_pages * LAZY_PAGE_SIZE <= vma->start)
			r++;
		for (size_t k = r; k < pi.nr_runs && pi.runs[k].vaddr < vma->end && !ret; k++) {
			uint64_t lo = pi.runs[k].vaddr, hi = lo + pi.runs[k].nr_pages * LAZY_PAGE_SIZE;

			if (!(pi.runs[k].flags & PE_LAZY))
				continue;
			lo = lo > vma->start ? lo : vma->start;
			hi = hi < vma->end ? hi : vma->end;
			ret = lazy_model_add_run(m, lo, (hi - lo) / LAZY_PAGE_SIZE, lo, new_vma);
			new_vma = false;
		}
	}
	pagemap_index_free(&pi);
	if (ret == -EINVAL)
		pr_err("mm-%d.img: bad VMA list (overlapping or unaligned)", pid);
	if (!ret) {
		*mmp = mm;
		return 0;
	}
	lazy_model_free(m);
out_mm:
	mm_entry__free_unpacked(mm, NULL);
	return ret;
}

/*
 * Build the model of every process of the tree now, before the restore
 * hands any over: the restore reads its images and plans alone first, one
 * CPU is idle then, and at the handovers (while the tree's tasks compete
 * for both CPUs) only what needs the live task is left.  A process without
 * an mm image (a zombie) is skipped quietly; a load that fails was logged
 * and fails that process's handover, as it would have then.  The page
 * source's state of each image too, where it can (the images' pagemap and
 * pages file; a remote source asks its server at the handover), quietly:
 * one that fails is made again at the handover, which says why.  Each
 * handover of the bench tree took the daemon 55 - 65 us, 20 of them that,
 * on a CPU the restore then waited for.
 */
void lazy_preload_models(struct lazy_daemon *d, const pid_t *pids, size_t nr)
{
	d->pre = calloc(nr, sizeof(*d->pre));
	if (!d->pre)
		return;		/* not fatal: each loads at its handover */
	for (size_t i = 0; i < nr; i++) {
		struct lazy_preload *p = &d->pre[d->nr_pre];
		char name[IMG_NAME_MAX];

		if (img_format_name(IMG_MM, pids[i], name, sizeof(name)) ||
		    faccessat(d->dirfd, name, F_OK, 0))
			continue;
		p->pid = pids[i];
		p->ret = build_model(d, p->pid, &p->mm, &p->model);
		if (!p->ret && d->src && d->src->ops->preload) {
			bool was = log_quiet_set(true);

			if (d->src->ops->preload(d->src, p->pid, &p->src_priv))
				p->src_priv = NULL;
			log_quiet_set(was);
		}
		d->nr_pre++;
	}
}

/* The preloaded model of pid, taken out of the cache (1), or 0 if none. */
static int take_preloaded(struct lazy_daemon *d, pid_t pid, MmEntry **mm, struct lazy_model *m,
			  int *ret)
{
	for (size_t i = 0; i < d->nr_pre; i++) {
		struct lazy_preload *p = &d->pre[i];

		if (p->pid != pid || p->taken)
			continue;
		p->taken = true;
		*ret = p->ret;
		*mm = p->mm;
		*m = p->model;
		p->mm = NULL;
		lazy_model_init(&p->model);
		return 1;
	}
	return 0;
}

/* The page source's state of t's image: preloaded, or made now. */
int lazy_task_attach_source(struct lazy_daemon *d, struct lazy_task *t)
{
	for (size_t i = 0; i < d->nr_pre; i++) {
		struct lazy_preload *p = &d->pre[i];

		if (p->pid != t->pid || !p->src_priv)
			continue;
		t->img->src_priv = p->src_priv;
		p->src_priv = NULL;
		return 0;
	}
	return d->src->ops->attach(d->src, t);
}

void lazy_preload_free(struct lazy_daemon *d)
{
	for (size_t i = 0; i < d->nr_pre; i++) {
		if (d->pre[i].mm)
			mm_entry__free_unpacked(d->pre[i].mm, NULL);
		lazy_model_free(&d->pre[i].model);
		if (d->pre[i].src_priv)
			d->src->ops->drop(d->src, d->pre[i].src_priv);
	}
	free(d->pre);
	d->pre = NULL;
	d->nr_pre = 0;
}

int lazy_task_load_model(struct lazy_daemon *d, struct lazy_task *t)
{
	MmEntry *mm = NULL;
	int ret;

	if (!take_preloaded(d, t->pid, &mm, &t->model, &ret))
		ret = build_model(d, t->pid, &mm, &t->model);
	if (ret)
		return ret;
	ret = lazy_shmem_load_task(d, t, mm);
	if (ret)
		goto out;

	t->nr_lazy_pages = t->model.nr_pending;
	LAZY_COUNT(d, t, pages_lazy, t->model.nr_pending);
	ret = check_missing(d, t);
	if (ret)
		goto out;
	pr_info("task %d: %llu lazy pages in %zu regions", t->pid,
		(unsigned long long)t->model.nr_pending, t->model.nr_regions);
out:
	mm_entry__free_unpacked(mm, NULL);
	return ret;
}

bool lazy_task_done(const struct lazy_task *t)
{
	return t->gone || (!t->model.nr_pending && !t->nr_inflight && !t->nr_deferred &&
			   !t->nr_waiting && lazy_shmem_task_done(t));
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
	LAZY_COUNT(d, t, pages_dropped_exit, t->model.nr_pending);
	for (size_t i = 0; i < t->nr_inflight; i++)
		LAZY_COUNT(d, t, pages_dropped_exit, t->inflight[i].span.nr_pages);
	epoll_ctl(d->epfd, EPOLL_CTL_DEL, t->uffd, NULL);
	close(t->uffd);
	guardian_release(&d->guardian, t->guardian_id);
	t->uffd = -1;
	t->gone = true;
	lazy_model_free(&t->model);
	t->nr_deferred = 0;
	t->nr_waiting = 0;
}

static void task_free(struct lazy_daemon *d, struct lazy_task *t)
{
	if (t->uffd >= 0)
		close(t->uffd);
	lazy_model_free(&t->model);
	lazy_shm_free(&t->shm);
	lazy_shmem_forget_task(d, t);
	t->img->users--;
	if (d->src && d->src->ops->release)
		d->src->ops->release(d->src, t);
	if (!t->img->users)
		free(t->img);
	lazy_prefetch_free(t);
	free(t->inflight);
	free(t->deferred);
	free(t->waiting);
	free(t->removers);
	lazy_fork_free(t);
	free(t);
}

void lazy_task_reap(struct lazy_daemon *d)
{
	struct lazy_task **p = &d->tasks;

	while (*p) {
		struct lazy_task *t = *p;

		if (!t->gone) {
			p = &t->next;
			continue;
		}
		*p = t->next;
		if (d->pf_next == t)
			d->pf_next = t->next;
		task_free(d, t);
	}
}

void lazy_task_free_all(struct lazy_daemon *d)
{
	while (d->tasks) {
		struct lazy_task *t = d->tasks;

		d->tasks = t->next;
		task_free(d, t);
	}
	d->pf_next = NULL;
}

uint64_t lazy_task_probe_address(const struct lazy_task *t)
{
	uint64_t addr = 0x10000, moved;	/* the default mmap_min_addr */

	do {
		moved = addr;
		addr = lazy_model_free_address(&t->model, addr);
		/* a zero page there would go into a shared object */
		addr = lazy_shm_free_address(&t->shm, addr);
		for (size_t i = 0; i < t->nr_inflight; i++) {
			const struct lazy_span *s = &t->inflight[i].span;

			if (addr >= s->start && addr < s->start + s->nr_pages * LAZY_PAGE_SIZE)
				addr = s->start + s->nr_pages * LAZY_PAGE_SIZE;
		}
	} while (addr != moved);
	return addr;
}
