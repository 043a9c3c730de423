/* Threads and registers: each thread's core, its stop after the blob, a syscall restarted, detach. */
#ifndef CRIU_LAZY_RESTORE_THREADS_H
#define CRIU_LAZY_RESTORE_THREADS_H

#include <stdbool.h>
#include <sys/types.h>

#include "restore/restore.h"

/* images-load.c: a thread's core.img is one we can restore */
int rst_check_thread_core(pid_t pid, const CoreEntry *core);

/* threads.c: every thread's core; seized and set after the blob */
int rst_threads_load(struct rst_images *ri);
int rst_threads_finalize(const struct rst_images *ri, const struct rst_plan *plan,
			 struct rst_task *t);
int rst_threads_resume(const struct rst_images *ri, const struct rst_plan *plan,
		       struct rst_task *t);
int rst_threads_detach(struct rst_task *t);
void rst_threads_reap(struct rst_task *t);
int rst_threads_trace(struct rst_task *t);

/* syscall-restart.c: a thread dumped in a syscall the kernel restarts
 * through its restart block goes on with it */
struct rst_restart {
	bool active;		/* the syscall was run again */
	long result;		/* what it returned then */
};
int rst_syscall_restart_prepare(pid_t tid, unsigned long syscall_ip, const CoreEntry *core,
				struct rst_restart *out);
/* Would rst_syscall_restart_prepare() read or run anything in the task's
 * own memory (which may be lazy)? */
bool rst_syscall_restart_touches(const CoreEntry *core);
struct user_regs_struct;
void rst_syscall_restart_regs(const struct rst_restart *rs, const UserX86RegsEntry *g,
			      struct user_regs_struct *r);

/* finalize.c: the leader's last syscalls, registers, TLS, mask; detach */
int rst_thread_set_regs(pid_t pid, const CoreEntry *core, const struct rst_restart *rs);
int rst_finalize(const struct opts *o, const struct rst_images *ri,
		 const struct rst_plan *plan, struct rst_task *t);
int rst_detach(struct rst_task *t);

#endif
