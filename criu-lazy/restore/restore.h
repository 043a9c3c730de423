/*
 * Private to restore/: the state of one restore run and the steps that use
 * it.
 *
 * The stages of a restore are one ordered table, stages[] in stages.c
 * (Documentation/restore.md explains each):
 *
 *   tree-load.c, images-load.c, files-check.c, file-unchanged.c   read and
 *                    check every image and every file to reopen, before
 *                    any task exists (struct rst_tree, struct rst_images
 *                    per process, struct rst_tree_files what they share);
 *   layout.c, premap-plan.c, premap-place.c   decide where each VMA is
 *                    premapped (its slot, or its own address at once) and
 *                    where the blob goes (struct rst_plan per process);
 *   task-create.c, tree.c   the root by clone3 with its dumped pid, every
 *                    other task by its parent task, once the parent has
 *                    premapped its memory (premap.c, premap-cow.c: the
 *                    children share it copy-on-write); sessions, groups
 *                    (tree-groups.c), zombies, helpers;
 *   fd-share.c       files several processes hold: made once, passed on;
 *   fdt.c            a descriptor table several processes share
 *                    (CLONE_FILES): restored once, by its owner;
 *   child.c (fds.c, blob-setup.c)   each task rebuilds itself
 *                    and jumps into the restorer blob (criu-lazy/pie/);
 *   lazy.c           each process's uffd to the daemon;
 *   finalize.c       after the blob's final int3: last syscalls, registers
 *                    (xsave-build.c), TLS, mask, of the leader and of every
 *                    other thread (threads.c), detach.
 *
 * The new task is a fork of this process, so it reads the same structures;
 * it reports errors through a pipe (child_err()), never through the log,
 * since its descriptors become the restored task's.
 */
#ifndef CRIU_LAZY_RESTORE_RESTORE_H
#define CRIU_LAZY_RESTORE_RESTORE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>

#include "images/pagemap.h"
#include "files/fd-kind.h"
#include "options.h"
#include "pie/restorer-args.h"

#include "core.pb-c.h"
#include "fdinfo.pb-c.h"
#include "fs.pb-c.h"
#include "inventory.pb-c.h"
#include "memfd.pb-c.h"
#include "mm.pb-c.h"
#include "pstree.pb-c.h"
#include "regfile.pb-c.h"
#include "seccomp.pb-c.h"

#define RST_PAGE_ALIGN(x) (((x) + RST_PAGE_SIZE - 1) & ~(RST_PAGE_SIZE - 1))

/* One descriptor of the task. */
struct rst_fd {
	int fd;
	bool cloexec;
	const FileEntry *fe;		/* its file object in files.img */
	const struct fd_kind_ops *ops;	/* its kind (files/fd-kind.h) */
};

/* A file object the new task has opened: where it is now. */
struct rst_open_file {
	uint32_t id;
	int fd;
};

/* Shared anonymous memory, or a memfd: one object, mapped by one or more
 * VMAs (a memfd's also held by descriptors). */
struct rst_shmem {
	uint64_t shmid;
	const MemfdInodeEntry *memfd;	/* a memfd's inode (memfd.img), or NULL */
	uint64_t size;			/* max(pgoff + length) of its VMAs */
	struct pagemap_index pi;	/* pagemap-shmem-<shmid>.img */
	uint64_t obj, obj_size;		/* the tree's object, mapped by the restore
					 * process and so by every task (shmem.c) */
	bool lazy;			/* left empty for the lazy-pages daemon */
};

struct rst_ghosts;

/*
 * What the images of every process share, read once per restore for the
 * whole tree: files.img (files-check.c), filelocks.img (file-locks.c), and
 * what was learnt of the regular files the tasks reopen (file-unchanged.c:
 * the stat of each file object's path, the build-id of each file).
 */
