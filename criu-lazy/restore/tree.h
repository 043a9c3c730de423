/* The restore process's side of the tree: load, create, drive the stages, hand over, undo. */
#ifndef CRIU_LAZY_RESTORE_TREE_H
#define CRIU_LAZY_RESTORE_TREE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "restore/restore.h"

/* tree-load.c: pstree.img, every process's images, helpers */
int rst_tree_load(struct rst_tree *tree);
void rst_tree_free(struct rst_tree *tree);

/* tree.c: creating the tree, the restore process's side */
int rst_tree_pipes(struct rst_tree *tree);
int rst_tree_report_errors(struct rst_tree *tree);
int rst_tree_create(struct rst_tree *tree);
int rst_tree_seize(struct rst_tree *tree, struct rst_proc *p);
int rst_tree_creation_event(struct rst_tree *tree, const char *what);
int rst_tree_reap_dead(struct rst_tree *tree);
int rst_tree_send(struct rst_tree *tree, struct rst_proc *p, char what);
/* 'r' to @p, on its CPU (cpu-pin.c); once only. */
int rst_tree_go(struct rst_tree *tree, struct rst_proc *p);
void rst_tree_kill(struct rst_tree *tree);
int rst_tree_next_event(struct rst_tree *tree, struct rst_event *ev, const char *what,
			int timeout_ms);
/* tree-groups.c: who joins its process group late; stage 4 */
void rst_tree_groups_plan(struct rst_tree *tree);
int rst_tree_groups(struct rst_tree *tree);
/* tree-task.c: a new task of the tree, from its clone to its rebuild */
_Noreturn void rst_proc_main(struct rst_tree *tree, int idx);
/* tree-task.c: an event from a task to the restore process (exits if it cannot) */
void rst_tree_event(const struct rst_tree *tree, int idx, int kind, pid_t pid);

/* task-create.c */
int rst_task_create(struct rst_tree *tree, struct rst_proc *root);
int rst_task_seize(struct rst_task *t);
void rst_task_kill(struct rst_task *t);
pid_t rst_clone_with_pid(pid_t pid, uint64_t flags);
/* rst_task_wait_blob(): 0 at the blob's end */
#define RST_WAIT_TRACE_THREADS 2	/* internal to task-create.c */
int rst_task_wait_blob(struct rst_task *t, const struct rst_plan *plan);

/* blob-next.c: the blobs of the tree, taken in the order they report */
struct rst_blob_wait {
	bool *pending;			/* per process: still waited for */
	int64_t *eof_at;		/* when its error pipe closed (ms), or 0 */
	size_t left;
	bool uffd;			/* lazy handover: a uffd sent is news too */
};
int rst_blob_wait_init(const struct rst_tree *tree, struct rst_blob_wait *w);
/* The index of the next process with something to report (no longer
 * pending then), -ENOENT when none is left */
int rst_blob_next(struct rst_tree *tree, struct rst_blob_wait *w);
void rst_blob_wait_free(struct rst_blob_wait *w);
void rst_blob_watch_again(struct rst_blob_wait *w, int idx);
/* Has the task a wait status for us (stopped, or gone)? */
bool rst_task_has_status(pid_t pid);

/* fd-share-plan.c, fd-share.c: which files travel between processes */
int rst_share_plan(struct rst_tree *tree);
void rst_share_free(struct rst_tree *tree);
size_t rst_share_count(const struct rst_share *s, int proc);
bool rst_share_by_fork(const struct rst_share_file *sf, size_t h);

/* fdt.c: descriptor tables shared between processes (CLONE_FILES) */
int rst_fdt_plan(struct rst_tree *tree);
int rst_fdt_apart(struct rst_tree *tree);
int rst_fdt_rebuild_sharers(struct rst_tree *tree);

/* lazy.c: the restore's side of the lazy-pages socket */
int rst_lazy_connect(struct rst_tree *tree);
/* UFFD_FEATURE_* of this kernel (a probing UFFDIO_API), 0 without userfaultfd */
uint64_t rst_lazy_kernel_features(void);
int rst_lazy_handover(struct rst_tree *tree, struct rst_proc *p);
int rst_lazy_send_zombies(struct rst_tree *tree);
int rst_lazy_finished(struct rst_tree *tree);
void rst_lazy_close(struct rst_tree *tree);

/* stages.c: the ordered list of the restore's stages */
int rst_stages_run(struct rst_tree *tree);
void rst_stages_undo(struct rst_tree *tree);

#endif
