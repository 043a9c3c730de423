/*
 * Task attributes: the state of a task (or of one of its threads) that is
 * neither memory, nor files, nor CPU registers: rlimits, timers, creds,
 * signals, scheduling, prctl flags, /proc knobs...
 *
 * Each attribute is one struct task_attr, defined in its own file here
 * (or with a few close relatives), holding both sides:
 *
 *   dump      fill the attribute's fields of the task's core messages
 *             (struct task_core), at its dump stage;
 *   check     look at the images before any task exists: refuse what
 *             cannot be restored, with one line naming the image;
 *   args_size bytes it needs after struct restorer_args (arrays);
 *   restore   one function per restore stage it acts in (below).
 *
 * The table in table.c lists them in the order they are dumped and
 * restored (within a stage); task_attr_find() finds one by name.  Adding
 * an attribute adds a file and a table row.
 *
 * Scope: ATTR_PROCESS attributes are dumped and restored once per process
 * (task_core_entry), ATTR_THREAD ones once per thread (thread_core_entry);
 * for a single-threaded process the leader runs both.
 */
#ifndef CRIU_LAZY_ATTRS_TASK_ATTR_H
#define CRIU_LAZY_ATTRS_TASK_ATTR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pie/restorer-args.h"

#include "core.pb-c.h"

struct dump_ctx;
struct dump_task;
struct rst_images;
struct rst_plan;
struct rst_child;
struct rst_ksigaction;

enum attr_scope {
	ATTR_PROCESS = 1,
	ATTR_THREAD = 2,
};

enum attr_dump_stage {
	ATTR_DUMP_FROZEN,	/* before anything runs inside the task */
	ATTR_DUMP_INJECT,	/* with our scratch page: may run syscalls in it */
	ATTR_DUMP_NR_STAGES
};

enum attr_rst_stage {
	ATTR_RST_CHILD,		/* in the new task, plain C, before it takes its
				 * root and cwd (child.c): /proc is ours */
	ATTR_RST_CHILD_LAST,	/* in the new task, just before the blob */
	ATTR_RST_BLOB,		/* fill restorer_args: the blob applies them in
				 * the final layout (criu-lazy/pie/) */
	ATTR_RST_FINAL,		/* from the restore process by ptrace, after the
				 * blob's int3, every signal blocked, the blob
				 * still mapped (its `syscall` can be used) */
	ATTR_RST_RESUME,	/* last, right before the task is let go */
	ATTR_RST_NR_STAGES
};

/* What a restore function gets.  Fields past the common ones are valid
 * only in the stages named. */
struct attr_rst {
	const struct rst_images *ri;
	const CoreEntry *core;		/* the task's (a thread's, for ATTR_THREAD) */
	pid_t pid;			/* the process, in the images */
	pid_t tid;			/* the thread, in the images */

	/* ATTR_RST_CHILD, ATTR_RST_CHILD_LAST: we are the new task */
	const struct rst_child *child;

	/* ATTR_RST_BLOB */
	const struct rst_plan *plan;
	struct restorer_args *args;
	struct rst_thread_args *thread;	/* the thread's part of args */
	uint8_t *tail;			/* free space after args: attr_args_alloc() */

	/* ATTR_RST_FINAL, ATTR_RST_RESUME: the task stopped under ptrace */
	pid_t host_tid;			/* the thread, in our pid namespace */
	unsigned long syscall_ip;	/* a `syscall` in the blob (FINAL only) */
	uint64_t remote_args;		/* address of restorer_args in the task */
	uint64_t remote_thread;		/* address of the thread's rst_thread_args */
};

struct task_attr {
	const char *name;
	enum attr_scope scope;
	enum attr_dump_stage dump_stage;
	int (*dump)(struct dump_ctx *ctx, struct dump_task *t);
	int (*check)(pid_t pid, const CoreEntry *core);
	size_t (*args_size)(const struct rst_images *ri, const CoreEntry *core);
	int (*restore[ATTR_RST_NR_STAGES])(struct attr_rst *r);
};

/* table.c */
const struct task_attr *task_attr_find(const char *name);
/* Dump every attribute of @scopes (ATTR_* bits) at @stage, in table order. */
int attrs_dump(struct dump_ctx *ctx, struct dump_task *t, enum attr_dump_stage stage,
	       unsigned int scopes);
int attrs_check(pid_t pid, const CoreEntry *core, unsigned int scopes);
size_t attrs_args_size(const struct rst_images *ri, const CoreEntry *core, unsigned int scopes);
int attrs_restore(struct attr_rst *r, enum attr_rst_stage stage, unsigned int scopes);
/* Our own signal actions into sa[sig], 1..64 (sigactions.c): 0 or -errno. */
int attr_sigactions_ours(struct rst_ksigaction *sa);
/* Our oom_score_adj and loginuid, which the tasks inherit (what could not
 * be read stays unknown: the tasks then write theirs). */
struct rst_knobs;
void attr_proc_knobs_ours(struct rst_knobs *k);
/* The knobs a new task inherited (in the task only; else NULL). */
const struct rst_knobs *attr_inherited(const struct attr_rst *r);
void attr_sched_ours(struct rst_knobs *k);
/* Our credentials, which the threads have until their blob sets theirs
 * (creds-ours.c): unknown (o->known false) if they cannot be read. */
struct rst_creds_ours;
struct rst_creds;
void attr_creds_ours(struct rst_creds_ours *o);
bool attr_creds_are_ours(const struct rst_creds_ours *o, const struct rst_creds *c,
			 const uint32_t *groups);

/* @size bytes of r->tail, 8-aligned; the planner reserved them (args_size). */
void *attr_args_alloc(struct attr_rst *r, size_t size);
/* Report a restore error once, where it fits the stage (the child's error
 * pipe or our log); returns a negative errno. */
int attr_rst_err(const struct attr_rst *r, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Run syscall @nr in the stopped task at r->syscall_ip (ATTR_RST_FINAL). */
int attr_rst_syscall(const struct attr_rst *r, const char *what, long nr, unsigned long a1,
		     unsigned long a2, unsigned long a3, unsigned long a4, long *res);

/* fpu.c: the thread of @core loads its FPU/SSE/AVX state in the blob, so
 * the final stop does not set it by ptrace. */
bool attr_fpu_by_blob(const CoreEntry *core);
/* fpu.c: the CPU's FPU state layout, probed once per restore (before any
 * other thread of ours uses it: stage 2's image worker, in a tree). */
void attr_fpu_host_probe(void);

#define ATTR_ALIGN(x)	(((x) + 7) & ~(size_t)7)

#endif
