/*
 * VMAs mapped at their own address from the start (the plan's side, and
 * where a fill goes once the task has mapped its VMAs).
 *
 * Every VMA has a slot in the premap region, which the blob then moves to
 * its address with mremap(): page tables moved and a TLB flush per VMA,
 * which traps to the hypervisor on this kind of VM, and a child's
 * inherited VMA moved twice (out of its parent's slot into its own, then
 * into place).  Where the VMA's own address is free in the task from the
 * start (nothing of ours there: the task is a fork of us), it is mapped
 * there at once and never moves; a child inherits such a VMA of its
 * parent right where it belongs.  The blob keeps these VMAs when it
 * unmaps our old address space.
 *
 * What is free is decided here, from our maps read once; what the restore
 * maps later (a buffer, a region of another task) is found in the task:
 * MAP_FIXED_NOREPLACE fails there, and the VMA goes to its slot after all
 * (premap.c).  A VMA goes in place only when:
 *
 *   - it is private anonymous or a file mapping (not shared memory, SysV,
 *     a memfd, or anything special), not growsdown (the kernel keeps a
 *     guard gap below a stack), locked, hugetlb or droppable;
 *   - it stays a page away from each of our mappings (no merge with one)
 *     and far below our stack (which the task's C part still grows);
 *   - it is clear of our premap and blob regions and of the parent's,
 *     and of the parent's VMAs in place that we do not inherit (if we
 *     inherit any: else we are forked before the parent maps them; an
 *     older ancestor's region, which we may still hold then, is found in
 *     the task as above);
 *   - no neighbour touching it is in place too with the same premap
 *     protection, kind, file (contiguous) and early advice: the kernel
 *     would merge the two at once, where slots keep them apart until each
 *     is filled (its own anon_vma); with one of them moved by the blob,
 *     they merge or not exactly as before.  (plan_fills() decided the
 *     protections.)  Advice that differs keeps them apart for good: the
 *     task applies it as it maps each in place (rst_vma_early_advice()),
 *     and the dumped task had them apart for the same reason.  A thread
 *     stack (MAP_STACK: no huge pages) right below a big heap region is
 *     the common case: moved, that region cost the bench tree's every
 *     process an mremap() of 256 MiB, 0.1 ms.
 *
 * A VMA the child inherits from a parent that mapped it in place is in
 * place in the child too: the fork put it there.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "common/proc-maps.h"
#include "images/vma-status.h"
#include "restore/restore.h"
#include "restore/plan.h"

#define STACK_ROOM	(8ull << 20)	/* below our stack: the C part's growth */

/*
 * The advice that only marks a VMA: how to read ahead, no huge pages, not
 * in a core dump.  Not the advice that changes what a fork passes on
 * (DONTFORK, WIPEONFORK: our children are forked after the premap), puts
 * pages in (HUGEPAGE: a huge page of zeros around a fill) or may fail for
 * want of a kernel feature (MERGEABLE): those wait for the blob.
 */
#define EARLY_ADVICE	((1ull << MADV_RANDOM) | (1ull << MADV_SEQUENTIAL) | \
			 (1ull << MADV_NOHUGEPAGE) | (1ull << MADV_DONTDUMP))

uint64_t rst_vma_early_advice(const VmaEntry *v)
{
	return v->has_madv ? v->madv & EARLY_ADVICE : 0;
}

static bool overlaps(uint64_t s1, uint64_t e1, uint64_t s2, uint64_t e2)
{
	return s1 < e2 && s2 < e1;
}

static bool kind_fits(const struct rst_vma_plan *vp)
{
	const VmaEntry *v = vp->vma;

	if (vp->shm || (v->flags & (MAP_GROWSDOWN | MAP_LOCKED | MAP_HUGETLB | MAP_DROPPABLE)))
		return false;
	if (v->status & (VMA_AREA_SYSVIPC | VMA_AREA_MEMFD | VMA_AREA_SOCKET | VMA_AREA_AIORING |
			 VMA_AREA_SHSTK | VMA_AREA_UPROBES | VMA_AREA_VDSO | VMA_AREA_VVAR |
			 VMA_AREA_VSYSCALL | VMA_ANON_SHARED | VMA_AREA_STACK))
		return false;
	return (v->status & (VMA_ANON_PRIVATE | VMA_FILE_PRIVATE | VMA_FILE_SHARED)) != 0;
}

