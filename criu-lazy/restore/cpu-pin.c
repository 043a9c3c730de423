/*
 * Once a process's blob has ended, what is left of its restore is a chain
 * of ptrace round trips: each other thread interrupted and waited for, the
 * munmap of the blob injected into the leader (finalize.c), and then the
 * detach of every thread (stage_resume()).  Each step wakes the other side
 * and waits for it.  Between two CPUs each wakeup is an IPI; in a VM that is
 * an exit to the hypervisor and, for a halted vCPU, a wait for the host to
 * run it again: on the 2-vCPU test VM a pipe round trip across CPUs takes
 * 50-180 us against 2-3 us on one CPU, and the bench tree's 4 processes of
 * 5 threads make some 40 such trips.  So from the first blob's end until
 * the resume, this process and the threads of each finished process share
 * one CPU at a time (rst_pin_last_steps()).  Blobs still running are left where
 * they are: they do real work (unmapping, thread creation) in parallel.
 *
 * Before that, each process gets a CPU of its own among ours, in turn,
 * ours last (rst_pin_plan(), before the first fork), and is pinned there
 * when it is told to rebuild itself (rst_pin_one(): at stage 14, or as
 * soon as it is ready, tree.c): left to the scheduler, the processes woken
 * together queued on the CPU they were created on while the other went
 * idle in gaps too short for it to pull work (on the test VM, blobs of 0.4
 * ms started 0.6 and 1.1 ms late).  rst_pin_proc() takes them over after
 * their blob, those on our CPU already staying as they are.  Each process
 * was also started on its CPU right after its fork, for a while: its
 * memory then stayed on one CPU and its blob's munmaps flushed no other
 * CPU's TLB (IPIs 3.6 -> 2.1 a restore of the bench tree), but the moves
 * cost in stage 9 what they saved in stage 18 (the tree 5.7 - 5.8 ms either way,
 * 3 x 21 interleaved), and a task held on its CPU from the fork waited 2-3
 * ms behind another process there while the other CPU idled.
 *
 * Every task inherits the restore process's affinity and nothing restores
 * a dumped one, so rst_pin_end() gives each thread back exactly the mask it
 * had, before the detach: once a task runs, its affinity is its own.  A
 * task that cannot be pinned is only slower; one that cannot get its mask
 * back fails the restore (it would run on one CPU for good).
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "common/proc-task.h"
#include "restore/restore.h"
#include "restore/cpu-pin.h"
#include "restore/tree.h"

struct pin_walk {
	const cpu_set_t *mask;
	int err;		/* the first failure's -errno */
};

static int pin_thread(pid_t tid, void *arg)
{
	struct pin_walk *w = arg;

	if (sched_setaffinity(tid, sizeof(*w->mask), w->mask) && !w->err)
		w->err = -errno;
	return 0;		/* the other threads all the same */
}

/*
 * Apply @mask to every thread of @p, its blob ended (all its threads made);
 * the first failure's -errno.  Seized (finalize.c), we know their ids here;
 * before, they are the dumped ones, but in a pid namespace of the tree's
 * own, where /proc tells ours.
 */
static int set_threads(const struct rst_tree *tree, const struct rst_proc *p,
		       const cpu_set_t *mask)
{
	const struct rst_task *t = &p->t;
	struct pin_walk w = { mask, 0 };

	pin_thread(t->pid, &w);
	if (t->nr_thread_pids + 1 == p->ri.nr_threads) {
		for (size_t i = 0; i < t->nr_thread_pids; i++)
			pin_thread(t->thread_pids[i], &w);
	} else if (!tree->procs[0].ri.new_pid_ns) {
		for (size_t i = 1; i < p->ri.nr_threads; i++)
			pin_thread(p->ri.tids[i], &w);
	} else {
		return proc_each_thread(t->pid, pin_thread, &w) ?: w.err;
	}
	return w.err;
}

/* Which CPU each live process gets for its blob, in turn, ours last. */
void rst_pin_plan(struct rst_tree *tree)
{
	int cpus[CPU_SETSIZE], nr = 0, next = 0, me = sched_getcpu();
	size_t alive = 0;
	cpu_set_t mine;

	for (size_t i = 0; i < tree->nr; i++) {
		tree->procs[i].pin.cpu = -1;
		alive += tree->procs[i].kind == RST_PROC_ALIVE;
	}
	/* one process is best where it is */
	if (alive < 2 || me < 0 || sched_getaffinity(0, sizeof(mine), &mine) ||
	    !CPU_ISSET(me, &mine))
		return;
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &mine) && c != me)
			cpus[nr++] = c;
	if (!nr)
		return;
	cpus[nr++] = me;
	for (size_t i = 0; i < tree->nr; i++) {
		struct rst_proc *p = &tree->procs[i];

		if (p->kind != RST_PROC_ALIVE)
			continue;
		p->pin.cpu = cpus[next++ % nr];
		/* what it gets back at the end: ours, which it inherited */
		p->pin.mask = mine;
		p->pin.pinned = true;
	}
}

/* @p on its CPU for its blob (its only thread yet: the threads the blob
 * makes inherit it).  Only slower if this fails. */
void rst_pin_one(const struct rst_proc *p)
{
	cpu_set_t one;

	if (p->pin.cpu < 0)
		return;
	CPU_ZERO(&one);
	CPU_SET(p->pin.cpu, &one);
	if (sched_setaffinity(p->t.pid, sizeof(one), &one))
		pr_debug("task %d: cannot give it CPU %d: %s", p->pid, p->pin.cpu,
			 strerror(errno));
}

