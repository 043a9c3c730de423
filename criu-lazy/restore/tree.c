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
 * A task (rst_proc_main), byte by byte from the restore process:
 *   'g'  seized: it may run.  Premap and fill its memory (premap.c), so
 *        that its children inherit it copy-on-write (premap-cow.c);
 *        subreaper (a helper's children are reparented to it), setsid() if
 *        it leads a session, then fork each child; the child's EV_CREATED
 *        tells the restore process its pid so that it seizes it and sends
 *        it its own 'g'.
 *   'p'  every task exists: join the process group (leaders first: the
 *        restore process orders them), then EV_GROUP.
 *   'r'  a zombie exits with its status (by the signal that killed it, or
 *        exit()), a helper exits; a live task drains the SIGCHLDs those
 *        exits queued for it and rebuilds itself (child.c).
 * Signals stay blocked in every task all along (the restore blocked them
 * across the first clone), and no task runs untraced after its 'g'.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "restore/restore.h"

#define TREE_WAIT_MS	10000	/* for one event from the tasks */
#define DEAD_WAIT_MS	10000	/* for a zombie or helper to exit */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ull + ts.tv_nsec / 1000000;
}

int rst_tree_pipes(struct rst_tree *tree)
{
	int ev[2];

	if (pipe2(ev, O_CLOEXEC)) {
		pr_perror("pipe");
		return -errno;
	}
	tree->ev_r = ev[0];
	tree->ev_w = ev[1];
	for (size_t i = 0; i < tree->nr; i++) {
		struct rst_task *t = &tree->procs[i].t;
		int s[2], e[2];

		if (pipe2(s, O_CLOEXEC))
			goto err;
		if (pipe2(e, O_CLOEXEC)) {
			close(s[0]);
			close(s[1]);
			goto err;
		}
		t->sync_r = s[0];
		t->sync_w = s[1];
		t->err_r = e[0];
		t->err_w = e[1];
	}
	return 0;
err:
	pr_perror("pipe for task %d", tree->procs[0].pid);
	return -errno;
}

int rst_tree_send(struct rst_tree *tree, struct rst_proc *p, char what)
{
	(void)tree;
	if (write(p->t.sync_w, &what, 1) != 1) {
		pr_perror("cannot signal task %d", p->pid);
		return -EIO;
	}
	return 0;
}

/* ---------------------------------------------------------- in the task */

