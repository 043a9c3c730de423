/*
 * The stages of a restore, in order, in one table: what a reader needs to
 * know about how a tree comes back.  Each stage runs over the whole tree
 * and ends before the next starts, so every task walks the stages in step
 * with the others (tree.c keeps the tasks in step through their pipes).
 * Documentation/restore.md explains each one.
 *
 * A stage returns 0 or a negative errno after logging its one line;
 * rst_stages_undo() then kills every task created so far.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <time.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "attrs/task-attr.h"
#include "common/log.h"
#include "common/mono-time.h"
#include "common/ptrace-inject.h"
#include "net/netns.h"
#include "restore/restore.h"
#include "restore/files.h"
#include "restore/images-prefetch.h"
#include "restore/plan.h"
#include "restore/shmem.h"
#include "restore/threads.h"
#include "restore/tree.h"

struct rst_stage {
	const char *name;
	int (*run)(struct rst_tree *tree);
	bool lazy_only;
};

/* @fn for each live process of the tree, in pstree order: the first error. */
static int each_alive(struct rst_tree *tree, int (*fn)(struct rst_tree *, struct rst_proc *))
{
	for (size_t i = 0; i < tree->nr; i++) {
		struct rst_proc *p = &tree->procs[i];
		int ret;

		if (p->kind != RST_PROC_ALIVE)
			continue;
		ret = fn(tree, p);
		if (ret)
			return ret;
	}
	return 0;
}

/* Without --shell-job the root must have led its session and group. */
static int check_root_session(const struct rst_tree *tree)
{
	const struct rst_proc *root = &tree->procs[0];

	if (tree->o->shell_job)
		return 0;
	if (root->sid != root->pid) {
		pr_err("task %d was in session %d, which is not being restored: restore it with "
		       "--shell-job", root->pid, root->sid);
		return -EOPNOTSUPP;
	}
	if (root->pgid != root->pid) {
		pr_err("task %d was in process group %d, which is not being restored: restore it "
		       "with --shell-job", root->pid, root->pgid);
		return -EOPNOTSUPP;
	}
	return 0;
}

static int stage_load(struct rst_tree *tree)
{
	int ret = rst_tree_load(tree);

	if (!ret)
		ret = check_root_session(tree);
	return ret;
}

static int stage_ghosts(struct rst_tree *tree)
{
	return rst_ghosts_create(tree);
}

static int stage_ghosts_remove(struct rst_tree *tree)
{
	rst_ghosts_remove(tree, true);
	return 0;
}

static int stage_ipc_ns(struct rst_tree *tree)
{
	int ret;

	/* stage 2's image worker ends first: the unshare() and the forks to
	 * come want this process alone (images-prefetch.c) */
	rst_prefetch_stop();
	ret = rst_ipc_ns_load(tree);
	return ret ? ret : rst_ipc_ns_create(tree);
}

static int stage_ipc_leave(struct rst_tree *tree)
{
	return rst_ipc_ns_leave(tree);
}

static int stage_ipc_removed(struct rst_tree *tree)
{
	return rst_ipc_ns_removed(tree);
}

static int stage_shmem(struct rst_tree *tree)
{
	return rst_shmem_create(tree);
}

static int plan_count(struct rst_tree *tree, struct rst_proc *p)
{
	size_t inherited = 0, in_place = 0;

	for (size_t i = 0; i < p->plan.nr_vmas; i++) {
		inherited += p->plan.vmas[i].inherit != 0;
		in_place += p->plan.vmas[i].in_place;
	}
	pr_info("task %d: %zu VMAs (%zu inherited, %zu in place), %llu pages to read, %zu fds",
		p->pid, p->plan.nr_vmas, inherited, in_place,
		(unsigned long long)p->plan.pages_to_fill, p->ri.nr_fds);
	tree->pages_filled += p->plan.pages_to_fill;
	return 0;
}

static int stage_plan(struct rst_tree *tree)
{
	int ret = rst_tree_plan(tree);

	return ret ? ret : each_alive(tree, plan_count);
}

/* Who creates each file held by more than one process (fd-share.c). */
static int stage_share(struct rst_tree *tree)
{
	return rst_share_plan(tree);
}

static int stage_lazy_connect(struct rst_tree *tree)
{
	return rst_lazy_connect(tree);
}

/*
 * A subreaper while the tree is built: a task whose parent dies on a
 * failure comes to us, to be reaped (rst_tree_kill()), not to init.
 */
