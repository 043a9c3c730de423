/*
 * After the blob's final int3: the last touches with ptrace, then the task
 * goes.
 *
 *  1. block every signal, so nothing is dequeued while we work;
 *  2. the task attributes of the FINAL stage (attrs/), which may run
 *     syscalls inside the task at the blob's own `syscall` instruction
 *     (inject_syscall: from syscall-stops, so no trap signal is raised):
 *     SIGTRAP's action as dumped, the pending SIGTRAPs; then the munmap
 *     of the blob region (the exit stop of that syscall comes before the
 *     next instruction fetch, so unmapping its own page is fine);
 *  3. a syscall restarted through the kernel's restart block is run
 *     again and interrupted (syscall-restart.c), then the registers as
 *     dumped (orig_ax = -1: no syscall restart on the way out; or
 *     restart_syscall's), the TLS slots, then the RESUME stage of the
 *     attributes (the blocked mask); the FPU/SSE/AVX state each thread
 *     loaded itself in the blob (attrs/fpu.c), but on a CPU without XSAVE;
 *  4. PTRACE_DETACH with no signal: the task resumes where it was dumped,
 *     and the pending signals it does not block are delivered now.
 *
 * The other threads go through 2 and 3 too (threads.c), the first ones
 * before the leader: they sleep in the blob and are seized only now, their
 * signals blocked already (a new thread inherits the leader's mask).  All
 * are detached together at the end, the leader last.
 *
 * SIGTRAP's action is set here and not by the task before its int3: the
 * int3 is a forced SIGTRAP, and the kernel resets the action of a forced
 * signal to SIG_DFL when the task ignores (or blocks) it.
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <asm/ldt.h>
#include <elf.h>

#define LOG_PREFIX ""
#include "attrs/task-attr.h"
#include "common/kernel-abi.h"
#include "common/log.h"
#include "common/ptrace-inject.h"
#include "common/xsave-layout.h"
#include "restore/restore.h"
#include "restore/threads.h"
#include "restore/restorer-blob.h"
#include "restore/xsave-build.h"

/* The blob is done with: unmap it, with its own `syscall` (the exit stop
 * of that syscall comes before the next instruction fetch).  It runs from
 * the task's final registers (@final), set for good right after, with
 * every signal blocked already: nothing is saved and put back. */
static int unmap_blob(const struct rst_plan *plan, pid_t pid,
		      const struct user_regs_struct *final)
{
	const unsigned long args[6] = { plan->blob_start, plan->blob_end - plan->blob_start };
	long res;
	int ret;

	ret = inject_syscall_from(pid, final, plan->blob_start + restorer_export_syscall_off,
				  SYS_munmap, args, &res);
	if (ret)
		return ret;
	if (res < 0 && res > -4096) {
		pr_err("task %d: munmap of the restorer failed: %s", pid, strerror((int)-res));
		return (int)res;
	}
	return 0;
}

/* The registers the task goes on with. */
static void build_regs(const UserX86RegsEntry *g, const struct rst_restart *rs,
		       struct user_regs_struct *out)
{
	struct user_regs_struct r = {
		.r15 = g->r15, .r14 = g->r14, .r13 = g->r13, .r12 = g->r12,
		.rbp = g->bp, .rbx = g->bx, .r11 = g->r11, .r10 = g->r10,
		.r9 = g->r9, .r8 = g->r8, .rax = g->ax, .rcx = g->cx,
		.rdx = g->dx, .rsi = g->si, .rdi = g->di, .orig_rax = -1,
		.rip = g->ip, .cs = g->cs, .eflags = g->flags, .rsp = g->sp,
		.ss = g->ss, .fs_base = g->fs_base, .gs_base = g->gs_base,
		.ds = g->ds, .es = g->es, .fs = g->fs, .gs = g->gs,
	};

	/* A task dumped inside a syscall restarts it (the dump normally did
	 * this already; then ax is no -ERESTART* code any more). */
	if ((long)g->orig_ax >= 0) {
		switch ((long)g->ax) {
		case -ERESTARTSYS:
		case -ERESTARTNOINTR:
		case -ERESTARTNOHAND:
			r.rax = g->orig_ax;
			r.rip -= 2;
			break;
		case -ERESTART_RESTARTBLOCK:
			r.rax = -EINTR;
			break;
		}
	}
	rst_syscall_restart_regs(rs, g, &r);
	*out = r;
}

static int set_regs(pid_t pid, const UserX86RegsEntry *g, const struct rst_restart *rs)
{
	struct user_regs_struct r;

	build_regs(g, rs, &r);
	if (ptrace(PTRACE_SETREGS, pid, NULL, &r)) {
		pr_perror("cannot set the registers of task %d", pid);
		return -errno;
	}
	return 0;
}

