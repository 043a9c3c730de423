/*
 * A thread dumped inside a syscall that the kernel restarts through its
 * restart block (nanosleep, a relative clock_nanosleep, a futex wait with
 * a timeout, poll with a timeout) goes on with it after the restore, as
 * it would have after any stop.
 *
 * The dump, as CRIU, records such a thread returning EINTR from the
 * syscall (its ax, with orig_ax still the syscall): the restart block,
 * where the kernel keeps the deadline, is in no image.  Two ways on:
 *
 *  - a sleep with a `rem` pointer, whose time left is worth keeping: while
 *    the blob is still mapped, the thread runs the syscall at the blob's
 *    `syscall` asking for the time left (which the kernel wrote to `rem`
 *    when the dump interrupted it), and is interrupted as soon as it is
 *    in: that leaves the kernel's restart block of the thread set up for
 *    the rest of the sleep.  Its registers then point at its own `syscall`
 *    instruction with restart_syscall's number (the kernel's own
 *    restart).  If the sleep ended at once, that result is what it gets.
 *  - any other (a futex or poll timeout, a sleep without `rem`): the
 *    syscall is simply executed again with its own arguments, the same
 *    wait (a relative timeout starts again in full: what had elapsed of
 *    it is in no image), and a later dump finds it in that syscall again.
 *
 * A thread dumped inside restart_syscall itself (a sleep restored the
 * first way, dumped again) gets EINTR: which syscall it restarts is known
 * only to the kernel.
 */
#include <errno.h>
#include <linux/futex.h>
#include <stdio.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>

#define LOG_PREFIX ""
#include "common/kernel-abi.h"
#include "common/log.h"
#include "common/ptrace-inject.h"
#include "restore/restore.h"
#include "restore/threads.h"

#define STOP_TIMEOUT_MS		10000

enum restart_way {
	RESTART_NONE,		/* not restarted through a restart block */
	RESTART_AGAIN,		/* execute the syscall again, as it was */
	RESTART_BLOCK,		/* run it with @a, then restart_syscall */
};

/* How @nr goes on, and for RESTART_BLOCK the arguments to run it with. */
static enum restart_way restart_args(long nr, const UserX86RegsEntry *g, unsigned long a[6])
{
	unsigned long op;

	a[0] = g->di, a[1] = g->si, a[2] = g->dx, a[3] = g->r10, a[4] = g->r8, a[5] = g->r9;
	switch (nr) {
	case SYS_nanosleep:
		if (!g->si)
			return RESTART_AGAIN;
		a[0] = g->si;		/* rem: the time left */
		return RESTART_BLOCK;
	case SYS_clock_nanosleep:
		if (g->si & TIMER_ABSTIME)
			return RESTART_NONE;
		if (!g->r10)
			return RESTART_AGAIN;
		a[2] = g->r10;
		return RESTART_BLOCK;
	case SYS_futex:
		op = g->si & FUTEX_CMD_MASK;
		return (op == FUTEX_WAIT || op == FUTEX_WAIT_BITSET) && g->r10 ? RESTART_AGAIN :
		       RESTART_NONE;
	case SYS_poll:
		return (int)g->dx >= 0 ? RESTART_AGAIN : RESTART_NONE;
	}
	return RESTART_NONE;
}

static int wait_stop(pid_t tid, int *status)
{
	int ret = ptrace_wait_stop(tid, STOP_TIMEOUT_MS, status);

	if (!ret && !WIFSTOPPED(*status)) {
		pr_err("thread %d ended while its syscall was set up again", tid);
		return -ESRCH;
	}
	return ret;
}

/* Run @nr in the stopped thread and interrupt it once it is in; *res gets
 * what it returned.  The thread ends in the syscall's exit stop. */