/* Nothing of ours, nor of the regions and the parent's VMAs, near it. */
static bool address_free(const struct rst_plan_host *h, const struct rst_plan *parent,
			 const struct rst_plan *plan, const struct rst_vma_plan *vp)
{
	uint64_t s = vp->vma->start, e = vp->vma->end;

	if (overlaps(s, e, plan->premap_start, plan->blob_end))
		return false;
	for (size_t i = 0; i < h->nr_maps; i++) {
		uint64_t ms = h->maps[i].start, me = h->maps[i].end;

		if (!strcmp(h->maps[i].path, "[stack]"))
			ms = ms > STACK_ROOM ? ms - STACK_ROOM : 0;
		if (overlaps(s, e, ms - RST_PAGE_SIZE, me + RST_PAGE_SIZE))
			return false;
	}
	if (!parent)
		return true;
	if (overlaps(s, e, parent->premap_start, parent->blob_end))
		return false;
	/* forked at the parent's start, before its premap (tree-task.c) */
	if (!plan->inherits)
		return true;
	for (size_t i = 0; i < parent->nr_vmas; i++)
		if (parent->vmas[i].in_place &&
		    overlaps(s, e, parent->vmas[i].vma->start, parent->vmas[i].vma->end))
			return false;
	return true;
}

/* Would the kernel merge @b, mapped right after @a, into it? (Their
 * premap protection, sharing, accounting, kind, file and offsets.) */
static bool may_merge(const struct rst_vma_plan *a, const struct rst_vma_plan *b)
{
	const VmaEntry *x = a->vma, *y = b->vma;

	if (x->end != y->start || a->premap_prot != b->premap_prot ||
	    rst_vma_early_advice(x) != rst_vma_early_advice(y) ||
	    ((x->flags ^ y->flags) & (MAP_SHARED | MAP_PRIVATE | MAP_NORESERVE | MAP_ANONYMOUS)) ||
	    (x->status ^ y->status) & (VMA_ANON_PRIVATE | VMA_FILE_PRIVATE | VMA_FILE_SHARED))
		return false;
	if (x->status & VMA_ANON_PRIVATE)
		return true;
	return a->file && b->file && !strcmp(a->file->name, b->file->name) &&
	       x->pgoff + (x->end - x->start) == y->pgoff;
}

int rst_plan_in_place(const struct rst_plan_host *h, const struct rst_plan *parent,
		      struct rst_plan *plan)
{
	size_t n = plan->nr_vmas;

	/* first those the fork puts in place */
	for (size_t i = 0; parent && i < n; i++) {
		struct rst_vma_plan *vp = &plan->vmas[i];

		vp->in_place = vp->inherit && parent->vmas[vp->inherit_idx].in_place;
	}
	for (size_t i = 0; i < n; i++) {
		struct rst_vma_plan *vp = &plan->vmas[i];

		if (vp->in_place || vp->inherit || !kind_fits(vp))
			continue;
		if (i > 0 && plan->vmas[i - 1].in_place && may_merge(&plan->vmas[i - 1], vp))
			continue;
		if (i + 1 < n && plan->vmas[i + 1].in_place && may_merge(vp, &plan->vmas[i + 1]))
			continue;
		vp->in_place = address_free(h, parent, plan, vp);
	}
	return 0;
}

uint64_t rst_fill_at(const struct rst_plan *plan, size_t *vma, const struct rst_fill *f)
{
	const struct rst_vma_plan *vp;

	while (*vma + 1 < plan->nr_vmas &&
	       f->dst >= plan->vmas[*vma].premap + (plan->vmas[*vma].vma->end -
						    plan->vmas[*vma].vma->start))
		(*vma)++;
	vp = &plan->vmas[*vma];
	return f->dst - vp->premap + (vp->at ? vp->at : vp->premap);
}
