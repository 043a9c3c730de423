/*
 * The threads of the task, on the restore process's side.
 *
 * Before any task exists: read core-<tid>.img of every thread pstree.img
 * names (the leader first, as we keep them: cores[0] is ri->core) and check
 * each.  The blob creates them (pie/threads.c); after its final int3 every
 * other thread sleeps on a futex in the blob, already restored but for what
 * only ptrace can set.  Here each is seized and interrupted (a task with
 * seccomp had them seized earlier, rst_threads_trace()), gets its
 * registers, FPU/xstate and TLS slots and the FINAL and RESUME stages of its
 * task attributes (attrs/: its pending SIGTRAPs, its blocked mask), as the
 * leader does in finalize.c, and stays stopped until all of them and the
 * leader are set: then all are detached at once, the leader last.
 *
 * In a new pid namespace the threads have other ids here than in the
 * images: the last number of NSpid in /proc/PID/task/TID/status is the one
 * the task sees.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "attrs/task-attr.h"
#include "common/log.h"
#include "common/mono-time.h"
#include "common/proc-stat.h"
#include "common/proc-status.h"
#include "common/proc-task.h"
#include "common/ptrace-inject.h"
#include "images/image.h"
#include "restore/restore.h"
#include "restore/cpu-pin.h"
#include "restore/images-prefetch.h"
#include "restore/threads.h"
#include "restore/restorer-blob.h"

#define STOP_TIMEOUT_MS		10000
#define REAP_TIMEOUT_MS		5000

int rst_threads_load(struct rst_images *ri)
{
	const PstreeEntry *ps = ri->pstree;
	size_t n = ps->n_threads ? ps->n_threads : 1, k = 1;
	bool leader = !ps->n_threads;

	ri->cores = calloc(n, sizeof(*ri->cores));
	ri->tids = calloc(n, sizeof(*ri->tids));
	if (!ri->cores || !ri->tids)
		return -ENOMEM;
	ri->cores[0] = ri->core;
	ri->tids[0] = ri->pid;
	ri->nr_threads = 1;
	for (size_t i = 0; i < ps->n_threads; i++) {
		pid_t tid = (pid_t)ps->threads[i];
		CoreEntry *core;
		int ret;

		if (tid == ri->pid && !leader) {
			leader = true;
			continue;
		}
		if (tid <= 0 || k == n) {
			pr_err("pstree.img: task %d lists thread %d %s", ri->pid, tid,
			       tid <= 0 ? "(not a thread id)" : "but not itself");
			return -EINVAL;
		}
		for (size_t j = 1; j < k; j++) {
			if (ri->tids[j] == tid) {
				pr_err("pstree.img: task %d lists thread %d twice", ri->pid, tid);
				return -EINVAL;
			}
		}
		ret = rst_img_read_one(ri->dirfd, IMG_CORE, tid, &core_entry__descriptor,
				   (ProtobufCMessage **)&core);
		if (ret)
			return ret;
		ri->cores[k] = core;
		ri->tids[k++] = tid;
		ri->nr_threads = k;
		if (core->tc || core->ids) {
			pr_err("core-%d.img: thread %d of task %d has process state (%s): a thread's core holds only its own",
			       tid, tid, ri->pid, core->tc ? "task_core" : "ids");
			return -EINVAL;
		}
		ret = rst_check_thread_core(tid, core);
		if (ret)
			return ret;
	}
	if (!leader) {
		pr_err("pstree.img: the threads of task %d do not include the task itself", ri->pid);
		return -EINVAL;
	}
	if (ri->nr_threads > 1)
		pr_info("task %d: %zu threads", ri->pid, ri->nr_threads);
	return 0;
}

struct vtid_walk {
	pid_t pid, vtid;
};

/* @tid if the task calls it w->vtid (the last number of its NSpid), else 0. */
static int thread_is_vtid(pid_t tid, void *arg)
{
	const struct vtid_walk *w = arg;
	char buf[4096];

	if (proc_task_read(w->pid, tid, "status", buf, sizeof(buf)) < 0)
		return 0;
	return proc_status_last(buf, "NSpid") == w->vtid ? tid : 0;
}

/* The id here of the thread the task calls @vtid, or -1. */
static pid_t thread_pid_here(const struct rst_images *ri, pid_t pid, pid_t vtid)
{
	struct vtid_walk w = { pid, vtid };
	int found;

	if (!ri->in_new_pid_ns)
		return vtid;
	found = proc_each_thread(pid, thread_is_vtid, &w);
	return found > 0 ? found : -1;
}

