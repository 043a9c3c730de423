/*
 * Resource limits.  Read with prlimit() from outside; set by the blob from
 * inside the task (prlimit() on a task whose creds differ from ours needs
 * CAP_SYS_RESOURCE) and before its creds, while it may still raise them.
 */
#include <sys/resource.h>

#include "attrs/task-attr.h"
#include "common/log.h"
#include "dump/dump.h"

static int dump_rlimits(struct dump_ctx *ctx, struct dump_task *t)
{
	struct task_core *c = t->core;

	for (int r = 0; r < DUMP_NR_RLIMITS; r++) {
		struct rlimit rl;

		if (prlimit(t->pid, r, NULL, &rl))
			return dump_task_error(t, -errno, "can't get rlimit %d of task %d: %m", r,
					       t->pid);
		c->rlim[r].cur = rl.rlim_cur;
		c->rlim[r].max = rl.rlim_max;
		c->rlim_p[r] = &c->rlim[r];
	}
	c->rlimits.n_rlimits = DUMP_NR_RLIMITS;
	c->rlimits.rlimits = c->rlim_p;
	c->tc.rlimits = &c->rlimits;
	return 0;
}

static int check_rlimits(pid_t pid, const CoreEntry *core)
{
	const TaskRlimitsEntry *rl = core->tc->rlimits;

	if (rl && rl->n_rlimits > RST_NR_RLIMITS) {
		pr_err("core-%d.img: %zu rlimits (at most %d)", pid, rl->n_rlimits,
		       RST_NR_RLIMITS);
		return -EINVAL;
	}
	return 0;
}

static int restore_rlimits(struct attr_rst *r)
{
	const TaskRlimitsEntry *rl = r->core->tc->rlimits;

	for (size_t i = 0; rl && i < rl->n_rlimits; i++) {
		r->args->rlimits[i].cur = rl->rlimits[i]->cur;
		r->args->rlimits[i].max = rl->rlimits[i]->max;
	}
	r->args->nr_rlimits = rl ? rl->n_rlimits : 0;
	return 0;
}

const struct task_attr attr_rlimits = {
	.name = "rlimits",
	.scope = ATTR_PROCESS,
	.dump_stage = ATTR_DUMP_INJECT,
	.dump = dump_rlimits,
	.check = check_rlimits,
	.restore = { [ATTR_RST_BLOB] = restore_rlimits },
};
