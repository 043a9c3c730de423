/*
 * A task's name (comm, per thread) and its execution domain (personality,
 * per process).
 */
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "attrs/task-attr.h"
#include "common/log.h"
#include "dump/dump.h"
#include "restore/restore.h"

static int dump_comm(struct dump_ctx *ctx, struct dump_task *t)
{
	struct task_core *c = t->core;
	char comm[64];
	int ret;

	ret = dump_proc_read(t, "comm", comm, sizeof(comm));
	if (ret < 0)
		return ret;
	comm[strcspn(comm, "\n")] = '\0';
	comm[sizeof(c->comm) - 1] = '\0';
	memcpy(c->comm, comm, sizeof(c->comm));
	c->tc.comm = c->comm;
	c->thread.comm = c->comm;
	return 0;
}

/* Set by the blob (PR_SET_NAME), after the creds. */
static int restore_comm(struct attr_rst *r)
{
	const char *comm = r->core->thread_core->comm;

	if (!comm && r->core->tc)
		comm = r->core->tc->comm;
	snprintf(r->thread->comm, sizeof(r->thread->comm), "%s", comm ? comm : "");
	return 0;
}

const struct task_attr attr_comm = {
	.name = "comm",
	.scope = ATTR_THREAD,
	.dump_stage = ATTR_DUMP_INJECT,
	.dump = dump_comm,
	.restore = { [ATTR_RST_BLOB] = restore_comm },
};

static int dump_personality(struct dump_ctx *ctx, struct dump_task *t)
{
	unsigned long v;
	int ret;

	ret = dump_proc_ulong(t, "personality", 16, &v, false);
	if (ret)
		return ret;
	t->core->tc.personality = v;
	return 0;
}

static int restore_personality(struct attr_rst *r)
{
	unsigned int pers = r->core->tc->personality;

	if (syscall(SYS_personality, pers) < 0)
		return attr_rst_err(r, errno, "task %d: personality 0x%x: %s", r->pid, pers,
				    strerror(errno));
	return 0;
}

const struct task_attr attr_personality = {
	.name = "personality",
	.scope = ATTR_PROCESS,
	.dump_stage = ATTR_DUMP_INJECT,
	.dump = dump_personality,
	.restore = { [ATTR_RST_CHILD_LAST] = restore_personality },
};