static bool pid_listed(const pid_t *v, size_t n, pid_t pid)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == pid)
			return true;
	return false;
}

/* Seize a thread sleeping in the blob (unless it is already, @traced) and
 * ask it to stop there; wait_thread() takes the stop. */
static int interrupt_thread(pid_t tid, bool traced)
{
	if ((!traced && ptrace(PTRACE_SEIZE, tid, NULL, (void *)(long)PTRACE_O_TRACESYSGOOD)) ||
	    ptrace(PTRACE_INTERRUPT, tid, NULL, NULL)) {
		pr_perror("cannot seize the new thread %d", tid);
		return -errno;
	}
	return 0;
}

static int wait_thread(pid_t tid)
{
	int status, ret;

	ret = ptrace_wait_stop(tid, STOP_TIMEOUT_MS, &status);
	if (ret)
		return ret;
	if (!ptrace_interrupt_stop(status)) {
		pr_err("thread %d stopped with status %#x instead of an interrupt stop", tid,
		       status);
		return -EIO;
	}
	return 0;
}

/* rst_threads_trace()'s walk: its task, and the error that stopped it. */
struct trace_walk {
	struct rst_task *t;
	int err;
};

static int seize_new_thread(pid_t tid, void *arg)
{
	const long opts = PTRACE_O_TRACESYSGOOD | PTRACE_O_SUSPEND_SECCOMP;
	struct trace_walk *w = arg;
	struct rst_task *t = w->t;
	pid_t *grown;

	if (tid == t->pid || pid_listed(t->thread_pids, t->nr_thread_pids, tid))
		return 0;
	grown = realloc(t->thread_pids, (t->nr_thread_pids + 1) * sizeof(*grown));
	if (!grown)
		return w->err = -ENOMEM;
	t->thread_pids = grown;
	if (ptrace(PTRACE_SEIZE, tid, NULL, (void *)opts)) {
		pr_perror("cannot seize the new thread %d of task %d", tid, t->pid);
		return w->err = -errno;
	}
	t->thread_pids[t->nr_thread_pids++] = tid;
	return 0;
}

/*
 * Seccomp (the blob's RST_STATUS_TRACE_THREADS stop): the other threads
 * exist and wait for us.  Seize them all, and set on them and on the
 * leader PTRACE_O_SUSPEND_SECCOMP, so that nothing the blob does after it
 * installed the filters, nor our own syscalls in the task at the end, is
 * filtered.  Detaching clears it: the filters act from then on.
 */
int rst_threads_trace(struct rst_task *t)
{
	const long opts = PTRACE_O_TRACESYSGOOD | PTRACE_O_SUSPEND_SECCOMP;
	struct trace_walk w = { t, 0 };
	int ret;

	if (ptrace(PTRACE_SETOPTIONS, t->pid, NULL, (void *)(opts | PTRACE_O_EXITKILL))) {
		pr_perror("task %d: cannot suspend its seccomp filters while it is restored "
			  "(PTRACE_O_SUSPEND_SECCOMP)", t->pid);
		return -errno;
	}
	ret = proc_each_thread(t->pid, seize_new_thread, &w);
	if (ret < 0 && !w.err) {
		errno = -ret;
		pr_perror("cannot list the threads of task %d", t->pid);
	}
	return ret;
}

/* The FINAL and RESUME stages of a thread's attributes run with these. */
static struct attr_rst thread_attr_rst(const struct rst_images *ri, const struct rst_plan *plan,
				       size_t i, pid_t host_tid)
{
	uint64_t args = plan->blob_start + plan->args_off;

	return (struct attr_rst){
		.ri = ri, .core = ri->cores[i], .pid = ri->pid, .tid = ri->tids[i],
		.plan = plan, .host_tid = host_tid,
		.syscall_ip = plan->blob_start + restorer_export_syscall_off,
		.remote_args = args,
		.remote_thread = args + sizeof(struct restorer_args) +
				 plan->nr_vmas * sizeof(struct rst_vma) +
				 i * sizeof(struct rst_thread_args),
	};
}

/* Seize every other thread where it sleeps (seccomp: seized already, in
 * any order) and interrupt it; t->thread_pids ends up in the order of
 * ri->tids.  All are asked to stop before the first stop is waited for:
 * their stops overlap, instead of one round trip after the other.  They
 * are on our CPU for the last steps (cpu-pin.c), where each one woken ran
 * to its stop before our next PTRACE_INTERRUPT returned: a burst, as
 * SCHED_FIFO, they run once we wait (the bench tree's three threads a
 * process: rst_threads_finalize() 72 -> 63.5 us median, 240 calls). */