static int stage_create(struct rst_tree *tree)
{
	int ret;

	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) {
		pr_perror("PR_SET_CHILD_SUBREAPER");
		return -errno;
	}
	/* what every task inherits from us (they are all forks of us, and no
	 * task sets its own before the last fork: 'r' comes after them all) */
	tree->sa_known = !attr_sigactions_ours(tree->sa_inherited);
	attr_proc_knobs_ours(&tree->knobs);
	rst_pin_plan(tree);
	ret = rst_tree_pipes(tree);
	if (!ret)	/* after the pipes: the windows go above what the tasks inherit */
		ret = rst_fdt_plan(tree);
	if (!ret)
		ret = rst_tree_create(tree);
	for (size_t i = 0; i < tree->nr; i++)
		tree->fork_us += tree->procs[i].t.fork_us;
	return ret;
}

static int stage_groups(struct rst_tree *tree)
{
	return rst_tree_groups(tree);
}

static int stage_dead(struct rst_tree *tree)
{
	return rst_tree_reap_dead(tree);
}

/* Sharers of another's descriptor table copy their helpers apart in it. */
static int stage_fdt_apart(struct rst_tree *tree)
{
	return rst_fdt_apart(tree);
}

/* (those sharing another's descriptor table wait: stage_fdt_sharers()) */
static int rebuild_go(struct rst_tree *tree, struct rst_proc *p)
{
	return p->fdt_owner >= 0 ? 0 : rst_tree_go(tree, p);
}

/* Every live task not told already (tree.c, early go) rebuilds itself at
 * once (child.c, then its blob), but for those sharing another's
 * descriptor table. */
static int stage_rebuild(struct rst_tree *tree)
{
	size_t to_go = 0;
	struct rst_burst b;
	int ret;

	for (size_t i = 0; i < tree->nr; i++)
		to_go += tree->procs[i].kind == RST_PROC_ALIVE && !tree->procs[i].go_sent;
	rst_burst_begin(&b, to_go);
	ret = each_alive(tree, rebuild_go);
	rst_burst_end(&b);
	return ret;
}

/* ... who do once the owner of their table has restored it (fdt.c). */
static int stage_fdt_sharers(struct rst_tree *tree)
{
	return rst_fdt_rebuild_sharers(tree);
}

static int wait_blob(struct rst_tree *tree, struct rst_proc *p)
{
	int ret = rst_task_wait_blob(&p->t, &p->plan);

	if (ret == -ECHILD)
		p->t.seized = false;	/* reaped by the wait */
	if (ret == -ETIMEDOUT)
		rst_tree_report_errors(tree);	/* why it may never stop */
	return ret;
}

static int stage_lazy_zombies(struct rst_tree *tree)
{
	return rst_lazy_send_zombies(tree);
}

/* The last steps of one process, as soon as its blob has ended: we and its
 * threads on one CPU for them (cpu-pin.c). */
static int finalize_one(struct rst_tree *tree, struct rst_proc *p)
{
	int ret = wait_blob(tree, p);

	if (ret)
		return ret;
	rst_pin_last_steps(tree, p);
	rst_pin_proc(tree, p);
	ret = rst_finalize(tree->o, &p->ri, &p->plan, &p->t) ?: rst_pin_release(tree, p);
	p->finalized = !ret;
	/* test only: a task let go before every other one is complete, even
	 * during this one's steps or as they failed, runs this long before we
	 * go on (test_tree.py) */
	if (tree->test_delay_finalize_ms)
		mono_sleep_ms(tree->test_delay_finalize_ms);
	return ret;
}

/*
 * May @p's last steps come before every uffd is with the daemon?  They
 * touch nothing of the task's own memory, but for a thread whose syscall
 * is set up again (syscall-restart.c): a read there may fault on a lazy
 * page, which the daemon serves only once it has every record, and the
 * records still to come wait for us.
 */
static bool finalize_early_ok(const struct rst_proc *p)
{
	for (size_t i = 0; i < p->ri.nr_threads; i++)
		if (rst_syscall_restart_touches(p->ri.cores[i]))
			return false;
	return true;
}

/* each_blob()'s @one: watch this process again */
#define WATCH_AGAIN	1

/*
 * Each blob sends its uffd once it is registered and goes on without
 * waiting (pie/uffd.c); we hand each to the daemon as it comes
 * (blob-next.c), not in the tree's order.  The daemon serves no fault
 * before it has every process's record: a blob that faults meanwhile
 * waits for the others' uffds, not for us.  A blob that stopped, exited or
 * wrote an error line with no uffd sent has failed: its stop says why.
 *
 * A process whose uffd is handed over is watched on until its blob ends,
 * and finalized then (finalize_early_ok()), while the others' blobs still
 * run: the bench tree's first blobs ended 0.5 ms before its last, and its
 * four finalizations, one after the other, then took 0.4 - 0.6 ms of one
 * CPU with the other idle.
 */
