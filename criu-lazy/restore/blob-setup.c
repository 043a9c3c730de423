/*
 * The blob region (runs in the new task): copy the restorer blob in, fill
 * its struct restorer_args from the images, switch to the blob's stack and
 * jump to its entry.  See pie/restorer-args.h for the region's layout; the
 * parent reserved it PROT_NONE with the premap region, and the vdso scratch
 * area at its end stays so (the blob mremaps over it).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "attrs/task-attr.h"
#include "images/vma-status.h"
#include "restore/restore.h"
#include "restore/child.h"
#include "restore/restorer-blob.h"

#define BLOB_STACK_TOUCHED (8ull << 10)	/* what the blob's own frames use */

/* The mm fields and the lazy switch; the task attributes fill the rest. */
static void fill_task(struct rst_child *c, struct restorer_args *a)
{
	const MmEntry *mm = c->ri->mm;

	a->mm = (struct rst_mm_map){
		.start_code = mm->mm_start_code, .end_code = mm->mm_end_code,
		.start_data = mm->mm_start_data, .end_data = mm->mm_end_data,
		.start_brk = mm->mm_start_brk, .brk = mm->mm_brk,
		.start_stack = mm->mm_start_stack,
		.arg_start = mm->mm_arg_start, .arg_end = mm->mm_arg_end,
		.env_start = mm->mm_env_start, .env_end = mm->mm_env_end,
		.auxv = (uint64_t)(uintptr_t)a->auxv,
		.auxv_size = mm->n_mm_saved_auxv * sizeof(uint64_t),
		.exe_fd = c->exe_fd,
	};
	if (mm->n_mm_saved_auxv)	/* none saved: mm_saved_auxv is NULL */
		memcpy(a->auxv, mm->mm_saved_auxv, mm->n_mm_saved_auxv * sizeof(uint64_t));
	a->dumpable = mm->has_dumpable ? mm->dumpable : -1;

	a->lazy.enabled = c->lazy;	/* see pie/uffd.c */
	a->lazy.pid = c->ri->pid;
	a->lazy.features = c->lazy_features;
	a->lazy.uffd = -1;
	a->lazy.sock = c->uffd_tx;
	a->lazy.thp_enable = c->lazy && !(mm->has_thp_disabled && mm->thp_disabled);
}

static void fill_vmas(struct rst_child *c, struct restorer_args *a, struct rst_vma *vmas)
{
	const struct rst_plan *plan = c->plan;
	struct rst_range *guards;

	for (size_t i = 0; i < plan->nr_vmas; i++) {
		const struct rst_vma_plan *vp = &plan->vmas[i];
		const VmaEntry *v = vp->vma;

		vmas[i] = (struct rst_vma){
			.start = v->start, .end = v->end, .premap = vp->at ? vp->at : vp->premap,
			.madv = v->has_madv ? v->madv : 0,
			.prot = v->prot, .flags = v->flags, .status = v->status,
			/*
			 * Only a VMA with lazy pages: registering one without
			 * (a thread stack's PROT_NONE guard page) would only
			 * make a later dump fault through the daemon there,
			 * which a forced read of PROT_NONE memory cannot do.
			 */
			.lazy = c->o->lazy_pages && ((vma_is_lazy_capable(v) && vp->has_lazy) ||
						     /* every VMA of a lazy object (shmem.c) */
						     (vp->shm && vp->shm->lazy)),
		};
	}
	a->vmas = (uint64_t)(uintptr_t)vmas;
	a->nr_vmas = plan->nr_vmas;
	guards = (struct rst_range *)(vmas + plan->nr_vmas);
	for (size_t i = 0; i < c->ri->nr_guards; i++)
		guards[i] = (struct rst_range){ c->ri->guards[i]->start, c->ri->guards[i]->end };
	a->guards = (uint64_t)(uintptr_t)guards;
	a->nr_guards = c->ri->nr_guards;

	a->vdso.nr_parts = plan->vdso_nr;
	for (uint32_t i = 0; i < plan->vdso_nr; i++)
		a->vdso.parts[i] = plan->vdso_cur[i];
	a->vdso.target = plan->vdso_target;
	a->vdso.scratch = plan->blob_start + plan->scratch_off;
}