struct rst_path_stat;
struct rst_build_id_read;
struct FileLockEntry;
struct rst_tree_files {
	FileEntry **files;
	size_t nr_files;
	bool files_read;
	struct FileLockEntry **locks;	/* every task's */
	size_t nr_locks;
	bool locks_read;
	struct rst_path_stat *stats;
	size_t nr_stats, cap_stats;
	struct rst_build_id_read *build_ids;
	size_t nr_build_ids, cap_build_ids;
};

/* Everything read from the images of one process, checked. */
struct rst_images {
	int dirfd;
	const struct rst_ghosts *ghosts;	/* the tree's deleted files, made again */
	struct rst_tree_files *tf;	/* the tree's; files and locks point into it */
	pid_t pid;			/* in the images: the task's own view */
	bool new_pid_ns;		/* it was the init of a pid namespace of its
					 * own: it gets a new one, where it is pid 1 */
	bool in_new_pid_ns;		/* it lives in that new namespace (the root
					 * and the rest of its tree): pids differ here */

	const InventoryEntry *inv;	/* the tree's (struct rst_tree) */
	const PstreeEntry *pstree;	/* the tree's */
	CoreEntry *core;		/* the leader's = cores[0] */
	CoreEntry **cores;		/* core-<tid>.img of every thread */
	pid_t *tids;			/* their tids in the images, leader first */
	size_t nr_threads;
	TaskKobjIdsEntry *ids;
	MmEntry *mm;			/* n_vmas: the real VMAs, without the guards */
	const VmaEntry *const *guards;	/* guard regions: the vma_entry records after
					 * the real ones (mm->vmas + mm->n_vmas) */
	size_t nr_guards;
	FsEntry *fs;

	FileEntry **files;		/* files.img (the tree's: tf) */
	size_t nr_files;
	struct rst_fd *fds;		/* fdinfo-<files_id>.img, ascending fd */
	size_t nr_fds;
	int fd_max_extra;		/* a number its kinds use for a moment beyond
					 * its fds (an epoll's closed watch), or 0 */
	const struct rst_images *fdt_owner;	/* its descriptor table is this
					 * process's, which restores it (CLONE_FILES,
					 * fdt.c): fds above are empty; NULL: its own */

	struct FileLockEntry **locks;	/* filelocks.img: the task's own (in tf's) */
	size_t nr_locks;

	const RegFileEntry *exe, *cwd, *root;
	void *kind_state[FD_KINDS_MAX];	/* each fd kind's own, by registry index */

	struct pagemap_index pi;	/* pagemap-<pid>.img + pages file */
	struct rst_shmem *shmems;
	size_t nr_shmems, cap_shmems;

	SeccompEntry *seccomp;		/* seccomp.img, if a thread has filters */
};

/* A VMA the task premaps before the blob moves it. */
struct rst_vma_plan {
	const VmaEntry *vma;
	uint64_t premap;		/* its slot in the premap region */
	uint32_t premap_prot;		/* how it is mapped there */
	bool fill;			/* has pages to read from the images */
	bool has_lazy;			/* has pages left to the lazy-pages daemon */
	bool in_place;			/* to be mapped at its own address from the
					 * start (premap-plan.c), when it is free then */
	uint64_t at;			/* in the task: where it is mapped (its own
					 * address, or its slot); 0 before */
	uint64_t inherit;		/* copy-on-write: the parent's premap address of
					 * this VMA, which the fork gave us (0: none) */
	uint32_t inherit_prot;		/* how the parent premapped it */
	uint32_t inherit_idx;		/* the parent's VMA (its plan's vmas[]) */
	const RegFileEntry *file;	/* file-backed VMAs */
	struct rst_shmem *shm;		/* shared anonymous VMAs */
};

/* A piece of a pagemap run inside one VMA: where its data goes. */
struct rst_fill {
	uint64_t file_off;		/* in the pages file */
	uint64_t dst;			/* in the VMA's premap slot (its address in
					 * the task: rst_fill_at()) */
	uint64_t len;
	bool cmp;			/* into an inherited VMA: write only the pages
					 * that differ (premap-cow.c) */
	uint64_t parent_off;		/* cmp: the same pages in the parent's pages
					 * file, which its fill put there */
};

