/*
 * Signal state: the blocked mask (sigmask) and the pending queues, the
 * thread's private one and the process's shared one.
 *
 * Dump: through ptrace, PTRACE_GETSIGMASK and PTRACE_PEEKSIGINFO (which
 * does not dequeue).  Restore: the blob queues every pending siginfo again
 * (rt_tgsigqueueinfo / rt_sigqueueinfo) while every signal is blocked; the
 * pending SIGTRAPs are queued by the restore process after the blob's
 * final trap (see sigactions.c), and the mask goes back last, just before
 * the task runs, so nothing is delivered before its registers are back.
 */
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "attrs/task-attr.h"
#include "common/log.h"
#include "dump/dump.h"
#include "restore/restore.h"

#define PEEK_BATCH	32

static int dump_sigmask(struct dump_ctx *ctx, struct dump_task *t)
{
	uint64_t mask;

	if (ptrace(PTRACE_GETSIGMASK, t->pid, sizeof(mask), &mask))
		return dump_task_error(t, -errno, "can't get the signal mask of task %d: %m", t->pid);
	if (t->core->core.tc) {
		t->core->tc.blk_sigset = mask;
	} else {
		/* a thread other than the leader: in its own core, as CRIU */
		t->core->thread.has_blk_sigset = true;
		t->core->thread.blk_sigset = mask;
	}
	pr_debug("task %d: blocked signals %#llx", t->pid, (unsigned long long)mask);
	return 0;
}

/* The leader's mask is in task_core_entry, another thread's in its own. */
static int restore_sigmask(struct attr_rst *r)
{
	const ThreadCoreEntry *th = r->core->thread_core;
	uint64_t mask = th->has_blk_sigset ? th->blk_sigset :
			r->core->tc ? r->core->tc->blk_sigset : 0;

	if (ptrace(PTRACE_SETSIGMASK, r->host_tid, sizeof(mask), &mask))
		return attr_rst_err(r, errno, "cannot set the signal mask of task %d: %s",
				    r->host_tid, strerror(errno));
	return 0;
}

const struct task_attr attr_sigmask = {
	.name = "sigmask",
	.scope = ATTR_THREAD,
	.dump_stage = ATTR_DUMP_INJECT,
	.dump = dump_sigmask,
	.restore = { [ATTR_RST_RESUME] = restore_sigmask },
};