static int lazy_handover_one(struct rst_tree *tree, struct rst_proc *p)
{
	int ret;

	if (p->t.uffd_rx < 0)		/* handed over: its blob has ended */
		return finalize_one(tree, p);
	ret = rst_lazy_handover(tree, p);
	if (!ret)
		return finalize_early_ok(p) ? WATCH_AGAIN : 0;
	if (ret != -EAGAIN)
		return ret;
	ret = wait_blob(tree, p);
	if (ret == 0) {
		pr_err("task %d: the restorer ended without sending its userfaultfd", p->pid);
		return -EIO;
	}
	return ret;
}

/* @one for every live process not finalized yet, in the order their blobs
 * report (@uffd: a uffd sent is news too). */
static int each_blob(struct rst_tree *tree, int (*one)(struct rst_tree *, struct rst_proc *),
		     bool uffd)
{
	struct rst_blob_wait w;
	int ret = rst_blob_wait_init(tree, &w), idx;

	w.uffd = uffd;
	while (!ret && (idx = rst_blob_next(tree, &w)) != -ENOENT) {
		ret = idx < 0 ? idx : one(tree, &tree->procs[idx]);
		if (ret == WATCH_AGAIN) {
			rst_blob_watch_again(&w, idx);
			ret = 0;
		}
	}
	rst_blob_wait_free(&w);
	return ret;
}

/* One SIGCHLD signalfd for the stage, as for stage_finalize(): a blob
 * that fails before it sends its uffd stops (nothing forks meanwhile). */
static int stage_lazy_handover(struct rst_tree *tree)
{
	int ret;

	sigchld_fd_hold();
	ret = each_blob(tree, lazy_handover_one, true);
	sigchld_fd_release();
	return ret;
}

/* One SIGCHLD signalfd for the whole stage: it takes some twenty ptrace
 * stops per process of the bench tree (nothing forks meanwhile).  Those
 * finalized at their handover are done already. */
static int stage_finalize(struct rst_tree *tree)
{
	int ret;

	sigchld_fd_hold();
	ret = each_blob(tree, finalize_one, false);
	sigchld_fd_release();
	return ret;
}

static int stage_lazy_finished(struct rst_tree *tree)
{
	return rst_lazy_finished(tree);
}

/* As criu: a relative pidfile is relative to the work directory. */
static int stage_pidfile(struct rst_tree *tree)
{
	const struct opts *o = tree->o;
	char path[PATH_MAX], buf[16];
	int fd, len;

	/* test only: a task let go after every process's last steps, before
	 * the resume, runs this long before a pidfile we cannot write fails
	 * the restore (test_tree.py) */
	if (tree->test_delay_finalize_ms)
		mono_sleep_ms(tree->test_delay_finalize_ms);
	if (!o->pidfile)
		return 0;
	if (o->pidfile[0] != '/' && o->work_dir)
		snprintf(path, sizeof(path), "%s/%s", o->work_dir, o->pidfile);
	else
		snprintf(path, sizeof(path), "%s", o->pidfile);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		pr_perror("cannot create the pidfile %s", path);
		return -errno;
	}
	len = snprintf(buf, sizeof(buf), "%d", tree->procs[0].t.pid);
	if (write(fd, buf, len) != len) {
		pr_perror("cannot write the pidfile %s", path);
		close(fd);
		return -EIO;
	}
	close(fd);
	return 0;
}

/* The live threads of the tree, each a wakeup at the resume. */
static size_t tree_threads(const struct rst_tree *tree)
{
	size_t n = 0;

	for (size_t i = 0; i < tree->nr; i++)
		if (tree->procs[i].kind == RST_PROC_ALIVE)
			n += 1 + tree->procs[i].t.nr_thread_pids;
	return n;
}

/*
 * All together, now that every task is complete.  A task dumped in a
 * group-stop gets a SIGSTOP first (from an interrupt stop, DETACH's signal
 * argument is ignored): it stops as soon as it runs, untraced.
 */
