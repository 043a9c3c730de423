/*
 * What the restore process hands to the restorer blob, and what the blob
 * hands back.  Shared by both sides, so only fixed-size types and no
 * pointers into libc memory: every address below is either inside the blob
 * region (which stays put until the blob is done) or an absolute address of
 * the target layout.
 *
 * The blob region, mapped by the new task before it jumps into the blob:
 *
 *     blob_start   code (restorer_blob[], read + exec)
 *                  struct restorer_args, then its arrays (read + write)
 *                  the blob's stack (the leader's)
 *                  one stack per other thread
 *                  a scratch area the size of the vdso group
 *     blob_end
 *
 * The premap region [premap_start, premap_end) holds every VMA of the target
 * at a temporary address, already filled, but those mapped at their own
 * address from the start (premap == start: nothing to move, and kept when
 * the old layout goes).  Both regions lie in a hole that is free in the
 * current layout and in the target layout, so moving VMAs to their
 * targets never clobbers anything still to be moved.
 */
#ifndef CRIU_LAZY_PIE_RESTORER_ARGS_H
#define CRIU_LAZY_PIE_RESTORER_ARGS_H

#include <stdint.h>

#define RESTORER_ARGS_MAGIC	0x52535452u	/* "RTSR" */
#define RESTORER_ARGS_VERSION	9

#define RST_TASK_SIZE		0x7ffffffff000ull	/* 47-bit user space */
#define RST_PAGE_SIZE		4096ull
#define RST_SIGINFO_SIZE	128
#define RST_AUXV_WORDS_MAX	64
#define RST_VDSO_PARTS_MAX	4
#define RST_NR_ITIMERS		3
#define RST_NR_RLIMITS		16
#define RST_THREAD_STACK_SIZE	(32ull << 10)	/* each non-leader thread's, in the blob */

/* Where the blob stands (restorer_args.status). */
enum rst_status {
	RST_STATUS_RUNNING	= 0,
	RST_STATUS_DONE		= 1,	/* every step succeeded; the task sits at int3 */
	RST_STATUS_FAILED	= 2,	/* fail_step failed with -fail_errno */
	/* 3 was the lazy stop of version 8: the blob sends its uffd now */
	RST_STATUS_TRACE_THREADS = 4,	/* seccomp: the other threads exist and wait
					 * on threads_go; the task sits at an int3
					 * until the restore process has seized them
					 * all with PTRACE_O_SUSPEND_SECCOMP */
};

/* The blob's steps, in order.  The restore process names them in errors. */
enum rst_step {
	RST_STEP_START = 0,
	RST_STEP_UNMAP,		/* unmap everything of the old address space */
	RST_STEP_VDSO,		/* move vvar/vvar_vclock/vdso to the dumped address */
	RST_STEP_UFFD_OPEN,	/* (lazy) create the userfaultfd inside the task */
	RST_STEP_MREMAP,	/* move each premapped VMA to its address */
	RST_STEP_UFFD_REGISTER,	/* (lazy) register a lazy VMA */
	RST_STEP_UNMAP_PREMAP,	/* drop what is left of the premap region */
	RST_STEP_MPROTECT,
	RST_STEP_MADVISE,
	RST_STEP_GUARDS,	/* install the guard regions again */
	RST_STEP_MM_MAP,	/* prctl(PR_SET_MM, PR_SET_MM_MAP) */
	RST_STEP_CLOSE_FDS,	/* close the restore's helper fds */
	RST_STEP_THREADS,	/* create the other threads (clone3 + set_tid) */
	RST_STEP_SIGNALS,	/* queue the pending signals */
	RST_STEP_SECCOMP,	/* before the creds: installing needs our privileges */
	RST_STEP_RLIMITS,	/* before the creds: then we may still raise them */
	RST_STEP_CREDS,
	RST_STEP_RSEQ,
	RST_STEP_ROBUST_LIST,
	RST_STEP_TID_ADDRESS,
	RST_STEP_SIGALTSTACK,
	RST_STEP_PRCTL,		/* pdeath_sig, dumpable, comm, THP back on */
	RST_STEP_SCHED,		/* the thread's policy, priority and nice */
	RST_STEP_ITIMERS,
	RST_STEP_POSIX_TIMERS,	/* create (with its dumped id) or arm a POSIX timer */
	RST_STEP_UFFD_SEND,	/* (lazy) send the userfaultfd to the restore process */
	RST_STEP_NR
};

/* One VMA of the target layout that was premapped. */
struct rst_vma {
	uint64_t start, end;	/* target address */
	uint64_t premap;	/* where it is now (= start: in place already) */
	uint64_t madv;		/* bit n set: madvise(advice n) */
	uint32_t prot;		/* dumped PROT_* */
	uint32_t flags;		/* dumped MAP_* */
	uint32_t status;	/* VMA_* */
	uint32_t lazy;		/* register with the userfaultfd (lazy restore) */
};