static int add_siginfo(SignalQueueEntry *q, const void *raw)
{
	SiginfoEntry **grown, *e;

	grown = realloc(q->signals, (q->n_signals + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	q->signals = grown;
	e = malloc(sizeof(*e));
	if (!e)
		return -ENOMEM;
	siginfo_entry__init(e);
	e->siginfo.data = malloc(RST_SIGINFO_SIZE);
	if (!e->siginfo.data) {
		free(e);
		return -ENOMEM;
	}
	memcpy(e->siginfo.data, raw, RST_SIGINFO_SIZE);
	e->siginfo.len = RST_SIGINFO_SIZE;
	q->signals[q->n_signals++] = e;
	return 0;
}

static int peek_queue(struct dump_task *t, bool shared, SignalQueueEntry *q)
{
	uint8_t buf[PEEK_BATCH * RST_SIGINFO_SIZE];
	struct __ptrace_peeksiginfo_args args = {
		.flags = shared ? PTRACE_PEEKSIGINFO_SHARED : 0,
		.nr = PEEK_BATCH,
	};

	for (;;) {
		long n = ptrace(PTRACE_PEEKSIGINFO, t->pid, &args, buf);

		if (n < 0)
			return dump_task_error(t, -errno,
					       "can't read the %s pending signals of task %d: %m",
					       shared ? "shared" : "private", t->pid);
		if (n == 0)
			return 0;
		for (long i = 0; i < n; i++) {
			siginfo_t *si = (siginfo_t *)(buf + i * RST_SIGINFO_SIZE);
			int ret = add_siginfo(q, si);

			if (ret)
				return ret;
			pr_debug("task %d: pending %s signal %d (code %d)", t->pid,
				 shared ? "shared" : "private", si->si_signo, si->si_code);
		}
		args.off += n;
	}
}

static int dump_pending_private(struct dump_ctx *ctx, struct dump_task *t)
{
	struct task_core *c = t->core;

	c->thread.signals_p = &c->signals_p;
	return peek_queue(t, false, &c->signals_p);
}

static int dump_pending_shared(struct dump_ctx *ctx, struct dump_task *t)
{
	struct task_core *c = t->core;

	c->tc.signals_s = &c->signals_s;
	return peek_queue(t, true, &c->signals_s);
}

static const SignalQueueEntry *queue_of(const CoreEntry *core, bool shared)
{
	return shared ? core->tc->signals_s : core->thread_core->signals_p;
}

static int check_queue(pid_t pid, const SignalQueueEntry *sq)
{
	for (size_t i = 0; sq && i < sq->n_signals; i++) {
		if (sq->signals[i]->siginfo.len != RST_SIGINFO_SIZE) {
			pr_err("core-%d.img: pending signal %zu has a %zu-byte siginfo (expected %d)",
			       pid, i, sq->signals[i]->siginfo.len, RST_SIGINFO_SIZE);
			return -EINVAL;
		}
	}
	return 0;
}

static int check_private(pid_t pid, const CoreEntry *core)
{
	return check_queue(pid, queue_of(core, false));
}

static int check_shared(pid_t pid, const CoreEntry *core)
{
	return check_queue(pid, queue_of(core, true));
}

static size_t queue_size(const SignalQueueEntry *sq)
{
	return sq ? sq->n_signals * RST_SIGINFO_SIZE : 0;
}

static size_t size_private(const struct rst_images *ri, const CoreEntry *core)
{
	(void)ri;
	return queue_size(queue_of(core, false));
}

static size_t size_shared(const struct rst_images *ri, const CoreEntry *core)
{
	(void)ri;
	return queue_size(queue_of(core, true));
}

/* Copy a queue after the args; its address and length go to *addr, *nr. */
static void copy_queue(struct attr_rst *r, const SignalQueueEntry *sq, uint64_t *addr,
		       uint32_t *nr)
{
	uint8_t *dst = attr_args_alloc(r, queue_size(sq));

	*addr = (uint64_t)(uintptr_t)dst;
	*nr = 0;
	for (size_t i = 0; sq && i < sq->n_signals; i++, dst += RST_SIGINFO_SIZE) {
		memcpy(dst, sq->signals[i]->siginfo.data, RST_SIGINFO_SIZE);
		(*nr)++;
	}
}

static int args_private(struct attr_rst *r)
{
	r->thread->tid = r->tid;
	copy_queue(r, queue_of(r->core, false), &r->thread->siginfo_p, &r->thread->nr_sig_private);
	return 0;
}

static int args_shared(struct attr_rst *r)
{
	copy_queue(r, queue_of(r->core, true), &r->args->siginfo_s, &r->args->nr_sig_shared);
	return 0;
}

/* The SIGTRAPs of a queue, from its copy in the blob's args (at @addr in
 * the task), queued with the blob's `syscall`. */
static int queue_sigtraps(struct attr_rst *r, bool shared, uint64_t field)
{
	const SignalQueueEntry *sq = queue_of(r->core, shared);
	struct iovec local, remote;
	uint64_t si;
	int ret = 0;

	if (!sq || !sq->n_signals)
		return 0;
	local = (struct iovec){ &si, sizeof(si) };
	remote = (struct iovec){ (void *)(uintptr_t)field, sizeof(si) };
	if (process_vm_readv(r->host_tid, &local, 1, &remote, 1, 0) != sizeof(si))
		return attr_rst_err(r, errno, "cannot read the restorer's args in task %d: %s",
				    r->host_tid, strerror(errno));
	for (size_t i = 0; !ret && i < sq->n_signals; i++, si += RST_SIGINFO_SIZE) {
		int signo;

		memcpy(&signo, sq->signals[i]->siginfo.data, sizeof(signo));
		if (signo != SIGTRAP)
			continue;
		if (shared)
			ret = attr_rst_syscall(r, "rt_sigqueueinfo(SIGTRAP)", SYS_rt_sigqueueinfo,
					       r->pid, SIGTRAP, si, 0, NULL);
		else
			ret = attr_rst_syscall(r, "rt_tgsigqueueinfo(SIGTRAP)",
					       SYS_rt_tgsigqueueinfo, r->pid, r->tid, SIGTRAP, si,
					       NULL);
	}
	return ret;
}

static int sigtraps_private(struct attr_rst *r)
{
	return queue_sigtraps(r, false, r->remote_thread +
				     offsetof(struct rst_thread_args, siginfo_p));
}

static int sigtraps_shared(struct attr_rst *r)
{
	return queue_sigtraps(r, true, r->remote_args + offsetof(struct restorer_args, siginfo_s));
}

const struct task_attr attr_sigpending_private = {
	.name = "sigpending-private",
	.scope = ATTR_THREAD,
	.dump_stage = ATTR_DUMP_INJECT,
	.dump = dump_pending_private,
	.check = check_private,
	.args_size = size_private,
	.restore = { [ATTR_RST_BLOB] = args_private, [ATTR_RST_FINAL] = sigtraps_private },
};

const struct task_attr attr_sigpending_shared = {
	.name = "sigpending-shared",
	.scope = ATTR_PROCESS,
	.dump_stage = ATTR_DUMP_INJECT,
	.dump = dump_pending_shared,
	.check = check_shared,
	.args_size = size_shared,
	.restore = { [ATTR_RST_BLOB] = args_shared, [ATTR_RST_FINAL] = sigtraps_shared },
};