static int interrupt_threads(const struct rst_images *ri, struct rst_task *t, pid_t *early,
			     size_t nr_early)
{
	for (size_t i = 1; i < ri->nr_threads; i++) {
		pid_t tid = thread_pid_here(ri, t->pid, ri->tids[i]);
		bool traced = pid_listed(early, nr_early, tid);
		int ret;

		if (tid <= 0) {
			pr_err("task %d: thread %d is not there after the restorer created it",
			       t->pid, ri->tids[i]);
			return -ESRCH;
		}
		ret = interrupt_thread(tid, traced);
		if (ret && !traced)
			return ret;
		t->thread_pids[t->nr_thread_pids++] = tid;
		if (ret)
			return ret;
	}
	return 0;
}

/* Then each one, stopped: block its signals, run its FINAL attributes (the
 * blob is still there) and set its registers. */
int rst_threads_finalize(const struct rst_images *ri, const struct rst_plan *plan,
			 struct rst_task *t)
{
	pid_t *early = t->thread_pids;
	size_t nr_early = t->nr_thread_pids;
	struct rst_burst b;
	int ret;

	if (ri->nr_threads < 2)
		return 0;
	t->thread_pids = calloc(ri->nr_threads + nr_early, sizeof(*t->thread_pids));
	if (!t->thread_pids) {
		t->thread_pids = early;
		return -ENOMEM;
	}
	t->nr_thread_pids = 0;
	rst_burst_begin(&b, ri->nr_threads - 1);
	ret = interrupt_threads(ri, t, early, nr_early);
	rst_burst_end(&b);
	for (size_t i = 1; i < ri->nr_threads && !ret; i++) {
		pid_t tid = t->thread_pids[i - 1];
		struct rst_restart rs;
		struct attr_rst r;

		/* its signals are blocked already: it inherited the leader's
		 * mask in the blob */
		ret = wait_thread(tid);
		if (ret)
			break;
		r = thread_attr_rst(ri, plan, i, tid);
		ret = attrs_restore(&r, ATTR_RST_FINAL, ATTR_THREAD);
		if (!ret)
			ret = rst_syscall_restart_prepare(tid, r.syscall_ip, ri->cores[i], &rs);
		if (!ret)
			ret = rst_thread_set_regs(tid, ri->cores[i], &rs);
	}
	/* on failure, those seized early but not reached stay ours to reap */
	for (size_t k = 0; ret && k < nr_early; k++)
		if (!pid_listed(t->thread_pids, t->nr_thread_pids, early[k]))
			t->thread_pids[t->nr_thread_pids++] = early[k];
	free(early);
	return ret;
}

/* Their RESUME attributes (the blocked mask), once every one is set. */
int rst_threads_resume(const struct rst_images *ri, const struct rst_plan *plan,
		       struct rst_task *t)
{
	for (size_t i = 1; i < ri->nr_threads && i <= t->nr_thread_pids; i++) {
		struct attr_rst r = thread_attr_rst(ri, plan, i, t->thread_pids[i - 1]);
		int ret = attrs_restore(&r, ATTR_RST_RESUME, ATTR_THREAD);

		if (ret)
			return ret;
	}
	return 0;
}

int rst_threads_detach(struct rst_task *t)
{
	for (size_t i = 0; i < t->nr_thread_pids; i++) {
		if (ptrace(PTRACE_DETACH, t->thread_pids[i], NULL, NULL)) {
			pr_perror("cannot detach from thread %d of task %d", t->thread_pids[i],
				  t->pid);
			return -errno;
		}
	}
	free(t->thread_pids);
	t->thread_pids = NULL;
	t->nr_thread_pids = 0;
	return 0;
}

/*
 * After SIGKILL: the threads we trace wait for us before the leader goes,
 * reaped all at once under one deadline (ptrace_reap_gone()).
 */
void rst_threads_reap(struct rst_task *t)
{
	int left = ptrace_reap_gone(t->thread_pids, t->nr_thread_pids,
				    mono_ms() + REAP_TIMEOUT_MS);

	for (size_t i = 0; left > 0 && i < t->nr_thread_pids; i++)
		if (t->thread_pids[i])
			pr_warn("thread %d of task %d did not exit within %d ms of SIGKILL (state %c)",
				t->thread_pids[i], t->pid, REAP_TIMEOUT_MS,
				proc_stat_state(t->thread_pids[i]) ?: '?');
	free(t->thread_pids);
	t->thread_pids = NULL;
	t->nr_thread_pids = 0;
}
