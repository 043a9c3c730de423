/*
 * The tree's images: inventory.img, pstree.img, and through
 * images-load.c every live process's own; what each process is at restore
 * time (alive, stopped, zombie) and the helpers it needs.
 *
 * pstree.img lists parents before children (CRIU writes it depth first).
 * A process whose session leader is gone was reparented to the root (a
 * subreaper or a namespace init; the dump checks it): as CRIU does, a
 * helper task takes the dead leader's pid, calls setsid() and forks those
 * members, then exits so that they are the root's children again.  The
 * helper comes right before its first member, as a child of the root.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "images/image.h"
#include "restore/restore.h"
#include "restore/files.h"
#include "restore/images.h"
#include "restore/images-prefetch.h"
#include "restore/plan.h"
#include "restore/shmem.h"
#include "restore/tree.h"

#define TASK_ALIVE	1
#define TASK_DEAD	2
#define TASK_STOPPED	3

static int check_inventory(const InventoryEntry *inv)
{
	if (inv->img_version != 1 && inv->img_version != 2) {
		pr_err("inventory.img: image version %u is not supported (1 or 2)",
		       inv->img_version);
		return -EINVAL;
	}
	if (!inv->has_fdinfo_per_id || !inv->fdinfo_per_id) {
		pr_err("inventory.img: fdinfo images not per files id: too old, not supported");
		return -EINVAL;
	}
	return 0;
}

static int check_entry(const struct rst_tree *tree, size_t i)
{
	const PstreeEntry *e = tree->entries[i];

	if ((pid_t)e->pid <= 0) {
		pr_err("pstree.img: entry %zu has bad pid %d", i, (int)e->pid);
		return -EINVAL;
	}
	if (e->n_threads >= 1 && e->threads[0] != e->pid) {
		pr_err("pstree.img: the first thread of task %u is %u", e->pid, e->threads[0]);
		return -EINVAL;
	}
	for (size_t k = 0; k < i; k++) {
		if (tree->entries[k]->pid == e->pid) {
			pr_err("pstree.img: task %u is listed twice", e->pid);
			return -EINVAL;
		}
	}
	if (i == 0)
		return 0;
	for (size_t k = 0; k < i; k++)
		if (tree->entries[k]->pid == e->ppid)
			return 0;
	pr_err("pstree.img: the parent %u of task %u is not listed before it", e->ppid, e->pid);
	return -EINVAL;
}

static int load_pstree(struct rst_tree *tree)
{
	ProtobufCMessage *msg;
	struct cr_img *img;
	int ret;

	ret = img_open(tree->dirfd, IMG_PSTREE, 0, O_RDONLY, &img);
	if (ret == -ENOENT)
		pr_err("pstree.img: missing");
	if (ret)
		return ret;
	while ((ret = img_read_entry(img, &pstree_entry__descriptor, &msg)) > 0) {
		PstreeEntry **grown = realloc(tree->entries,
					      (tree->nr_entries + 1) * sizeof(*grown));

		if (!grown) {
			protobuf_c_message_free_unpacked(msg, NULL);
			ret = -ENOMEM;
			break;
		}
		tree->entries = grown;
		tree->entries[tree->nr_entries++] = (PstreeEntry *)msg;
		ret = check_entry(tree, tree->nr_entries - 1);
		if (ret)
			break;
	}
	img_close(img);
	if (!ret && !tree->nr_entries) {
		pr_err("pstree.img: no task in the image");
		ret = -EINVAL;
	}
	return ret;
}

static bool is_entry(const struct rst_tree *tree, pid_t pid)
{
	for (size_t i = 0; i < tree->nr_entries; i++)
		if ((pid_t)tree->entries[i]->pid == pid)
			return true;
	return false;
}

static int find_proc(const struct rst_tree *tree, pid_t pid)
{
	for (size_t i = 0; i < tree->nr; i++)
		if (tree->procs[i].pid == pid)
			return i;
	return -1;
}

static struct rst_proc *add_proc(struct rst_tree *tree, pid_t pid, pid_t pgid, pid_t sid,
				 int parent)
{
	struct rst_proc *p = &tree->procs[tree->nr++];

	memset(p, 0, sizeof(*p));
	p->pid = pid;
	p->pgid = pgid;
	p->sid = sid;
	p->parent = parent;
	p->fdt_owner = -1;
	p->t = (struct rst_task){ .sync_r = -1, .sync_w = -1, .err_r = -1, .err_w = -1,
				  .uffd_rx = -1, .uffd_tx = -1 };
	return p;
}

/* Whose session (and group) a dead leader's helper stands in for, or 0. */
static pid_t helper_for(const struct rst_tree *tree, const PstreeEntry *e)
{
	const PstreeEntry *root = tree->entries[0];

	if (e == root || is_entry(tree, e->sid))
		return 0;
	if (tree->o->shell_job && e->sid == root->sid)
		return 0;
	return e->sid;
}