/* Where everything goes in the new task. */
struct rst_plan {
	uint64_t premap_start, premap_end;
	uint64_t blob_start, blob_end;
	uint64_t code_size, args_off, args_size, stack_off, stack_size;
	uint64_t scratch_off, scratch_size;
	uint64_t threads_stack_off;	/* the other threads' stacks */
	/* the region of the process whose premapped memory we inherit at the
	 * fork (premap-cow.c): released once its VMAs are ours; 0 for none */
	uint64_t parent_start, parent_end;
	/* that process's plan (in the task: as it was when it forked us, with
	 * where it mapped each VMA) */
	const struct rst_plan *parent;

	struct rst_vma_plan *vmas;
	size_t nr_vmas;

	int pages_fd;			/* this process's pages file (a child compares
					 * with its parent's) */
	uint32_t pages_id;
	struct rst_fill *fills;		/* of the private VMAs, ascending file_off */
	size_t nr_fills;
	bool compares;			/* a fill is compared with the parent's pages
					 * (cmp): forked only after the parent's fill */
	uint64_t pages_to_fill;

	/* the vdso group: ours now, and where it goes */
	struct rst_range vdso_cur[RST_VDSO_PARTS_MAX];
	uint32_t vdso_nr;
	uint64_t vdso_target;

	uint32_t cap_last_cap;		/* this kernel's highest capability */
};

/* The new task while it is being built. */
struct rst_task {
	pid_t pid;			/* here (= ri->pid unless ri->new_pid_ns) */
	int sync_w;			/* restore -> task: the next stage (tree.c) */
	int sync_r;
	int err_r;			/* task -> restore: one error line */
	int err_w;
	uint64_t fork_us;		/* clone3 + seize */
	pid_t *thread_pids;		/* the other threads here, once seized */
	size_t nr_thread_pids;
	bool seized;
	int task_uffd;			/* lazy: the uffd's number inside the task, or -1 */
};

/* A file held by a process other than the one that creates it (fd-share.c). */
struct rst_share_file {
	uint32_t id;
	int owner;			/* the process that creates it (index) */
	int *holders;			/* the other processes that hold it */
	size_t nr_holders;
	struct rst_fd fd;		/* one holder's fd of it (kind, number) */
};

/* The files shared between processes, and how they travel. */
struct rst_share {
	struct rst_share_file *files;	/* ascending id */
	size_t nr;
	int *sk;			/* per process: the socket it receives on, or -1 */
	struct sockaddr_un *addr;	/* its name (autobound, abstract) */
	socklen_t *addr_len;
	pid_t *pids;			/* per process: its pid in the images */
	int fs_lock_src;		/* processes share their cwd: a memfd each opens
					 * again to flock() (fds.c), or -1 */
};

/* What a process of the tree is at restore time. */
enum rst_proc_kind {
	RST_PROC_ALIVE,			/* restored fully */
	RST_PROC_ZOMBIE,		/* exits with its status once the tree exists */
	RST_PROC_HELPER,		/* a dead session leader's stand-in (tree-load.c) */
};

/* One process of the tree, in pstree order (parents first). */
struct rst_proc {
	enum rst_proc_kind kind;
	pid_t pid;			/* in the images */
	pid_t pgid, sid;		/* in the images */
	int parent;			/* index of its parent, -1 for the root */
	bool stopped;			/* dumped in a group-stop: stopped again */
	uint32_t exit_code;		/* a zombie's, in wait() encoding */
	/* a descriptor table shared with other processes (fdt.c): the index
	 * of the sharer that restores it (-1: this one, or not shared), and
	 * this process's window of helper fds in it, [fdt_base, fdt_end) (0: not
	 * shared, the window is computed by the task and open-ended) */
	int fdt_owner;
	int fdt_base, fdt_end;
	/* joins its process group only once every task exists (stage 4,
	 * tree-groups.c): its leader is no ancestor of it */
	bool group_late;
	bool ready;			/* said EV_READY (premapped, children forked) */
	struct rst_images ri;		/* ALIVE only */
	struct rst_plan plan;		/* ALIVE only */
	struct rst_task t;
};

