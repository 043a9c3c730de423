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

#include "images/vma-status.h"
#include "restore/restore.h"
#include "restore/restorer-blob.h"

static void copy_caps(uint32_t dst[2], const uint32_t *src, size_t n, uint32_t last)
{
	dst[0] = n > 0 ? src[0] : 0;
	dst[1] = n > 1 ? src[1] : 0;
	/* bits this kernel does not know would make capset() fail */
	if (last < 63)
		dst[1] &= last >= 32 ? (uint32_t)((1ull << (last - 31)) - 1) : 0;
	if (last < 31)
		dst[0] &= (uint32_t)((1ull << (last + 1)) - 1);
}

static void fill_creds(struct restorer_args *a, const CredsEntry *ce, uint32_t *groups,
		       uint32_t last)
{
	struct rst_creds *c = &a->creds;

	if (!ce)
		return;
	c->restore = 1;
	c->uid = ce->uid;
	c->gid = ce->gid;
	c->euid = ce->euid;
	c->egid = ce->egid;
	c->suid = ce->suid;
	c->sgid = ce->sgid;
	c->fsuid = ce->fsuid;
	c->fsgid = ce->fsgid;
	copy_caps(c->cap_inh, ce->cap_inh, ce->n_cap_inh, last);
	copy_caps(c->cap_prm, ce->cap_prm, ce->n_cap_prm, last);
	copy_caps(c->cap_eff, ce->cap_eff, ce->n_cap_eff, last);
	copy_caps(c->cap_bnd, ce->cap_bnd, ce->n_cap_bnd, last);
	copy_caps(c->cap_amb, ce->cap_amb, ce->n_cap_amb, last);
	c->has_amb = ce->n_cap_amb > 0;
	c->secbits = ce->secbits;
	c->cap_last_cap = last;
	c->no_new_privs = ce->has_no_new_privs && ce->no_new_privs;
	c->nr_groups = ce->n_groups;
	memcpy(groups, ce->groups, ce->n_groups * sizeof(uint32_t));
	c->groups = (uint64_t)(uintptr_t)groups;
}

/*
 * A periodic timer that expired while the task was frozen reads as value 0:
 * the kernel rearms it only when the task dequeues its SIGALRM (which the
 * pending signals carry over).  Setting value 0 would disarm it, so it
 * starts again with a full interval, as criu does.
 */
static void fill_itimer(struct rst_itimerval *t, const ItimerEntry *ie)
{
	if (!ie)
		return;
	t->interval_sec = ie->isec;
	t->interval_usec = ie->iusec;
	t->value_sec = ie->vsec;
	t->value_usec = ie->vusec;
	if (!ie->vsec && !ie->vusec) {
		t->value_sec = ie->isec;
		t->value_usec = ie->iusec;
	}
}

static uint8_t *copy_siginfo(uint8_t *dst, const SignalQueueEntry *sq, uint32_t *nr)
{
	for (size_t i = 0; sq && i < sq->n_signals; i++) {
		memcpy(dst, sq->signals[i]->siginfo.data, RST_SIGINFO_SIZE);
		dst += RST_SIGINFO_SIZE;
		(*nr)++;
	}
	return dst;
}

