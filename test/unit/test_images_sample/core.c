/* test_images_sample: the core image of each thread (registers, FPU and
 * xstate, TLS, the task's signals, rlimits, timers, creds). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "images/image.h"

#include "core.pb-c.h"

#include "sample.h"

/* Everything a thread has: registers, FPU/xstate, TLS slots. */
struct sample_regs {
	UserX86RegsEntry gp;
	UserX86FpregsEntry fp;
	UserX86XsaveEntry xsave;
	UserX86CetEntry cet;
	ThreadInfoX86 ti;
	UserDescT tls[3];
	UserDescT *tls_ptrs[3];
	uint32_t st[32], xmm[64], ymmh[64], pkru[2];
};

static void sample_regs_init(struct sample_regs *r, uint64_t tid)
{
	user_x86_regs_entry__init(&r->gp);
	r->gp.ip = SAMPLE_IP;
	r->gp.sp = SAMPLE_SP - (tid - 1000) * 0x100000;
	r->gp.ax = (uint64_t)-512;		/* -ERESTARTSYS */
	r->gp.orig_ax = 230;			/* clock_nanosleep */
	r->gp.cx = 0x7f3a1fe8b7faULL;
	r->gp.r11 = 0x246;
	r->gp.flags = 0x246;
	r->gp.cs = 0x33;
	r->gp.ss = 0x2b;
	r->gp.fs_base = 0x7f3a1fd6f740ULL + (tid - 1000) * 0x1000;
	r->gp.has_mode = true;
	r->gp.mode = USER_X86_REGS_MODE__NATIVE;

	for (int i = 0; i < 32; i++)
		r->st[i] = i;
	for (int i = 0; i < 64; i++) {
		r->xmm[i] = 0x11110000 + i;
		r->ymmh[i] = 0x22220000 + i;
	}
	r->pkru[0] = 0x55555554;
	r->pkru[1] = 0;
	user_x86_cet_entry__init(&r->cet);
	r->cet.cet = 1;
	r->cet.ssp = 0x7f3a0ffff000ULL;
	user_x86_xsave_entry__init(&r->xsave);
	r->xsave.xstate_bv = 0x2a2;
	r->xsave.n_ymmh_space = 64;
	r->xsave.ymmh_space = r->ymmh;
	r->xsave.n_pkru = 2;
	r->xsave.pkru = r->pkru;
	r->xsave.cet = &r->cet;
	user_x86_fpregs_entry__init(&r->fp);
	r->fp.cwd = 0x37f;
	r->fp.twd = 0;
	r->fp.mxcsr = 0x1f80;
	r->fp.mxcsr_mask = 0x2ffff;
	r->fp.n_st_space = 32;
	r->fp.st_space = r->st;
	r->fp.n_xmm_space = 64;
	r->fp.xmm_space = r->xmm;
	r->fp.xsave = &r->xsave;

	for (int i = 0; i < 3; i++) {
		user_desc_t__init(&r->tls[i]);	/* empty slot: read_exec_only, seg_not_present */
		r->tls[i].entry_number = 12 + i;
		r->tls[i].read_exec_only = true;
		r->tls[i].seg_not_present = true;
		r->tls_ptrs[i] = &r->tls[i];
	}
	thread_info_x86__init(&r->ti);
	r->ti.clear_tid_addr = 0x7f3a1fd6fa10ULL;
	r->ti.gpregs = &r->gp;
	r->ti.fpregs = &r->fp;
	r->ti.n_tls = 3;
	r->ti.tls = r->tls_ptrs;
}

/* Process-wide state of a leader: sigactions, rlimits, timers, signals. */
struct sample_task {
	TaskCoreEntry tc;
	SaEntry sa[62];
	SaEntry *sa_ptrs[62];
	RlimitEntry rl[16];
	RlimitEntry *rl_ptrs[16];
	TaskRlimitsEntry rlimits;
	ItimerEntry real, virt, prof;
	PosixTimerEntry posix;
	PosixTimerEntry *posix_ptrs[1];
	TaskTimersEntry timers;
	SiginfoEntry si;
	SiginfoEntry *si_ptrs[1];
	SignalQueueEntry sigq;
	uint8_t siginfo[128];
};

