/*
 * Freezing the whole tree under -t PID, and letting all of it go.
 *
 * The root is seized first; then, breadth first, every child of a frozen
 * task (/proc/PID/task/TID/children of each of its threads).  A frozen task
 * can neither fork nor reap, so once it is frozen its list of children only
 * changes by a child exiting into a zombie; a child that was still running
 * when we read the list may have forked meanwhile, and we read its own list
 * only after it is frozen.  Still, as CRIU does, we read every list once
 * more when the walk is done and walk again until a pass finds nothing new:
 * the set is then stable.
 *
 * A zombie child is not seized (it can't be): zombie.c records what it
 * left.  A child that exits between the list and the seize is a zombie by
 * then too, or gone (its parent is frozen, so nobody reaps it... unless it
 * auto-reaps, SIGCHLD ignored: then it is simply not part of the tree).
 *
 * Release walks the tree backwards (children first), so with -s/-R no task
 * runs while a descendant is still held.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/array.h"
#include "common/log.h"
#include "common/proc-task.h"
#include "dump/dump.h"

#define TREE_MAX_PASSES 16

static struct dump_task *tree_find(struct dump_ctx *ctx, pid_t pid)
{
	for (size_t i = 0; i < ctx->nr_tasks; i++)
		if (ctx->tasks[i]->pid == pid)
			return ctx->tasks[i];
	return NULL;
}

static struct dump_task *tree_add(struct dump_ctx *ctx, pid_t pid, struct dump_task *parent)
{
	struct dump_task *t;

	if (ARRAY_GROW(ctx->tasks, ctx->cap_tasks, ctx->nr_tasks + 1, 8))
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->pid = pid;
	t->parent = parent;
	ctx->tasks[ctx->nr_tasks++] = t;
	return t;
}

/* Children of every thread of @t, into @out (malloc'ed); -ESRCH if gone. */
static int read_children(struct dump_task *t, pid_t **out, size_t *nr)
{
	int ret = proc_children(t->pid, out, nr);

	if (ret && ret != -ENOMEM)
		return dump_task_error(t, ret, "can't list /proc/%d/task: %m", t->pid);
	return ret;
}

/*
 * A child found in @parent's list: seized, recorded as a zombie, or, when
 * it vanished altogether (auto-reaped), left out.  A child that exits while
 * we seize it is not an error: it is a zombie now, and dumped as one.
 */
static int tree_take_child(struct dump_ctx *ctx, struct dump_task *parent, pid_t pid, bool *added)
{
	struct dump_task *t = tree_add(ctx, pid, parent);
	int ret;

	if (!t)
		return -ENOMEM;
	*added = true;
	if (!dump_task_is_zombie(pid)) {
		t->may_vanish = true;
		ret = dump_seize(t);
		t->may_vanish = false;
		if (ret != -ESRCH && !(ret && dump_task_is_zombie(pid)))
			return ret;
		dump_release(t, RELEASE_RUN);
		t->seized = false;
		t->exited = false;
		pr_info("task %d exited while the tree was being frozen", pid);
	}
	if (dump_task_is_zombie(pid))
		return dump_zombie(ctx, t);
	/* reaped already: not part of the tree */
	free(t);
	ctx->nr_tasks--;
	return 0;
}

/* One pass over every frozen task's children; *added when any was new. */
static int tree_pass(struct dump_ctx *ctx, bool *added)
{
	*added = false;
	/* tasks appended during the pass are walked in the same pass */
	for (size_t i = 0; i < ctx->nr_tasks; i++) {
		struct dump_task *t = ctx->tasks[i];
		pid_t *kids;
		size_t nr;
		int ret;

		if (t->zombie)
			continue;
		ret = read_children(t, &kids, &nr);
		if (ret)
			return ret;
		for (size_t k = 0, waited = 0; k < nr && !ret; k++) {
			if (tree_find(ctx, kids[k]))
				continue;
			if (!waited++)	/* test only: before the first new one's seize */
				dump_test_delay(DUMP_DELAY_SEIZE);
			ret = tree_take_child(ctx, t, kids[k], added);
		}
		free(kids);
		if (ret)
			return ret;
	}
	return 0;
}

int dump_seize_tree(struct dump_ctx *ctx)
{
	struct dump_task *root = tree_add(ctx, ctx->o->pid, NULL);
	bool added = true;
	int ret, pass;

	if (!root)
		return -ENOMEM;
	ctx->root = root;
	ret = dump_seize(root);
	for (pass = 0; !ret && added && pass < TREE_MAX_PASSES; pass++)
		ret = tree_pass(ctx, &added);
	if (!ret && added) {
		pr_err("the tree of task %d kept changing over %d passes: it can't be frozen",
		       root->pid, TREE_MAX_PASSES);
		return -EBUSY;
	}
	if (!ret)
		pr_info("tree of task %d frozen: %zu task(s) in %d pass(es)", root->pid,
			ctx->nr_tasks, pass);
	return ret;
}

void dump_release_tree(struct dump_ctx *ctx, enum task_release_mode mode)
{
	/*
	 * Kill: the root first would reparent the others before they die;
	 * any order ends the same.  Run/stop: leaves first, so nothing runs
	 * while a task below it is still held.
	 */
	for (size_t i = ctx->nr_tasks; i-- > 0;)
		dump_release(ctx->tasks[i], mode);
}

void dump_tree_free(struct dump_ctx *ctx)
{
	for (size_t i = 0; i < ctx->nr_tasks; i++)
		free(ctx->tasks[i]);
	free(ctx->tasks);
	ctx->tasks = NULL;
	ctx->nr_tasks = 0;
}
