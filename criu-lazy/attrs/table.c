/*
 * The table of task attributes and the loops that run it.  The order of
 * the table is the order of dumping (within a dump stage) and of restoring
 * (within a restore stage); the comments say where it matters.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#define LOG_PREFIX ""
#include "attrs/task-attr.h"
#include "common/log.h"
#include "common/ptrace-inject.h"
#include "restore/restore.h"
#include "restore/child.h"

extern const struct task_attr attr_rseq, attr_clear_tid, attr_sigactions, attr_comm,
	attr_personality, attr_loginuid, attr_oom_score_adj, attr_itimers, attr_rlimits,
	attr_sched, attr_sigaltstack, attr_robust_list, attr_pdeath_sig,
	attr_child_subreaper, attr_sigmask, attr_sigpending_private,
	attr_sigpending_shared, attr_creds, attr_membarrier, attr_posix_timers, attr_mdwe,
	attr_seccomp, attr_fpu;

static const struct task_attr *const task_attrs[] = {
	&attr_rseq,		/* FROZEN: rseq_cs is cleared once the task runs */
	&attr_mdwe,		/* refusals first: nothing else is read in vain */
	&attr_clear_tid,
	&attr_sigactions,	/* CHILD: before a handler can matter; SIGTRAP's in FINAL */
	&attr_comm,
	&attr_personality,	/* CHILD_LAST: it changes how mmap() behaves */
	&attr_loginuid,		/* CHILD: before the task takes its own root */
	&attr_oom_score_adj,
	&attr_itimers,		/* dumped before the pending signals: a timer
				 * firing in between leaves its signal pending */
	&attr_posix_timers,
	&attr_rlimits,
	&attr_sched,
	&attr_sigaltstack,
	&attr_robust_list,
	&attr_pdeath_sig,
	&attr_child_subreaper,
	&attr_membarrier,
	&attr_sigmask,		/* RESUME: the mask goes back last */
	&attr_sigpending_private,
	&attr_sigpending_shared,
	&attr_creds,
	&attr_seccomp,		/* the blob installs it before the creds (pie/seccomp.c) */
	&attr_fpu,		/* XRSTOR, the blob's last step in each thread */
};

#define NR_ATTRS (sizeof(task_attrs) / sizeof(task_attrs[0]))

const struct task_attr *task_attr_find(const char *name)
{
	for (size_t i = 0; i < NR_ATTRS; i++)
		if (!strcmp(task_attrs[i]->name, name))
			return task_attrs[i];
	return NULL;
}

int attrs_dump(struct dump_ctx *ctx, struct dump_task *t, enum attr_dump_stage stage,
	       unsigned int scopes)
{
	for (size_t i = 0; i < NR_ATTRS; i++) {
		const struct task_attr *a = task_attrs[i];
		int ret;

		if (!a->dump || a->dump_stage != stage || !(a->scope & scopes))
			continue;
		ret = a->dump(ctx, t);
		if (ret)
			return ret;
	}
	return 0;
}

int attrs_check(pid_t pid, const CoreEntry *core, unsigned int scopes)
{
	for (size_t i = 0; i < NR_ATTRS; i++) {
		const struct task_attr *a = task_attrs[i];
		int ret;

		if (!a->check || !(a->scope & scopes))
			continue;
		ret = a->check(pid, core);
		if (ret)
			return ret;
	}
	return 0;
}

size_t attrs_args_size(const struct rst_images *ri, const CoreEntry *core, unsigned int scopes)
{
	size_t size = 0;

	for (size_t i = 0; i < NR_ATTRS; i++)
		if (task_attrs[i]->args_size && (task_attrs[i]->scope & scopes))
			size += ATTR_ALIGN(task_attrs[i]->args_size(ri, core));
	return size;
}

int attrs_restore(struct attr_rst *r, enum attr_rst_stage stage, unsigned int scopes)
{
	for (size_t i = 0; i < NR_ATTRS; i++) {
		const struct task_attr *a = task_attrs[i];
		int ret;

		if (!a->restore[stage] || !(a->scope & scopes))
			continue;
		ret = a->restore[stage](r);
		if (ret)
			return ret;
	}
	return 0;
}

void *attr_args_alloc(struct attr_rst *r, size_t size)
{
	void *p = r->tail;

	r->tail += ATTR_ALIGN(size);
	return p;
}

int attr_rst_err(const struct attr_rst *r, int err, const char *fmt, ...)
{
	char buf[900];
	va_list args;

	va_start(args, fmt);
	vsnprintf(buf, sizeof(buf), fmt, args);
	va_end(args);
	if (err > 0)
		err = -err;
	if (!err)
		err = -EINVAL;
	if (r->child)
		return child_err(r->child, err, "%s", buf);
	pr_err("%s", buf);
	return err;
}

int attr_rst_syscall(const struct attr_rst *r, const char *what, long nr, unsigned long a1,
		     unsigned long a2, unsigned long a3, unsigned long a4, long *res)
{
	const unsigned long args[6] = { a1, a2, a3, a4, 0, 0 };
	long out;
	int ret;

	ret = inject_syscall(r->host_tid, r->syscall_ip, nr, args, &out);
	if (ret)
		return ret;
	if (out < 0 && out > -4096)
		return attr_rst_err(r, (int)-out, "task %d: %s failed: %s", r->pid, what,
				    strerror((int)-out));
	if (res)
		*res = out;
	return 0;
}