static void fill_task(struct rst_child *c, struct restorer_args *a)
{
	const CoreEntry *core = c->ri->core;
	const TaskCoreEntry *tc = core->tc;
	const ThreadCoreEntry *th = core->thread_core;
	const MmEntry *mm = c->ri->mm;
	const SaEntry *trap = tc->sigactions[4];	/* SIGTRAP: index 4 */

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
	memcpy(a->auxv, mm->mm_saved_auxv, mm->n_mm_saved_auxv * sizeof(uint64_t));
	a->dumpable = mm->has_dumpable ? mm->dumpable : -1;

	if (th->rseq_entry && th->rseq_entry->rseq_abi_pointer) {
		a->rseq_ptr = th->rseq_entry->rseq_abi_pointer;
		a->rseq_len = th->rseq_entry->rseq_abi_size;
		a->rseq_sig = th->rseq_entry->signature;
	}
	a->robust_list = th->futex_rla;
	a->robust_list_len = th->futex_rla_len;
	a->clear_tid_addr = core->thread_info->clear_tid_addr;
	if (th->sas) {
		a->has_sigaltstack = 1;
		a->sas.ss_sp = th->sas->ss_sp;
		a->sas.ss_size = th->sas->ss_size;
		a->sas.ss_flags = th->sas->ss_flags;
	}
	a->pdeath_sig = th->has_pdeath_sig ? th->pdeath_sig : 0;
	snprintf(a->comm, sizeof(a->comm), "%s", th->comm ? th->comm : tc->comm);
	if (tc->timers) {
		fill_itimer(&a->itimers[0], tc->timers->real);
		fill_itimer(&a->itimers[1], tc->timers->virt);
		fill_itimer(&a->itimers[2], tc->timers->prof);
	}
	for (size_t i = 0; tc->rlimits && i < tc->rlimits->n_rlimits; i++) {
		a->rlimits[i].cur = tc->rlimits->rlimits[i]->cur;
		a->rlimits[i].max = tc->rlimits->rlimits[i]->max;
	}
	a->nr_rlimits = tc->rlimits ? tc->rlimits->n_rlimits : 0;
	a->sigtrap_act.handler = trap->sigaction;
	a->sigtrap_act.flags = trap->flags;
	a->sigtrap_act.restorer = trap->restorer;
	a->sigtrap_act.mask = trap->mask;
	a->lazy.sock = c->lazy_sock;	/* -1: eager (see pie/uffd.c) */
	a->lazy.pid = c->ri->pid;
	a->lazy.features = c->lazy_features;
	a->lazy.uffd = -1;
}

static void fill_vmas(struct rst_child *c, struct restorer_args *a, struct rst_vma *vmas)
{
	const struct rst_plan *plan = c->plan;

	for (size_t i = 0; i < plan->nr_vmas; i++) {
		const struct rst_vma_plan *vp = &plan->vmas[i];
		const VmaEntry *v = vp->vma;

		vmas[i] = (struct rst_vma){
			.start = v->start, .end = v->end, .premap = vp->premap,
			.madv = v->has_madv ? v->madv : 0,
			.prot = v->prot, .flags = v->flags, .status = v->status,
			.lazy = c->o->lazy_pages && vma_is_lazy_capable(v),
		};
	}
	a->vmas = (uint64_t)(uintptr_t)vmas;
	a->nr_vmas = plan->nr_vmas;

	a->vdso.nr_parts = plan->vdso_nr;
	for (uint32_t i = 0; i < plan->vdso_nr; i++)
		a->vdso.parts[i] = plan->vdso_cur[i];
	a->vdso.target = plan->vdso_target;
	a->vdso.scratch = plan->blob_start + plan->scratch_off;
}

int child_blob_prepare(struct rst_child *c, struct restorer_args **out)
{
	const struct rst_plan *plan = c->plan;
	const CoreEntry *core = c->ri->core;
	uint64_t len = plan->scratch_off;	/* code, args, stack: not the scratch */
	struct restorer_args *a;
	struct rst_vma *vmas;
	uint8_t *si;
	void *p;

	p = mmap((void *)(uintptr_t)plan->blob_start, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (p == MAP_FAILED)
		return child_err(c, errno, "task %d: cannot map the restorer at 0x%llx: %s",
				 c->ri->pid, (unsigned long long)plan->blob_start, strerror(errno));
	memcpy(p, restorer_blob, restorer_blob_size);

	a = (struct restorer_args *)((char *)p + plan->args_off);
	vmas = (struct rst_vma *)(a + 1);
	si = (uint8_t *)(vmas + plan->nr_vmas);
	a->magic = RESTORER_ARGS_MAGIC;
	a->version = RESTORER_ARGS_VERSION;
	a->pid = c->ri->pid;
	a->helper_fd_base = c->helper_base;
	a->blob_start = plan->blob_start;
	a->blob_end = plan->blob_end;
	a->premap_start = plan->premap_start;
	a->premap_end = plan->premap_end;
	fill_vmas(c, a, vmas);
	fill_task(c, a);

	a->siginfo = (uint64_t)(uintptr_t)si;
	si = copy_siginfo(si, core->thread_core->signals_p, &a->nr_sig_private);
	si = copy_siginfo(si, core->tc->signals_s, &a->nr_sig_shared);
	fill_creds(a, core->thread_core->creds, (uint32_t *)si, plan->cap_last_cap);

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