/* The whole tree: read by tree-load.c, built by tree.c, driven by stages.c. */
/* The IPC namespace a tree had of its own, made anew (ipc-ns.c). */
struct rst_ipc {
	bool new_ns;			/* the root's ipc ns was not the dumper's */
	uint32_t ns_id;			/* ipcns-*-<ns_id>.img */
	int host_fd, ns_fd;		/* ours, the new one (-1 until made) */
	struct IpcShmEntry **shm;	/* ipcns-shm: every segment */
	size_t nr_shm;
};

/* The kernel's struct sigaction on x86_64 (what rt_sigaction takes). */
struct rst_ksigaction {
	uint64_t handler;
	uint64_t flags;
	uint64_t restorer;
	uint64_t mask;
};

struct rst_tree {
	const struct opts *o;
	int dirfd;
	InventoryEntry *inv;
	PstreeEntry **entries;		/* pstree.img */
	size_t nr_entries;
	struct rst_proc *procs;		/* entries + helpers, parents first */
	size_t nr;
	int ev_r, ev_w;			/* tasks -> restore: struct rst_event */
	int lazy_sock;			/* connected to the lazy-pages daemon, or -1 */
	struct rst_ghosts *ghosts;	/* deleted files made again (ghost.c) */
	struct rst_tree_files tf;	/* what every process's images share */
	uint64_t lazy_features;
	bool lazy_daemon_ours;		/* criu-lazy's daemon: it fills shared memory */
	struct rst_share share;		/* files shared between processes */
	struct rst_ipc ipc;		/* the tree's own IPC namespace (ipc-ns.c) */
	bool new_net_ns;		/* made in a netns of its own (net/) */
	size_t created, ready;		/* tasks seized, tasks that said EV_READY */
	uint64_t t_start, fork_us, pages_filled;
	/* our signal actions as the tasks inherit them (attrs/sigactions.c):
	 * [sig], 1..64; !sa_known: not read, every action is set */
	struct rst_ksigaction sa_inherited[65];
	bool sa_known;
};

/* The new task's own context (child.c and what it calls). */
struct rst_child {
	const struct opts *o;
	const struct rst_images *ri;
	const struct rst_plan *plan;
	int err_fd;			/* the error pipe */
	int pages_fd;			/* pages file of the private memory */
	int tty_fd;			/* our terminal, or -1 */
	int exe_fd;
	bool lazy;			/* lazy restore: the blob makes a uffd */
	uint64_t lazy_features;		/* UFFD_FEATURE_* the blob asks for */
	int helper_base;		/* helper fds are >= this */
	struct rst_open_file *open;	/* every file object opened so far */
	size_t nr_open;
	const struct rst_share *share;	/* the tree's shared files (fd-share.c) */
	int self;			/* our index in the tree */
	int share_rx, share_tx;		/* their sockets here, or -1 */
	bool fs_shared;			/* cwd, root, umask shared with another process */
	int fs_lock;			/* then: flock()ed around every chdir, or -1 */
	int helper_end;			/* helper fds are < this (0: no bound) */
	bool fdt_sharer;		/* the table is another process's (fdt.c) */
	int ev_w;			/* the table's owner: the tree's event pipe, or -1 */
	const struct rst_ksigaction *sa_inherited;	/* from us, or NULL: unknown */
};

/* tasks -> restore process, on the tree's event pipe (written whole) */
enum { EV_CREATED = 1, EV_READY, EV_GROUP, EV_FDT_APART, EV_FDT_DONE };

struct rst_event {
	int32_t idx;		/* the process the event is about */
	int32_t kind;
	int32_t pid;		/* EV_CREATED: its pid here */
};

/* images-load.c / files-check.c: one process */
int rst_images_load(int dirfd, const struct opts *o, const InventoryEntry *inv,
		    const PstreeEntry *ps, CoreEntry *core, const struct rst_ghosts *ghosts,
		    struct rst_tree_files *tf, const struct rst_images *parent,
		    struct rst_images *ri);
