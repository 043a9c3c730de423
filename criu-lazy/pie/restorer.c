/*
 * The restorer blob: runs inside the new task, on its own stack, after the
 * task's C part premapped and filled every VMA.  It turns the address space
 * into the dumped one and sets the per-task state that needs the final
 * layout, creates the other threads (threads.c), restores the process's
 * state and the leader's own, waits until every thread is done, then stops
 * at int3 (entry.S) for the restore process, which puts the registers of
 * every thread back with ptrace and lets them all go.
 *
 * No libc, no relocations, no writable globals: everything comes from the
 * args.  Every signal is blocked the whole time (the task's C part blocked
 * them), so the pending signals queued here are delivered only once the
 * restore process installs the dumped mask.
 */
#include <stdint.h>

#include "restorer.h"
#include "syscalls.h"

#define MREMAP_MAYMOVE		1
#define MREMAP_FIXED		2
#define PR_SET_DUMPABLE		4
#define PR_SET_THP_DISABLE	41
#define PR_SET_MM		35
#define PR_SET_MM_MAP		14
#define SIGTRAP			5
#define MADV_GUARD_INSTALL	102

/* madvise advice that is a lasting property of a VMA (vma_entry.madv) */
static const uint8_t sticky_advice[] = {
	1,	/* MADV_RANDOM */
	2,	/* MADV_SEQUENTIAL */
	10,	/* MADV_DONTFORK */
	12,	/* MADV_MERGEABLE */
	14,	/* MADV_HUGEPAGE */
	15,	/* MADV_NOHUGEPAGE */
	16,	/* MADV_DONTDUMP */
	18,	/* MADV_WIPEONFORK */
};

/* Unmap [*cur, end), if anything; then *cur past the kept [end, next). */
static int unmap_until(struct restorer_args *a, uint64_t *cur, uint64_t end, uint64_t next)
{
	if (end > *cur) {
		long ret = sys_munmap(*cur, end - *cur);

		if (ret)
			return rst_fail(a, RST_STEP_UNMAP, ret, *cur);
	}
	if (next > *cur)
		*cur = next;
	return 0;
}

/* Unmap everything below RST_TASK_SIZE but the blob, the premap region, our
 * vdso group and the VMAs mapped in place (both lists ascend). */
static int unmap_old(struct restorer_args *a)
{
	const struct rst_vma *vmas = (const struct rst_vma *)(uintptr_t)a->vmas;
	struct rst_range keep[3] = {
		{ a->premap_start, a->premap_end },
		{ a->blob_start, a->blob_end },
		{ 0, 0 },
	};
	unsigned int nr = 2, k = 0;
	uint32_t i = 0;
	uint64_t cur = 0;

	if (a->vdso.nr_parts)
		keep[nr++] = (struct rst_range){ a->vdso.parts[0].start,
						 a->vdso.parts[a->vdso.nr_parts - 1].end };
	/* sort the (at most 3) ranges by start */
	for (unsigned int i = 1; i < nr; i++)
		for (unsigned int j = i; j > 0 && keep[j].start < keep[j - 1].start; j--) {
			struct rst_range t = keep[j];

			keep[j] = keep[j - 1];
			keep[j - 1] = t;
		}

	for (;;) {
		while (i < a->nr_vmas && vmas[i].premap != vmas[i].start)
			i++;
		if (i < a->nr_vmas && (k == nr || vmas[i].start < keep[k].start)) {
			if (unmap_until(a, &cur, vmas[i].start, vmas[i].end))
				return -1;
			i++;
		} else if (k < nr) {
			if (unmap_until(a, &cur, keep[k].start, keep[k].end))
				return -1;
			k++;
		} else {
			return unmap_until(a, &cur, RST_TASK_SIZE, 0);
		}
	}
}

static int move_vmas(struct restorer_args *a)
{
	struct rst_vma *vmas = (struct rst_vma *)(uintptr_t)a->vmas;

	for (uint32_t i = 0; i < a->nr_vmas; i++) {
		struct rst_vma *v = &vmas[i];
		uint64_t len = v->end - v->start;

		if (v->premap != v->start) {
			long ret = sys_mremap(v->premap, len, len, MREMAP_MAYMOVE | MREMAP_FIXED,
					      v->start);

			if ((uint64_t)ret != v->start)
				return rst_fail(a, RST_STEP_MREMAP, ret, v->start);
		}
		if (rst_uffd_register(a, v))
			return -1;
	}

	if (a->premap_end > a->premap_start) {
		long ret = sys_munmap(a->premap_start, a->premap_end - a->premap_start);

		if (ret)
			return rst_fail(a, RST_STEP_UNMAP_PREMAP, ret, a->premap_start);
	}
	return 0;
}

static int protect_vmas(struct restorer_args *a)
{
	struct rst_vma *vmas = (struct rst_vma *)(uintptr_t)a->vmas;

	for (uint32_t i = 0; i < a->nr_vmas; i++) {
		struct rst_vma *v = &vmas[i];
		uint64_t len = v->end - v->start;
		long ret = sys_mprotect(v->start, len, v->prot);

		if (ret)
			return rst_fail(a, RST_STEP_MPROTECT, ret, v->start);
		for (unsigned int k = 0; k < sizeof(sticky_advice); k++) {
			if (!(v->madv & (1ull << sticky_advice[k])))
				continue;
			ret = sys_madvise(v->start, len, sticky_advice[k]);
			if (ret)
				return rst_fail(a, RST_STEP_MADVISE, ret, v->start);
		}
	}
	return 0;
}

