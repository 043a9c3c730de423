/*
 * The threads of a task: every one frozen, its own state read, its own
 * core-<tid>.img written, and every one let go at the end.
 *
 * Freezing: the leader is seized first (seize.c), then every tid listed in
 * /proc/PID/task is seized and interrupted, and the directory is listed
 * again until a pass finds no new tid (a thread still running may create
 * another one until it is stopped itself; a stopped one cannot).  A thread
 * that exits before it could be frozen was exiting anyway: it is left out.
 * One that disappears after it was frozen fails the dump with one line.
 *
 * Per thread: its registers, FPU/xstate and TLS slots (regs.c), then the
 * task attributes of ATTR_THREAD scope (attrs/: rseq, clear_child_tid,
 * name, scheduling, sigaltstack, robust list, parent-death signal, blocked
 * mask, private pending signals, creds), which the leader runs with the
 * process's.  They are written for a task and use its pid and core: for
 * another thread they get a view of the task with the thread's tid (/proc,
 * ptrace and injected syscalls all take a tid) and the thread's core.
 *
 * A thread under seccomp (strict or filters) gets PTRACE_O_SUSPEND_SECCOMP
 * before anything runs inside it, so that the syscalls the dump injects
 * are not filtered (nor kill it); detaching clears it.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attrs/task-attr.h"
#include "common/array.h"
#include "common/log.h"
#include "common/mono-time.h"
#include "common/proc-stat.h"
#include "common/proc-task.h"
#include "common/ptrace-inject.h"
#include "dump/dump.h"

#define REAP_TIMEOUT_MS		10000
#define MAX_SEIZE_PASSES	10000

/*
 * Is thread @tid of task @pid gone or on its way out?  PTRACE_SEIZE of a
 * thread that has begun to exit fails with EPERM, not ESRCH.
 */
static bool thread_exiting(pid_t pid, pid_t tid)
{
	char buf[512];
	const char *f = proc_stat_fields(pid, tid, buf, sizeof(buf));

	if (!f)
		return errno == ENOENT || errno == ESRCH;
	return f[0] == 'Z' || f[0] == 'X' || f[0] == 'x';
}

/*
 * Seize and interrupt one non-leader thread, and freeze it as seize.c does
 * the leader.  0 frozen, 1 it exited before its seize, 2 after it (before
 * its stop), or a negative errno (logged).
 */
static int freeze_thread(struct dump_task *t, struct dump_thread *th)
{
	char who[48];
	int sig, ret;

	if (ptrace(PTRACE_SEIZE, th->tid, NULL, (void *)PTRACE_O_TRACESYSGOOD)) {
		if (errno == ESRCH || (errno == EPERM && thread_exiting(t->pid, th->tid)))
			return 1;
		pr_perror("can't seize thread %d of task %d", th->tid, t->pid);
		return -errno;
	}
	th->seized = true;
	dump_test_delay(DUMP_DELAY_INTERRUPT);
	/* (gone meanwhile, ESRCH: the first wait sees its exit) */
	if (ptrace(PTRACE_INTERRUPT, th->tid, NULL, NULL) && errno != ESRCH) {
		pr_perror("can't interrupt thread %d of task %d", th->tid, t->pid);
		return -errno;
	}
	snprintf(who, sizeof(who), "thread %d of task %d", th->tid, t->pid);
	ret = dump_freeze_stop(th->tid, who, &sig, &th->regs);
	if (ret == DUMP_FREEZE_EXITED) {
		th->seized = false;
		return 2;
	}
	if (ret)
		return ret;
	th->regs_valid = true;
	return 0;
}

static bool have_tid(const struct dump_task *t, pid_t tid)
{
	for (size_t i = 0; i < t->nr_threads; i++)
		if (t->threads[i].tid == tid)
			return true;
	return false;
}

static struct dump_thread *add_thread(struct dump_task *t, pid_t tid)
{
	struct dump_thread *th;

	if (ARRAY_GROW(t->threads, t->cap_threads, t->nr_threads + 1, 8))
		return NULL;
	th = &t->threads[t->nr_threads++];
	memset(th, 0, sizeof(*th));
	th->tid = th->vtid = tid;
	return th;
}

/* A pass of seize_pass(): the threads it froze, and the error that stopped it. */
struct seize_walk {
	struct dump_task *t;
	int added, err;
	bool delayed;		/* dump_test_delay() done in this pass */
};

