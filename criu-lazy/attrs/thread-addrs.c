/*
 * Two addresses a thread gave the kernel: its clear-child-tid word
 * (set_tid_address) and its robust futex list (set_robust_list).  Both set
 * again by the blob.
 */
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "attrs/task-attr.h"
#include "common/log.h"
#include "dump/dump.h"

#define ROBUST_LIST_HEAD_SIZE	24	/* struct robust_list_head on x86_64 */

/* prctl(PR_GET_TID_ADDRESS) in the task. */
static int dump_clear_tid(struct dump_ctx *ctx, struct dump_task *t)
{
	uint64_t addr;
	long res;
	int ret;

	ret = dump_remote_call(t, "prctl(PR_GET_TID_ADDRESS)", __NR_prctl, PR_GET_TID_ADDRESS,
			       t->scratch, 0, 0, &res);
	if (!ret)
		ret = dump_remote_read(t, t->scratch, &addr, sizeof(addr));
	if (ret)
		return ret;
	t->core->ti.clear_tid_addr = addr;
	pr_debug("task %d: clear_tid_addr %#llx", t->pid, (unsigned long long)addr);
	return 0;
}

static int restore_clear_tid(struct attr_rst *r)
{
	r->thread->clear_tid_addr = r->core->thread_info->clear_tid_addr;
	return 0;
}

const struct task_attr attr_clear_tid = {
	.name = "clear-tid",
	.scope = ATTR_THREAD,
	.dump_stage = ATTR_DUMP_INJECT,
	.dump = dump_clear_tid,
	.restore = { [ATTR_RST_BLOB] = restore_clear_tid },
};

static int dump_robust_list(struct dump_ctx *ctx, struct dump_task *t)
{
	unsigned long head = 0;
	size_t len = 0;

	if (syscall(SYS_get_robust_list, t->pid, &head, &len))
		return dump_task_error(t, -errno, "can't get the robust futex list of task %d: %m",
				       t->pid);
	t->core->thread.futex_rla = head;
	t->core->thread.futex_rla_len = len;
	pr_debug("task %d: robust list %#lx/%zu", t->pid, head, len);
	return 0;
}

static int check_robust_list(pid_t pid, const CoreEntry *core)
{
	const ThreadCoreEntry *th = core->thread_core;

	if (th->futex_rla_len && th->futex_rla_len != ROBUST_LIST_HEAD_SIZE) {
		pr_err("core-%d.img: robust futex list length %u (expected %d)", pid,
		       th->futex_rla_len, ROBUST_LIST_HEAD_SIZE);
		return -EINVAL;
	}
	return 0;
}

static int restore_robust_list(struct attr_rst *r)
{
	r->thread->robust_list = r->core->thread_core->futex_rla;
	r->thread->robust_list_len = r->core->thread_core->futex_rla_len;
	return 0;
}

const struct task_attr attr_robust_list = {
	.name = "robust-list",
	.scope = ATTR_THREAD,
	.dump_stage = ATTR_DUMP_INJECT,
	.dump = dump_robust_list,
	.check = check_robust_list,
	.restore = { [ATTR_RST_BLOB] = restore_robust_list },
};
