/*
 * Building the process tree: every process forked by its own parent with
 * its dumped pid (clone3 + set_tid), sessions and process groups as
 * dumped, zombies and helpers gone again once the others are in place.
 *
 * The restore process holds, per task, the writing end of a sync pipe
 * (the next stage: one byte) and the reading end of an error pipe (one
 * line); all tasks share one event pipe back (struct rst_event, written
 * whole: atomic).  Every task starts as a fork of the restore process, so
 * it inherits every pipe; it closes the ones of other tasks as soon as it
 * has forked its own children.
 *
 * The restore process's side is here; the task's is tree-task.c.
 *
 * A task (rst_proc_main), byte by byte from the restore process:
 *        (at once, nothing to wait for) its pid goes to the restore
 *        process as EV_CREATED, from its parent right after the clone
 *        (from itself in a new pid namespace; the root's: we cloned it),
 *        and is seized as it is read;
 *        subreaper (a helper's children are reparented to it), setsid()
 *        if it leads a session, its process group if that exists already
 *        (tree-groups.c); fork the children that take nothing of its
 *        memory; premap and fill its memory (premap.c), forking the
 *        others once what they inherit copy-on-write is there
 *        (premap-cow.c, tree-task.c); then EV_READY.
 *   'p'  (only a task whose group's leader is no ancestor) every task is
 *        ready: join the process group, then EV_GROUP.
 *   'r'  a zombie exits with its status (by the signal that killed it, or
 *        exit()), a helper exits; a live task drains the SIGCHLDs those
 *        exits queued for it and rebuilds itself (child.c).
 * A seize does not stop the task: it premaps and forks whether or not we
 * have read its EV_CREATED yet, and no task leaves our code (the blob,
 * after 'r') before it is seized and ready (before every one is, but with
 * early go, below).  Signals stay blocked
 * in every task all along (the restore blocked them across the first
 * clone).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/env-number.h"
#include "common/log.h"
#include "common/mono-time.h"
#include "common/proc-stat.h"
#include "restore/restore.h"
#include "restore/tree.h"

#define TREE_WAIT_MS	10000	/* for one event from tasks that make no progress */
/* for one event however busy the tasks are: an eager fill of many GiB on a
 * loaded machine takes minutes, a task spinning in a loop is caught */
#define TREE_WAIT_MAX_MS	(10 * 60 * 1000)
#define PROGRESS_MS	1000	/* between two looks at the tasks' progress */
#define DEAD_WAIT_MS	10000	/* for a zombie or helper to exit */
#define ERROR_WAIT_MS	1000	/* for the line of a task that broke a pipe */
/* Test only: each parent but the root tells its child's pid that many ms
 * after the clone (tree-task.c): the child's EV_READY comes first
 * (test_tree_order.py). */
#define DELAY_CREATED_ENV	"CRIU_LAZY_TEST_DELAY_CREATED_MS"
#define DELAY_FINALIZE_ENV	"CRIU_LAZY_TEST_DELAY_FINALIZE_MS"

/* The sync and error pipes of task @p, and the socket pair of its uffd if
 * it sends one to the lazy-pages daemon. */
static int task_pipes(struct rst_tree *tree, struct rst_proc *p)
{
	struct rst_task *t = &p->t;
	int s[2], e[2];

	if (pipe2(s, O_CLOEXEC)) {
		pr_perror("cannot make the sync pipe of task %d", p->pid);
		return -errno;
	}
	if (pipe2(e, O_CLOEXEC)) {
		int err = -errno;

		pr_perror("cannot make the error pipe of task %d", p->pid);
		close(s[0]);
		close(s[1]);
		return err;
	}
	t->sync_r = s[0];
	t->sync_w = s[1];
	t->err_r = e[0];
	t->err_w = e[1];
	if (tree->lazy_sock < 0 || p->kind != RST_PROC_ALIVE)
		return 0;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, s)) {
		pr_perror("cannot make the socket pair task %d sends its userfaultfd over",
			  p->pid);
		return -errno;
	}
	t->uffd_rx = s[0];
	t->uffd_tx = s[1];
	return 0;
}

int rst_tree_pipes(struct rst_tree *tree)
{
	int ev[2], ret = 0;

	if (pipe2(ev, O_CLOEXEC)) {
		pr_perror("cannot make the tree's event pipe");
		return -errno;
	}
	tree->ev_r = ev[0];
	tree->ev_w = ev[1];
	for (size_t i = 0; i < tree->nr && !ret; i++)
		ret = task_pipes(tree, &tree->procs[i]);
	return ret;
}

