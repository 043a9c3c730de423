/*
 * Registers of a frozen thread: general purpose (with fs/gs base), the
 * FPU/SSE/AVX state as XSAVE components, the three TLS descriptors, and the
 * clear_tid address.  Layout facts shared with restore are in
 * common/xsave-layout.h.
 */
#include <asm/ldt.h>
#include <elf.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "common/kernel-abi.h"
#include "common/log.h"
#include "common/xsave-layout.h"
#include "dump/dump.h"

#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE 0x202
#endif

static void fill_gpregs(UserX86RegsEntry *g, const struct user_regs_struct *r)
{
	g->r15 = r->r15;
	g->r14 = r->r14;
	g->r13 = r->r13;
	g->r12 = r->r12;
	g->bp = r->rbp;
	g->bx = r->rbx;
	g->r11 = r->r11;
	g->r10 = r->r10;
	g->r9 = r->r9;
	g->r8 = r->r8;
	g->ax = r->rax;
	g->cx = r->rcx;
	g->dx = r->rdx;
	g->si = r->rsi;
	g->di = r->rdi;
	g->orig_ax = r->orig_rax;
	g->ip = r->rip;
	g->cs = r->cs;
	g->flags = r->eflags;
	g->sp = r->rsp;
	g->ss = r->ss;
	g->fs_base = r->fs_base;
	g->gs_base = r->gs_base;
	g->ds = r->ds;
	g->es = r->es;
	g->fs = r->fs;
	g->gs = r->gs;
	g->has_mode = true;
	g->mode = USER_X86_REGS_MODE__NATIVE;
}

/*
 * A task stopped inside a syscall that will be restarted must, after the
 * restore, execute the syscall instruction again (CRIU does the same on its
 * saved copy): the kernel's own restart logic is not there to do it.
 */
static void adjust_syscall_restart(struct dump_task *t, UserX86RegsEntry *g)
{
	if ((int)g->orig_ax < 0)
		return;
	switch ((long)(int)g->ax) {
	case -ERESTARTSYS:
	case -ERESTARTNOINTR:
	case -ERESTARTNOHAND:
		g->ax = g->orig_ax;
		g->ip -= 2;
		pr_debug("task %d: syscall %lu will be restarted", t->pid,
			 (unsigned long)g->orig_ax);
		break;
	case -ERESTART_RESTARTBLOCK:
		pr_info("task %d: syscall %lu will return EINTR after restore", t->pid,
			(unsigned long)g->orig_ax);
		g->ax = -EINTR;
		break;
	}
}

static uint16_t get16(const uint8_t *b, size_t off)
{
	uint16_t v;

	memcpy(&v, b + off, sizeof(v));
	return v;
}

static uint32_t get32(const uint8_t *b, size_t off)
{
	uint32_t v;

	memcpy(&v, b + off, sizeof(v));
	return v;
}

static uint64_t get64(const uint8_t *b, size_t off)
{
	uint64_t v;

	memcpy(&v, b + off, sizeof(v));
	return v;
}

/* Copy component @comp (if the buffer has it) into @dst of its fixed size. */
static int copy_comp(struct dump_task *t, const uint8_t *buf, size_t len, int comp, void *dst)
{
	unsigned int size = xsave_comp_size(comp), off = xsave_comp_offset(comp);

	if (xsave_comp_cpuid_size(comp) != size) {
		pr_err("task %d: XSAVE component %d is %u bytes on this CPU, images need %u",
		       t->pid, comp, xsave_comp_cpuid_size(comp), size);
		return -EOPNOTSUPP;
	}
	memset(dst, 0, size);
	if (off && off + size <= len)
		memcpy(dst, buf + off, size);
	return 0;
}

static int fill_xsave(struct dump_task *t, struct task_core *c, const uint8_t *buf, size_t len)
{
	UserX86XsaveEntry *x = &c->xsave;
	uint64_t xcr0 = xsave_xcr0();
	int ret = 0;

	x->xstate_bv = len >= XSAVE_HDR_OFFSET + 8 ? get64(buf, XSAVE_HDR_OFFSET) : 3;

#define COMP(nr, field, arr)							\
	if (!ret && (xcr0 & (1ull << (nr)))) {					\
		ret = copy_comp(t, buf, len, nr, c->arr);			\
		x->n_##field = sizeof(c->arr) / sizeof(c->arr[0]);		\
		x->field = c->arr;						\
	}
	COMP(XCOMP_YMM, ymmh_space, ymmh);
	COMP(XCOMP_BNDREGS, bndreg_state, bndreg);
	COMP(XCOMP_BNDCSR, bndcsr_state, bndcsr);
	COMP(XCOMP_OPMASK, opmask_reg, opmask);
	COMP(XCOMP_ZMM_H, zmm_upper, zmm_upper);
	COMP(XCOMP_HI16_ZMM, hi16_zmm, hi16_zmm);
	COMP(XCOMP_PKRU, pkru, pkru);
#undef COMP
	c->fpregs.xsave = x;
	pr_debug("task %d: xstate %zu bytes, xcr0 %#llx, xstate_bv %#llx", t->pid, len,
		 (unsigned long long)xcr0, (unsigned long long)x->xstate_bv);
	return ret;
}