/* The images that hold @ri's descriptors: its own, or its table's owner's. */
static inline const struct rst_images *rst_fdt_images(const struct rst_images *ri)
{
	return ri->fdt_owner ? ri->fdt_owner : ri;
}
void rst_images_free(struct rst_images *ri);
const FileEntry *rst_file_find(const struct rst_images *ri, uint32_t id);
int rst_fds_load(const struct opts *o, struct rst_images *ri);
void rst_tree_files_free(struct rst_tree_files *tf);
/* file-unchanged.c: the stat of @reg's path, taken once per restore (0 or
 * -errno, not logged); the file at @reg's path (stat @st) is the one dumped */
int rst_path_stat(struct rst_tree_files *tf, const RegFileEntry *reg, struct stat *st);
int rst_check_unchanged(const struct rst_images *ri, const RegFileEntry *reg,
			const struct stat *st, const char *what);
void rst_file_checks_free(struct rst_tree_files *tf);
int rst_check_path(const struct rst_images *ri, const RegFileEntry *reg, const char *what,
		   struct stat *st);
int rst_fs_check(struct rst_images *ri);

/* file-locks.c: filelocks.img, read before any task, taken back in it */
int rst_file_locks_load(const struct opts *o, struct rst_images *ri);
void rst_file_locks_free(struct rst_tree_files *tf);
int child_file_locks(struct rst_child *c);

/* threads.c: every thread's core; seized and set after the blob */
int rst_check_thread_core(pid_t pid, const CoreEntry *core);
int rst_threads_load(struct rst_images *ri);
int rst_threads_finalize(const struct rst_images *ri, const struct rst_plan *plan,
			 struct rst_task *t);
int rst_threads_resume(const struct rst_images *ri, const struct rst_plan *plan,
		       struct rst_task *t);
int rst_threads_detach(struct rst_task *t);
void rst_threads_reap(struct rst_task *t);
int rst_threads_trace(struct rst_task *t);

/* attrs/seccomp.c: seccomp.img for a process with filters, checked */
int rst_seccomp_load(struct rst_images *ri);
/* attrs/posix-timers.c: the threads the timers name are the task's */
int rst_posix_timers_check_threads(const struct rst_images *ri);
/* syscall-restart.c: a thread dumped in a syscall the kernel restarts
 * through its restart block goes on with it */
struct rst_restart {
	bool active;		/* the syscall was run again */
	long result;		/* what it returned then */
};
int rst_syscall_restart_prepare(pid_t tid, unsigned long syscall_ip, const CoreEntry *core,
				struct rst_restart *out);
struct user_regs_struct;
void rst_syscall_restart_regs(const struct rst_restart *rs, const UserX86RegsEntry *g,
			      struct user_regs_struct *r);
int rst_thread_set_regs(pid_t pid, const CoreEntry *core, const struct rst_restart *rs);

/* premap-plan.c: what every plan of a restore starts from, read once (the
 * restore process's own layout: every task starts as a fork of it) */
struct proc_vma;
struct rst_plan_host {
	struct proc_vma *maps;
	size_t nr_maps;
	uint32_t cap_last_cap;
};
int rst_plan_host_read(struct rst_plan_host *h);
void rst_plan_host_free(struct rst_plan_host *h);
/* premap-place.c: which VMAs are mapped at their own address from the start */
int rst_plan_in_place(const struct rst_plan_host *h, const struct rst_plan *parent,
		      struct rst_plan *plan);
int rst_plan_build(const struct opts *o, const struct rst_plan_host *h,
		   const struct rst_images *ri, const struct rst_plan *parent,
		   struct rst_plan *plan);
void rst_plan_free(struct rst_plan *plan);

/* tree-load.c: pstree.img, every process's images, helpers */
int rst_tree_load(struct rst_tree *tree);
void rst_tree_free(struct rst_tree *tree);

