/*
 * Signal actions: read with rt_sigaction(sig, NULL, scratch) inside the
 * task; set again by the new task itself, raw (the kernel's struct, handler
 * and restorer as dumped).
 *
 * SIGTRAP is the exception: the blob ends on an int3, a forced SIGTRAP,
 * and the kernel resets the action of a forced signal the task ignores or
 * blocks.  So its action travels in restorer_args and the restore process
 * installs it after that trap, with the blob's own `syscall`.
 */
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "attrs/task-attr.h"
#include "common/log.h"
#include "dump/dump.h"
#include "restore/restore.h"

#define SIGTRAP_INDEX	4	/* signals 1..64 without 9 and 19 */

static int dump_sigactions(struct dump_ctx *ctx, struct dump_task *t)
{
	struct task_core *c = t->core;
	int i = 0;

	for (int sig = 1; sig <= 64; sig++) {
		struct rst_ksigaction ka;
		SaEntry *sa;
		long res;
		int ret;

		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		ret = dump_remote_call(t, "rt_sigaction", __NR_rt_sigaction, sig, 0, t->scratch, 8,
				       &res);
		if (!ret)
			ret = dump_remote_read(t, t->scratch, &ka, sizeof(ka));
		if (ret)
			return ret;

		sa = &c->sa[i];
		sa->sigaction = ka.handler;
		sa->flags = ka.flags;
		sa->restorer = ka.restorer;
		sa->mask = ka.mask;
		sa->has_compat_sigaction = true;
		sa->compat_sigaction = false;
		c->sa_p[i++] = sa;
		if (ka.handler)
			pr_debug("task %d: signal %d: handler %#llx flags %#llx mask %#llx", t->pid,
				 sig, (unsigned long long)ka.handler, (unsigned long long)ka.flags,
				 (unsigned long long)ka.mask);
	}
	c->tc.n_sigactions = i;
	c->tc.sigactions = c->sa_p;
	return 0;
}

static int check_sigactions(pid_t pid, const CoreEntry *core)
{
	if (core->tc->n_sigactions != DUMP_NR_SIGACTIONS) {
		pr_err("core-%d.img: %zu signal actions (expected %d; legacy sigacts images are not supported)",
		       pid, core->tc->n_sigactions, DUMP_NR_SIGACTIONS);
		return -EINVAL;
	}
	return 0;
}

int attr_sigactions_ours(struct rst_ksigaction *sa)
{
	memset(sa, 0, 65 * sizeof(*sa));
	for (int sig = 1; sig <= 64; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if (syscall(SYS_rt_sigaction, sig, NULL, &sa[sig], sizeof(uint64_t)))
			return -errno;
	}
	return 0;
}

/*
 * In the new task: every action but SIGTRAP's, and but those it has
 * already: it inherited ours at its fork (the restore process's, as exec
 * left them: default or ignored, no flags, no mask), and most tasks leave
 * most actions so.  62 calls were ~0.1 ms of each task's rebuild.
 */
static int restore_sigactions(struct attr_rst *r)
{
	const struct rst_ksigaction *has = r->child ? r->child->sa_inherited : NULL;
	const TaskCoreEntry *tc = r->core->tc;
	struct rst_ksigaction ksa;
	size_t i = 0;

	for (int sig = 1; sig <= 64; sig++) {
		const SaEntry *sa;

		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		sa = tc->sigactions[i++];
		if (sig == SIGTRAP)
			continue;
		ksa.handler = sa->sigaction;
		ksa.flags = sa->flags;
		ksa.restorer = sa->restorer;
		ksa.mask = sa->mask;
		if (has && !memcmp(&has[sig], &ksa, sizeof(ksa)))
			continue;
		if (syscall(SYS_rt_sigaction, sig, &ksa, NULL, sizeof(uint64_t)))
			return attr_rst_err(r, errno, "task %d: sigaction of signal %d: %s", r->pid,
					    sig, strerror(errno));
	}
	return 0;
}

static int restore_sigtrap_args(struct attr_rst *r)
{
	const SaEntry *trap = r->core->tc->sigactions[SIGTRAP_INDEX];

	r->args->sigtrap_act.handler = trap->sigaction;
	r->args->sigtrap_act.flags = trap->flags;
	r->args->sigtrap_act.restorer = trap->restorer;
	r->args->sigtrap_act.mask = trap->mask;
	return 0;
}

/*
 * The int3 left SIGTRAP's action as SIG_DFL, with the flags, mask and
 * restorer the task inherited from us (zero: we never set them).  A task
 * that never set it either needs no syscall in it here.
 */
static int restore_sigtrap(struct attr_rst *r)
{
	const SaEntry *trap = r->core->tc->sigactions[SIGTRAP_INDEX];

	if (!trap->sigaction && !trap->flags && !trap->restorer && !trap->mask)
		return 0;
	return attr_rst_syscall(r, "rt_sigaction(SIGTRAP)", SYS_rt_sigaction, SIGTRAP,
				r->remote_args + offsetof(struct restorer_args, sigtrap_act), 0,
				sizeof(uint64_t), NULL);
}

const struct task_attr attr_sigactions = {
	.name = "sigactions",
	.scope = ATTR_PROCESS,
	.dump_stage = ATTR_DUMP_INJECT,
	.dump = dump_sigactions,
	.check = check_sigactions,
	.restore = {
		[ATTR_RST_CHILD] = restore_sigactions,
		[ATTR_RST_BLOB] = restore_sigtrap_args,
		[ATTR_RST_FINAL] = restore_sigtrap,
	},
};