static int check_groups(const struct rst_tree *tree, const PstreeEntry *e, pid_t helper)
{
	const PstreeEntry *root = tree->entries[0];

	if (helper && e->ppid != root->pid) {
		pr_err("pstree.img: task %u is in session %u, whose leader is gone, and is not a "
		       "child of the root %u: not supported", e->pid, e->sid, root->pid);
		return -EOPNOTSUPP;
	}
	if (e != root && !is_entry(tree, e->pgid) && e->pgid != (uint32_t)helper &&
	    !(tree->o->shell_job && e->pgid == root->pgid)) {
		pr_err("pstree.img: task %u is in process group %u, whose leader is gone: only "
		       "a group led by its session's dead leader can be restored", e->pid, e->pgid);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* procs[]: the entries in order, each helper just before its first member. */
static int build_procs(struct rst_tree *tree)
{
	tree->procs = calloc(2 * tree->nr_entries, sizeof(*tree->procs));
	if (!tree->procs)
		return -ENOMEM;
	for (size_t i = 0; i < tree->nr_entries; i++) {
		const PstreeEntry *e = tree->entries[i];
		pid_t helper = helper_for(tree, e);
		int parent = i ? find_proc(tree, e->ppid) : -1;
		int ret = check_groups(tree, e, helper);

		if (ret)
			return ret;
		if (helper) {
			parent = find_proc(tree, helper);
			if (parent < 0) {
				struct rst_proc *h = add_proc(tree, helper, helper, helper, 0);

				h->kind = RST_PROC_HELPER;
				parent = h - tree->procs;
				pr_info("a helper %d stands in for the dead leader of session %d",
					helper, helper);
			}
		}
		add_proc(tree, e->pid, e->pgid, e->sid, parent);
	}
	return 0;
}

static int load_zombie(struct rst_tree *tree, struct rst_proc *p, CoreEntry *core)
{
	(void)tree;
	p->kind = RST_PROC_ZOMBIE;
	p->exit_code = core->tc->exit_code;
	if ((p->exit_code & 0x7f) == 0x7f || ((p->exit_code & 0x7f) && (p->exit_code >> 8))) {
		pr_err("core-%d.img: a zombie's exit status %#x is not one of exit() or a signal",
		       p->pid, p->exit_code);
		return -EINVAL;
	}
	return 0;
}

/* Every live task in the root's pid namespace: ours, or the new one. */
static int check_pid_ns(const struct rst_tree *tree, const struct rst_proc *p)
{
	const TaskKobjIdsEntry *root = tree->procs[0].ri.ids, *ids = p->ri.ids;

	if (!root->has_pid_ns_id || !ids->has_pid_ns_id || root->pid_ns_id == ids->pid_ns_id)
		return 0;
	pr_err("ids-%d.img: task %d is in pid namespace %u, the root task %d in %u: a pid "
	       "namespace inside the tree can't be restored", p->pid, p->pid, ids->pid_ns_id,
	       tree->procs[0].pid, root->pid_ns_id);
	return -EOPNOTSUPP;
}

static int load_proc(struct rst_tree *tree, struct rst_proc *p, const PstreeEntry *e)
{
	const struct rst_images *parent;
	CoreEntry *core;
	int ret;

	ret = rst_img_read_one(tree->dirfd, IMG_CORE, p->pid, &core_entry__descriptor,
			   (ProtobufCMessage **)&core);
	if (ret)
		return ret;
	if (!core->tc) {
		pr_err("core-%d.img: no task state", p->pid);
		ret = -EINVAL;
	} else if (core->tc->task_state == TASK_DEAD) {
		ret = p == tree->procs ? -EINVAL : load_zombie(tree, p, core);
		if (ret == -EINVAL && p == tree->procs)
			pr_err("core-%d.img: the root of the tree is a zombie", p->pid);
	} else if (core->tc->task_state != TASK_ALIVE && core->tc->task_state != TASK_STOPPED) {
		pr_err("core-%d.img: task state %u is unknown", p->pid, core->tc->task_state);
		ret = -EINVAL;
	}
	if (ret || p->kind == RST_PROC_ZOMBIE) {
		core_entry__free_unpacked(core, NULL);
		return ret;
	}
	p->stopped = core->tc->task_state == TASK_STOPPED;
	p->kind = RST_PROC_ALIVE;
	parent = p->parent >= 0 && tree->procs[p->parent].kind == RST_PROC_ALIVE ?
		 &tree->procs[p->parent].ri : NULL;
	/* the core goes on with the rest of the task's images, read once */
	ret = rst_images_load(tree->dirfd, tree->o, tree->inv, e, core, tree->ghosts,
			      &tree->tf, parent, &p->ri);
	if (!ret && p != tree->procs) {
		ret = check_pid_ns(tree, p);
		p->ri.in_new_pid_ns = tree->procs[0].ri.new_pid_ns;
	}
	return ret;
}

/*
 * A descriptor table is shared again by cloning each sharer with
 * CLONE_FILES from its parent (fdt.c): one shared with another process
 * but not with the parent cannot be (the dump refuses it, as CRIU does).
 */
static int check_files_ids(const struct rst_tree *tree)
{
	for (size_t i = 1; i < tree->nr; i++) {
		const struct rst_proc *p = &tree->procs[i];

		if (p->kind != RST_PROC_ALIVE || p->ri.fdt_owner)
			continue;
		for (size_t j = 0; j < i; j++) {
			const struct rst_proc *q = &tree->procs[j];

			if (q->kind != RST_PROC_ALIVE || q->ri.ids->files_id != p->ri.ids->files_id)
				continue;
			pr_err("ids-%d.img: task %d has the descriptor table (files_id %u) of task "
			       "%d, but not its parent's: not supported", p->pid, p->pid,
			       p->ri.ids->files_id, q->pid);
			return -EOPNOTSUPP;
		}
	}
	return 0;
}

/* After the shared memory objects exist (shmem.c): the plans avoid them. */
/*
 * The process whose premapped memory p inherits at its fork: its nearest
 * live ancestor (a helper forks its children with the root's memory).
 * Parents come first, so its plan exists.
 */
static const struct rst_plan *fork_parent_plan(const struct rst_tree *tree,
					       const struct rst_proc *p)
{
	int i = p->parent;

	while (i >= 0 && tree->procs[i].kind != RST_PROC_ALIVE)
		i = tree->procs[i].parent;
	return i >= 0 ? &tree->procs[i].plan : NULL;
}

int rst_tree_plan(struct rst_tree *tree)
{
	struct rst_plan_host h;
	int ret = rst_plan_host_read(&h);

	for (size_t i = 0; !ret && i < tree->nr; i++) {
		struct rst_proc *p = &tree->procs[i];

		if (p->kind == RST_PROC_ALIVE)
			ret = rst_plan_build(tree->o, &h, &p->ri, fork_parent_plan(tree, p),
					     &p->plan);
	}
	rst_plan_host_free(&h);
	return ret;
}

int rst_tree_load(struct rst_tree *tree)
{
	int ret;

	ret = img_read_one(tree->dirfd, IMG_INVENTORY, 0, &inventory_entry__descriptor,
			   (ProtobufCMessage **)&tree->inv);
	if (!ret)
		ret = check_inventory(tree->inv);
	if (!ret)
		ret = load_pstree(tree);
	if (!ret)
		ret = build_procs(tree);
	if (!ret)
		rst_prefetch_start(tree->dirfd, tree->entries, tree->nr_entries);
	for (size_t i = 0, e = 0; !ret && i < tree->nr; i++) {
		struct rst_proc *p = &tree->procs[i];

		if (p->kind == RST_PROC_HELPER)
			continue;
		ret = load_proc(tree, p, tree->entries[e++]);
	}
	rst_prefetch_images_done();
	if (!ret)
		ret = check_files_ids(tree);
	return ret;
}

void rst_tree_free(struct rst_tree *tree)
{
	rst_prefetch_stop();	/* a restore that failed before stage 4 */
	rst_shmem_release(tree);
	rst_ipc_ns_free(tree);
	rst_share_free(tree);
	rst_ghosts_free(tree);
	rst_tree_files_free(&tree->tf);
	for (size_t i = 0; i < tree->nr; i++) {
		if (tree->procs[i].kind != RST_PROC_ALIVE || !tree->procs[i].ri.pstree)
			continue;	/* nothing loaded */
		rst_plan_free(&tree->procs[i].plan);
		rst_images_free(&tree->procs[i].ri);
	}
	free(tree->procs);
	for (size_t i = 0; i < tree->nr_entries; i++)
		pstree_entry__free_unpacked(tree->entries[i], NULL);
	free(tree->entries);
	if (tree->inv)
		inventory_entry__free_unpacked(tree->inv, NULL);
	tree->procs = NULL;
	tree->entries = NULL;
	tree->inv = NULL;
	tree->nr = tree->nr_entries = 0;
}
