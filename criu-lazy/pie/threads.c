/*
 * The threads of the task, inside the blob.
 *
 * Every thread restores what only it can set on itself: its private
 * pending signals (rt_tgsigqueueinfo to itself is allowed whatever the
 * siginfo says), scheduling, credentials (kept per thread by the kernel),
 * rseq, robust list, clear_child_tid, sigaltstack, parent-death signal and
 * name, its seccomp filters (seccomp.c, before the creds) and, last, its
 * FPU/SSE/AVX state (XRSTOR of the image attrs/fpu.c built).  The leader does it for itself; it creates the others first with
 * clone3 (CLONE_THREAD and set_tid = the dumped tid), while it still has
 * the privileges that needs, each on its own stack in the blob region.
 *
 * A created thread restores itself, counts itself in threads_done (a futex
 * the leader waits on) and sleeps on threads_park for good: the restore
 * process seizes it there and puts its general registers back with ptrace
 * (restore/threads.c), and lets them all go only after every thread and
 * the leader are done, so that none runs its own code before all are
 * restored.  Every signal stays blocked in all of them
 * (a new thread inherits the leader's mask) until then.
 */
#include <stdint.h>

#include "restorer.h"
#include "syscalls.h"

#define CLONE_VM		0x00000100
#define CLONE_FS		0x00000200
#define CLONE_FILES		0x00000400
#define CLONE_SIGHAND		0x00000800
#define CLONE_THREAD		0x00010000
#define CLONE_SYSVSEM		0x00040000
#define CLONE_ARGS_SIZE_VER1	80
#define FUTEX_WAIT_PRIVATE	128
#define FUTEX_WAKE_PRIVATE	129
#define PR_SET_PDEATHSIG	1
#define PR_SET_NAME		15
#define PRIO_PROCESS		0
#define SIGTRAP			5
#define SS_ONSTACK		1

struct clone_args_ {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
	uint64_t set_tid, set_tid_size;
};

struct sched_param_ {
	int32_t prio;
};

static long futex(volatile uint32_t *uaddr, long op, uint32_t val)
{
	return sys_call6(__NR_futex, SYS_A(uaddr), op, val, 0, 0, 0);
}

/* Its private signals, to itself.  SIGTRAPs wait for the restore process
 * (the leader's final int3 is a SIGTRAP too; attrs/signals.c). */
static int queue_private(struct restorer_args *a, struct rst_thread_args *t)
{
	const uint8_t *si = (const uint8_t *)(uintptr_t)t->siginfo_p;

	for (uint32_t i = 0; i < t->nr_sig_private; i++, si += RST_SIGINFO_SIZE) {
		int32_t signo = *(const int32_t *)si;
		long ret;

		/* a POSIX timer's own signal comes from the timer (posix-timers.c) */
		if (signo == SIGTRAP || rst_posix_timer_owns(a, si))
			continue;
		ret = sys_rt_tgsigqueueinfo(a->pid, t->tid, signo, si);
		if (ret)
			return rst_thread_fail(t, RST_STEP_SIGNALS, ret, (uint64_t)signo);
	}
	return 0;
}

/* Before the creds: raising a priority may need privileges they drop. */
static int restore_sched(struct rst_thread_args *t)
{
	struct sched_param_ sp = { (int32_t)t->sched_prio };
	long ret;

	if (!t->has_sched)
		return 0;
	ret = sys_call3(__NR_sched_setscheduler, 0, t->sched_policy, SYS_A(&sp));
	if (ret)
		return rst_thread_fail(t, RST_STEP_SCHED, ret, t->sched_policy);
	ret = sys_call3(__NR_setpriority, PRIO_PROCESS, 0, t->sched_nice);
	if (ret)
		return rst_thread_fail(t, RST_STEP_SCHED, ret, (uint64_t)(int64_t)t->sched_nice);
	return 0;
}

static int restore_own_state(struct rst_thread_args *t)
{
	long ret;

	if (t->rseq_ptr) {
		ret = sys_rseq(t->rseq_ptr, t->rseq_len, 0, t->rseq_sig);
		if (ret)
			return rst_thread_fail(t, RST_STEP_RSEQ, ret, t->rseq_ptr);
	}
	if (t->robust_list_len) {
		ret = sys_set_robust_list(t->robust_list, t->robust_list_len);
		if (ret)
			return rst_thread_fail(t, RST_STEP_ROBUST_LIST, ret, t->robust_list);
	}
	sys_set_tid_address(t->clear_tid_addr);	/* cannot fail */

	if (t->has_sigaltstack) {
		struct rst_sigaltstack ss = t->sas;

		ss.ss_flags &= ~SS_ONSTACK;
		ret = sys_sigaltstack(&ss, 0);
		if (ret)
			return rst_thread_fail(t, RST_STEP_SIGALTSTACK, ret, t->sas.ss_sp);
	}
	return 0;
}