/* Guard regions, once every VMA is in place (dump/guards.c). */
static int install_guards(struct restorer_args *a)
{
	const struct rst_range *g = (const struct rst_range *)(uintptr_t)a->guards;

	for (uint32_t i = 0; i < a->nr_guards; i++) {
		long ret = sys_madvise(g[i].start, g[i].end - g[i].start, MADV_GUARD_INSTALL);

		if (ret)
			return rst_fail(a, RST_STEP_GUARDS, ret, g[i].start);
	}
	return 0;
}

static int queue_siginfos(struct restorer_args *a, uint64_t addr, uint32_t nr, int32_t tid)
{
	const uint8_t *si = (const uint8_t *)(uintptr_t)addr;

	for (uint32_t i = 0; i < nr; i++, si += RST_SIGINFO_SIZE) {
		int32_t signo = *(const int32_t *)si;
		long ret;

		/* the restore process queues SIGTRAP after the final trap; a
		 * timer's own signal comes from the timer */
		if (signo == SIGTRAP || rst_posix_timer_owns(a, si))
			continue;
		if (tid)
			ret = sys_rt_tgsigqueueinfo(a->pid, tid, signo, si);
		else
			ret = sys_rt_sigqueueinfo(a->pid, signo, si);
		if (ret)
			return rst_fail(a, RST_STEP_SIGNALS, ret, (uint64_t)signo);
	}
	return 0;
}

/* The process's shared queue (each thread queues its private one). */
static int queue_signals(struct restorer_args *a)
{
	return queue_siginfos(a, a->siginfo_s, a->nr_sig_shared, 0);
}

/* In the task itself: prlimit() on a task whose creds differ from ours
 * needs CAP_SYS_RESOURCE, which the restore may not have. */
static int restore_rlimits(struct restorer_args *a)
{
	for (uint32_t i = 0; i < a->nr_rlimits && i < RST_NR_RLIMITS; i++) {
		long ret = sys_prlimit64(0, i, &a->rlimits[i], 0);

		if (ret)
			return rst_fail(a, RST_STEP_RLIMITS, ret, i);
	}
	return 0;
}

/* After every thread's creds: changing them resets the mm's dumpable. */
static int restore_dumpable(struct restorer_args *a)
{
	long ret;

	if (a->dumpable < 0)
		return 0;
	ret = sys_prctl(PR_SET_DUMPABLE, a->dumpable, 0, 0, 0);
	if (ret)
		return rst_fail(a, RST_STEP_PRCTL, ret, PR_SET_DUMPABLE);
	return 0;
}

/* Last, so they lose as little time as possible before the task runs. */
static int restore_itimers(struct restorer_args *a)
{
	for (int i = 0; i < RST_NR_ITIMERS; i++) {
		const struct rst_itimerval *t = &a->itimers[i];
		long ret;

		if (!t->interval_sec && !t->interval_usec && !t->value_sec && !t->value_usec)
			continue;
		ret = sys_setitimer(i, t, 0);
		if (ret)
			return rst_fail(a, RST_STEP_ITIMERS, ret, (uint64_t)i);
	}
	return 0;
}

void restorer_main(struct restorer_args *a) RST_HIDDEN;

void restorer_main(struct restorer_args *a)
{
	struct rst_thread_args *leader = (struct rst_thread_args *)(uintptr_t)a->threads;
	uint32_t last;
	long ret;

	if (a->magic != RESTORER_ARGS_MAGIC || a->version != RESTORER_ARGS_VERSION) {
		rst_fail(a, RST_STEP_START, -22 /* EINVAL */, 0);
		return;
	}
	a->status = RST_STATUS_RUNNING;

	if (unmap_old(a) || rst_vdso_move(a))
		return;
	if (rst_uffd_open(a) || move_vmas(a))
		return;
	/* every lazy VMA is registered: a huge page can no longer be
	 * allocated (zeros) around a filled page, hiding lazy ones */
	if (a->lazy.enabled && a->lazy.thp_enable) {
		ret = sys_prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0);
		if (ret) {
			rst_fail(a, RST_STEP_PRCTL, ret, PR_SET_THP_DISABLE);
			return;
		}
	}
	if (protect_vmas(a) || install_guards(a) || rst_uffd_send(a))
		return;

	/* PR_SET_MM_MAP also sets the exe link: the old exe is unmapped now */
	ret = sys_prctl(PR_SET_MM, PR_SET_MM_MAP, (long)(uintptr_t)&a->mm, sizeof(a->mm), 0);
	if (ret) {
		rst_fail(a, RST_STEP_MM_MAP, ret, 0);
		return;
	}

	/* in a shared table only our own window of helpers goes */
	last = a->helper_fd_end > 0 ? (uint32_t)a->helper_fd_end - 1 : ~0u;
	ret = sys_close_range(a->helper_fd_base, last, 0);
	if (ret) {
		rst_fail(a, RST_STEP_CLOSE_FDS, ret, (uint64_t)a->helper_fd_base);
		return;
	}

	/* while we still may: clone3 with set_tid needs our privileges */
	if (rst_threads_create(a) || rst_threads_trace(a))
		return;
	if (queue_signals(a) || restore_rlimits(a))
		return;
	if (rst_thread_restore(a, leader)) {
		rst_adopt_failure(a, leader);
		a->fail_tid = 0;
		return;
	}
	if (rst_threads_wait(a) || restore_dumpable(a) || rst_restore_posix_timers(a) ||
	    restore_itimers(a))
		return;

	a->status = RST_STATUS_DONE;
}
