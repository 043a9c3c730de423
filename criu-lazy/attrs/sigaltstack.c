/*
 * The alternate signal stack of a thread: sigaltstack(NULL, scratch) in
 * the task; set again by the blob (without SS_ONSTACK, which only says the
 * thread was running on it).
 */
#include <signal.h>
#include <sys/syscall.h>

#include "attrs/task-attr.h"
#include "common/log.h"
#include "dump/dump.h"

static int dump_sigaltstack(struct dump_ctx *ctx, struct dump_task *t)
{
	struct task_core *c = t->core;
	stack_t ss;
	long res;
	int ret;

	ret = dump_remote_call(t, "sigaltstack", __NR_sigaltstack, 0, t->scratch, 0, 0, &res);
	if (!ret)
		ret = dump_remote_read(t, t->scratch, &ss, sizeof(ss));
	if (ret)
		return ret;
	c->sas.ss_sp = (uint64_t)ss.ss_sp;
	c->sas.ss_size = ss.ss_size;
	c->sas.ss_flags = ss.ss_flags;
	c->thread.sas = &c->sas;
	pr_debug("task %d: sigaltstack %p/%zu flags %d", t->pid, ss.ss_sp, ss.ss_size,
		 ss.ss_flags);
	return 0;
}

static int restore_sigaltstack(struct attr_rst *r)
{
	const ThreadSasEntry *sas = r->core->thread_core->sas;

	if (!sas)
		return 0;
	r->thread->has_sigaltstack = 1;
	r->thread->sas.ss_sp = sas->ss_sp;
	r->thread->sas.ss_size = sas->ss_size;
	r->thread->sas.ss_flags = sas->ss_flags;
	return 0;
}

const struct task_attr attr_sigaltstack = {
	.name = "sigaltstack",
	.scope = ATTR_THREAD,
	.dump_stage = ATTR_DUMP_INJECT,
	.dump = dump_sigaltstack,
	.restore = { [ATTR_RST_BLOB] = restore_sigaltstack },
};