/* A part of the vdso group ([vvar], [vvar_vclock], [vdso]), ascending. */
struct rst_range {
	uint64_t start, end;
};

/*
 * The vdso group: ours moves by one delta onto the dumped one (the restore
 * process checked the parts have the same sizes and relative positions).
 * When the two spans overlap, the parts go through @scratch first.
 */
struct rst_vdso {
	uint32_t nr_parts;
	uint32_t pad;
	struct rst_range parts[RST_VDSO_PARTS_MAX];	/* ours, now */
	uint64_t target;	/* dumped address of parts[0].start; 0: no vdso */
	uint64_t scratch;	/* free area in the blob region, span-sized */
};

/* Same layout as the kernel's struct prctl_mm_map (linux/prctl.h). */
struct rst_mm_map {
	uint64_t start_code, end_code;
	uint64_t start_data, end_data;
	uint64_t start_brk, brk;
	uint64_t start_stack;
	uint64_t arg_start, arg_end;
	uint64_t env_start, env_end;
	uint64_t auxv;		/* address of auxv[] below */
	uint32_t auxv_size;	/* bytes */
	uint32_t exe_fd;
};

struct rst_rlimit {
	uint64_t cur, max;
};

struct rst_creds {
	uint32_t restore;	/* 0: the task keeps ours (they are equal) */
	uint32_t uid, gid, euid, egid, suid, sgid, fsuid, fsgid;
	uint32_t cap_inh[2], cap_prm[2], cap_eff[2], cap_bnd[2], cap_amb[2];
	uint32_t has_amb;
	uint32_t secbits;
	uint32_t cap_last_cap;
	uint32_t no_new_privs;
	uint32_t nr_groups;
	uint64_t groups;	/* address of uint32_t[nr_groups] */
};

/* struct itimerval as the kernel takes it */
struct rst_itimerval {
	int64_t interval_sec, interval_usec;
	int64_t value_sec, value_usec;
};

/*
 * A POSIX timer (timer_create): created again with its dumped id, then
 * armed with what was left of its time.  notify is the kernel's
 * sigev_notify (SIGEV_SIGNAL 0, NONE 1, THREAD 2, | THREAD_ID 4).
 */
struct rst_posix_timer {
	int32_t id;
	int32_t clock;
	int32_t signo;
	int32_t notify;
	uint64_t value;		/* sigev_value */
	int32_t tid;		/* SIGEV_THREAD_ID: the thread, its own view */
	int32_t fire_now;	/* its signal was pending: it expires at once, so
				 * that signal is its own again (and the copy in
				 * the pending queues, taken, is not queued) */
	int32_t taken;		/* written by the blob */
	int32_t pad;
	int64_t interval_sec, interval_nsec;
	int64_t value_sec, value_nsec;	/* all 0: left disarmed */
};

/*
 * A thread's seccomp state: strict mode, or a chain of filters installed
 * oldest first.  Each filter is a struct sock_fprog as the kernel takes it
 * (u16 len, then the address of len 8-byte instructions) and the flags it
 * was installed with.
 */
struct rst_seccomp_filter {
	uint16_t len;
	uint16_t pad[3];
	uint64_t insns;
	uint32_t flags;			/* SECCOMP_FILTER_FLAG_* */
	uint32_t pad2;
};

struct rst_seccomp {
	uint32_t mode;			/* SECCOMP_MODE_*; 0: none */
	uint32_t nr_filters;		/* 0 with mode 2: the leader's TSYNC sets them */
	uint64_t filters;		/* address of struct rst_seccomp_filter[] */
	uint32_t tsync;			/* install with SECCOMP_FILTER_FLAG_TSYNC */
	uint32_t pad;
};

/* stack_t */
struct rst_sigaltstack {
	uint64_t ss_sp;
	int32_t ss_flags;
	int32_t pad;
	uint64_t ss_size;
};

/* Lazy restore: the blob creates the uffd and registers the lazy VMAs,
 * sends it to the restore process on @sock (SCM_RIGHTS, with @pid as the
 * message), closes its own copy and goes on without waiting: the restore
 * process hands it to the daemon, and a fault of what follows on lazy
 * memory (the kernel writes the rseq area) waits for the daemon, not for
 * us.  !enabled: eager restore. */
struct rst_lazy {
	int32_t enabled;
	int32_t pid;		/* the task's pid in the images */
	uint64_t features;	/* UFFD_FEATURE_* to ask for (the kernel has them all) */
	int32_t uffd;		/* the blob's until it is sent, then -1 */
	int32_t sock;		/* its end of a SOCK_SEQPACKET pair with the restore */
	/* The task premapped and filled with THP off (PR_SET_THP_DISABLE,
	 * restore/premap.c): 1 turns it on again once every lazy VMA is
	 * registered, 0 leaves it off (the dumped task had it so). */
	int32_t thp_enable;
};

