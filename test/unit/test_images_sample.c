/*
 * test_images_sample DIR: write a complete, made-up image set with the
 * image library, so that test/test_images.py can check that CRIU's own
 * decoder (crit) and `criu-lazy show` read every image as written.
 *
 * Two processes: 1000 (threads 1000 and 1001) and its child 1002.  Every
 * value is fixed; test_images.py knows the ones it checks (SAMPLE_* below).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "images/image.h"
#include "images/pagemap.h"

#include "core.pb-c.h"
#include "fdinfo.pb-c.h"
#include "fs.pb-c.h"
#include "inventory.pb-c.h"
#include "mm.pb-c.h"
#include "pipe-data.pb-c.h"
#include "pstree.pb-c.h"
#include "seccomp.pb-c.h"
#include "stats.pb-c.h"
#include "timens.pb-c.h"
#include "tty.pb-c.h"

#define PAGE 4096ULL

#define SAMPLE_IP		0x401a2bULL
#define SAMPLE_SP		0x7ffd5e3f1e28ULL
#define SAMPLE_HEAP		0x1c5d000ULL
#define SAMPLE_ANON		0x7f3a10000000ULL	/* 64 pages, lazy */
#define SAMPLE_STACK		0x7ffd5e3d2000ULL	/* 32 pages */
#define SAMPLE_VDSO		0x7ffd5e3fb000ULL
#define SAMPLE_PIPE_ID		51234

static int write_inventory(int dirfd)
{
	InventoryEntry inv = INVENTORY_ENTRY__INIT;
	TaskKobjIdsEntry root = TASK_KOBJ_IDS_ENTRY__INIT;
	PluginsEntry plugins = PLUGINS_ENTRY__INIT;

	root.vm_id = 1;
	root.files_id = 1;
	root.fs_id = 1;
	root.sighand_id = 1;
	root.has_pid_ns_id = root.has_net_ns_id = root.has_mnt_ns_id = true;
	root.pid_ns_id = 3;
	root.net_ns_id = 4;
	root.mnt_ns_id = 5;
	inv.img_version = 2;
	inv.has_fdinfo_per_id = inv.has_ns_per_id = true;
	inv.fdinfo_per_id = inv.ns_per_id = true;
	inv.root_ids = &root;
	inv.has_root_cg_set = true;
	inv.root_cg_set = 1;
	inv.has_lsmtype = true;
	inv.lsmtype = LSMTYPE__NO_LSM;
	inv.has_network_lock_method = true;
	inv.network_lock_method = 0;
	inv.plugins_entry = &plugins;
	inv.dump_criu_run_id = "5bd3e4c2-0d1c-4a39-9b35-6f5e3b0c6a11";
	return img_write_one(dirfd, IMG_INVENTORY, 0, &inv.base);
}

static int write_pstree(int dirfd)
{
	uint32_t t0[] = { 1000, 1001 }, t1[] = { 1002 };
	PstreeEntry e = PSTREE_ENTRY__INIT;
	struct cr_img *img;
	int ret;

	ret = img_open(dirfd, IMG_PSTREE, 0, O_WRONLY, &img);
	if (ret)
		return ret;
	e.pid = e.pgid = e.sid = 1000;
	e.n_threads = 2;
	e.threads = t0;
	ret = img_write_entry(img, &e.base);
	e.pid = 1002;
	e.ppid = 1000;
	e.n_threads = 1;
	e.threads = t1;
	ret = ret ?: img_write_entry(img, &e.base);
	return img_close(img) ?: ret;
}

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

static int write_core(int dirfd, uint64_t tid, bool leader, const char *comm)
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

static int write_ids(int dirfd, unsigned long pid, uint32_t base)
{
	TaskKobjIdsEntry ids = TASK_KOBJ_IDS_ENTRY__INIT;

	ids.vm_id = base;
	ids.files_id = base;
	ids.fs_id = base;
	ids.sighand_id = base;
	ids.has_pid_ns_id = ids.has_net_ns_id = ids.has_mnt_ns_id = true;
	ids.pid_ns_id = 3;
	ids.net_ns_id = 4;
	ids.mnt_ns_id = 5;
	return img_write_one(dirfd, IMG_IDS, pid, &ids.base);
}