int child_blob_prepare(struct rst_child *c, struct restorer_args **out)
{
	const struct rst_plan *plan = c->plan;
	const struct rst_images *ri = c->ri;
	uint64_t len = plan->scratch_off;	/* code, args, stacks: not the scratch */
	struct rst_thread_args *threads;
	struct restorer_args *a;
	struct rst_vma *vmas;
	struct attr_rst r;
	void *p;
	int ret;

	p = mmap((void *)(uintptr_t)plan->blob_start, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (p == MAP_FAILED)
		return child_err(c, errno, "task %d: cannot map the restorer at 0x%llx: %s",
				 c->ri->pid, (unsigned long long)plan->blob_start, strerror(errno));
	/* the pages we write now and the top of the blob's stack, in one go:
	 * a first touch, a fault apiece, costs more on this kind of VM (the
	 * threads' stacks and the rest of ours are left to their faults); only
	 * a speed-up, so a kernel without it (5.14) just faults them in */
	madvise(p, plan->stack_off, MADV_POPULATE_WRITE);
	madvise((char *)p + plan->stack_off + plan->stack_size - BLOB_STACK_TOUCHED,
		BLOB_STACK_TOUCHED, MADV_POPULATE_WRITE);
	memcpy(p, restorer_blob, restorer_blob_size);

	a = (struct restorer_args *)((char *)p + plan->args_off);
	vmas = (struct rst_vma *)(a + 1);
	a->magic = RESTORER_ARGS_MAGIC;
	a->version = RESTORER_ARGS_VERSION;
	a->pid = c->ri->pid;
	a->helper_fd_base = c->helper_base;
	a->helper_fd_end = c->helper_end;
	a->blob_start = plan->blob_start;
	a->blob_end = plan->blob_end;
	a->premap_start = plan->premap_start;
	a->premap_end = plan->premap_end;
	fill_vmas(c, a, vmas);
	fill_task(c, a);

	/* every thread's part, the leader's first, then what the attributes
	 * put after them */
	threads = (struct rst_thread_args *)((struct rst_range *)(vmas + plan->nr_vmas) +
					     ri->nr_guards);
	a->threads = (uint64_t)(uintptr_t)threads;
	a->nr_threads = ri->nr_threads;
	r = (struct attr_rst){
		.ri = ri, .pid = ri->pid, .child = c, .plan = plan, .args = a,
		.tail = (uint8_t *)(threads + ri->nr_threads),
	};
	for (size_t i = 0; i < ri->nr_threads; i++) {
		r.core = ri->cores[i];
		r.tid = ri->tids[i];
		r.thread = &threads[i];
		threads[i].tid = ri->tids[i];
		threads[i].args = (uint64_t)(uintptr_t)a;
		if (i)
			threads[i].stack_top = plan->blob_start + plan->threads_stack_off +
					       i * RST_THREAD_STACK_SIZE;
		ret = attrs_restore(&r, ATTR_RST_BLOB, i ? ATTR_THREAD : ATTR_PROCESS | ATTR_THREAD);
		if (ret)
			return ret;
	}

	if (mprotect(p, plan->code_size, PROT_READ | PROT_EXEC))
		return child_err(c, errno, "task %d: cannot protect the restorer code: %s",
				 c->ri->pid, strerror(errno));
	*out = a;
	return 0;
}

_Noreturn void child_blob_jump(const struct rst_plan *plan, struct restorer_args *args)
{
	uint64_t sp = plan->blob_start + plan->stack_off + plan->stack_size;

	__asm__ volatile("mov %0, %%rsp\n\t"
			 "jmp *%1"
			 :
			 : "r"(sp), "r"(plan->blob_start), "D"(args)
			 : "memory");
	__builtin_unreachable();
}