/* One line from a task's error pipe, if it wrote one; 1 if so. */
static int report_task_error(struct rst_proc *p)
{
	char msg[1024];
	ssize_t n;
	int fl = fcntl(p->t.err_r, F_GETFL);

	fcntl(p->t.err_r, F_SETFL, fl | O_NONBLOCK);
	n = read(p->t.err_r, msg, sizeof(msg) - 1);
	fcntl(p->t.err_r, F_SETFL, fl);
	if (n <= 0)
		return 0;
	msg[n] = '\0';
	msg[strcspn(msg, "\n")] = '\0';
	pr_err("%s", msg);
	return 1;
}

/*
 * After a wait for one task failed: the first line another task wrote
 * (often the cause: a child that failed while its parent waited for it).
 */
int rst_tree_report_errors(struct rst_tree *tree)
{
	for (size_t i = 0; i < tree->nr; i++)
		if (tree->procs[i].t.err_r >= 0 && report_task_error(&tree->procs[i]))
			return 1;
	return 0;
}

/* The first error line a task writes within ERROR_WAIT_MS, said: 1, or 0
 * (a failure path: a look each millisecond). */
static int await_task_error(struct rst_tree *tree)
{
	int64_t deadline = mono_ms() + ERROR_WAIT_MS;

	while (!rst_tree_report_errors(tree)) {
		if (mono_ms() > deadline)
			return 0;
		usleep(1000);
	}
	return 1;
}

/*
 * A task that died, or whose end of the pipe went with a descriptor table
 * it shares (its owner failed and closed it), reads nothing: the write's
 * SIGPIPE killed the restore process ("restore crashed (killed by signal
 * 13)", test_restore_fdtable_owner_fails, once in a few runs), where it
 * must say what failed.  So SIGPIPE is blocked around the write and a
 * pending one taken.
 */
int rst_tree_send(struct rst_tree *tree, struct rst_proc *p, char what)
{
	struct timespec zero = { 0, 0 };
	sigset_t pipe_sig, old;
	ssize_t n;
	int err;

	sigemptyset(&pipe_sig);
	sigaddset(&pipe_sig, SIGPIPE);
	sigprocmask(SIG_BLOCK, &pipe_sig, &old);
	n = write(p->t.sync_w, &what, 1);
	err = errno;
	if (n < 0 && err == EPIPE)
		sigtimedwait(&pipe_sig, NULL, &zero);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (n != 1) {
		/* the task that failed first says why (often not this one, and
		 * perhaps a moment after it closed the pipe) */
		if (!await_task_error(tree))
			pr_err("cannot signal task %d: %s", p->pid,
			       n < 0 ? strerror(err) : "short write");
		return -EIO;
	}
	return 0;
}

int rst_tree_go(struct rst_tree *tree, struct rst_proc *p)
{
	if (p->go_sent)
		return 0;
	rst_pin_one(p);
	p->go_sent = true;
	return rst_tree_send(tree, p, 'r');
}

/*
 * A process rebuilds itself (child.c, then its blob) once the whole tree
 * is made, its groups set and its zombies and helpers gone (stages.c):
 * what the stages between wait for.  In a tree with none of that to wait
 * for (every process alive, every group joined at its fork, no descriptor
 * table shared), each is told to go as soon as it is ready: its premap
 * done, its children forked.  The root of the bench tree so started its
 * blob while its children still premapped, on a CPU that idled until the
 * last of them was ready.  Its stops wait for stage 18 (blob-next.c).
 * Processes sharing their cwd and root (CLONE_FS) wait too: one taking
 * its root (child.c) would move the others' premaps, which open their
 * files by path.
 */
static bool early_go_ok(const struct rst_tree *tree)
{
	for (size_t i = 0; i < tree->nr; i++) {
		const struct rst_proc *p = &tree->procs[i];

		if (p->kind != RST_PROC_ALIVE || p->group_late || p->fdt_owner >= 0 ||
		    p->fdt_end)
			return false;
		for (size_t j = 0; j < i; j++)
			if (tree->procs[j].ri.ids->fs_id == p->ri.ids->fs_id)
				return false;
	}
	return true;
}

/* Has a task we hold died or said why it failed? */
static int check_tasks(struct rst_tree *tree)
{
	for (size_t i = 0; i < tree->nr; i++) {
		struct rst_proc *p = &tree->procs[i];
		int status;

		if (report_task_error(p))
			return -EIO;
		if (!p->t.seized)
			continue;
		/* one told to go stops at its blob's end, a stop of stage 18's
		 * to take: only its end is looked at here.  The kernel reports a
		 * tracee's stop to its tracer without WSTOPPED all the same: a
		 * blob that ended while another task still filled its memory, or
		 * an owner still opened its fds, was taken for dead */
		if (p->go_sent) {
			siginfo_t si = { .si_pid = 0 };

			if (waitid(P_PID, p->t.pid, &si, WEXITED | WNOHANG | WNOWAIT | __WALL) ||
			    si.si_pid != p->t.pid || si.si_code == CLD_TRAPPED ||
			    si.si_code == CLD_STOPPED)
				continue;
			if (!report_task_error(p))
				pr_err("task %d died while the tree was being created", p->pid);
			return -EIO;
		}
		if (waitpid(p->t.pid, &status, WNOHANG | __WALL) == p->t.pid) {
			if (WIFEXITED(status) || WIFSIGNALED(status)) {
				p->t.pid = 0;
				if (!report_task_error(p))
					pr_err("task %d died while the tree was being created (status %#x)",
					       p->pid, status);
			} else {
				pr_err("task %d stopped with signal %d while the tree was being "
				       "created", p->pid, WSTOPSIG(status));
			}
			return -EIO;
		}
	}
	return 0;
}

