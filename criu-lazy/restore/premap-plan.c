/*
 * The plan of the new task's memory, made before it exists:
 *
 *  - every VMA of the dump but the kernel's own (vdso, vvar, vsyscall) gets
 *    a slot in the premap region, one page apart so the kernel never
 *    merges two of them there or after they move;
 *  - the pagemap runs are cut at VMA boundaries into fills: a range of the
 *    pages file and the premap address it is read into, in file order so
 *    the task can read them with few large preadv() calls;
 *  - the premap region and the blob region lie together in the highest
 *    hole that is free in our layout (the new task is a fork of us) and in
 *    the dumped one, with a margin around it;
 *  - our vdso group must have the shape of the dumped one, so the blob can
 *    move it there in one piece;
 *  - copy-on-write (not in a lazy restore): a private VMA that the parent
 *    premaps with the same bounds and kind is inherited at the fork
 *    (premap-cow.c), so our region must not overlap the parent's, and the
 *    fills into it compare before they write;
 *  - which VMAs are mapped at their own address from the start instead
 *    (premap-place.c): the slot stays theirs, for when that address is
 *    taken in the task after all.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define LOG_PREFIX ""
#include "attrs/task-attr.h"
#include "common/array.h"
#include "common/log.h"
#include "common/proc-maps.h"
#include "images/vma-status.h"
#include "restore/layout.h"
#include "restore/restore.h"
#include "restore/files.h"
#include "restore/plan.h"
#include "restore/shmem.h"
#include "restore/restorer-blob.h"

#define HOLE_GAP	(16ull << 20)	/* keep this far from anything mapped */
#define HOLE_LOW	(1ull << 32)	/* and stay above the low 4 GiB */
#define BLOB_STACK_SIZE	(64ull << 10)
/* the shortest run of pages a child compares with its parent's rather
 * than reads straight in (add_inherited_fill) */
#define CMP_MIN_BYTES	(16 * RST_PAGE_SIZE)

static bool vma_is_kernel(const VmaEntry *v)
{
	return v->status & (VMA_AREA_VDSO | VMA_AREA_VVAR | VMA_AREA_VSYSCALL);
}

static bool is_vdso_part(const char *path)
{
	return !strcmp(path, "[vdso]") || !strcmp(path, "[vvar]") ||
	       !strcmp(path, "[vvar_vclock]");
}

/* Our vdso group and the dumped one must match (layout_vdso_match). */
static int plan_vdso(const struct rst_images *ri, const struct proc_vma *maps, size_t nr_maps,
		     struct rst_plan *plan)
{
	struct layout_range ours[RST_VDSO_PARTS_MAX], dumped[RST_VDSO_PARTS_MAX];
	size_t nr_ours = 0, nr_dumped = 0;
	ssize_t vdso_ours = -1, vdso_dumped = -1;
	char why[160];

	for (size_t i = 0; i < nr_maps; i++) {
		if (!is_vdso_part(maps[i].path))
			continue;
		if (nr_ours == RST_VDSO_PARTS_MAX) {
			pr_err("more than %d vdso/vvar mappings here", RST_VDSO_PARTS_MAX);
			return -EINVAL;
		}
		if (!strcmp(maps[i].path, "[vdso]"))
			vdso_ours = nr_ours;
		ours[nr_ours++] = (struct layout_range){ maps[i].start, maps[i].end };
	}
	for (size_t i = 0; i < ri->mm->n_vmas; i++) {
		const VmaEntry *v = ri->mm->vmas[i];

		if (!(v->status & (VMA_AREA_VDSO | VMA_AREA_VVAR)))
			continue;
		if (nr_dumped == RST_VDSO_PARTS_MAX) {
			pr_err("mm-%d.img: more than %d vdso/vvar mappings", ri->pid,
			       RST_VDSO_PARTS_MAX);
			return -EINVAL;
		}
		if (v->status & VMA_AREA_VDSO)
			vdso_dumped = nr_dumped;
		dumped[nr_dumped++] = (struct layout_range){ v->start, v->end };
	}

