/*
 * membarrier registrations of a process (they belong to its mm):
 * MEMBARRIER_CMD_GET_REGISTRATIONS (Linux 6.3+) run inside the task gives
 * the mask of the MEMBARRIER_CMD_REGISTER_* commands it issued; the new
 * task issues each of them again.  A kernel that cannot tell leaves the
 * field out (with a warning: the registrations, if any, are lost).
 */
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "attrs/task-attr.h"
#include "common/log.h"
#include "dump/dump.h"

#define MEMBARRIER_CMD_GET_REGISTRATIONS	(1 << 9)

/* The registrations we know how to make again, in the order we make them. */
static const struct {
	uint32_t cmd;
	const char *name;
} registrations[] = {
	{ 1 << 2 /* MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED */, "global expedited" },
	{ 1 << 4 /* MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED */, "private expedited" },
	{ 1 << 6 /* ..._SYNC_CORE */, "private expedited sync-core" },
	{ 1 << 8 /* ..._RSEQ */, "private expedited rseq" },
};

#define NR_REGISTRATIONS (sizeof(registrations) / sizeof(registrations[0]))

static int dump_membarrier(struct dump_ctx *ctx, struct dump_task *t)
{
	const unsigned long args[6] = { MEMBARRIER_CMD_GET_REGISTRATIONS };
	long res;
	int ret;

	ret = dump_remote_syscall(t, __NR_membarrier, args, &res);
	if (ret)
		return ret;
	if (res == -EINVAL || res == -ENOSYS) {
		pr_warn("task %d: this kernel cannot report membarrier registrations: "
			"any the task made are not restored", t->pid);
		return 0;
	}
	if (res < 0)
		return dump_task_error(t, (int)res, "membarrier(GET_REGISTRATIONS) in task %d "
				       "failed: %s", t->pid, strerror((int)-res));
	t->core->tc.has_membarrier_registration_mask = true;
	t->core->tc.membarrier_registration_mask = res;
	if (res)
		pr_debug("task %d: membarrier registrations %#lx", t->pid, res);
	return 0;
}

static int check_membarrier(pid_t pid, const CoreEntry *core)
{
	uint32_t mask = core->tc->membarrier_registration_mask, known = 0;

	for (size_t i = 0; i < NR_REGISTRATIONS; i++)
		known |= registrations[i].cmd;
	if (core->tc->has_membarrier_registration_mask && (mask & ~known)) {
		pr_err("core-%d.img: membarrier registrations %#x include unknown commands %#x",
		       pid, mask, mask & ~known);
		return -EINVAL;
	}
	return 0;
}

static int restore_membarrier(struct attr_rst *r)
{
	uint32_t mask = r->core->tc->membarrier_registration_mask;

	if (!r->core->tc->has_membarrier_registration_mask)
		return 0;
	for (size_t i = 0; i < NR_REGISTRATIONS; i++) {
		uint32_t cmd = registrations[i].cmd;

		if (!(mask & cmd))
			continue;
		if (syscall(__NR_membarrier, cmd, 0, 0))
			return attr_rst_err(r, errno, "task %d: cannot restore its %s membarrier "
					    "registration: %s", r->pid, registrations[i].name,
					    strerror(errno));
	}
	return 0;
}

const struct task_attr attr_membarrier = {
	.name = "membarrier",
	.scope = ATTR_PROCESS,
	.dump_stage = ATTR_DUMP_INJECT,
	.dump = dump_membarrier,
	.check = check_membarrier,
	.restore = { [ATTR_RST_CHILD] = restore_membarrier },
};