/* After the creds: changing them resets pdeath_sig. */
static int restore_prctls(struct rst_thread_args *t)
{
	long ret;

	if (t->pdeath_sig) {
		ret = sys_prctl(PR_SET_PDEATHSIG, t->pdeath_sig, 0, 0, 0);
		if (ret)
			return rst_thread_fail(t, RST_STEP_PRCTL, ret, PR_SET_PDEATHSIG);
	}
	ret = sys_prctl(PR_SET_NAME, (long)(uintptr_t)t->comm, 0, 0, 0);
	if (ret)
		return rst_thread_fail(t, RST_STEP_PRCTL, ret, PR_SET_NAME);
	return 0;
}

/* Its FPU/SSE/AVX state as dumped.  The blob never touches these
 * registers (-mgeneral-regs-only), nor do syscalls or ptrace stops: they
 * stay as loaded until the thread runs its own code. */
static void restore_fpu(struct rst_thread_args *t)
{
	if (!t->xsave)
		return;
	__asm__ volatile("xrstor64 (%0)"
			 :
			 : "r"((uintptr_t)t->xsave), "a"((uint32_t)t->xsave_mask),
			   "d"((uint32_t)(t->xsave_mask >> 32))
			 : "memory");
}

int rst_thread_restore(struct restorer_args *a, struct rst_thread_args *t)
{
	if (queue_private(a, t) || restore_sched(t) || rst_restore_seccomp(t) ||
	    rst_restore_creds(t) || restore_own_state(t) || restore_prctls(t))
		return -1;
	restore_fpu(t);
	t->status = RST_STATUS_DONE;
	return 0;
}

/* A created thread starts here, on its own stack (entry.S). */
void rst_thread_main(struct rst_thread_args *t) RST_HIDDEN;

void rst_thread_main(struct rst_thread_args *t)
{
	struct restorer_args *a = (struct restorer_args *)(uintptr_t)t->args;

	/* seccomp: not before the restore process traces us (restorer.c) */
	while (a->trace_threads && !__atomic_load_n(&a->threads_go, __ATOMIC_SEQ_CST))
		futex(&a->threads_go, FUTEX_WAIT_PRIVATE, 0);
	rst_thread_restore(a, t);
	/* only the last one wakes the leader: it waits for all of them, and
	 * a wake for each was a trip through the scheduler for nothing */
	if (__atomic_add_fetch(&a->threads_done, 1, __ATOMIC_SEQ_CST) == a->nr_threads - 1)
		futex(&a->threads_done, FUTEX_WAKE_PRIVATE, 1);
	for (;;)
		futex(&a->threads_park, FUTEX_WAIT_PRIVATE, 0);
}

int rst_threads_create(struct restorer_args *a)
{
	struct rst_thread_args *threads = (struct rst_thread_args *)(uintptr_t)a->threads;

	for (uint32_t i = 1; i < a->nr_threads; i++) {
		struct rst_thread_args *t = &threads[i];
		uint64_t tid = (uint64_t)t->tid;
		struct clone_args_ ca = {
			.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
				 CLONE_SYSVSEM,
			.stack = t->stack_top - RST_THREAD_STACK_SIZE,
			.stack_size = RST_THREAD_STACK_SIZE,
			.set_tid = (uint64_t)(uintptr_t)&tid,
			.set_tid_size = 1,
		};
		long ret;

		t->args = (uint64_t)(uintptr_t)a;
		ret = rst_clone3_thread(&ca, CLONE_ARGS_SIZE_VER1, rst_thread_main, t);
		if (ret != t->tid) {
			/* those created so far wait on the futex: killed with the task */
			a->fail_tid = t->tid;
			return rst_fail(a, RST_STEP_THREADS, ret < 0 ? ret : -22, tid);
		}
	}
	return 0;
}

/* Wait until every created thread is done; take over the first failure. */
/*
 * Seccomp: stop so that the restore process seizes the new threads (and
 * sets PTRACE_O_SUSPEND_SECCOMP on all of them and on us) before any
 * thread installs a filter; then let them go.
 */
int rst_threads_trace(struct restorer_args *a)
{
	if (!a->trace_threads)
		return 0;
	a->status = RST_STATUS_TRACE_THREADS;
	__asm__ volatile("int3" ::: "memory");
	a->status = RST_STATUS_RUNNING;
	__atomic_store_n(&a->threads_go, 1, __ATOMIC_SEQ_CST);
	futex(&a->threads_go, FUTEX_WAKE_PRIVATE, 0x7fffffff);
	return 0;
}

int rst_threads_wait(struct restorer_args *a)
{
	struct rst_thread_args *threads = (struct rst_thread_args *)(uintptr_t)a->threads;
	uint32_t n;

	while ((n = __atomic_load_n(&a->threads_done, __ATOMIC_SEQ_CST)) < a->nr_threads - 1)
		futex(&a->threads_done, FUTEX_WAIT_PRIVATE, n);
	for (uint32_t i = 1; i < a->nr_threads; i++)
		if (threads[i].status != RST_STATUS_DONE)
			return rst_adopt_failure(a, &threads[i]);
	return 0;
}
