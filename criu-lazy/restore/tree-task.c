/*
 * Building the process tree, in each new task (the restore process's side
 * and the stages, byte by byte, are in tree.c): report its pid, join its
 * process group (at once where it exists, else when told: tree-groups.c),
 * fork its children with their dumped pids (those that inherit its memory
 * once it is premapped, or filled), then end as a zombie or a helper or
 * go on to rebuild itself (child.c).  Errors go to the restore process
 * as one line on the task's error pipe (proc_err); the task then exits.
 */
#include <errno.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/mono-time.h"
#include "restore/restore.h"
#include "restore/child.h"
#include "restore/tree.h"

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

/* When a child is forked: what it needs of ours before. */
enum fork_when {
	FORK_AT_START,		/* nothing of our memory */
	FORK_AFTER_PREMAP,	/* VMAs it inherits (premap-cow.c) */
	FORK_AFTER_FILL,	/* their contents too */
};

/*
 * A child that compares pages with our pages file counts on finding them in
 * its inherited VMAs (premap-cow.c); one that fills all its own drops what
 * it inherited anyway, so it is forked before our fill, which then runs
 * beside its premap; one that inherits nothing (a zombie, a lazy restore's
 * process: premap-plan.c) at our start, beside our premap.  A helper is
 * forked after our fill: its children take our memory.
 */
static enum fork_when fork_when(const struct rst_proc *k)
{
	if (k->kind == RST_PROC_HELPER || (k->kind == RST_PROC_ALIVE && k->plan.compares))
		return FORK_AFTER_FILL;
	if (k->kind == RST_PROC_ALIVE && k->plan.inherits)
		return FORK_AFTER_PREMAP;
	return FORK_AT_START;
}

/*
 * Test only (tree.c): the child's EV_READY before its EV_CREATED, an order
 * the scheduler allows (the child may run first).  Not in the root: the
 * children it passes files to (fd-share.c) wait for its rebuild, which
 * comes after its last EV_CREATED; so the root goes while a grandchild's
 * parent still waits, and the grandchild, its files in, could run on.
 */
static void delay_created(const struct rst_tree *tree)
{
	mono_sleep_ms(tree->test_delay_created_ms);
}

/* Our children to fork at this point (@when). */
static void fork_children(struct rst_tree *tree, int idx, enum fork_when when)
{
	struct rst_proc *p = &tree->procs[idx];

	for (size_t j = idx + 1; j < tree->nr; j++) {
		struct rst_proc *k = &tree->procs[j];
		pid_t pid;

		if (k->parent != idx || fork_when(k) != when)
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
		/* its pid is ours to tell, before it even runs (send_created()) */
		if (!tree->procs[0].ri.new_pid_ns) {
			if (tree->test_delay_created_ms && idx)
				delay_created(tree);
			rst_tree_event(tree, j, EV_CREATED, pid);
		}
	}
}

/*
 * The pid of a new task in the restore process's pid namespace
 * (EV_CREATED): its parent's clone3() returned it, where the tree lives
 * in ours.  In a new pid namespace its parent knows only the pid inside:
 * the task reads its own, as /proc/self resolves it in the namespace /proc
 * was mounted for, the restore's.
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

/* The restore process's ends of the pipes, which the root got with the clone:
 * gone before any child is forked, else a child the restore never heard of
 * (its parent failed first) held its own sync pipe open and waited for ever. */
static void close_restore_ends(struct rst_tree *tree)
{
	for (size_t i = 0; i < tree->nr; i++) {
		close(tree->procs[i].t.sync_w);
		close(tree->procs[i].t.err_r);
		if (tree->procs[i].t.uffd_rx >= 0)
			close(tree->procs[i].t.uffd_rx);
	}
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
		if (t->uffd_tx >= 0)
			close(t->uffd_tx);
	}
	close(tree->ev_r);
}

/*
 * The process group: before the task forks its children where the group
 * exists by then, else once every task exists (tree-groups.c).  With
 * --shell-job a task of the root's dumped group or session, which are not
 * restored, stays in ours (it inherited it).
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
		.fs_lock = -1, .ev_w = -1, .uffd_tx = p->t.uffd_tx,
		.helper_base = p->fdt_base, .helper_end = p->fdt_end,
		.fdt_sharer = p->fdt_owner >= 0,
		.sa_inherited = tree->sa_known ? tree->sa_inherited : NULL,
		.knobs = &tree->knobs,
	};
	char stage;

	for (size_t i = 0; p->kind == RST_PROC_ALIVE && i < tree->nr; i++)
		c.fs_shared |= tree->procs + i != p && tree->procs[i].kind == RST_PROC_ALIVE &&
			       tree->procs[i].ri.ids->fs_id == p->ri.ids->fs_id;

	/* no wait for the seize: it does not stop us, and the restore
	 * process has done it before any task goes past its EV_READY */
	if (idx && tree->procs[0].ri.new_pid_ns)
		send_created(tree, idx);
	else if (!idx)
		close_restore_ends(tree);
	/* the region the plan chose for us, before anything of ours lands there */
	if (idx && p->kind == RST_PROC_ALIVE &&
	    mmap((void *)(uintptr_t)p->plan.premap_start, p->plan.blob_end - p->plan.premap_start,
		 PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) ==
	    MAP_FAILED) {
		proc_err(p, errno, "task %d: cannot reserve its premap region: %s", p->pid,
			 strerror(errno));
		_exit(1);
	}
	if (p->kind == RST_PROC_ALIVE && p->ri.core->tc->has_child_subreaper &&
	    p->ri.core->tc->child_subreaper && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) {
		proc_err(p, errno, "task %d: PR_SET_CHILD_SUBREAPER: %s", p->pid, strerror(errno));
		_exit(1);
	}
	if (p->sid == p->pid && setsid() < 0) {
		proc_err(p, errno, "task %d: setsid: %s", p->pid, strerror(errno));
		_exit(1);
	}
	if (!p->group_late)	/* before any fork: the children inherit it */
		join_group(tree, p);
	/* the files those below us take by fork (fd-share.c) */
	if (p->kind == RST_PROC_ALIVE && child_share_open_early(&c))
		_exit(1);
	fork_children(tree, idx, FORK_AT_START);
	/* memory before the other children: they inherit it copy-on-write
	 * (its fill before those that compare with it) */
	if (p->kind == RST_PROC_ALIVE && child_premap(&c))
		_exit(1);
	fork_children(tree, idx, FORK_AFTER_PREMAP);
	if (p->kind == RST_PROC_ALIVE && child_premap_fill(&c))
		_exit(1);
	fork_children(tree, idx, FORK_AFTER_FILL);
	close_foreign_pipes(tree, idx);
	rst_tree_event(tree, idx, EV_READY, 0);

	if (p->group_late) {
		if (wait_stage(p) != 'p')
			_exit(1);
		join_group(tree, p);
		rst_tree_event(tree, idx, EV_GROUP, 0);
	}

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