/* {start, end, pgoff, shmid, prot, flags, status} */
static const uint64_t sample_vmas[][7] = {
	{ 0x400000, 0x401000, 0, 1, 1, 0x2, 0x41 },
	{ 0x401000, 0x403000, 0x1000, 1, 5, 0x2, 0x41 },
	{ 0x403000, 0x404000, 0x3000, 1, 3, 0x2, 0x41 },
	{ SAMPLE_HEAP, SAMPLE_HEAP + 33 * PAGE, 0, 0, 3, 0x22, 0x221 },
	{ SAMPLE_ANON, SAMPLE_ANON + 64 * PAGE, 0, 0, 3, 0x22, 0x201 },
	{ SAMPLE_STACK, SAMPLE_STACK + 32 * PAGE, 0, 0, 3, 0x122, 0x201 },
	{ SAMPLE_VDSO - 4 * PAGE, SAMPLE_VDSO, 0, 0, 1, 0x22, 0x1201 },
	{ SAMPLE_VDSO, SAMPLE_VDSO + 2 * PAGE, 0, 0, 5, 0x22, 0x209 },
};

static int write_mm(int dirfd, unsigned long pid, size_t nr_vmas)
{
	uint64_t auxv[] = { 33, SAMPLE_VDSO, 6, 4096, 25, SAMPLE_STACK + 0x1f000, 0, 0 };
	MmEntry mm = MM_ENTRY__INIT;
	VmaEntry vmas[8], *ptrs[8];

	for (size_t i = 0; i < nr_vmas; i++) {
		vma_entry__init(&vmas[i]);
		vmas[i].start = sample_vmas[i][0];
		vmas[i].end = sample_vmas[i][1];
		vmas[i].pgoff = sample_vmas[i][2];
		vmas[i].shmid = sample_vmas[i][3];
		vmas[i].prot = sample_vmas[i][4];
		vmas[i].flags = sample_vmas[i][5];
		vmas[i].status = sample_vmas[i][6];
		vmas[i].fd = -1;
		if (vmas[i].shmid) {
			vmas[i].has_fdflags = true;
			vmas[i].fdflags = 0;
		}
		ptrs[i] = &vmas[i];
	}
	vmas[4].has_madv = true;
	vmas[4].madv = 1ULL << 14;		/* MADV_HUGEPAGE */

	mm.mm_start_code = 0x401000;
	mm.mm_end_code = 0x402f15;
	mm.mm_start_data = 0x403de8;
	mm.mm_end_data = 0x404000;
	mm.mm_start_stack = SAMPLE_STACK + 0x1f9a0;
	mm.mm_start_brk = SAMPLE_HEAP;
	mm.mm_brk = SAMPLE_HEAP + 33 * PAGE;
	mm.mm_arg_start = SAMPLE_STACK + 0x1fb5a;
	mm.mm_arg_end = SAMPLE_STACK + 0x1fb66;
	mm.mm_env_start = mm.mm_arg_end;
	mm.mm_env_end = SAMPLE_STACK + 0x1ffe0;
	mm.exe_file_id = 1;
	mm.n_mm_saved_auxv = sizeof(auxv) / sizeof(auxv[0]);
	mm.mm_saved_auxv = auxv;
	mm.n_vmas = nr_vmas;
	mm.vmas = ptrs;
	mm.has_dumpable = true;
	mm.dumpable = 1;
	mm.has_thp_disabled = true;
	return img_write_one(dirfd, IMG_MM, pid, &mm.base);
}