	if (!nr_dumped) {
		/* the task had no vdso: ours goes with the rest of our layout */
		plan->vdso_nr = 0;
		return 0;
	}
	if (layout_vdso_match(ours, nr_ours, dumped, nr_dumped, why, sizeof(why)) ||
	    vdso_ours != vdso_dumped) {
		if (vdso_ours != vdso_dumped)
			snprintf(why, sizeof(why), "the [vdso] is mapping %zd in the dump, %zd here",
				 vdso_dumped, vdso_ours);
		pr_err("mm-%d.img: the dumped vdso does not fit this kernel (%s): restore on the kernel it was dumped on",
		       ri->pid, why);
		return -EINVAL;
	}
	for (size_t i = 0; i < nr_ours; i++)
		plan->vdso_cur[i] = (struct rst_range){ ours[i].start, ours[i].end };
	plan->vdso_nr = nr_ours;
	plan->vdso_target = dumped[0].start;
	pr_debug("vdso group: 0x%llx-0x%llx here, 0x%llx in the dump",
		 (unsigned long long)ours[0].start, (unsigned long long)ours[nr_ours - 1].end,
		 (unsigned long long)dumped[0].start);
	return 0;
}

static uint64_t blob_region_size(const struct rst_images *ri, struct rst_plan *plan)
{
	uint64_t args;

	/* args, vmas, guard regions, every thread's part, then what the task attributes put
	 * after them (blob-setup.c) */
	args = sizeof(struct restorer_args) + plan->nr_vmas * sizeof(struct rst_vma) +
	       ri->nr_guards * sizeof(struct rst_range) +
	       ri->nr_threads * sizeof(struct rst_thread_args) +
	       attrs_args_size(ri, ri->core, ATTR_PROCESS | ATTR_THREAD);
	for (size_t i = 1; i < ri->nr_threads; i++)
		args += attrs_args_size(ri, ri->cores[i], ATTR_THREAD);
	plan->code_size = RST_PAGE_ALIGN(restorer_blob_size);
	plan->args_off = plan->code_size;
	plan->args_size = RST_PAGE_ALIGN(args);
	plan->stack_off = plan->args_off + plan->args_size;
	plan->stack_size = BLOB_STACK_SIZE;
	/* thread i (>= 1) has [off + (i - 1) * size, off + i * size) */
	plan->threads_stack_off = plan->stack_off + plan->stack_size;
	plan->scratch_off = plan->threads_stack_off +
			    (ri->nr_threads - 1) * RST_THREAD_STACK_SIZE;
	plan->scratch_size = plan->vdso_nr ?
		plan->vdso_cur[plan->vdso_nr - 1].end - plan->vdso_cur[0].start : 0;
	return plan->scratch_off + plan->scratch_size;
}

static int plan_place(const struct rst_images *ri, const struct proc_vma *maps, size_t nr_maps,
		      const struct rst_plan *parent, struct rst_plan *plan)
{
	struct layout_range *busy;
	uint64_t premap_size = 0, blob_size, hole, cur;
	size_t nr_busy = 0;
	int ret;

	for (size_t i = 0; i < plan->nr_vmas; i++)
		premap_size += plan->vmas[i].vma->end - plan->vmas[i].vma->start + RST_PAGE_SIZE;
	blob_size = blob_region_size(ri, plan);

	busy = calloc(nr_maps + ri->mm->n_vmas + 1 + (parent ? parent->nr_vmas : 0),
		      sizeof(*busy));
	if (!busy)
		return -ENOMEM;
	if (parent) {	/* mapped in us until we have taken our VMAs out of it */
		busy[nr_busy++] = (struct layout_range){ parent->premap_start, parent->blob_end };
		for (size_t i = 0; i < parent->nr_vmas; i++)	/* and its VMAs in place */
			if (parent->vmas[i].in_place)
				busy[nr_busy++] = (struct layout_range){
					parent->vmas[i].vma->start, parent->vmas[i].vma->end };
	}
	for (size_t i = 0; i < nr_maps; i++)
		busy[nr_busy++] = (struct layout_range){ maps[i].start, maps[i].end };
	for (size_t i = 0; i < ri->mm->n_vmas; i++)
		busy[nr_busy++] = (struct layout_range){ ri->mm->vmas[i]->start,
							 ri->mm->vmas[i]->end };
	ret = layout_find_hole(busy, nr_busy, premap_size + blob_size, HOLE_GAP, HOLE_LOW,
			       RST_TASK_SIZE, &hole);
	if (ret)
		ret = layout_find_hole(busy, nr_busy, premap_size + blob_size, RST_PAGE_SIZE,
				       1ull << 20, RST_TASK_SIZE, &hole);
	free(busy);
	if (ret) {
		pr_err("no room for %llu MiB of premapped memory in both our and task %d's address space",
		       (unsigned long long)(premap_size + blob_size) >> 20, ri->pid);
		return ret;
	}

	plan->premap_start = hole;
	plan->premap_end = hole + premap_size;
	plan->blob_start = plan->premap_end;
	plan->blob_end = plan->blob_start + blob_size;
	cur = plan->premap_start;
	for (size_t i = 0; i < plan->nr_vmas; i++) {
		plan->vmas[i].premap = cur;
		cur += plan->vmas[i].vma->end - plan->vmas[i].vma->start + RST_PAGE_SIZE;
	}
	pr_info("premap region 0x%llx-0x%llx, blob region 0x%llx-0x%llx",
		(unsigned long long)plan->premap_start, (unsigned long long)plan->premap_end,
		(unsigned long long)plan->blob_start, (unsigned long long)plan->blob_end);
	return 0;
}

