/*
 * Descriptor tables shared between processes: clone(CLONE_FILES) without
 * CLONE_THREAD.  The dump gives the sharers one files_id (kcmp KCMP_FILES)
 * and writes their fds once, in fdinfo-<files_id>.img; a sharer must share
 * the table with its parent, as CRIU demands too.
 *
 * Here each sharer is cloned with CLONE_FILES from its parent again
 * (tree.c), so from its birth every descriptor of the restore lives in
 * one table with its owner's (the first sharer in pstree order, which
 * alone restores the table) and the other sharers'.  What keeps them out
 * of each other's way:
 *
 *   - windows: each sharer has its own range of numbers for its helper
 *     fds, [fdt_base, fdt_end), the owner's first, above every fd the
 *     restore process had when it forked the tree (what the tasks
 *     inherit) and every fd of the table, with FDT_RESERVE free numbers
 *     below: an fd made and closed at once (an open() of /proc, the
 *     blob's userfaultfd) takes the lowest free number, below every
 *     window, so it never lands in another's;
 *   - no close by number outside one's own: close_foreign_pipes() skips
 *     a shared table, a sharer closes only what is in its window, the
 *     owner's close of everything it inherited stops at the sharers'
 *     windows, and each blob closes only its own window;
 *   - order, by the stage list (stages.c): after the zombies are gone,
 *     each sharer ('f') copies what it needs into its window (its error
 *     and stage pipes, the log, the exe, the cwd lock) without closing
 *     the originals, which the owner uses too; then only the owners and
 *     the other tasks rebuild ('r'); each owner says EV_FDT_DONE once its
 *     fds are in (the table as dumped, nothing of the restore below its
 *     window), and only then its sharers get their 'r'.  A sharer opens
 *     nothing of the task's: its fds are the owner's.
 *
 * CRIU does the same with a futex per table: the sharers wait while the
 * owner opens the fds, and its service fds sit at a different offset per
 * sharer of a table.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "common/proc-fd.h"
#include "restore/restore.h"
#include "restore/child.h"
#include "restore/tree.h"

#define FDT_RESERVE	32	/* free numbers below the windows */
#define FDT_SHARER_FDS	32	/* a sharer's window: a handful of helpers */
#define FDT_WAIT_MS	90000	/* for an owner's fds (it may wait 60 s for a
				 * file another process passes it, fd-share.c) */

/* The highest fd open here, which every task inherits, into *@top (-1: none). */
static int highest_fd(int *top)
{
	size_t nr;
	int *fds, ret;

	ret = proc_fd_list(0, &fds, &nr);
	if (ret) {
		pr_err("can't list the fds of the restore (/proc/self/fd): %s", strerror(-ret));
		return ret;
	}
	*top = nr ? fds[nr - 1] : -1;
	free(fds);
	return 0;
}

static int proc_index(const struct rst_tree *tree, const struct rst_images *ri)
{
	for (size_t i = 0; i < tree->nr; i++)
		if (&tree->procs[i].ri == ri)
			return i;
	return -1;
}

/* Right before the root is cloned: who owns which table, and the windows. */
int rst_fdt_plan(struct rst_tree *tree)
{
	bool listed = false;	/* a table is shared: windows to plan */
	int top = -1;

	for (size_t i = 0; i < tree->nr; i++) {
		struct rst_proc *p = &tree->procs[i];

		if (p->kind == RST_PROC_ALIVE && p->ri.fdt_owner)
			p->fdt_owner = proc_index(tree, p->ri.fdt_owner);
		if (p->fdt_owner >= 0 && !listed) {
			int ret = highest_fd(&top);

			if (ret)
				return ret;
			listed = true;
		}
	}
	for (size_t i = 0; listed && i < tree->nr; i++) {
		struct rst_proc *o = &tree->procs[i];
		int base, end, n = 0;

		if (o->kind != RST_PROC_ALIVE || o->fdt_owner >= 0)
			continue;
		base = rst_fd_top(&o->ri);
		base = (base > top ? base : top) + 1 + FDT_RESERVE;
		/* its helpers, and what it keeps above its fds until they come
		 * (fds.c allows 16 + fds + shared files: twice that here) */
		end = base + 32 + 2 * (o->ri.nr_fds + rst_share_count(&tree->share, i));
		o->fdt_base = base;
		o->fdt_end = end;
		for (size_t j = i + 1; j < tree->nr; j++) {
			struct rst_proc *s = &tree->procs[j];

			if (s->kind != RST_PROC_ALIVE || s->fdt_owner != (int)i)
				continue;
			s->fdt_base = end;
			s->fdt_end = end += FDT_SHARER_FDS;
			n++;
		}
		if (!n) {	/* shares with nobody: its own open-ended window */
			o->fdt_base = o->fdt_end = 0;
			continue;
		}
		pr_info("task %d restores the descriptor table it shares with %d process(es); "
			"helper fds %d-%d, the sharers' up to %d", o->pid, n, o->fdt_base,
			o->fdt_end - 1, end - 1);
	}
	return 0;
}