/* images-load.c: a new shared memory object of ri, its pagemap-shmem-<shmid>
 * loaded (0 or -errno, logged) */
int rst_shmem_add(struct rst_images *ri, uint64_t shmid, struct rst_shmem **out);

/* files/memfd.c: every memfd inode the process refers to (descriptors,
 * mappings) as one of its shared memory objects; the one of an inode */
int rst_memfd_objects(struct rst_images *ri);
struct rst_shmem *rst_memfd_shmem(const struct rst_images *ri, uint64_t inode_id);

/* shmem.c: the tree's shared memory objects (anonymous, memfds) */
int rst_shmem_create(struct rst_tree *tree);
/* Read an object's dumped pages (PE_PRESENT runs of @pi) into @addr. */
int rst_shmem_fill(const struct pagemap_index *pi, uint64_t shmid, void *addr);
/* shmem-lazy.c: may the object be left empty for the lazy-pages daemon? */
bool rst_shmem_lazy(struct rst_tree *tree, const struct rst_shmem *s, uint64_t features);
void rst_shmem_release(struct rst_tree *tree);
/* ipc-ns.c, ipc-msg-sem.c: the tree's IPC namespace and its SysV objects */
int rst_ipc_ns_load(struct rst_tree *tree);
int rst_ipc_ns_create(struct rst_tree *tree);
int rst_ipc_ns_leave(struct rst_tree *tree);
int rst_ipc_ns_removed(struct rst_tree *tree);
void rst_ipc_ns_free(struct rst_tree *tree);
int rst_ipc_msg_sem(struct rst_tree *tree);
/* kernel.<kind>_next_id = @id: the next object of that kind gets it */
int rst_ipc_set_next_id(const char *kind, uint32_t id);
/* premap.c: a task's attachment of a SysV segment */
int child_premap_sysv(struct rst_child *c, const struct rst_vma_plan *vp);

/* ghost.c: the deleted files of the tree, made again while the tasks open
 * them (remap-fpath.img, ghost-file-N.img) */
int rst_ghosts_create(struct rst_tree *tree);
/* Where the file object @id's deleted file is now, or NULL if it is no ghost. */
const char *rst_ghost_path(const struct rst_ghosts *g, uint32_t file_id);
/* The ghosts and links made again go; @done (the tasks hold them): the
 * links --link-remap made at the dump too. */
void rst_ghosts_remove(struct rst_tree *tree, bool done);
void rst_ghosts_free(struct rst_tree *tree);

/* tree-load.c: the plan of every live process */
int rst_tree_plan(struct rst_tree *tree);

/* tree.c: creating the tree, the restore process's side */
int rst_tree_pipes(struct rst_tree *tree);
void rst_tree_report_errors(struct rst_tree *tree);
int rst_tree_create(struct rst_tree *tree);
int rst_tree_seize(struct rst_tree *tree, struct rst_proc *p);
int rst_tree_creation_event(struct rst_tree *tree, const char *what);
/* tree-groups.c: who joins its process group late; stage 4 */
void rst_tree_groups_plan(struct rst_tree *tree);
int rst_tree_groups(struct rst_tree *tree);
int rst_tree_reap_dead(struct rst_tree *tree);
int rst_tree_send(struct rst_tree *tree, struct rst_proc *p, char what);
void rst_tree_kill(struct rst_tree *tree);
pid_t rst_clone_with_pid(pid_t pid, uint64_t flags);
int rst_tree_next_event(struct rst_tree *tree, struct rst_event *ev, const char *what,
			int timeout_ms);
/* tree-task.c: an event from a task to the restore process (exits if it cannot) */
void rst_tree_event(const struct rst_tree *tree, int idx, int kind, pid_t pid);

/* fdt.c: descriptor tables shared between processes (CLONE_FILES) */
int rst_fdt_plan(struct rst_tree *tree);
int rst_fdt_apart(struct rst_tree *tree);
int rst_fdt_rebuild_sharers(struct rst_tree *tree);
int child_fdt_apart(struct rst_child *c, int *sync_r);
int child_fdt_done(struct rst_child *c);
/* tree-task.c: a new task of the tree, from its clone to its rebuild */
_Noreturn void rst_proc_main(struct rst_tree *tree, int idx);