static int stage_resume(struct rst_tree *tree)
{
	int ret = rst_pin_end(tree);
	struct rst_burst b;

	if (ret)
		return ret;
	for (size_t i = 0; i < tree->nr; i++) {
		struct rst_proc *p = &tree->procs[i];

		if (p->kind != RST_PROC_ALIVE || !p->stopped)
			continue;
		if (kill(p->t.pid, SIGSTOP)) {
			pr_perror("cannot stop task %d again", p->pid);
			return -errno;
		}
	}
	rst_burst_begin(&b, tree_threads(tree));
	for (size_t i = 0; i < tree->nr; i++) {
		struct rst_proc *p = &tree->procs[i];

		if (p->kind != RST_PROC_ALIVE)
			continue;
		/* its threads too: a thread left traced would stop at its next
		 * signal, waiting for a tracer that never looks */
		if (rst_detach(&p->t) && !ret)
			ret = -EIO;
		p->t.seized = false;
		close(p->t.sync_w);
		close(p->t.err_r);
		p->t.sync_w = p->t.err_r = -1;
	}
	/* detached, we keep it until our exit: the threads just woken took
	 * the CPU from what is left of us (the statistics, the exit), which
	 * the caller waits for (bench tree: its restore 0.06 ms shorter) */
	if (!tree->o->restore_detached)
		rst_burst_end(&b);
	close(tree->ev_r);
	tree->ev_r = -1;
	prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
	return ret;
}

/* Each fd kind's last step, the tasks complete and stopped: TCP
 * connections leave repair mode and their network lock goes. */
static int stage_files_finish(struct rst_tree *tree)
{
	for (unsigned int k = 0; k < fd_kinds_nr; k++) {
		int ret = fd_kinds[k]->rst_finish ? fd_kinds[k]->rst_finish(tree) : 0;

		if (ret)
			return ret;
	}
	return 0;
}

static const struct rst_stage stages[] = {
	{ "make the deleted files the tree held again (ghost files, links)", stage_ghosts, false },
	{ "read and check the images", stage_load, false },
	/* before the objects: which daemon it is decides whether they are lazy */
	{ "connect to the lazy-pages daemon", stage_lazy_connect, true },
	/* the restore process enters it, so the tasks it forks are born there;
	 * stage 2's image worker is joined first (images-prefetch.c) */
	{ "make the tree's IPC namespace and its SysV objects", stage_ipc_ns, false },
	{ "create the shared memory objects of the tree", stage_shmem, false },
	{ "plan each process's memory", stage_plan, false },
	{ "find the files processes share, and who creates each", stage_share, false },
	/* the restore stays in it: the tasks are made inside */
	{ "make the tree's own network namespace again", rst_netns_create, false },
	{ "create the tasks with their pids", stage_create, false },
	{ "the restore process goes back to its own IPC namespace", stage_ipc_leave, false },
	{ "sessions and process groups", stage_groups, false },
	{ "zombies and helpers exit", stage_dead, false },
	{ "tasks sharing another's descriptor table keep their helper fds apart in it",
	  stage_fdt_apart, false },
	{ "each task rebuilds itself: memory, files, then its restorer", stage_rebuild, false },
	{ "a task sharing another's descriptor table rebuilds itself once its owner has "
	  "restored it", stage_fdt_sharers, false },
	{ "SysV segments removed while attached are removed again", stage_ipc_removed, false },
	{ "tell the daemon about the zombies", stage_lazy_zombies, true },
	{ "hand each process's userfaultfd to the daemon as its blob sends it, "
	  "and its last steps as its blob ends", stage_lazy_handover, true },
	{ "as each restorer ends: registers, last syscalls", stage_finalize, false },
	{ "delete the ghost files and links again: every task holds its own", stage_ghosts_remove, false },
	{ "TCP connections leave repair mode, their lock goes", stage_files_finish, false },
	{ "tell the daemon the restore is finished", stage_lazy_finished, true },
	{ "write the pidfile", stage_pidfile, false },
	{ "resume every task", stage_resume, false },
};

/* Each stage's time goes to the debug log: where a restore's time goes. */
int rst_stages_run(struct rst_tree *tree)
{
	for (size_t i = 0; i < sizeof(stages) / sizeof(stages[0]); i++) {
		const struct rst_stage *s = &stages[i];
		uint64_t t0;
		int ret;

		if (s->lazy_only && !tree->o->lazy_pages)
			continue;
		pr_debug("stage %zu: %s", i + 1, s->name);
		t0 = mono_us();
		ret = s->run(tree);
		pr_debug("stage %zu: %llu us", i + 1, (unsigned long long)(mono_us() - t0));
		if (ret)
			return ret;
	}
	return 0;
}

void rst_stages_undo(struct rst_tree *tree)
{
	rst_lazy_close(tree);
	rst_tree_kill(tree);
	rst_ghosts_remove(tree, false);
	if (tree->ev_r >= 0)
		close(tree->ev_r);
	if (tree->ev_w >= 0)
		close(tree->ev_w);
	tree->ev_r = tree->ev_w = -1;
}
