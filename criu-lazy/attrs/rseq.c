/*
 * rseq: the registered restartable-sequences area of a thread.  Read with
 * PTRACE_GET_RSEQ_CONFIGURATION before anything runs inside the task (a
 * syscall there makes the kernel clear rseq_cs); registered again by the
 * blob, in the final layout.
 */
#include <errno.h>
#include <string.h>
#include <sys/ptrace.h>

#include "attrs/task-attr.h"
#include "common/log.h"
#include "dump/dump.h"

struct rseq_conf {
	uint64_t rseq_abi_pointer;
	uint32_t rseq_abi_size;
	uint32_t signature;
	uint32_t flags;
	uint32_t pad;
};

struct rseq_cs_desc {
	uint32_t version;
	uint32_t flags;
	uint64_t start_ip;
	uint64_t post_commit_offset;
	uint64_t abort_ip;
};

/*
 * A thread interrupted inside an rseq critical section would, on its next
 * return to user space, be sent to the section's abort handler: do that on
 * the saved registers so the restored thread does not resume mid-section.
 */
static int rseq_fixup_ip(struct dump_task *t, struct task_core *c, uint64_t rseq_ptr)
{
	struct rseq_cs_desc cs;
	uint64_t cs_ptr;
	int ret;

	ret = dump_remote_read(t, rseq_ptr + 8, &cs_ptr, sizeof(cs_ptr));
	if (ret || !cs_ptr)
		return ret;
	ret = dump_remote_read(t, cs_ptr, &cs, sizeof(cs));
	if (ret)
		return ret;
	if (c->gpregs.ip >= cs.start_ip && c->gpregs.ip - cs.start_ip < cs.post_commit_offset) {
		pr_info("task %d: interrupted in an rseq critical section, resumes at %#llx",
			t->pid, (unsigned long long)cs.abort_ip);
		c->gpregs.ip = cs.abort_ip;
	}
	return 0;
}

static int dump_rseq(struct dump_ctx *ctx, struct dump_task *t)
{
	struct task_core *c = t->core;
	struct rseq_conf conf;
	long n;

	memset(&conf, 0, sizeof(conf));
	n = ptrace(PTRACE_GET_RSEQ_CONFIGURATION, t->pid, sizeof(conf), &conf);
	if (n < 0) {
		if (errno == EIO || errno == EINVAL) {
			pr_info("the kernel can't tell the rseq state of task %d", t->pid);
			return 0;
		}
		return dump_task_error(t, -errno, "can't get the rseq state of task %d: %m", t->pid);
	}
	if (!conf.rseq_abi_pointer)
		return 0;
	c->rseq.rseq_abi_pointer = conf.rseq_abi_pointer;
	c->rseq.rseq_abi_size = conf.rseq_abi_size;
	c->rseq.signature = conf.signature;
	c->thread.rseq_entry = &c->rseq;
	pr_debug("task %d: rseq at %#llx, %u bytes, signature %#x", t->pid,
		 (unsigned long long)conf.rseq_abi_pointer, conf.rseq_abi_size, conf.signature);
	return rseq_fixup_ip(t, c, conf.rseq_abi_pointer);
}

static int check_rseq(pid_t pid, const CoreEntry *core)
{
	const RseqEntry *rs = core->thread_core->rseq_entry;

	if (rs && rs->rseq_abi_pointer && rs->has_rseq_cs_pointer && rs->rseq_cs_pointer)
		pr_warn("core-%d.img: the task was inside an rseq critical section", pid);
	return 0;
}

static int restore_rseq(struct attr_rst *r)
{
	const RseqEntry *rs = r->core->thread_core->rseq_entry;

	if (rs && rs->rseq_abi_pointer) {
		r->thread->rseq_ptr = rs->rseq_abi_pointer;
		r->thread->rseq_len = rs->rseq_abi_size;
		r->thread->rseq_sig = rs->signature;
	}
	return 0;
}

const struct task_attr attr_rseq = {
	.name = "rseq",
	.scope = ATTR_THREAD,
	.dump_stage = ATTR_DUMP_FROZEN,
	.dump = dump_rseq,
	.check = check_rseq,
	.restore = { [ATTR_RST_BLOB] = restore_rseq },
};