/* Page i of the sample holds the byte (vaddr / 4096) & 0xff everywhere. */
static int add_pages(struct pagemap_writer *w, uint64_t vaddr, uint64_t nr, uint32_t flags)
{
	unsigned char *buf = NULL;
	int ret;

	if (flags & PE_PRESENT) {
		buf = malloc(nr * PAGE);
		if (!buf)
			return -ENOMEM;
		for (uint64_t i = 0; i < nr; i++)
			memset(buf + i * PAGE, (int)((vaddr / PAGE + i) & 0xff), PAGE);
	}
	ret = pagemap_writer_add(w, vaddr, nr, flags, buf);
	free(buf);
	return ret;
}

static int write_pagemap(int dirfd)
{
	struct pagemap_writer *w;
	int ret;

	ret = pagemap_writer_open(dirfd, IMG_PAGEMAP, 1000, 1, &w);
	if (ret)
		return ret;
	ret = add_pages(w, 0x403000, 1, PE_PRESENT);				/* .data */
	ret = ret ?: add_pages(w, SAMPLE_HEAP, 3, PE_PRESENT | PE_LAZY);
	ret = ret ?: add_pages(w, SAMPLE_HEAP + 8 * PAGE, 2, PE_PRESENT | PE_LAZY);
	ret = ret ?: add_pages(w, SAMPLE_ANON, 16, PE_PRESENT | PE_LAZY);
	ret = ret ?: add_pages(w, SAMPLE_ANON + 16 * PAGE, 16, PE_PRESENT | PE_LAZY);
	ret = ret ?: add_pages(w, SAMPLE_STACK + 30 * PAGE, 2, PE_PRESENT | PE_LAZY);
	ret = ret ?: add_pages(w, SAMPLE_VDSO, 2, PE_PRESENT);
	ret = pagemap_writer_close(w) ?: ret;
	if (ret)
		return ret;

	/* the child: its pages are served remotely (dump --lazy-pages style) */
	ret = pagemap_writer_open(dirfd, IMG_PAGEMAP, 1002, 2, &w);
	if (ret)
		return ret;
	ret = add_pages(w, 0x403000, 1, PE_PRESENT);
	ret = ret ?: add_pages(w, SAMPLE_HEAP, 4, PE_LAZY);
	return pagemap_writer_close(w) ?: ret;
}

static int write_fs(int dirfd, unsigned long pid)
{
	FsEntry fs = FS_ENTRY__INIT;

	fs.cwd_id = 2;
	fs.root_id = 3;
	fs.has_umask = true;
	fs.umask = 022;
	return img_write_one(dirfd, IMG_FS, pid, &fs.base);
}

static int write_reg(struct cr_img *img, uint32_t id, const char *name, uint32_t flags,
		     uint32_t mode, uint64_t size)
{
	FileEntry fe = FILE_ENTRY__INIT;
	RegFileEntry reg = REG_FILE_ENTRY__INIT;
	FownEntry fown = FOWN_ENTRY__INIT;

	reg.id = id;
	reg.flags = flags;
	reg.pos = 0;
	reg.fown = &fown;
	reg.name = (char *)name;
	reg.has_mnt_id = true;
	reg.mnt_id = 27;
	reg.has_size = true;
	reg.size = size;
	reg.has_mode = true;
	reg.mode = mode;
	fe.type = FD_TYPES__REG;
	fe.id = id;
	fe.reg = &reg;
	return img_write_entry(img, &fe.base);
}

static int write_pipe(struct cr_img *img, uint32_t id, uint32_t flags)
{
	FileEntry fe = FILE_ENTRY__INIT;
	PipeEntry pipe = PIPE_ENTRY__INIT;
	FownEntry fown = FOWN_ENTRY__INIT;

	pipe.id = id;
	pipe.pipe_id = SAMPLE_PIPE_ID;
	pipe.flags = flags;
	pipe.fown = &fown;
	fe.type = FD_TYPES__PIPE;
	fe.id = id;
	fe.pipe = &pipe;
	return img_write_entry(img, &fe.base);
}