static int proc_err(struct rst_proc *p, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int proc_err(struct rst_proc *p, int err, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (len < 0)
		len = 0;
	if (len > (int)sizeof(buf) - 2)
		len = sizeof(buf) - 2;
	buf[len++] = '\n';
	if (write(p->t.err_w, buf, len) < 0) {
		/* the restore is gone: nobody to tell */
	}
	return -err;
}

static char wait_stage(struct rst_proc *p)
{
	char c;

	if (read(p->t.sync_r, &c, 1) != 1)
		_exit(1);	/* the restore failed or died: EXITKILL does the rest */
	return c;
}

void rst_tree_event(const struct rst_tree *tree, int idx, int kind, pid_t pid)
{
	struct rst_event ev = { .idx = idx, .kind = kind, .pid = pid };

	if (write(tree->ev_w, &ev, sizeof(ev)) != sizeof(ev))
		_exit(1);
}

/* What @k shares with its parent @p: CLONE_FS (cwd, root and umask) and
 * CLONE_FILES (the descriptor table), as dumped. */
static uint64_t share_flags(const struct rst_proc *p, const struct rst_proc *k)
{
	if (p->kind != RST_PROC_ALIVE || k->kind != RST_PROC_ALIVE)
		return 0;
	return (p->ri.ids->fs_id == k->ri.ids->fs_id ? CLONE_FS : 0) |
	       (k->ri.fdt_owner ? CLONE_FILES : 0);
}

static void fork_children(struct rst_tree *tree, int idx)
{
	struct rst_proc *p = &tree->procs[idx];

	for (size_t j = idx + 1; j < tree->nr; j++) {
		struct rst_proc *k = &tree->procs[j];
		pid_t pid;

		if (k->parent != idx)
			continue;
		pid = rst_clone_with_pid(k->pid, share_flags(p, k));
		if (pid == 0)
			rst_proc_main(tree, j);
		if (pid < 0) {
			if (errno == EEXIST)
				proc_err(p, errno, "pid %d is already in use", k->pid);
			else
				proc_err(p, errno, "task %d: cannot create its child %d (clone3 with "
					 "set_tid): %s", p->pid, k->pid, strerror(errno));
			_exit(1);
		}
	}
}

/*
 * A new task tells the restore process its pid there (EV_CREATED).  In a
 * new pid namespace its parent knows only the pid inside; /proc/self is
 * resolved in the namespace /proc was mounted for, the restore's.
 */
static void send_created(struct rst_tree *tree, int idx)
{
	struct rst_proc *p = &tree->procs[idx];
	char buf[32];
	ssize_t n;

	n = readlink("/proc/self", buf, sizeof(buf) - 1);
	if (n <= 0) {
		proc_err(p, errno, "task %d: cannot read /proc/self: %s", p->pid,
			 n < 0 ? strerror(errno) : "empty");
		_exit(1);
	}
	buf[n] = '\0';
	rst_tree_event(tree, idx, EV_CREATED, atoi(buf));
}

/*
 * Our own pipes stay; our children took their copies already.  In a
 * descriptor table shared with other processes nothing goes yet: another
 * sharer may not have forked its children, or read its stages, and the
 * owner's close at the rebuild closes it all (fdt.c).
 */
static void close_foreign_pipes(struct rst_tree *tree, int idx)
{
	if (tree->procs[idx].fdt_end)
		return;
	for (size_t i = 0; i < tree->nr; i++) {
		struct rst_task *t = &tree->procs[i].t;

		if ((int)i == idx)
			continue;
		close(t->sync_r);
		close(t->err_w);
	}
	close(tree->ev_r);
}

/*
 * The process group, once every task exists.  With --shell-job a task of
 * the root's dumped group or session, which are not restored, stays in
 * ours (it inherited it).
 */
static void join_group(struct rst_tree *tree, struct rst_proc *p)
{
	const struct rst_proc *root = &tree->procs[0];
	pid_t pgid = p->pgid;

	if (getpgrp() == pgid || p->sid == p->pid)
		return;
	if (tree->o->shell_job && pgid == root->pgid && root->pgid != root->pid)
		return;
	if (setpgid(0, pgid == p->pid ? 0 : pgid)) {
		proc_err(p, errno, "task %d: cannot join process group %d: %s", p->pid, pgid,
			 strerror(errno));
		_exit(1);
	}
}

/* A zombie's end: as it ended the first time, seen by its parent's wait(). */
static _Noreturn void zombie_exit(struct rst_proc *p)
{
	int sig = p->exit_code & 0x7f;
	struct rlimit no_core = { 0, 0 };
	sigset_t set;

	if (!sig)
		_exit((p->exit_code >> 8) & 0xff);
	setrlimit(RLIMIT_CORE, &no_core);
	signal(sig, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	kill(getpid(), sig);
	proc_err(p, EINVAL, "zombie %d: signal %d did not end it", p->pid, sig);
	_exit(1);
}

/* SIGCHLDs queued by the zombies and helpers that just exited are ours, not
 * the task's: its own pending signals come from the images. */
static void drain_sigchld(void)
{
	struct timespec zero = { 0, 0 };
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	while (sigtimedwait(&set, NULL, &zero) == SIGCHLD)
		;
}

/* Our helpers exited (the restore process saw them go): they are ours to
 * reap, as their stand-in never existed in the dumped tree. */
static void reap_helpers(struct rst_tree *tree, int idx)
{
	for (size_t j = idx + 1; j < tree->nr; j++) {
		const struct rst_proc *k = &tree->procs[j];
		int status;

		if (k->parent == idx && k->kind == RST_PROC_HELPER)
			waitpid(k->pid, &status, __WALL);
	}
}

static _Noreturn void proc_restore(struct rst_tree *tree, struct rst_proc *p,
				    struct rst_child *c)
{
	reap_helpers(tree, p - tree->procs);
	drain_sigchld();
	close(p->t.sync_r);
	rst_child_main(c);
}

_Noreturn void rst_proc_main(struct rst_tree *tree, int idx)
{
	struct rst_proc *p = &tree->procs[idx];
	struct rst_child c = {
		.o = tree->o, .ri = &p->ri, .plan = &p->plan, .err_fd = p->t.err_w,
		.pages_fd = p->ri.pi.pages_fd, .tty_fd = -1, .exe_fd = -1,
		.lazy = tree->lazy_sock >= 0, .lazy_features = tree->lazy_features,
		.share = &tree->share, .self = idx, .share_rx = -1, .share_tx = -1,
		.fs_lock = -1, .ev_w = -1,
		.helper_base = p->fdt_base, .helper_end = p->fdt_end,
		.fdt_sharer = p->fdt_owner >= 0,
	};
	char stage;

	for (size_t i = 0; p->kind == RST_PROC_ALIVE && i < tree->nr; i++)
		c.fs_shared |= tree->procs + i != p && tree->procs[i].kind == RST_PROC_ALIVE &&
			       tree->procs[i].ri.ids->fs_id == p->ri.ids->fs_id;

	if (idx)
		send_created(tree, idx);
	wait_stage(p);
	/* the region the plan chose for us, before anything of ours lands there */
	if (idx && p->kind == RST_PROC_ALIVE &&
	    mmap((void *)(uintptr_t)p->plan.premap_start, p->plan.blob_end - p->plan.premap_start,
		 PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) ==
	    MAP_FAILED) {
		proc_err(p, errno, "task %d: cannot reserve its premap region: %s", p->pid,
			 strerror(errno));
		_exit(1);
	}
	/* memory before the children: they inherit it copy-on-write */
	if (p->kind == RST_PROC_ALIVE && child_premap(&c))
		_exit(1);
	if (p->kind == RST_PROC_ALIVE && p->ri.core->tc->has_child_subreaper &&
	    p->ri.core->tc->child_subreaper && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) {
		proc_err(p, errno, "task %d: PR_SET_CHILD_SUBREAPER: %s", p->pid, strerror(errno));
		_exit(1);
	}
	if (p->sid == p->pid && setsid() < 0) {
		proc_err(p, errno, "task %d: setsid: %s", p->pid, strerror(errno));
		_exit(1);
	}
	fork_children(tree, idx);
	close_foreign_pipes(tree, idx);

	if (wait_stage(p) != 'p')
		_exit(1);
	join_group(tree, p);
	rst_tree_event(tree, idx, EV_GROUP, 0);

	stage = wait_stage(p);
	if (stage == 'f') {	/* a sharer: our helpers apart in the table */
		if (child_fdt_apart(&c, &p->t.sync_r))
			_exit(1);
		p->t.err_w = c.err_fd;	/* the old number is the owner's to close */
		rst_tree_event(tree, idx, EV_FDT_APART, 0);
		stage = wait_stage(p);
	}
	if (stage != 'r')
		_exit(1);
	if (p->fdt_owner < 0 && p->fdt_end)
		c.ev_w = tree->ev_w;	/* the owner: EV_FDT_DONE once its fds are in */
	else if (!p->fdt_end)
		close(tree->ev_w);	/* (a sharer's is the owner's to close) */
	if (p->kind == RST_PROC_ZOMBIE)
		zombie_exit(p);
	if (p->kind == RST_PROC_HELPER)
		_exit(0);
	proc_restore(tree, p, &c);
}

/* ------------------------------------------------- in the restore process */

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
void rst_tree_report_errors(struct rst_tree *tree)
{
	for (size_t i = 0; i < tree->nr; i++)
		if (tree->procs[i].t.err_r >= 0 && report_task_error(&tree->procs[i]))
			return;
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

/* The next event from the tasks, watching for their failures meanwhile. */
int rst_tree_next_event(struct rst_tree *tree, struct rst_event *ev, const char *what,
			int timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;

	for (;;) {
		struct pollfd pfd = { .fd = tree->ev_r, .events = POLLIN };
		int ret = poll(&pfd, 1, 50);

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
		if (now_ms() > deadline) {
			pr_err("no %s within %d s", what, timeout_ms / 1000);
			return -ETIMEDOUT;
		}
	}
}

int rst_tree_create(struct rst_tree *tree)
{
	size_t created = 1;
	int ret;

	ret = rst_task_create(tree, &tree->procs[0]);
	while (!ret && created < tree->nr) {
		struct rst_event ev;
		struct rst_proc *p;

		ret = rst_tree_next_event(tree, &ev, "new task", TREE_WAIT_MS);
		if (ret)
			break;
		p = &tree->procs[ev.idx];
		if (ev.kind != EV_CREATED || p->t.pid) {
			pr_err("unexpected event %d about task %d", ev.kind, p->pid);
			return -EIO;
		}
		p->t.pid = ev.pid;
		ret = rst_task_seize(&p->t);
		if (!ret)
			ret = rst_tree_send(tree, p, 'g');
		created++;
	}
	if (!ret)
		pr_info("%zu task(s) created", tree->nr);
	return ret;
}

/* Every task joins its group: group leaders first, then the members. */
int rst_tree_groups(struct rst_tree *tree)
{
	for (int leaders = 1; leaders >= 0; leaders--) {
		size_t sent = 0;

		for (size_t i = 0; i < tree->nr; i++) {
			struct rst_proc *p = &tree->procs[i];

			if ((p->pgid == p->pid) == leaders) {
				int ret = rst_tree_send(tree, p, 'p');

				if (ret)
					return ret;
				sent++;
			}
		}
		while (sent--) {
			struct rst_event ev;
			int ret = rst_tree_next_event(tree, &ev, "process group set",
						      TREE_WAIT_MS);

			if (ret)
				return ret;
			if (ev.kind != EV_GROUP) {
				pr_err("unexpected event %d about task %d", ev.kind,
				       tree->procs[ev.idx].pid);
				return -EIO;
			}
		}
	}
	return 0;
}

static int wait_dead(struct rst_proc *p)
{
	uint64_t deadline = now_ms() + DEAD_WAIT_MS;
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
		if (now_ms() > deadline) {
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
	uint64_t deadline = now_ms() + DEAD_WAIT_MS;
	int status;

	for (size_t i = tree->nr; i-- > 0;)
		rst_task_kill(&tree->procs[i].t);
	for (;;) {
		pid_t r = waitpid(-1, &status, WNOHANG | __WALL);

		if (r < 0 || now_ms() > deadline)
			break;
		if (r == 0)
			usleep(1000);
	}
}