/* A task's work so far: its page faults and CPU ticks (0 if unreadable). */
static uint64_t task_work(pid_t pid)
{
	unsigned long long minflt, majflt, utime, stime;
	char buf[1024];
	const char *s = proc_stat_fields(pid, 0, buf, sizeof(buf));

	if (!s || sscanf(s, "%*c %*d %*d %*d %*d %*d %*u %llu %*u %llu %*u %llu %llu",
			 &minflt, &majflt, &utime, &stime) != 4)
		return 0;
	return minflt + majflt + utime + stime;
}

/*
 * The tasks' work, summed: it grows while any of them fills its memory,
 * reads its images or forks, and stops when all wait for us or hang.
 */
static uint64_t tree_work(const struct rst_tree *tree)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < tree->nr; i++)
		if (tree->procs[i].t.seized && tree->procs[i].t.pid > 0)
			sum += task_work(tree->procs[i].t.pid);
	return sum;
}

/*
 * The next event from the tasks, watching for their failures meanwhile.
 * A task may do much before its event (a parent fills its memory before
 * it forks, a leaf before it joins its group: a GiB eagerly takes seconds,
 * many more on a loaded machine), so @timeout_ms counts only while none
 * of them makes progress; TREE_WAIT_MAX_MS bounds the wait all the same.
 */
int rst_tree_next_event(struct rst_tree *tree, struct rst_event *ev, const char *what,
			int timeout_ms)
{
	int64_t start = mono_ms(), idle_since = start, looked = start;
	/* first looked at after PROGRESS_MS, not before each event: reading
	 * every task's stat took longer than most events took to come (the
	 * first second counts as progress) */
	uint64_t work = 0;
	bool known = false;

	for (;;) {
		struct pollfd pfd = { .fd = tree->ev_r, .events = POLLIN };
		int ret = poll(&pfd, 1, 50);
		int64_t now;

		if (ret > 0) {
			ssize_t n = read(tree->ev_r, ev, sizeof(*ev));

			if (n == sizeof(*ev) && ev->idx >= 0 && (size_t)ev->idx < tree->nr)
				return 0;
			if (n < 0 && errno == EINTR)
				continue;
			ret = check_tasks(tree);
			if (!ret) {
				pr_err("the tasks being restored sent a bad event (%zd bytes)", n);
				ret = -EIO;
			}
			return ret;
		}
		ret = check_tasks(tree);
		if (ret)
			return ret;
		now = mono_ms();
		if (now - looked >= PROGRESS_MS) {
			uint64_t w = tree_work(tree);

			if (!known || w != work)
				idle_since = now;
			work = w;
			known = true;
			looked = now;
		}
		if (now - idle_since > (int64_t)timeout_ms) {
			pr_err("no %s: the tasks being restored made no progress (page faults, "
			       "CPU time) for %d s", what, timeout_ms / 1000);
			return -ETIMEDOUT;
		}
		if (now - start > TREE_WAIT_MAX_MS) {
			pr_err("no %s within %d s although the tasks being restored kept working",
			       what, TREE_WAIT_MAX_MS / 1000);
			return -ETIMEDOUT;
		}
	}
}

/*
 * Seize a task that said it exists.  One that failed at once (its premap)
 * may be gone already: its own line says why, not the seize's error.
 */
int rst_tree_seize(struct rst_tree *tree, struct rst_proc *p)
{
	int ret = rst_task_seize(&p->t);

	(void)tree;
	if (!ret)
		return 0;
	if (!report_task_error(p))
		pr_err("cannot seize the new task %d: %s", p->pid, strerror(-ret));
	return ret;
}

/*
 * Early go (early_go_ok()) once @p is both ready and seized.  Its ready may
 * come before its pid, which its parent tells after the clone: told to go
 * then, a task not seized yet died of its blob's final int3 (SIGTRAP, once
 * in some 1000 zdtm tree restores), and its pin went to us (pid 0).
 */
static int go_early(struct rst_tree *tree, struct rst_proc *p)
{
	return tree->early_go && p->ready && p->t.seized ? rst_tree_go(tree, p) : 0;
}