static int write_files(int dirfd)
{
	FileEntry fe = FILE_ENTRY__INIT;
	TtyFileEntry tty = TTY_FILE_ENTRY__INIT;
	FownEntry fown = FOWN_ENTRY__INIT;
	struct cr_img *img;
	int ret;

	ret = img_open(dirfd, IMG_FILES, 0, O_WRONLY, &img);
	if (ret)
		return ret;
	ret = write_reg(img, 1, "/usr/bin/sample", 0x8000, 0100755, 16384);
	ret = ret ?: write_reg(img, 2, "/tmp/sample-cwd", 0x18000, 040755, 4096);
	ret = ret ?: write_reg(img, 3, "/", 0x18000, 040755, 4096);
	ret = ret ?: write_reg(img, 4, "/dev/null", 0x8002, 020666, 0);
	ret = ret ?: write_pipe(img, 5, 0);
	ret = ret ?: write_pipe(img, 6, 1);
	ret = ret ?: write_reg(img, 8, "/dev/pts/0", 0x8002, 020620, 0);
	tty.id = 7;
	tty.tty_info_id = 9;
	tty.flags = 0x8002;
	tty.fown = &fown;
	tty.has_regf_id = true;
	tty.regf_id = 8;
	fe.type = FD_TYPES__TTY;
	fe.id = 7;
	fe.tty = &tty;
	ret = ret ?: img_write_entry(img, &fe.base);
	return img_close(img) ?: ret;
}

static int write_fdinfo(int dirfd, unsigned long files_id)
{
	static const uint32_t fds[][4] = {	/* fd, id, type, flags */
		{ 0, 4, FD_TYPES__REG, 0 },
		{ 1, 6, FD_TYPES__PIPE, 0 },
		{ 2, 7, FD_TYPES__TTY, 0 },
		{ 3, 5, FD_TYPES__PIPE, 1 },
	};
	struct cr_img *img;
	int ret;

	ret = img_open(dirfd, IMG_FDINFO, files_id, O_WRONLY, &img);
	if (ret)
		return ret;
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]) && !ret; i++) {
		FdinfoEntry fi = FDINFO_ENTRY__INIT;

		fi.fd = fds[i][0];
		fi.id = fds[i][1];
		fi.type = fds[i][2];
		fi.flags = fds[i][3];
		ret = img_write_entry(img, &fi.base);
	}
	return img_close(img) ?: ret;
}

static int write_pipes_data(int dirfd)
{
	static const char data[] = "hello pipe!";
	PipeDataEntry pd = PIPE_DATA_ENTRY__INIT;
	struct cr_img *img;
	int ret, fd;

	ret = img_open(dirfd, IMG_PIPES_DATA, 0, O_WRONLY, &img);
	if (ret)
		return ret;
	pd.pipe_id = SAMPLE_PIPE_ID;
	pd.bytes = sizeof(data) - 1;
	pd.has_size = true;
	pd.size = 65536;
	ret = img_write_entry(img, &pd.base);
	if (!ret) {
		fd = img_raw_fd(img);
		if (fd < 0)
			ret = fd;
		else if (write(fd, data, pd.bytes) != (ssize_t)pd.bytes)
			ret = -EIO;
	}
	return img_close(img) ?: ret;
}

static int write_tty_info(int dirfd)
{
	uint32_t cc[19] = { 3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22 };
	TtyInfoEntry ti = TTY_INFO_ENTRY__INIT;
	TermiosEntry tio = TERMIOS_ENTRY__INIT;
	WinsizeEntry ws = WINSIZE_ENTRY__INIT;
	TtyPtyEntry pty = TTY_PTY_ENTRY__INIT;
	struct cr_img *img;
	int ret;

	tio.c_iflag = 0x500;
	tio.c_oflag = 0x5;
	tio.c_cflag = 0xbf;
	tio.c_lflag = 0x8a3b;
	tio.c_ispeed = tio.c_ospeed = 15;
	tio.n_c_cc = 19;
	tio.c_cc = cc;
	ws.ws_row = 50;
	ws.ws_col = 132;
	pty.index = 0;
	ti.id = 9;
	ti.type = TTY_TYPE__PTY;
	ti.sid = 1000;
	ti.pgrp = 1000;
	ti.rdev = 0x8800;
	ti.termios = &tio;
	ti.termios_locked = &tio;
	ti.winsize = &ws;
	ti.pty = &pty;
	ti.has_uid = ti.has_gid = true;
	ti.uid = 1000;
	ti.gid = 5;

	ret = img_open(dirfd, IMG_TTY_INFO, 0, O_WRONLY, &img);
	if (ret)
		return ret;
	ret = img_write_entry(img, &ti.base);
	return img_close(img) ?: ret;
}