/*
 * A burst of wakeups (a 'go' to every process, the detach of every thread):
 * a woken task on our CPU ran before we woke the next one, and the burst
 * was served one task at a time (the bench tree's 20 detaches 145 -> 70 us
 * median as SCHED_FIFO).  Without the privilege we are only slower.
 */
void rst_burst_begin(struct rst_burst *b, size_t wakeups)
{
	struct sched_param rt = { .sched_priority = 1 };

	/* (for one, the switches cost more than they save) */
	b->policy = wakeups > 1 ? sched_getscheduler(0) : -1;
	b->raised = b->policy >= 0 && !sched_getparam(0, &b->param) &&
		    !sched_setscheduler(0, SCHED_FIFO, &rt);
}

void rst_burst_end(struct rst_burst *b)
{
	if (b->raised && sched_setscheduler(0, b->policy, &b->param))
		pr_warn("cannot go back to our own scheduling policy: %s", strerror(errno));
	b->raised = false;
}

/* Does the blob of another process than @self still run on @cpu?  (One
 * waitid() per process pinned there and not finalized, up to the first.) */
static bool blob_running_on(const struct rst_tree *tree, int cpu, const struct rst_proc *self)
{
	for (size_t i = 0; i < tree->nr; i++) {
		const struct rst_proc *q = &tree->procs[i];

		if (q != self && q->kind == RST_PROC_ALIVE && !q->finalized && q->pin.cpu == cpu &&
		    q->t.pid > 0 && !rst_task_has_status(q->t.pid))
			return true;
	}
	return false;
}

static int pin_self(struct rst_tree *tree, int cpu)
{
	cpu_set_t one;

	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	if (sched_setaffinity(0, sizeof(one), &one)) {
		pr_debug("cannot run on CPU %d for the last steps: %s", cpu, strerror(errno));
		return -errno;
	}
	tree->pin_cpu = cpu;
	return 0;
}

/*
 * Where @p's last steps run, we and its threads (rst_pin_proc()): on its
 * CPU (where its threads are) at the first process, or on ours if it has
 * none; then where we are, unless another blob still runs there and none
 * runs on @p's CPU.  The processes' blobs end in no order: staying on the
 * first one's CPU kept us there with the last blob (pinned there too) for
 * 0.3 ms, while the other CPU, its blobs ended, idled (timeline of the
 * bench tree).
 */
void rst_pin_last_steps(struct rst_tree *tree, const struct rst_proc *p)
{
	int cpu;

	if (tree->pin_self.pinned) {
		if (p->pin.cpu >= 0 && p->pin.cpu != tree->pin_cpu &&
		    blob_running_on(tree, tree->pin_cpu, p) &&
		    !blob_running_on(tree, p->pin.cpu, p))
			pin_self(tree, p->pin.cpu);
		return;
	}
	cpu = p->pin.cpu >= 0 ? p->pin.cpu : sched_getcpu();
	if (cpu < 0 || sched_getaffinity(0, sizeof(tree->pin_self.mask), &tree->pin_self.mask))
		return;
	tree->pin_self.pinned = !pin_self(tree, cpu);
}

/* The threads of @p, its blob ended, join us on our CPU. */
void rst_pin_proc(struct rst_tree *tree, struct rst_proc *p)
{
	cpu_set_t one;
	int ret;

	/* pinned there when told to go, its threads too: nothing to move */
	if (!tree->pin_self.pinned || p->pin.cpu == tree->pin_cpu)
		return;
	/* (pinned by rst_pin_plan(), it has its mask from then) */
	if (!p->pin.pinned && sched_getaffinity(p->t.pid, sizeof(p->pin.mask), &p->pin.mask)) {
		pr_debug("task %d: cannot read its CPU affinity: %s", p->pid, strerror(errno));
		return;
	}
	CPU_ZERO(&one);
	CPU_SET(tree->pin_cpu, &one);
	p->pin.pinned = true;
	ret = set_threads(tree, p, &one);
	if (ret)
		pr_debug("task %d: not all its threads run on CPU %d: %s", p->pid,
			 tree->pin_cpu, strerror(-ret));
}

/*
 * @p's threads get their own mask back as soon as its last steps are done:
 * they stay stopped until the resume, which no longer waits for their
 * twenty calls (in the bench tree) while the last blob is finalized.
 */
int rst_pin_release(struct rst_tree *tree, struct rst_proc *p)
{
	int err;

	if (!p->pin.pinned)
		return 0;
	err = set_threads(tree, p, &p->pin.mask);
	if (err)
		pr_err("task %d: cannot give its threads their CPU affinity back: %s", p->pid,
		       strerror(-err));
	p->pin.pinned = false;
	return err;
}

/* Every thread gets its affinity back (those not given it after their last
 * steps), and we ours, before anything runs for good. */
int rst_pin_end(struct rst_tree *tree)
{
	int ret = 0;

	for (size_t i = 0; i < tree->nr; i++) {
		int err = rst_pin_release(tree, &tree->procs[i]);

		ret = ret ?: err;
	}
	if (tree->pin_self.pinned)
		sched_setaffinity(0, sizeof(tree->pin_self.mask), &tree->pin_self.mask);
	tree->pin_self.pinned = false;
	return ret;
}
