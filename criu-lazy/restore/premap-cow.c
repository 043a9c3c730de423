/*
 * Copy-on-write between the processes of a tree (runs in the new task).
 *
 * A parent premaps and fills its memory before it forks its children, so
 * each child starts with the parent's premap region, every page shared
 * copy-on-write (a child that compares no page with the parent's, below,
 * is forked before the fill, which it does not need: tree-task.c).  A private VMA of the child that the parent has with the
 * same bounds, kind and file (premap-plan.c decided which) is taken over
 * instead of mapped afresh:
 *
 *   - mremap() moves it from the parent's slot to ours: page tables move,
 *     the pages stay shared; or, where the parent mapped it at its own
 *     address (premap-place.c), it is where it belongs already and stays;
 *   - every page of it that our images do not fill eagerly is dropped
 *     (MADV_DONTNEED): an anonymous page becomes zero again, or missing
 *     for the lazy-pages daemon to fill; a private file page goes back to
 *     the file;
 *   - a page our images fill where the parent filled it too (in a run
 *     of 16 pages or more, premap-plan.c) is compared
 *     with the parent's pages file (what the parent's fill wrote there),
 *     not with the page itself, which we never touch: written only when
 *     it differs (allocated with MADV_POPULATE_WRITE and read in by the
 *     kernel, as premap.c's fills are), so pages neither side wrote
 *     since the fork stay one page in memory, as they were dumped.  A first touch of a page costs
 *     a trip to the hypervisor on a VM like this one (its shadow page
 *     tables), a compare with the page cost one more per page;
 *   - then the rest of the parent's region goes, and the parent's VMAs
 *     in place that are not ours.
 *
 * The child's pages are exactly its images either way: sharing only saves
 * memory, it never decides contents.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "restore/restore.h"
#include "restore/child.h"

/* read and compared at once, on the stack: a page each (every page of the
 * stack we touch first is a copy-on-write fault and a trip to the
 * hypervisor, which 16 pages each cost more than the reads they saved) */
#define CMP_CHUNK	RST_PAGE_SIZE

/* Where the parent has its VMA @k (its memory came to us with the fork). */
static uint64_t parent_at(const struct rst_plan *parent, size_t k)
{
	const struct rst_vma_plan *pv = &parent->vmas[k];

	return pv->at ? pv->at : pv->premap;
}

/* Did we take the parent's VMA @k where it is, in place? */
static bool taken_in_place(const struct rst_plan *plan, size_t k)
{
	for (size_t i = 0; i < plan->nr_vmas; i++)
		if (plan->vmas[i].inherit && plan->vmas[i].inherit_idx == k)
			return plan->vmas[i].at == plan->vmas[i].vma->start;
	return false;
}

/* The parent's VMAs in place that are not ours: its memory, not ours. */
static int unmap_parent_in_place(struct rst_child *c, const struct rst_plan *parent)
{
	for (size_t k = 0; k < parent->nr_vmas; k++) {
		const VmaEntry *v = parent->vmas[k].vma;

		if (parent_at(parent, k) != v->start || taken_in_place(c->plan, k))
			continue;
		if (munmap((void *)(uintptr_t)v->start, v->end - v->start))
			return child_err(c, errno, "task %d: cannot unmap its parent's 0x%llx-0x%llx: %s",
					 c->ri->pid, (unsigned long long)v->start,
					 (unsigned long long)v->end, strerror(errno));
	}
	return 0;
}

