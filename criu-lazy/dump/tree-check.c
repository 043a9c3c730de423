/*
 * What the restore can rebuild of a tree's sessions and process groups,
 * checked once the whole tree is frozen, before anything is collected.
 *
 * A task's session and group are fine when their leader is a task of the
 * tree (alive or a zombie), or, with --shell-job, when they are the root's
 * (the restore puts those tasks in its own session and group).  A session
 * whose leader is gone is rebuilt as CRIU does, by a helper task with the
 * leader's pid that calls setsid(), forks the members and exits: they are
 * then reparented to the root, so this works for the root's own children
 * only (and only those can be there: they were reparented to the root,
 * which is a subreaper or a namespace init).  A group whose dead leader is
 * that session's leader comes with it; any other dead group is refused.
 */
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "dump/dump.h"

static bool in_tree(const struct dump_ctx *ctx, pid_t vpid)
{
	for (size_t i = 0; i < ctx->nr_tasks; i++)
		if (ctx->tasks[i]->vpid == vpid)
			return true;
	return false;
}

/*
 * The whole tree in one pid namespace: ours, or the one its root is the
 * init of (pidns.c).  A task below ours while the root is in ours is the
 * init of a namespace inside the tree, which is not restored.
 */
static int check_pid_ns(const struct dump_ctx *ctx, const struct dump_task *t)
{
	if (t->in_pidns == ctx->root->in_pidns)
		return 0;
	pr_err("task %d is in a pid namespace of its own (pid %d there) below the root task "
	       "%d: pid namespaces inside the tree are not supported", t->pid, t->vpid,
	       ctx->root->pid);
	return -EOPNOTSUPP;
}

static int check_one(const struct dump_ctx *ctx, const struct dump_task *t)
{
	const struct dump_task *root = ctx->root;
	bool sid_ok = in_tree(ctx, t->sid) || (ctx->o->shell_job && t->sid == root->sid);
	bool pgid_ok = in_tree(ctx, t->pgid) || (ctx->o->shell_job && t->pgid == root->pgid);

	if (!sid_ok && t->sid == root->sid) {
		pr_err("task %d is in the session %d of the root task, which is not in the dumped "
		       "tree; use --shell-job", t->pid, t->sid);
		return -EOPNOTSUPP;
	}
	if (!sid_ok && t->parent != root) {
		pr_err("task %d is in session %d, whose leader is gone, and is not a child of the "
		       "root task %d: not supported", t->pid, t->sid, root->pid);
		return -EOPNOTSUPP;
	}
	if (!pgid_ok && t->pgid != t->sid) {
		pr_err("task %d is in process group %d, whose leader is gone (session %d): only "
		       "a group led by its session's dead leader can be restored", t->pid, t->pgid,
		       t->sid);
		return -EOPNOTSUPP;
	}
	if (!pgid_ok && sid_ok) {
		pr_err("task %d is in process group %d, whose leader is gone, in session %d: "
		       "not supported", t->pid, t->pgid, t->sid);
		return -EOPNOTSUPP;
	}
	return 0;
}

/*
 * Processes made with clone(CLONE_VM / CLONE_SIGHAND) share that object:
 * the restore would give each its own, and they would silently stop
 * sharing it.  kcmp() tells.  CRIU refuses them too (a vm_id or
 * sighand_id must be new for every process).  CLONE_FS and CLONE_FILES
 * are restored (the child is cloned with them again) where a process
 * shares them with its parent: check_shared_with_parent().
 */
static int dump_check_tree_sharing(struct dump_ctx *ctx)
{
	static const struct { int type; const char *what; } kinds[] = {
		{ KCMP_VM, "memory (CLONE_VM)" },
		{ KCMP_SIGHAND, "signal handlers (CLONE_SIGHAND)" },
	};

	for (size_t i = 1; i < ctx->nr_tasks; i++) {
		const struct dump_task *t = ctx->tasks[i];

		if (t->zombie)
			continue;
		for (size_t j = 0; j < i; j++) {
			const struct dump_task *u = ctx->tasks[j];

			if (u->zombie)
				continue;
			for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
				long r = syscall(SYS_kcmp, t->pid, u->pid, kinds[k].type, 0, 0);

				if (r < 0) {
					pr_perror("kcmp of tasks %d and %d", t->pid, u->pid);
					return -errno;
				}
				if (r == 0) {
					pr_err("tasks %d and %d share their %s: processes sharing it "
					       "are not supported (nor by CRIU)", u->pid, t->pid,
					       kinds[k].what);
					return -EOPNOTSUPP;
				}
			}
		}
	}
	return 0;
}

/*
 * An fs_struct (cwd, root, umask) or a descriptor table shared between
 * processes comes back by cloning each sharer with CLONE_FS / CLONE_FILES
 * from its parent: so each must share it with its parent (then all
 * sharers hang together through their parents), as CRIU also demands of
 * a descriptor table.  A task that shares its parent's descriptor table
 * is marked (shares_files): its descriptors are its parent's, dumped once.
 */
static int check_shared_with_parent(struct dump_ctx *ctx, int type, const char *what,
				    const char *them)
{
	for (size_t i = 1; i < ctx->nr_tasks; i++) {
		struct dump_task *t = ctx->tasks[i];

		if (t->zombie)
			continue;
		for (size_t j = 0; j < ctx->nr_tasks; j++) {
			const struct dump_task *u = ctx->tasks[j];
			long r;

			if (u == t || u->zombie)
				continue;
			r = syscall(SYS_kcmp, t->pid, u->pid, type, 0, 0);
			if (r < 0) {
				pr_perror("kcmp of tasks %d and %d", t->pid, u->pid);
				return -errno;
			}
			if (r)
				continue;
			if (t->parent && !t->parent->zombie &&
			    !syscall(SYS_kcmp, t->pid, t->parent->pid, type, 0, 0)) {
				if (type == KCMP_FILES)
					t->shares_files = true;
				break;
			}
			pr_err("tasks %d and %d share their %s, but %d does not share %s with its "
			       "parent: not supported yet", u->pid, t->pid, what, t->pid, them);
			return -EOPNOTSUPP;
		}
	}
	return 0;
}

int dump_check_tree(struct dump_ctx *ctx)
{
	int ret;

	if (ctx->nr_tasks < 2)
		return 0;
	for (size_t i = 1; i < ctx->nr_tasks; i++) {
		ret = check_pid_ns(ctx, ctx->tasks[i]);
		if (!ret)
			ret = check_one(ctx, ctx->tasks[i]);

		if (ret)
			return ret;
	}
	ret = dump_check_tree_sharing(ctx);
	if (!ret)
		ret = check_shared_with_parent(ctx, KCMP_FS, "cwd, root and umask (CLONE_FS)",
					       "them");
	if (!ret)
		ret = check_shared_with_parent(ctx, KCMP_FILES, "descriptor table (CLONE_FILES)",
					       "it");
	return ret;
}