static int run_and_interrupt(pid_t tid, unsigned long ip, long nr, const unsigned long a[6],
			     long *res)
{
	struct user_regs_struct saved, regs;
	int status, ret;

	if (ptrace(PTRACE_GETREGS, tid, NULL, &saved)) {
		pr_perror("get registers of thread %d", tid);
		return -errno;
	}
	regs = saved;
	inject_set_regs(&regs, ip, nr, a);
	if (ptrace(PTRACE_SETREGS, tid, NULL, &regs) || ptrace(PTRACE_SYSCALL, tid, NULL, NULL)) {
		pr_perror("run syscall %ld in thread %d", nr, tid);
		return -errno;
	}
	ret = wait_stop(tid, &status);	/* its entry */
	if (ret)
		return ret;
	if (ptrace(PTRACE_SYSCALL, tid, NULL, NULL) || ptrace(PTRACE_INTERRUPT, tid, NULL, NULL)) {
		pr_perror("interrupt syscall %ld in thread %d", nr, tid);
		return -errno;
	}
	ret = wait_stop(tid, &status);	/* its exit */
	if (ret)
		return ret;
	if ((WSTOPSIG(status) & 0x7f) != SIGTRAP || status >> 16) {
		pr_err("thread %d stopped with status %#x instead of leaving syscall %ld", tid,
		       status, nr);
		return -EIO;
	}
	if (ptrace(PTRACE_GETREGS, tid, NULL, &regs)) {
		pr_perror("get registers of thread %d", tid);
		return -errno;
	}
	*res = (long)regs.rax;
	pr_debug("thread %d: syscall %ld returned %ld", tid, nr, *res);
	/* the exit stop took the interrupt (any trap clears a pending one):
	 * the thread stays here, as after inject_syscall() */
	if (ptrace(PTRACE_SETREGS, tid, NULL, &saved)) {
		pr_perror("put back the registers of thread %d", tid);
		return -errno;
	}
	return 0;
}

/* Dumped inside a syscall the kernel interrupted, to return EINTR or to
 * go on through its restart block? */
static bool interrupted(const UserX86RegsEntry *g)
{
	long ax = (long)g->ax;

	return (long)g->orig_ax >= 0 && (ax == -EINTR || ax == -ERESTART_RESTARTBLOCK);
}

bool rst_syscall_restart_touches(const CoreEntry *core)
{
	const UserX86RegsEntry *g = core->thread_info->gpregs;
	unsigned long a[6];

	/* the PEEKTEXT of its instruction, and RESTART_BLOCK's run of it */
	return interrupted(g) && restart_args((long)g->orig_ax, g, a) != RESTART_NONE;
}

int rst_syscall_restart_prepare(pid_t tid, unsigned long syscall_ip, const CoreEntry *core,
				struct rst_restart *out)
{
	const UserX86RegsEntry *g = core->thread_info->gpregs;
	long nr = (long)g->orig_ax, res = 0;
	enum restart_way way;
	unsigned long a[6];
	long insn;
	int ret;

	out->active = false;
	if (!interrupted(g))
		return 0;
	way = restart_args(nr, g, a);
	if (way == RESTART_NONE) {
		if (nr == SYS_restart_syscall)
			pr_info("thread %d: dumped in restart_syscall, which returns EINTR now",
				tid);
		return 0;
	}
	/* it must sit right after a `syscall` (0f 05), or it is no such thread */
	errno = 0;
	insn = ptrace(PTRACE_PEEKTEXT, tid, (void *)(uintptr_t)(g->ip - 2), NULL);
	if (errno || (insn & 0xffff) != 0x050f)
		return 0;
	if (way == RESTART_AGAIN) {
		out->active = true;
		out->result = -ERESTARTNOHAND;	/* its syscall again */
		pr_info("thread %d: syscall %ld is executed again", tid, nr);
		return 0;
	}
	ret = run_and_interrupt(tid, syscall_ip, nr, a, &res);
	if (ret)
		return ret;
	out->active = true;
	out->result = res;
	pr_info("thread %d: syscall %ld %s", tid, nr,
		res == -ERESTART_RESTARTBLOCK ? "goes on through restart_syscall" :
		"ended at once when run again");
	return 0;
}

void rst_syscall_restart_regs(const struct rst_restart *rs, const UserX86RegsEntry *g,
			      struct user_regs_struct *r)
{
	if (!rs || !rs->active)
		return;
	switch (rs->result) {
	case -ERESTART_RESTARTBLOCK:
		r->rax = SYS_restart_syscall;
		r->rip = g->ip - 2;
		break;
	case -ERESTARTSYS:
	case -ERESTARTNOINTR:
	case -ERESTARTNOHAND:
		r->rax = g->orig_ax;
		r->rip = g->ip - 2;
		break;
	default:
		r->rax = rs->result;
	}
}