static int write_misc(int dirfd)
{
	SeccompEntry sc = SECCOMP_ENTRY__INIT;
	TimensEntry tn = TIMENS_ENTRY__INIT;
	Timespec mono = TIMESPEC__INIT, boot = TIMESPEC__INIT;
	StatsEntry st = STATS_ENTRY__INIT;
	DumpStatsEntry ds = DUMP_STATS_ENTRY__INIT;
	RestoreStatsEntry rs = RESTORE_STATS_ENTRY__INIT;
	int ret;

	ret = img_write_one(dirfd, IMG_SECCOMP, 0, &sc.base);

	mono.tv_sec = 86400;
	mono.tv_nsec = 123456789;
	boot.tv_sec = 86410;
	boot.tv_nsec = 987654321;
	tn.monotonic = &mono;
	tn.boottime = &boot;
	ret = ret ?: img_write_one(dirfd, IMG_TIMENS, 0, &tn.base);

	ds.freezing_time = 1200;
	ds.frozen_time = 25000;
	ds.memdump_time = 8000;
	ds.memwrite_time = 9000;
	ds.pages_scanned = 200;
	ds.pages_written = 42;
	ds.pages_lazy = 39;
	ds.has_page_pipes = ds.has_page_pipe_bufs = true;
	ds.page_pipes = 1;
	ds.page_pipe_bufs = 2;
	st.dump = &ds;
	ret = ret ?: img_write_one(dirfd, IMG_STATS_DUMP, 0, &st.base);

	st.dump = NULL;
	rs.forking_time = 300;
	rs.restore_time = 4000;
	rs.has_pages_restored = true;
	rs.pages_restored = 3;
	st.restore = &rs;
	return ret ?: img_write_one(dirfd, IMG_STATS_RESTORE, 0, &st.base);
}

int main(int argc, char **argv)
{
	int dirfd, ret;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	log_init("test_images_sample", LOG_WARN, NULL);
	mkdir(argv[1], 0700);
	dirfd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		perror(argv[1]);
		return 1;
	}

	ret = write_inventory(dirfd);
	ret = ret ?: write_pstree(dirfd);
	ret = ret ?: write_core(dirfd, 1000, true, "sample");
	ret = ret ?: write_core(dirfd, 1001, false, "sample");
	ret = ret ?: write_core(dirfd, 1002, true, "sample-child");
	ret = ret ?: write_ids(dirfd, 1000, 1);
	ret = ret ?: write_ids(dirfd, 1002, 2);
	ret = ret ?: write_mm(dirfd, 1000, 8);
	ret = ret ?: write_mm(dirfd, 1002, 4);
	ret = ret ?: write_pagemap(dirfd);
	ret = ret ?: write_fs(dirfd, 1000);
	ret = ret ?: write_fs(dirfd, 1002);
	ret = ret ?: write_files(dirfd);
	ret = ret ?: write_fdinfo(dirfd, 1);
	ret = ret ?: write_fdinfo(dirfd, 2);
	ret = ret ?: write_pipes_data(dirfd);
	ret = ret ?: write_tty_info(dirfd);
	ret = ret ?: write_misc(dirfd);
	close(dirfd);
	return ret ? 1 : 0;
}