static int seize_new_thread(pid_t tid, void *arg)
{
	struct seize_walk *w = arg;
	struct dump_task *t = w->t;
	struct dump_thread *th;
	int ret;

	if (have_tid(t, tid))
		return 0;
	if (!w->delayed) {
		dump_test_delay(DUMP_DELAY_SEIZE);
		w->delayed = true;
	}
	th = add_thread(t, tid);
	if (!th)
		return w->err = -ENOMEM;
	ret = freeze_thread(t, th);
	if (ret > 0) {
		pr_info("thread %d of task %d exited %s", tid, t->pid,
			ret == 1 ? "before it could be frozen" : "while it was being frozen");
		t->nr_threads--;
		return 0;
	}
	if (ret < 0)
		return w->err = ret;	/* still seized: released with the others */
	w->added++;
	return 0;
}

/* One pass over /proc/PID/task: freeze every tid not seen yet.  The number
 * of threads added, or a negative errno. */
static int seize_pass(struct dump_task *t)
{
	struct seize_walk w = { t, 0, 0, false };
	int ret = proc_each_thread(t->pid, seize_new_thread, &w);

	if (ret < 0 && !w.err)
		return dump_task_error(t, ret, "can't list the threads of task %d: %m", t->pid);
	return ret < 0 ? ret : w.added;
}

int dump_seize_threads(struct dump_task *t)
{
	struct dump_thread *leader;
	int n, pass;

	leader = add_thread(t, t->pid);
	if (!leader)
		return -ENOMEM;
	leader->seized = true;
	leader->regs = t->regs;
	leader->regs_valid = t->regs_valid;
	for (pass = 0; pass < MAX_SEIZE_PASSES; pass++) {
		n = seize_pass(t);
		if (n < 0)
			return n;
		if (n == 0)
			break;
	}
	if (pass == MAX_SEIZE_PASSES) {
		pr_err("task %d keeps creating threads faster than they can be frozen", t->pid);
		return -EAGAIN;
	}
	if (t->exited || dump_task_exited(t))
		return dump_task_error(t, -ESRCH, "task %d exited", t->pid);
	pr_info("task %d: %zu thread%s frozen", t->pid, t->nr_threads,
		t->nr_threads > 1 ? "s" : "");
	return 0;
}

/* The last number of "NSpid:", the thread's id in the task's namespace. */
static int thread_vtid(struct dump_task *t, struct dump_thread *th, const char *status)
{
	long v = proc_status_last(status, "NSpid");

	if (t->in_pidns && v >= 0)
		th->vtid = v;
	return 0;
}

/* A task as the per-thread attributes see one thread of it. */
static void thread_view(struct dump_task *view, const struct dump_task *t,
			const struct dump_thread *th)
{
	*view = *t;
	view->pid = th->tid;
	view->core = th->core;
	view->regs = th->regs;
	view->regs_valid = th->regs_valid;
	view->exited = th->exited;
}

/* What we cannot dump, refused by the thread's tid; seccomp suspended. */
int dump_check_threads(struct dump_task *t)
{
	char status[16384];

	t->threads[0].vtid = t->vpid;	/* known now (pidns.c) */
	for (size_t i = 0; i < t->nr_threads; i++) {
		struct dump_thread *th = &t->threads[i];
		struct dump_task view;
		const char *v;
		int ret;

		thread_view(&view, t, th);
		ret = dump_proc_read(&view, "status", status, sizeof(status));
		th->exited = view.exited;
		if (ret < 0)
			return ret;
		v = proc_status_field(status, "Seccomp");
		if (v && atoi(v) != 0 &&
		    ptrace(PTRACE_SETOPTIONS, th->tid, NULL,
			   (void *)(long)(PTRACE_O_TRACESYSGOOD | PTRACE_O_SUSPEND_SECCOMP))) {
			pr_perror("thread %d of task %d runs under seccomp, which cannot be "
				  "suspended while it is dumped (PTRACE_O_SUSPEND_SECCOMP)",
				  th->tid, t->pid);
			return -errno;
		}
		if (i)
			thread_vtid(t, th, status);
	}
	return 0;
}

/*
 * The other threads' state at one dump stage of the attributes: at the
 * FROZEN one, before anything runs inside them, their registers first;
 * at the INJECT one, with the task's scratch page mapped.
 */