static int plan_vmas(const struct rst_images *ri, struct rst_plan *plan)
{
	plan->vmas = calloc(ri->mm->n_vmas, sizeof(*plan->vmas));
	if (!plan->vmas)
		return -ENOMEM;
	for (size_t i = 0; i < ri->mm->n_vmas; i++) {
		const VmaEntry *v = ri->mm->vmas[i];
		struct rst_vma_plan *vp;

		if (vma_is_kernel(v))
			continue;
		vp = &plan->vmas[plan->nr_vmas++];
		vp->vma = v;
		vp->premap_prot = v->prot;
		if (v->status & VMA_AREA_MEMFD)	/* its inode is a shared object */
			vp->shm = rst_memfd_shmem(ri, rst_file_find(ri, v->shmid)->memfd->inode_id);
		else if (v->status & (VMA_FILE_PRIVATE | VMA_FILE_SHARED))
			vp->file = rst_file_find(ri, (uint32_t)v->shmid)->reg;
		if ((v->status & VMA_ANON_SHARED) && !(v->status & VMA_AREA_SYSVIPC)) {
			for (size_t k = 0; k < ri->nr_shmems; k++)
				if (ri->shmems[k].shmid == v->shmid)
					vp->shm = &ri->shmems[k];
		}
	}
	return 0;
}

/* @cmp: the same pages are at @parent_off in the parent's pages file */
static int add_fill(struct rst_plan *plan, size_t *cap, uint64_t file_off, uint64_t dst,
		    uint64_t len, bool cmp, uint64_t parent_off)
{
	struct rst_fill *last = plan->nr_fills ? &plan->fills[plan->nr_fills - 1] : NULL;

	plan->pages_to_fill += len / RST_PAGE_SIZE;
	if (last && last->file_off + last->len == file_off && last->dst + last->len == dst &&
	    last->cmp == cmp && (!cmp || last->parent_off + last->len == parent_off)) {
		last->len += len;
		return 0;
	}
	if (ARRAY_GROW(plan->fills, *cap, plan->nr_fills + 1, 256))
		return -ENOMEM;
	plan->fills[plan->nr_fills++] = (struct rst_fill){ file_off, dst, len, cmp, parent_off };
	plan->compares |= cmp;
	return 0;
}

/*
 * A fill into a VMA inherited from the parent is compared page by page
 * (premap-cow.c) only where the parent filled that page too, and with the
 * parent's pages file (what its fill put there): the parent's other pages
 * of it are empty (dropped, or never there) or the file's, which our
 * dumped page is not, so a compare would only fault a page in to find it
 * differs.  The rest is read straight in, as into a VMA of our own.
 * So is a run the parent filled that is shorter than CMP_MIN_BYTES: the
 * few eager pages of a lazy dump (around each thread's stack pointer, its
 * TLS) are mostly equal to the parent's, but the task writes them as soon
 * as it runs (the blob, the threads' frames), so a page shared there is
 * only copied later, at a copy-on-write fault, and its compare cost two
 * reads; a plain fill reads the run with its neighbours in one call.
 * (@pdst: the parent's premap address of our @dst.)
 */
