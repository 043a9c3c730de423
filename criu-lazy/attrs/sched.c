/*
 * Scheduling of a thread: policy, RT priority and nice value.  Read with
 * sched_getscheduler / getpriority from outside; set by each thread itself
 * in the blob.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/resource.h>

#include "attrs/task-attr.h"
#include "common/log.h"
#include "dump/dump.h"
#include "restore/restore.h"

static int dump_sched(struct dump_ctx *ctx, struct dump_task *t)
{
	ThreadCoreEntry *th = &t->core->thread;
	struct sched_param sp;
	int policy, nice;

	policy = sched_getscheduler(t->pid);
	if (policy < 0 || sched_getparam(t->pid, &sp))
		return dump_task_error(t, -errno, "can't get the scheduling policy of task %d: %m",
				       t->pid);
	errno = 0;
	nice = getpriority(PRIO_PROCESS, t->pid);
	if (nice == -1 && errno)
		return dump_task_error(t, -errno, "can't get the nice value of task %d: %m", t->pid);

	th->has_sched_policy = true;
	th->sched_policy = policy;
	th->has_sched_prio = true;
	th->sched_prio = sp.sched_priority;
	th->has_sched_nice = true;
	th->sched_nice = nice;
	pr_debug("task %d: policy %d prio %d nice %d", t->pid, policy, sp.sched_priority, nice);
	return 0;
}

/*
 * Ours, which every thread has from the fork until its blob sets its own
 * (read by the restore process before the first fork): a thread dumped
 * with the same keeps it, two syscalls less in its blob.
 */
void attr_sched_ours(struct rst_knobs *k)
{
	struct sched_param sp;

	k->sched_policy = sched_getscheduler(0);
	/* reset on fork: our children do not have ours */
	if (k->sched_policy < 0 || (k->sched_policy & SCHED_RESET_ON_FORK) ||
	    sched_getparam(0, &sp))
		return;
	errno = 0;
	k->sched_nice = getpriority(PRIO_PROCESS, 0);
	if (k->sched_nice == -1 && errno)
		return;
	k->sched_prio = sp.sched_priority;
	k->sched_known = true;
}

static bool sched_is_ours(const struct attr_rst *r, const struct rst_thread_args *t)
{
	const struct rst_knobs *k = attr_inherited(r);

	return k && k->sched_known && (int64_t)t->sched_policy == k->sched_policy &&
	       (int64_t)t->sched_prio == k->sched_prio && (int64_t)t->sched_nice == k->sched_nice;
}

/* Set by every thread for itself in the blob (pie/threads.c): a new
 * thread inherits the leader's. */
static int restore_sched(struct attr_rst *r)
{
	const ThreadCoreEntry *th = r->core->thread_core;

	if (!th->has_sched_policy)
		return 0;
	r->thread->has_sched = 1;
	r->thread->sched_policy = th->sched_policy;
	r->thread->sched_prio = th->has_sched_prio ? th->sched_prio : 0;
	r->thread->sched_nice = th->has_sched_nice ? th->sched_nice : 0;
	if (sched_is_ours(r, r->thread))
		r->thread->has_sched = 0;
	return 0;
}

const struct task_attr attr_sched = {
	.name = "sched",
	.scope = ATTR_THREAD,
	.dump_stage = ATTR_DUMP_INJECT,
	.dump = dump_sched,
	.restore = { [ATTR_RST_BLOB] = restore_sched },
};
