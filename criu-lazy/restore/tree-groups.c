/*
 * Sessions and process groups, the restore process's side (the task's is
 * tree-task.c: join_group()).
 *
 * A task joins its group as soon as it exists, before it forks its
 * children, wherever the group exists by then: it leads the group
 * (setsid() for a session leader, which leads its group too, else
 * setpgid(0, 0)), or the group's leader is an ancestor, which joined its
 * own before it forked the line down to this task.  A child in its
 * parent's group just keeps what the fork gave it.  So the common trees
 * (groups led from above) need no round trip for their groups at all.
 *
 * Only a task whose group's leader is no ancestor of it (a sibling's
 * group, a cousin's, a descendant's) joins late: once every task has said
 * EV_READY (its leader among them, in its group by then: every leader is
 * early), the restore process sends it 'p' and waits for its EV_GROUP.
 * The wait for every EV_READY also ends the premaps of the whole tree
 * before any zombie exits or any task rebuilds itself (stages 5-6), as
 * the groups' round trip used to.
 *
 * --shell-job: a task of the root's dumped group, which is not restored,
 * stays in ours, which it has only by inheritance.  Where such a task's
 * parent is neither the root nor of that group, an early join of an
 * ancestor would have moved it elsewhere before the fork: then every task
 * of the tree joins late, as all once did (each keeps the group it was
 * forked in until every task exists; leaders first, members after).
 */
#define LOG_PREFIX ""
#include "common/log.h"
#include "restore/restore.h"
#include "restore/tree.h"

#define GROUP_WAIT_MS	10000	/* for one task's EV_GROUP */

/* A task of the root's dumped group that the restore does not make. */
static bool shell_group(const struct rst_tree *tree, const struct rst_proc *p)
{
	const struct rst_proc *root = &tree->procs[0];

	return tree->o->shell_job && root->pgid != root->pid && p->pgid == root->pgid;
}

/* A task of the shell's group forked by a parent that may have left it. */
static bool shell_group_split(const struct rst_tree *tree)
{
	for (size_t i = 1; i < tree->nr; i++) {
		const struct rst_proc *p = &tree->procs[i];

		if (shell_group(tree, p) && p->parent > 0 &&
		    !shell_group(tree, &tree->procs[p->parent]))
			return true;
	}
	return false;
}

/* Is the group there when task @i is forked: its own, or led from above? */
static bool group_early(const struct rst_tree *tree, size_t i)
{
	const struct rst_proc *p = &tree->procs[i];

	if (p->sid == p->pid || shell_group(tree, p))
		return true;
	for (int a = (int)i; a >= 0; a = tree->procs[a].parent)
		if (tree->procs[a].pid == p->pgid)
			return true;
	return false;
}

void rst_tree_groups_plan(struct rst_tree *tree)
{
	bool all_late = shell_group_split(tree);
	size_t late = 0;

	for (size_t i = 0; i < tree->nr; i++) {
		struct rst_proc *p = &tree->procs[i];

		p->group_late = all_late || !group_early(tree, i);
		late += p->group_late;
	}
	if (all_late)
		pr_info("--shell-job: a task of the root's group is forked by one of another "
			"group: every task joins its group once all exist");
	else if (late)
		pr_info("%zu task(s) join a group led by no ancestor, once every task exists",
			late);
}

/* Every task ready, then the late ones join: leaders first, members after. */
int rst_tree_groups(struct rst_tree *tree)
{
	int ret = 0;

	while (!ret && tree->ready < tree->nr)
		ret = rst_tree_creation_event(tree, "task ready");
	for (int leaders = 1; !ret && leaders >= 0; leaders--) {
		size_t sent = 0;

		for (size_t i = 0; !ret && i < tree->nr; i++) {
			struct rst_proc *p = &tree->procs[i];

			if (p->group_late && (p->pgid == p->pid) == leaders) {
				ret = rst_tree_send(tree, p, 'p');
				sent++;
			}
		}
		while (!ret && sent--) {
			struct rst_event ev;

			ret = rst_tree_next_event(tree, &ev, "process group set", GROUP_WAIT_MS);
			if (!ret && ev.kind != EV_GROUP) {
				pr_err("unexpected event %d about task %d", ev.kind,
				       tree->procs[ev.idx].pid);
				ret = -EIO;
			}
		}
	}
	return ret;
}