int child_premap_inherit(struct rst_child *c)
{
	const struct rst_plan *plan = c->plan, *parent = plan->parent;

	for (size_t i = 0; i < plan->nr_vmas; i++) {
		struct rst_vma_plan *vp = &plan->vmas[i];
		uint64_t len = vp->vma->end - vp->vma->start, from;
		void *p;

		if (!vp->inherit)
			continue;
		from = parent_at(parent, vp->inherit_idx);
		if (from == vp->vma->start) {
			p = (void *)(uintptr_t)from;	/* in place already */
		} else {
			p = mremap((void *)(uintptr_t)from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED,
				   (void *)(uintptr_t)vp->premap);
			if (p == MAP_FAILED)
				return child_err(c, errno, "task %d: cannot take over its parent's copy of "
						 "0x%llx-0x%llx (mremap from 0x%llx): %s", c->ri->pid,
						 (unsigned long long)vp->vma->start,
						 (unsigned long long)vp->vma->end,
						 (unsigned long long)from, strerror(errno));
		}
		vp->at = (uint64_t)(uintptr_t)p;
		if (vp->inherit_prot != vp->premap_prot &&
		    mprotect(p, len, vp->premap_prot))
			return child_err(c, errno, "task %d: mprotect of the inherited 0x%llx-0x%llx: %s",
					 c->ri->pid, (unsigned long long)vp->vma->start,
					 (unsigned long long)vp->vma->end, strerror(errno));
	}
	if (plan->parent_end &&
	    munmap((void *)(uintptr_t)plan->parent_start, plan->parent_end - plan->parent_start))
		return child_err(c, errno, "task %d: cannot unmap its parent's premap region: %s",
				 c->ri->pid, strerror(errno));
	return parent ? unmap_parent_in_place(c, parent) : 0;
}

/* [from, to) of @vp's slot, wherever the VMA is */
static int drop(struct rst_child *c, const struct rst_vma_plan *vp, uint64_t from, uint64_t to)
{
	if (from >= to || !madvise((void *)(uintptr_t)(from - vp->premap + vp->at), to - from,
				   MADV_DONTNEED))
		return 0;
	return child_err(c, errno, "task %d: MADV_DONTNEED of 0x%llx-0x%llx (inherited): %s",
			 c->ri->pid, (unsigned long long)(vp->vma->start + from - vp->premap),
			 (unsigned long long)(vp->vma->start + to - vp->premap), strerror(errno));
}

/* Drop every page of the inherited VMAs that no fill covers (fills and
 * VMAs both ascend by slot address). */
int child_premap_drop(struct rst_child *c)
{
	const struct rst_plan *plan = c->plan;
	size_t f = 0;

	for (size_t i = 0; i < plan->nr_vmas; i++) {
		const struct rst_vma_plan *vp = &plan->vmas[i];
		uint64_t cur = vp->premap, end = vp->premap + (vp->vma->end - vp->vma->start);

		while (f < plan->nr_fills && plan->fills[f].dst < vp->premap)
			f++;
		if (!vp->inherit)
			continue;
		for (; f < plan->nr_fills && plan->fills[f].dst < end; f++) {
			if (drop(c, vp, cur, plan->fills[f].dst))
				return -EIO;
			cur = plan->fills[f].dst + plan->fills[f].len;
		}
		if (drop(c, vp, cur, end))
			return -EIO;
	}
	return 0;
}

static int read_full(struct rst_child *c, int fd, uint32_t pages_id, uint8_t *buf, uint64_t len,
		     uint64_t off)
{
	struct iovec iov = { buf, len };

	return child_pages_read(c, fd, pages_id, &iov, 1, off, len);
}

/* One fill into an inherited VMA, at @at: only the pages that differ from
 * the parent's (in its pages file) are written. */
int child_fill_compare(struct rst_child *c, const struct rst_fill *f, uint64_t at)
{
	uint8_t buf[CMP_CHUNK], theirs[CMP_CHUNK];
	const struct rst_plan *parent = c->plan->parent;
	uint32_t ours = c->ri->pi.pages_id;
	uint64_t done = 0;

	while (done < f->len) {
		uint64_t len = f->len - done < CMP_CHUNK ? f->len - done : CMP_CHUNK;
		uint8_t *dst = (uint8_t *)(uintptr_t)(at + done);

		if (read_full(c, c->pages_fd, ours, buf, len, f->file_off + done) ||
		    read_full(c, parent->pages_fd, parent->pages_id, theirs, len,
			      f->parent_off + done))
			return -EIO;
		for (uint64_t off = 0; off < len; off += RST_PAGE_SIZE) {
			if (!memcmp(theirs + off, buf + off, RST_PAGE_SIZE))
				continue;
			/* as fill_private(): allocated in one call, written by
			 * the kernel (a store of ours was a trap a page here) */
			madvise(dst + off, RST_PAGE_SIZE, MADV_POPULATE_WRITE);
			if (read_full(c, c->pages_fd, ours, dst + off, RST_PAGE_SIZE,
				      f->file_off + done + off))
				return -EIO;
		}
		done += len;
	}
	return 0;
}