static int add_inherited_fill(struct rst_plan *plan, size_t *cap, const struct rst_plan *parent,
			      uint64_t file_off, uint64_t dst, uint64_t pdst, uint64_t len)
{
	size_t lo = 0, hi = parent->nr_fills;
	uint64_t done = 0;
	int ret = 0;

	/* the parent's fills ascend by address: the first one ending past pdst */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct rst_fill *f = &parent->fills[mid];

		if (f->dst + f->len <= pdst)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t k = lo; !ret && done < len && k < parent->nr_fills; k++) {
		const struct rst_fill *f = &parent->fills[k];
		uint64_t from, to;

		if (f->dst >= pdst + len)
			break;
		from = f->dst > pdst + done ? f->dst - pdst : done;
		to = f->dst + f->len < pdst + len ? f->dst + f->len - pdst : len;
		if (from > done)
			ret = add_fill(plan, cap, file_off + done, dst + done, from - done, false, 0);
		if (!ret && to > from) {
			bool cmp = to - from >= CMP_MIN_BYTES;

			ret = add_fill(plan, cap, file_off + from, dst + from, to - from, cmp,
				       cmp ? f->file_off + (pdst + from - f->dst) : 0);
		}
		done = to > done ? to : done;
	}
	if (!ret && done < len)
		ret = add_fill(plan, cap, file_off + done, dst + done, len - done, false, 0);
	return ret;
}

/*
 * Cut the runs of pagemap-<pid>.img at VMA boundaries.  Pages in the vdso
 * are the kernel's: skipped.  Pages outside every VMA, or in a VMA whose
 * pages are never dumped, mean a broken image.
 */
static int plan_fills(const struct opts *o, const struct rst_images *ri,
		      const struct rst_plan *parent, struct rst_plan *plan)
{
	const struct pagemap_index *pi = &ri->pi;
	size_t cap = 0, j = 0;

	for (size_t r = 0; r < pi->nr_runs; r++) {
		const struct page_run *run = &pi->runs[r];
		uint64_t addr = run->vaddr, end = run->vaddr + run->nr_pages * RST_PAGE_SIZE;
		bool skip = o->lazy_pages && (run->flags & PE_LAZY);

		if (!(run->flags & PE_PRESENT) && !skip) {
			pr_err("pagemap-%d.img: pages at 0x%llx are not in pages-%u.img (a dump made with --lazy-pages restores only with --lazy-pages)",
			       ri->pid, (unsigned long long)run->vaddr, pi->pages_id);
			return -EINVAL;
		}
		while (addr < end) {
			struct rst_vma_plan *vp;
			uint64_t piece_end;
			int ret;

			while (j < plan->nr_vmas && plan->vmas[j].vma->end <= addr)
				j++;
			vp = j < plan->nr_vmas ? &plan->vmas[j] : NULL;
			if (!vp || vp->vma->start > addr) {
				/* not a premapped VMA: the vdso, or nothing */
				const VmaEntry *kv = NULL;

				for (size_t k = 0; k < ri->mm->n_vmas; k++) {
					const VmaEntry *v = ri->mm->vmas[k];

					if (vma_is_kernel(v) && v->start <= addr && addr < v->end)
						kv = v;
				}
				if (!kv) {
					pr_err("pagemap-%d.img: pages at 0x%llx lie outside every VMA of mm-%d.img",
					       ri->pid, (unsigned long long)addr, ri->pid);
					return -EINVAL;
				}
				addr = end < kv->end ? end : kv->end;
				continue;
			}
			piece_end = end < vp->vma->end ? end : vp->vma->end;
			if (!vma_has_dumped_pages(vp->vma)) {
				pr_err("pagemap-%d.img: pages at 0x%llx belong to the VMA 0x%llx-0x%llx whose pages are never dumped (status 0x%x)",
				       ri->pid, (unsigned long long)addr,
				       (unsigned long long)vp->vma->start,
				       (unsigned long long)vp->vma->end, vp->vma->status);
				return -EINVAL;
			}
			if (!skip) {
				uint64_t off = run->pages_off + (addr - run->vaddr);
				uint64_t dst = vp->premap + (addr - vp->vma->start);

				if (vp->inherit)
					ret = add_inherited_fill(plan, &cap, parent, off, dst,
								 vp->inherit + (addr - vp->vma->start),
								 piece_end - addr);
				else
					ret = add_fill(plan, &cap, off, dst, piece_end - addr, false, 0);
				if (ret)
					return ret;
				vp->fill = true;
				vp->premap_prot = PROT_READ | PROT_WRITE;
			} else {
				vp->has_lazy = true;
			}
			addr = piece_end;
		}
	}
	return 0;
}

/* The kinds of VMA a child may take over from its parent's premap. */
static bool vma_inheritable(const VmaEntry *v)
{
	/* mlock is not inherited, and populating a locked VMA again would
	 * break the sharing anyway */
	if (vma_is_kernel(v) || (v->flags & (MAP_LOCKED | MAP_HUGETLB | MAP_DROPPABLE)))
		return false;
	return (v->status & (VMA_ANON_PRIVATE | VMA_FILE_PRIVATE)) != 0;
}