/*
 * One event while the tree is made: a new task (seized at once) or a
 * task ready (premapped, its children forked, in its group if it could
 * join it then).  Either may come first: the parent tells a task's pid,
 * which the task may be ready before (tree-task.c); both have come from
 * every task before the tree goes on past stage 4.
 */
int rst_tree_creation_event(struct rst_tree *tree, const char *what)
{
	struct rst_event ev;
	struct rst_proc *p;
	int ret = rst_tree_next_event(tree, &ev, what, TREE_WAIT_MS);

	if (ret)
		return ret;
	p = &tree->procs[ev.idx];
	if (ev.kind == EV_CREATED && !p->t.pid) {
		p->t.pid = ev.pid;
		tree->created++;
		return rst_tree_seize(tree, p) ?: go_early(tree, p);
	}
	if (ev.kind == EV_READY && !p->ready) {
		if (!p->t.seized)
			pr_debug("task %d is ready before its parent told its pid", p->pid);
		p->ready = true;
		tree->ready++;
		return go_early(tree, p);
	}
	pr_err("unexpected event %d about task %d", ev.kind, p->pid);
	return -EIO;
}

int rst_tree_create(struct rst_tree *tree)
{
	int ret;

	rst_tree_groups_plan(tree);
	/* (after the groups' plan and the descriptor tables', stage_create()) */
	tree->early_go = early_go_ok(tree);
	if (tree->early_go)
		pr_debug("each process rebuilds itself as soon as it is ready");
	tree->test_delay_created_ms = env_number(DELAY_CREATED_ENV, 60000);
	if (tree->test_delay_created_ms)
		pr_warn("test hook %s=%u: each parent but the root tells its child's pid "
			"that late", DELAY_CREATED_ENV, tree->test_delay_created_ms);
	tree->test_delay_finalize_ms = env_number(DELAY_FINALIZE_ENV, 60000);
	if (tree->test_delay_finalize_ms)
		pr_warn("test hook %s=%u: a wait that long after each process's last steps "
			"and before the pidfile",
			DELAY_FINALIZE_ENV, tree->test_delay_finalize_ms);
	ret = rst_task_create(tree, &tree->procs[0]);
	while (!ret && tree->created < tree->nr)
		ret = rst_tree_creation_event(tree, "new task");
	if (!ret)
		pr_info("%zu task(s) created", tree->nr);
	return ret;
}

static int wait_dead(struct rst_proc *p)
{
	int64_t deadline = mono_ms() + DEAD_WAIT_MS;
	int status;

	for (;;) {
		pid_t r = waitpid(p->t.pid, &status, WNOHANG | __WALL);

		if (r == p->t.pid && (WIFEXITED(status) || WIFSIGNALED(status)))
			break;
		if (r == p->t.pid && WIFSTOPPED(status)) {
			/* the signal a zombie dies of passes through us, its tracer */
			ptrace(PTRACE_CONT, p->t.pid, NULL, (void *)(long)WSTOPSIG(status));
			continue;
		}
		if (r < 0) {
			pr_perror("wait for task %d to exit", p->pid);
			return -errno;
		}
		if (mono_ms() > deadline) {
			pr_err("task %d did not exit within %d s", p->pid, DEAD_WAIT_MS / 1000);
			return -ETIMEDOUT;
		}
		usleep(1000);
	}
	if (p->kind == RST_PROC_ZOMBIE && status != (int)p->exit_code) {
		report_task_error(p);
		pr_err("zombie %d ended with status %#x instead of %#x", p->pid, status,
		       p->exit_code);
		return -EIO;
	}
	/* our wait as its tracer hands it to its parent: a zombie there now */
	p->t.seized = false;
	p->t.pid = 0;
	return 0;
}

/* Zombies and helpers go, now that every group has its members. */
int rst_tree_reap_dead(struct rst_tree *tree)
{
	for (size_t i = 0; i < tree->nr; i++) {
		struct rst_proc *p = &tree->procs[i];
		int ret;

		if (p->kind == RST_PROC_ALIVE)
			continue;
		ret = rst_tree_send(tree, p, 'r');
		if (!ret)
			ret = wait_dead(p);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Kill every task created so far.  We are a subreaper while the tree is
 * built (stages.c), so the tasks whose parent died before them come to us:
 * reap whatever is left, so nothing of the tree survives as a zombie.
 */
void rst_tree_kill(struct rst_tree *tree)
{
	int64_t deadline = mono_ms() + DEAD_WAIT_MS;
	int status;

	for (size_t i = tree->nr; i-- > 0;)
		rst_task_kill(&tree->procs[i].t);
	for (;;) {
		pid_t r = waitpid(-1, &status, WNOHANG | __WALL);

		if (r < 0 || mono_ms() > deadline)
			break;
		if (r == 0)
			usleep(1000);
	}
}