/* task-create.c */
int rst_task_create(struct rst_tree *tree, struct rst_proc *root);
int rst_task_seize(struct rst_task *t);
void rst_task_kill(struct rst_task *t);
/* rst_task_wait_blob(): 0 at the blob's end, RST_WAIT_UFFD_READY at its
 * lazy stop (hand the uffd over, then PTRACE_CONT and wait again) */
#define RST_WAIT_UFFD_READY 1
#define RST_WAIT_TRACE_THREADS 2	/* internal to task-create.c */
int rst_task_wait_blob(struct rst_task *t, const struct rst_plan *plan);

/* blob-next.c: the blobs of the tree, taken in the order they report */
struct rst_blob_wait {
	bool *pending;			/* per process: still waited for */
	int64_t *eof_at;		/* when its error pipe closed (ms), or 0 */
	size_t left;
};
int rst_blob_wait_init(const struct rst_tree *tree, struct rst_blob_wait *w);
/* The index of the next process with something to report (no longer
 * pending then), -ENOENT when none is left */
int rst_blob_next(struct rst_tree *tree, struct rst_blob_wait *w);
void rst_blob_wait_free(struct rst_blob_wait *w);

/* child.c: runs in the new task, never returns */
_Noreturn void rst_child_main(struct rst_child *c);
int child_err(const struct rst_child *c, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* fds.c (child) */
int child_fds_prepare(struct rst_child *c);
int child_fds_move_high(struct rst_child *c, int *fd, bool keep);
int child_fds_room(struct rst_child *c, unsigned long room);
int child_fs_lock_open(struct rst_child *c);
int child_fds_restore(struct rst_child *c);
int child_file_lookup(const struct rst_child *c, uint32_t id);
int child_file_stash(struct rst_child *c, uint32_t id, int fd);
int child_file_get(struct rst_child *c, uint32_t id);
int child_fs_restore(struct rst_child *c);
int child_cwd_lock(struct rst_child *c);
void child_cwd_unlock(struct rst_child *c);

/* fd-share.c: files shared between processes (restore side, then child) */
int rst_share_plan(struct rst_tree *tree);
void rst_share_free(struct rst_tree *tree);
const struct rst_share_file *child_share_find(const struct rst_child *c, uint32_t id);
bool child_file_mine(const struct rst_child *c, uint32_t id);
size_t rst_share_count(const struct rst_share *s, int proc);
size_t child_share_count(const struct rst_child *c);
int child_share_prepare(struct rst_child *c);
int child_share_open_rest(struct rst_child *c, enum fd_stage stage);
int child_share_send(struct rst_child *c, enum fd_stage stage);
int child_share_wait(struct rst_child *c, const struct rst_fd *f);

/* premap.c, premap-cow.c (child, before it forks its own children) */
int child_premap(struct rst_child *c);
int child_premap_fill(struct rst_child *c);
int child_premap_inherit(struct rst_child *c);
int child_premap_drop(struct rst_child *c);
int child_fill_compare(struct rst_child *c, const struct rst_fill *f, uint64_t dst,
		       const char *file);
/* Where fill @f goes in the task, its VMA mapped (@vma: an index that only
 * grows, 0 for the first fill; the fills ascend). */
uint64_t rst_fill_at(const struct rst_plan *plan, size_t *vma, const struct rst_fill *f);

/* blob-setup.c (child) */
int child_blob_prepare(struct rst_child *c, struct restorer_args **args);
_Noreturn void child_blob_jump(const struct rst_plan *plan, struct restorer_args *args);

/* finalize.c */
int rst_finalize(const struct opts *o, const struct rst_images *ri,
		 const struct rst_plan *plan, struct rst_task *t);
int rst_detach(struct rst_task *t);

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