static void sample_task_init(struct sample_task *t, const char *comm)
{
	for (int i = 0; i < 62; i++) {
		sa_entry__init(&t->sa[i]);
		t->sa[i].has_compat_sigaction = true;
		t->sa_ptrs[i] = &t->sa[i];
	}
	t->sa[8].sigaction = 0x401b00;		/* signal 10, SIGUSR1 */
	t->sa[8].flags = 0x14000000;
	t->sa[8].restorer = 0x7f3a1fdb5050ULL;
	t->sa[8].mask = 1ULL << 11;
	t->sa[12].sigaction = 1;		/* signal 14: SIG_IGN */

	for (int i = 0; i < 16; i++) {
		rlimit_entry__init(&t->rl[i]);
		t->rl[i].cur = t->rl[i].max = UINT64_MAX;
		t->rl_ptrs[i] = &t->rl[i];
	}
	t->rl[7].cur = 1024;			/* RLIMIT_NOFILE */
	t->rl[7].max = 1048576;
	task_rlimits_entry__init(&t->rlimits);
	t->rlimits.n_rlimits = 16;
	t->rlimits.rlimits = t->rl_ptrs;

	itimer_entry__init(&t->real);
	itimer_entry__init(&t->virt);
	itimer_entry__init(&t->prof);
	t->real.isec = 1;
	t->real.vsec = 0;
	t->real.vusec = 250000;
	posix_timer_entry__init(&t->posix);
	t->posix.it_id = 0;
	t->posix.clock_id = 1;
	t->posix.si_signo = 12;
	t->posix.it_sigev_notify = 0;
	t->posix.sival_ptr = 0xdeadbeef;
	t->posix.isec = 2;
	t->posix.vnsec = 500000000;
	t->posix_ptrs[0] = &t->posix;
	task_timers_entry__init(&t->timers);
	t->timers.real = &t->real;
	t->timers.virt = &t->virt;
	t->timers.prof = &t->prof;
	t->timers.n_posix = 1;
	t->timers.posix = t->posix_ptrs;

	memset(t->siginfo, 0, sizeof(t->siginfo));
	t->siginfo[0] = 10;			/* si_signo SIGUSR1 */
	t->siginfo[8] = 0xfa;			/* si_code SI_TKILL (-6) */
	t->siginfo[9] = t->siginfo[10] = t->siginfo[11] = 0xff;
	siginfo_entry__init(&t->si);
	t->si.siginfo.len = sizeof(t->siginfo);
	t->si.siginfo.data = t->siginfo;
	t->si_ptrs[0] = &t->si;
	signal_queue_entry__init(&t->sigq);
	t->sigq.n_signals = 1;
	t->sigq.signals = t->si_ptrs;

	task_core_entry__init(&t->tc);
	t->tc.task_state = 1;
	t->tc.personality = 0;
	t->tc.flags = 0x400000;
	t->tc.blk_sigset = 1ULL << 9;		/* signal 10 */
	t->tc.comm = (char *)comm;
	t->tc.timers = &t->timers;
	t->tc.rlimits = &t->rlimits;
	t->tc.signals_s = &t->sigq;
	t->tc.has_loginuid = true;
	t->tc.loginuid = 0xffffffff;
	t->tc.has_oom_score_adj = true;
	t->tc.oom_score_adj = -100;
	t->tc.n_sigactions = 62;
	t->tc.sigactions = t->sa_ptrs;
	t->tc.has_child_subreaper = true;
	t->tc.has_membarrier_registration_mask = true;
}

/* Per-thread state: credentials, sigaltstack, rseq. */
struct sample_thread {
	ThreadCoreEntry thc;
	CredsEntry creds;
	ThreadSasEntry sas;
	RseqEntry rseq;
	uint32_t caps[2], bnd[2], groups[3];
};

static void sample_thread_init(struct sample_thread *t, uint64_t tid)
{
	creds_entry__init(&t->creds);
	t->creds.uid = t->creds.euid = t->creds.suid = t->creds.fsuid = 1000;
	t->creds.gid = t->creds.egid = t->creds.sgid = t->creds.fsgid = 100;
	t->caps[0] = t->caps[1] = 0;
	t->bnd[0] = 0xffffffff;
	t->bnd[1] = 0x1ff;
	t->creds.n_cap_inh = t->creds.n_cap_prm = t->creds.n_cap_eff = 2;
	t->creds.cap_inh = t->creds.cap_prm = t->creds.cap_eff = t->caps;
	t->creds.n_cap_bnd = 2;
	t->creds.cap_bnd = t->bnd;
	t->creds.n_cap_amb = 2;
	t->creds.cap_amb = t->caps;
	t->groups[0] = 4;
	t->groups[1] = 27;
	t->groups[2] = 100;
	t->creds.n_groups = 3;
	t->creds.groups = t->groups;
	t->creds.has_no_new_privs = true;

	thread_sas_entry__init(&t->sas);
	t->sas.ss_flags = 2;			/* SS_DISABLE */
	rseq_entry__init(&t->rseq);
	t->rseq.rseq_abi_pointer = 0x7f3a1fd6fe20ULL + (tid - 1000) * 0x1000;
	t->rseq.rseq_abi_size = 32;
	t->rseq.signature = 0x53053053;

	thread_core_entry__init(&t->thc);
	t->thc.futex_rla = 0x7f3a1fd6fa20ULL;
	t->thc.futex_rla_len = 24;
	t->thc.has_sched_nice = true;
	t->thc.sched_nice = -3;
	t->thc.has_sched_policy = t->thc.has_sched_prio = true;
	t->thc.sas = &t->sas;
	t->thc.has_pdeath_sig = true;
	t->thc.creds = &t->creds;
	t->thc.has_seccomp_mode = true;
	t->thc.seccomp_mode = SECCOMP_MODE__disabled;
	t->thc.comm = tid == 1001 ? "sample-worker" : "sample";
	t->thc.rseq_entry = &t->rseq;
	t->thc.has_cg_set = true;
	t->thc.cg_set = 1;
	if (tid == 1001) {
		t->thc.has_blk_sigset = true;
		t->thc.blk_sigset = 1ULL << 14;
	}
}

int write_core(int dirfd, uint64_t tid, bool leader, const char *comm)
{
	CoreEntry core = CORE_ENTRY__INIT;
	struct sample_regs *regs = malloc(sizeof(*regs));
	struct sample_task *task = malloc(sizeof(*task));
	struct sample_thread *thread = malloc(sizeof(*thread));
	int ret = -ENOMEM;

	if (!regs || !task || !thread)
		goto out;
	sample_regs_init(regs, tid);
	sample_task_init(task, comm);
	sample_thread_init(thread, tid);
	core.mtype = CORE_ENTRY__MARCH__X86_64;
	core.thread_info = &regs->ti;
	core.tc = leader ? &task->tc : NULL;
	core.thread_core = &thread->thc;
	ret = img_write_one(dirfd, IMG_CORE, tid, &core.base);
out:
	free(regs);
	free(task);
	free(thread);
	return ret;
}