static bool vma_same(const struct rst_vma_plan *a, const struct rst_vma_plan *b)
{
	const VmaEntry *x = a->vma, *y = b->vma;

	/* (the parent's early advice comes with the fork, and some of it no
	 * madvise() can take back: VM_NOHUGEPAGE, premap-place.c) */
	if (x->start != y->start || x->end != y->end || x->status != y->status ||
	    x->flags != y->flags || x->pgoff != y->pgoff ||
	    rst_vma_early_advice(x) != rst_vma_early_advice(y))
		return false;
	if (x->status & VMA_AREA_MEMFD)		/* the same memfd inode */
		return a->shm && b->shm && a->shm->shmid == b->shm->shmid;
	return !(x->status & VMA_FILE_PRIVATE) || !strcmp(a->file->name, b->file->name);
}

/*
 * Copy-on-write: each private VMA of ours that the parent premaps with the
 * same bounds, kind and file comes to us with the fork (both lists ascend).
 *
 * Not in a lazy restore, where the sharing is not kept anyway (the lazy
 * pages come to each process apart, as with CRIU): each process then maps
 * its own, and is forked at its parent's start instead of after its
 * premap (tree-task.c).  Inheriting saved a child some mmap calls, but
 * cost its parent the copy of every VMA at the fork and the child their
 * moves and discards, and made it wait for its parent's premap: in the
 * bench tree, the last child started 0.6 ms after the root.
 */
static void plan_inherit(const struct opts *o, const struct rst_plan *parent,
			 struct rst_plan *plan)
{
	size_t k = 0;

	if (!parent || o->lazy_pages)
		return;
	plan->parent_start = parent->premap_start;
	plan->parent_end = parent->blob_end;
	for (size_t i = 0; i < plan->nr_vmas; i++) {
		struct rst_vma_plan *vp = &plan->vmas[i];

		while (k < parent->nr_vmas && parent->vmas[k].vma->start < vp->vma->start)
			k++;
		if (k == parent->nr_vmas)
			break;
		if (!vma_inheritable(vp->vma) || !vma_same(vp, &parent->vmas[k]))
			continue;
		vp->inherit = parent->vmas[k].premap;
		vp->inherit_prot = parent->vmas[k].premap_prot;
		vp->inherit_idx = (uint32_t)k;
		plan->inherits = true;
	}
}

/* Capabilities this kernel knows (the task may chroot before it needs it). */
static uint32_t read_cap_last_cap(void)
{
	FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
	unsigned int v = 40;	/* CAP_CHECKPOINT_RESTORE, 5.9+ */

	if (f) {
		if (fscanf(f, "%u", &v) != 1)
			v = 40;
		fclose(f);
	}
	return v;
}

/* Once per restore, not per process: each read of our maps cost about a
 * millisecond here (a page fault per parsed line). */
int rst_plan_host_read(struct rst_plan_host *h)
{
	h->cap_last_cap = read_cap_last_cap();
	return proc_maps_read(0, &h->maps, &h->nr_maps);
}

void rst_plan_host_free(struct rst_plan_host *h)
{
	proc_maps_free(h->maps, h->nr_maps);
	h->maps = NULL;
	h->nr_maps = 0;
}

int rst_plan_build(const struct opts *o, const struct rst_plan_host *h,
		   const struct rst_images *ri, const struct rst_plan *parent,
		   struct rst_plan *plan)
{
	int ret;

	memset(plan, 0, sizeof(*plan));
	plan->cap_last_cap = h->cap_last_cap;
	plan->pages_fd = ri->pi.pages_fd;
	plan->pages_id = ri->pi.pages_id;
	ret = plan_vdso(ri, h->maps, h->nr_maps, plan);
	if (!ret)
		ret = plan_vmas(ri, plan);
	if (!ret)
		ret = plan_place(ri, h->maps, h->nr_maps, parent, plan);
	if (!ret) {
		plan->parent = parent;
		plan_inherit(o, parent, plan);
		ret = plan_fills(o, ri, parent, plan);
	}
	if (!ret)	/* with the premap protections the fills decided */
		ret = rst_plan_in_place(h, parent, plan);
	if (ret)
		rst_plan_free(plan);
	return ret;
}

void rst_plan_free(struct rst_plan *plan)
{
	free(plan->vmas);
	free(plan->fills);
	memset(plan, 0, sizeof(*plan));
}