static int set_fpu(pid_t pid, const UserX86FpregsEntry *fp)
{
	static uint8_t buf[XSTATE_BUF_MAX];
	/* once per restore: each CPUID is a trip to the hypervisor in a VM;
	 * and the size of the kernel's XSAVE buffer, which one GETREGSET tells
	 * (the buffer is built from the image alone) */
	static struct rst_xsave_host host;
	static bool probed;
	static size_t xsave_len;
	struct iovec iov = { buf, xsave_len ? xsave_len : sizeof(buf) };
	char why[200];
	int ret;

	if (!xsave_len && ptrace(PTRACE_GETREGSET, pid, (void *)NT_X86_XSTATE, &iov)) {
		/* no XSAVE on this CPU: the legacy area alone */
		if (fp->xsave && (fp->xsave->xstate_bv & ~3ull)) {
			pr_err("core-%d.img: the task used AVX state, but this CPU has no XSAVE", pid);
			return -EINVAL;
		}
		rst_fxsave_build(fp, buf);
		if (ptrace(PTRACE_SETFPREGS, pid, NULL, buf)) {
			pr_perror("cannot set the FPU state of task %d", pid);
			return -errno;
		}
		return 0;
	}

	xsave_len = iov.iov_len;
	if (!probed)
		rst_xsave_host_probe(&host);
	probed = true;
	ret = rst_xsave_build(fp, &host, buf, iov.iov_len, why, sizeof(why));
	if (ret) {
		pr_err("core-%d.img: %s", pid, why);
		return ret;
	}
	if (ptrace(PTRACE_SETREGSET, pid, (void *)NT_X86_XSTATE, &iov)) {
		pr_perror("cannot set the FPU/AVX state of task %d", pid);
		return -errno;
	}
	return 0;
}

static bool tls_empty(const UserDescT *d)
{
	return !d->base_addr && !d->limit && !d->seg_32bit && !d->contents_h &&
	       !d->contents_l && d->read_exec_only && !d->limit_in_pages && d->seg_not_present &&
	       !d->usable;
}

static int set_tls(pid_t pid, const ThreadInfoX86 *ti)
{
	for (size_t i = 0; i < ti->n_tls; i++) {
		const UserDescT *d = ti->tls[i];
		struct user_desc u;

		if (tls_empty(d))
			continue;
		memset(&u, 0, sizeof(u));
		u.entry_number = d->entry_number;
		u.base_addr = d->base_addr;
		u.limit = d->limit;
		u.seg_32bit = d->seg_32bit;
		u.contents = (d->contents_h << 1) | d->contents_l;
		u.read_exec_only = d->read_exec_only;
		u.limit_in_pages = d->limit_in_pages;
		u.seg_not_present = d->seg_not_present;
		u.useable = d->usable;
		if (ptrace(PTRACE_SET_THREAD_AREA, pid, (void *)(long)d->entry_number, &u)) {
			pr_perror("cannot set TLS slot %u of task %d", d->entry_number, pid);
			return -errno;
		}
	}
	return 0;
}

/* Registers, FPU/xstate and TLS slots of a stopped thread (the leader or
 * another one). */
int rst_thread_set_regs(pid_t pid, const CoreEntry *core, const struct rst_restart *rs)
{
	int ret;

	ret = set_regs(pid, core->thread_info->gpregs, rs);
	/* with XSAVE each thread loaded its own in the blob (attrs/fpu.c) */
	if (!ret && !attr_fpu_by_blob(core))
		ret = set_fpu(pid, core->thread_info->fpregs);
	if (!ret)
		ret = set_tls(pid, core->thread_info);
	return ret;
}

int rst_finalize(const struct opts *o, const struct rst_images *ri,
		 const struct rst_plan *plan, struct rst_task *t)
{
	const CoreEntry *core = ri->core;
	uint64_t all = ~0ull, args = plan->blob_start + plan->args_off;
	struct attr_rst r = {
		.ri = ri, .core = core, .pid = ri->pid, .tid = ri->pid, .plan = plan,
		.host_tid = t->pid,
		.syscall_ip = plan->blob_start + restorer_export_syscall_off,
		.remote_args = args,
		.remote_thread = args + sizeof(struct restorer_args) +
				 plan->nr_vmas * sizeof(struct rst_vma),
	};
	struct rst_restart rs;
	pid_t pid = t->pid;
	int ret;

	(void)o;
	/* the others first: they sleep in the blob, which the leader unmaps */
	ret = rst_threads_finalize(ri, plan, t);
	if (ret)
		return ret;
	if (ptrace(PTRACE_SETSIGMASK, pid, sizeof(all), &all)) {
		pr_perror("cannot block the signals of task %d", pid);
		return -errno;
	}
	ret = attrs_restore(&r, ATTR_RST_FINAL, ATTR_PROCESS | ATTR_THREAD);
	if (!ret)
		ret = rst_syscall_restart_prepare(pid, r.syscall_ip, core, &rs);
	if (!ret) {
		struct user_regs_struct final;

		build_regs(core->thread_info->gpregs, &rs, &final);
		ret = unmap_blob(plan, pid, &final);
	}
	if (!ret)
		ret = rst_thread_set_regs(pid, core, &rs);
	if (!ret)
		ret = rst_threads_resume(ri, plan, t);
	if (!ret)
		ret = attrs_restore(&r, ATTR_RST_RESUME, ATTR_PROCESS | ATTR_THREAD);
	return ret;
}

/* Let them go, the leader last: from here on the task runs as dumped. */
int rst_detach(struct rst_task *t)
{
	int ret = rst_threads_detach(t);

	if (ret)
		return ret;
	if (ptrace(PTRACE_DETACH, t->pid, NULL, NULL)) {
		pr_perror("cannot detach from task %d", t->pid);
		return -errno;
	}
	return 0;
}
