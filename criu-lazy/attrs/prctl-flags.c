/*
 * Flags set with prctl(): the parent-death signal (per thread, set by the
 * blob after the creds, which reset it) and the child-subreaper flag (per
 * process, set by the new task).  Both read by prctl(PR_GET_*) in the task.
 */
#include <string.h>
#include <sys/prctl.h>

#include "attrs/task-attr.h"
#include "common/log.h"
#include "dump/dump.h"

static int dump_pdeath_sig(struct dump_ctx *ctx, struct dump_task *t)
{
	int val, ret;

	ret = dump_remote_prctl_int(t, "prctl(PR_GET_PDEATHSIG)", PR_GET_PDEATHSIG, &val);
	if (ret)
		return ret;
	t->core->thread.has_pdeath_sig = true;
	t->core->thread.pdeath_sig = val;
	return 0;
}

static int restore_pdeath_sig(struct attr_rst *r)
{
	const ThreadCoreEntry *th = r->core->thread_core;

	r->thread->pdeath_sig = th->has_pdeath_sig ? th->pdeath_sig : 0;
	return 0;
}

const struct task_attr attr_pdeath_sig = {
	.name = "pdeath-sig",
	.scope = ATTR_THREAD,
	.dump_stage = ATTR_DUMP_INJECT,
	.dump = dump_pdeath_sig,
	.restore = { [ATTR_RST_BLOB] = restore_pdeath_sig },
};

static int dump_child_subreaper(struct dump_ctx *ctx, struct dump_task *t)
{
	int val, ret;

	ret = dump_remote_prctl_int(t, "prctl(PR_GET_CHILD_SUBREAPER)", PR_GET_CHILD_SUBREAPER,
				    &val);
	if (ret)
		return ret;
	t->core->tc.has_child_subreaper = true;
	t->core->tc.child_subreaper = val != 0;
	pr_debug("task %d: child subreaper %d", t->pid, val != 0);
	return 0;
}

static int restore_child_subreaper(struct attr_rst *r)
{
	const TaskCoreEntry *tc = r->core->tc;

	if (tc->has_child_subreaper && tc->child_subreaper &&
	    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
		return attr_rst_err(r, errno, "task %d: PR_SET_CHILD_SUBREAPER: %s", r->pid,
				    strerror(errno));
	return 0;
}

const struct task_attr attr_child_subreaper = {
	.name = "child-subreaper",
	.scope = ATTR_PROCESS,
	.dump_stage = ATTR_DUMP_INJECT,
	.dump = dump_child_subreaper,
	.restore = { [ATTR_RST_CHILD] = restore_child_subreaper },
};
