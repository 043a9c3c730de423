/*
 * Memory-deny-write-execute (prctl PR_SET_MDWE): a process that set it can
 * never map memory writable and executable, nor make it executable later.
 * CRIU's images have no field for it, and a restored process without it
 * would silently lose that protection: the dump refuses such a process.
 */
#include <string.h>
#include <sys/syscall.h>

#include "attrs/task-attr.h"
#include "common/log.h"
#include "dump/dump.h"

#define PR_GET_MDWE	66

static int dump_mdwe(struct dump_ctx *ctx, struct dump_task *t)
{
	const unsigned long args[6] = { PR_GET_MDWE };
	long res;
	int ret;

	ret = dump_remote_syscall(t, __NR_prctl, args, &res);
	if (ret)
		return ret;
	if (res == -EINVAL)	/* a kernel without it: nobody could set it */
		return 0;
	if (res < 0)
		return dump_task_error(t, (int)res, "prctl(PR_GET_MDWE) in task %d failed: %s",
				       t->pid, strerror((int)-res));
	if (res) {
		pr_err("task %d denies write-execute memory (PR_SET_MDWE, flags %#lx): the images "
		       "cannot carry it, not supported", t->pid, res);
		return -EOPNOTSUPP;
	}
	return 0;
}

const struct task_attr attr_mdwe = {
	.name = "mdwe",
	.scope = ATTR_PROCESS,
	.dump_stage = ATTR_DUMP_INJECT,
	.dump = dump_mdwe,
};