/*
 * What is per thread (thread_core_entry).  Filled by the task attributes
 * of thread scope (criu-lazy/attrs/), applied by the blob in that thread.
 */
/*
 * One thread: what it restores of itself in the blob, and its outcome.
 * threads[0] is the leader, which restores the process too; every other
 * one is created by the leader with clone3 (CLONE_THREAD, set_tid = tid),
 * restores itself on its own stack, counts itself in threads_done and
 * waits there until the restore process takes it over with ptrace.
 */
struct rst_thread_args {
	int32_t tid;			/* in the images: the thread's own view */
	volatile int32_t status;	/* enum rst_status, of its own steps */
	int32_t fail_step;
	int32_t fail_errno;
	uint64_t fail_addr;
	uint64_t args;			/* its struct restorer_args */
	uint64_t stack_top;		/* non-leaders: their stack */

	uint32_t has_sched;
	uint32_t sched_policy;		/* with SCHED_RESET_ON_FORK */
	uint32_t sched_prio;
	int32_t sched_nice;

	uint32_t pad;
	uint32_t nr_sig_private;
	uint64_t siginfo_p;		/* address of nr_sig_private 128-byte siginfos */

	struct rst_creds creds;

	uint64_t rseq_ptr;		/* 0: none registered */
	uint32_t rseq_len;
	uint32_t rseq_sig;

	uint64_t robust_list;
	uint64_t robust_list_len;
	uint64_t clear_tid_addr;

	uint32_t has_sigaltstack;
	uint32_t pdeath_sig;
	struct rst_sigaltstack sas;

	char comm[16];

	struct rst_seccomp seccomp;

	/* Its FPU/SSE/AVX state: a standard-format XSAVE image, 64-byte
	 * aligned, loaded by the thread with XRSTOR of the components in
	 * xsave_mask (attrs/fpu.c).  0: set by ptrace at the final stop. */
	uint64_t xsave;
	uint64_t xsave_mask;
};

struct restorer_args {
	uint32_t magic;
	uint32_t version;

	/* Written by the blob. */
	volatile int32_t status;	/* enum rst_status */
	int32_t fail_step;		/* enum rst_step */
	int32_t fail_errno;		/* positive */
	int32_t pad0;
	uint64_t fail_addr;		/* the VMA or object the step was on */

	int32_t pid;
	int32_t helper_fd_base;		/* the restore's fds are >= this: closed */
	int32_t helper_fd_end;		/* and < this (0: no bound), in a descriptor
					 * table other processes share */
	int32_t pad1;

	uint64_t blob_start, blob_end;
	uint64_t premap_start, premap_end;

	uint64_t vmas;			/* address of struct rst_vma[nr_vmas] */
	uint32_t nr_vmas;
	uint32_t nr_guards;
	uint64_t guards;		/* address of struct rst_range[nr_guards]: guard
					 * regions to install (MADV_GUARD_INSTALL) */

	struct rst_vdso vdso;

	struct rst_mm_map mm;
	uint64_t auxv[RST_AUXV_WORDS_MAX];

	uint64_t siginfo_s;		/* address of nr_sig_shared 128-byte siginfos */
	uint32_t nr_sig_shared;
	uint32_t nr_rlimits;		/* RLIMIT_* 0 .. nr_rlimits - 1 */
	struct rst_rlimit rlimits[RST_NR_RLIMITS];

	int32_t dumpable;		/* -1: leave it */
	uint32_t pad2;

	uint64_t threads;		/* address of struct rst_thread_args[nr_threads] */
	uint32_t nr_threads;
	volatile uint32_t threads_done;	/* futex: non-leaders done (or failed) */
	volatile uint32_t threads_park;	/* futex the done ones wait on, never woken */
	int32_t fail_tid;		/* the thread a step failed in, 0: the leader */
	uint32_t trace_threads;		/* seccomp: stop (RST_STATUS_TRACE_THREADS) once
					 * the threads exist, before any restores itself */
	volatile uint32_t threads_go;	/* futex the new threads wait on until then */

	struct rst_itimerval itimers[RST_NR_ITIMERS];	/* real, virt, prof */
	uint64_t posix_timers;		/* address of struct rst_posix_timer[] */
	uint32_t nr_posix_timers;
	uint32_t pad4;

	struct rst_lazy lazy;

	/* The SIGTRAP action, installed by the restore process after the final
	 * int3 (a trap would reset an ignored SIGTRAP): the kernel's struct
	 * sigaction for rt_sigaction. */
	struct {
		uint64_t handler, flags, restorer, mask;
	} sigtrap_act;
};

#endif