static int dump_fpu(struct dump_task *t, struct task_core *c)
{
	UserX86FpregsEntry *f = &c->fpregs;
	bool xsave = xsave_os_enabled();
	struct iovec iov;
	uint8_t *buf;
	int ret = 0;

	buf = calloc(1, XSTATE_BUF_MAX);
	if (!buf)
		return -ENOMEM;
	iov.iov_base = buf;
	iov.iov_len = xsave ? XSTATE_BUF_MAX : XSAVE_LEGACY_SIZE;
	if (ptrace(PTRACE_GETREGSET, t->pid, xsave ? NT_X86_XSTATE : NT_PRFPREG, &iov)) {
		ret = dump_task_error(t, -errno, "can't get the FPU state of task %d: %m", t->pid);
		goto out;
	}
	if (iov.iov_len < XSAVE_LEGACY_SIZE) {
		pr_err("task %d: FPU state is only %zu bytes", t->pid, iov.iov_len);
		ret = -EIO;
		goto out;
	}

	f->cwd = get16(buf, FXSAVE_CWD);
	f->swd = get16(buf, FXSAVE_SWD);
	f->twd = get16(buf, FXSAVE_TWD);
	f->fop = get16(buf, FXSAVE_FOP);
	f->rip = get64(buf, FXSAVE_RIP);
	f->rdp = get64(buf, FXSAVE_RDP);
	f->mxcsr = get32(buf, FXSAVE_MXCSR);
	f->mxcsr_mask = get32(buf, FXSAVE_MXCSR_MASK);
	memcpy(c->st_space, buf + FXSAVE_ST_SPACE, sizeof(c->st_space));
	memcpy(c->xmm_space, buf + FXSAVE_XMM_SPACE, sizeof(c->xmm_space));
	f->n_st_space = FXSAVE_ST_WORDS;
	f->st_space = c->st_space;
	f->n_xmm_space = FXSAVE_XMM_WORDS;
	f->xmm_space = c->xmm_space;

	if (xsave)
		ret = fill_xsave(t, c, buf, iov.iov_len);
out:
	free(buf);
	return ret;
}

static int dump_tls(struct dump_task *t, struct task_core *c)
{
	for (int i = 0; i < DUMP_NR_TLS; i++) {
		struct user_desc d;
		UserDescT *u = &c->tls[i];

		memset(&d, 0, sizeof(d));
		if (ptrace(PTRACE_GET_THREAD_AREA, t->pid, (void *)(long)(DUMP_TLS_FIRST + i), &d))
			return dump_task_error(t, -errno, "can't get TLS entry %d of task %d: %m",
					       DUMP_TLS_FIRST + i, t->pid);
		u->entry_number = DUMP_TLS_FIRST + i;
		u->base_addr = d.base_addr;
		u->limit = d.limit;
		u->seg_32bit = d.seg_32bit;
		u->contents_h = (d.contents >> 1) & 1;
		u->contents_l = d.contents & 1;
		u->read_exec_only = d.read_exec_only;
		u->limit_in_pages = d.limit_in_pages;
		u->seg_not_present = d.seg_not_present;
		u->usable = d.useable;
		c->tls_p[i] = u;
	}
	c->ti.n_tls = DUMP_NR_TLS;
	c->ti.tls = c->tls_p;
	return 0;
}

int dump_regs(struct dump_task *t)
{
	struct task_core *c = t->core;
	int ret;

	if (t->regs.cs != 0x33) {
		pr_err("task %d runs in 32-bit mode (cs %#llx): not supported", t->pid,
		       (unsigned long long)t->regs.cs);
		return -EOPNOTSUPP;
	}
	fill_gpregs(&c->gpregs, &t->regs);
	adjust_syscall_restart(t, &c->gpregs);
	c->ti.gpregs = &c->gpregs;
	c->ti.fpregs = &c->fpregs;

	ret = dump_fpu(t, c);
	if (!ret)
		ret = dump_tls(t, c);
	if (ret)
		return ret;
	pr_debug("task %d: ip %#llx sp %#llx ax %#llx orig_ax %lld fs_base %#llx", t->pid,
		 (unsigned long long)c->gpregs.ip, (unsigned long long)c->gpregs.sp,
		 (unsigned long long)c->gpregs.ax, (long long)c->gpregs.orig_ax,
		 (unsigned long long)c->gpregs.fs_base);
	return 0;
}