int dump_threads_collect(struct dump_ctx *ctx, struct dump_task *t, int attr_stage)
{
	t->threads[0].core = t->core;
	for (size_t i = 1; i < t->nr_threads; i++) {
		struct dump_thread *th = &t->threads[i];
		struct dump_task view;
		int ret = 0;

		if (attr_stage == ATTR_DUMP_FROZEN) {
			th->core = dump_core_alloc();
			if (!th->core)
				return -ENOMEM;
			th->core->core.tc = NULL;	/* the leader's alone */
		}
		thread_view(&view, t, th);
		if (attr_stage == ATTR_DUMP_FROZEN)
			ret = dump_regs(&view);
		if (!ret)
			ret = attrs_dump(ctx, &view, attr_stage, ATTR_THREAD);
		th->exited = view.exited;
		if (ret)
			return ret;
	}
	return 0;
}

int dump_write_thread_cores(struct dump_ctx *ctx, struct dump_task *t)
{
	for (size_t i = 1; i < t->nr_threads; i++) {
		struct dump_thread *th = &t->threads[i];
		int ret = dump_img_write_one(ctx, IMG_CORE, th->vtid, &th->core->core.base);

		if (ret)
			return ret;
	}
	return 0;
}

static bool to_reap(const struct dump_task *t, const struct dump_thread *th,
		    enum task_release_mode mode)
{
	return th->seized && (mode == RELEASE_KILL || th->exited || t->exited);
}

static void warn_not_reaped(const struct dump_thread *th)
{
	char wchan[64];
	ssize_t n = proc_task_read(th->tid, 0, "wchan", wchan, sizeof(wchan));

	pr_warn("thread %d did not exit within %d ms (state %c, wchan %s)", th->tid,
		REAP_TIMEOUT_MS, proc_stat_state(th->tid) ?: '?', n > 0 ? wchan : "?");
}

/*
 * Wait until the killed (or exited) threads are gone: a traced one waits
 * for us.  All of them at once (ptrace_reap_gone(): the last live thread
 * of a pid namespace's init waits until its traced zombie siblings are
 * reaped), under one deadline of the clock.
 */
static void reap_threads(struct dump_task *t, enum task_release_mode mode)
{
	int64_t deadline = mono_ms() + REAP_TIMEOUT_MS;
	pid_t *tids = calloc(t->nr_threads, sizeof(*tids));
	size_t i;
	int left;

	for (i = 1; i < t->nr_threads; i++) {
		struct dump_thread *th = &t->threads[i];

		if (!to_reap(t, th, mode))
			continue;
		if (tids) {
			tids[i] = th->tid;
			continue;
		}
		/* no memory for the set: one at a time, under the same deadline */
		if (ptrace_reap_gone(&(pid_t){ th->tid }, 1, deadline) > 0)
			warn_not_reaped(th);
		th->seized = false;
	}
	if (!tids)
		return;
	left = ptrace_reap_gone(tids, t->nr_threads, deadline);
	for (i = 1; i < t->nr_threads; i++) {
		struct dump_thread *th = &t->threads[i];

		if (!to_reap(t, th, mode))
			continue;
		if (left > 0 && tids[i])
			warn_not_reaped(th);
		th->seized = false;
	}
	free(tids);
}

/*
 * Let the non-leader threads go (seize.c does the leader around this):
 *   RELEASE_KILL: the task was killed, reap its threads;
 *   otherwise: each back in a signal stop with its registers (so a syscall
 *   it was interrupted in restarts) and detached.
 */
void dump_release_threads(struct dump_task *t, enum task_release_mode mode)
{
	reap_threads(t, mode);
	for (size_t i = 1; i < t->nr_threads; i++) {
		struct dump_thread *th = &t->threads[i];

		if (!th->seized)
			continue;
		th->seized = false;
		if (!th->regs_valid)	/* never stopped: let go when we exit (seize.c) */
			continue;
		if (ptrace_park_in_signal_stop(th->tid))
			pr_warn("thread %d: an interrupted syscall may return -EINTR", th->tid);
		if (ptrace(PTRACE_SETREGS, th->tid, NULL, &th->regs))
			pr_perror("can't put back the registers of thread %d", th->tid);
		if (ptrace(PTRACE_DETACH, th->tid, NULL, NULL) && errno != ESRCH)
			pr_perror("can't detach from thread %d", th->tid);
	}
}

void dump_threads_free(struct dump_task *t)
{
	for (size_t i = 1; i < t->nr_threads; i++)
		dump_core_free(t->threads[i].core);
	free(t->threads);
	t->threads = NULL;
	t->nr_threads = t->cap_threads = 0;
}