/* 'f': every sharer puts its helpers apart, all at once. */
int rst_fdt_apart(struct rst_tree *tree)
{
	size_t sent = 0;

	for (size_t i = 0; i < tree->nr; i++) {
		struct rst_proc *p = &tree->procs[i];
		int ret;

		if (p->kind != RST_PROC_ALIVE || p->fdt_owner < 0)
			continue;
		ret = rst_tree_send(tree, p, 'f');
		if (ret)
			return ret;
		sent++;
	}
	while (sent--) {
		struct rst_event ev;
		int ret = rst_tree_next_event(tree, &ev, "sharer's helper fds apart", FDT_WAIT_MS);

		if (ret)
			return ret;
		if (ev.kind != EV_FDT_APART) {
			pr_err("unexpected event %d about task %d", ev.kind, tree->procs[ev.idx].pid);
			return -EIO;
		}
	}
	return 0;
}

/* Each owner's EV_FDT_DONE lets its sharers rebuild themselves ('r'). */
int rst_fdt_rebuild_sharers(struct rst_tree *tree)
{
	size_t owners = 0;

	for (size_t i = 0; i < tree->nr; i++)
		owners += tree->procs[i].kind == RST_PROC_ALIVE && tree->procs[i].fdt_end &&
			  tree->procs[i].fdt_owner < 0;
	while (owners--) {
		struct rst_event ev;
		int ret = rst_tree_next_event(tree, &ev, "descriptor table restored by its owner",
					      FDT_WAIT_MS);

		if (ret)
			return ret;
		if (ev.kind != EV_FDT_DONE || tree->procs[ev.idx].fdt_owner >= 0) {
			pr_err("unexpected event %d about task %d", ev.kind, tree->procs[ev.idx].pid);
			return -EIO;
		}
		for (size_t j = ev.idx + 1; j < tree->nr; j++) {
			struct rst_proc *s = &tree->procs[j];

			if (s->kind != RST_PROC_ALIVE || s->fdt_owner != ev.idx)
				continue;
			ret = rst_tree_send(tree, s, 'r');
			if (ret)
				return ret;
		}
	}
	return 0;
}

/* ------------------------------------------------------------ in the task */

/*
 * A sharer's 'f': copies of its helpers in its window, the originals left
 * open (the owner and the other sharers hold the same numbers; the
 * owner's rebuild closes them).  Nothing else runs in the table now but
 * other sharers doing the same, each in its own window.
 */
int child_fdt_apart(struct rst_child *c, int *sync_r)
{
	int ret = child_fds_room(c, c->helper_end);

	if (ret)
		return ret;
	c->exe_fd = open(c->ri->exe->name, O_RDONLY | O_CLOEXEC);
	if (c->exe_fd < 0)
		return child_err(c, errno, "%s: %s (exe of task %d)", c->ri->exe->name,
				 strerror(errno), c->ri->pid);
	if (child_fds_move_high(c, &c->exe_fd, false) || child_fds_move_high(c, &c->err_fd, true) ||
	    child_fds_move_high(c, sync_r, true) || child_fds_move_high(c, &c->uffd_tx, true))
		return -EBADF;
	ret = log_move_above(c->helper_base, true);
	if (ret)
		return child_err(c, ret, "task %d: cannot copy the log above fd %d: %s",
				 c->ri->pid, c->helper_base, strerror(-ret));
	return child_fs_lock_open(c);
}

/* The owner's fds are in: its sharers may rebuild themselves now. */
int child_fdt_done(struct rst_child *c)
{
	struct rst_event ev = { .idx = c->self, .kind = EV_FDT_DONE };
	ssize_t n;

	if (c->ev_w < 0)
		return 0;
	n = write(c->ev_w, &ev, sizeof(ev));
	close(c->ev_w);
	c->ev_w = -1;
	if (n != sizeof(ev))
		return child_err(c, n < 0 ? errno : EIO, "task %d: cannot tell that its descriptor "
				 "table is restored: %s", c->ri->pid,
				 n < 0 ? strerror(errno) : "short write");
	return 0;
}
