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
 *
 * This header has the types; the functions are declared by subject in
 * images.h, files.h, plan.h, shmem.h, tree.h, child.h and threads.h.
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
#include "restore/cpu-pin.h"

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
	bool inherits;			/* a VMA comes from the parent's premap: forked
					 * only after it (else at the parent's start) */
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
	/* lazy: a SOCK_SEQPACKET pair on which the blob sends its uffd
	 * (pie/uffd.c): the restore's end, the task's end (-1: eager) */
	int uffd_rx;
	int uffd_tx;
};

/* A file held by a process other than the one that creates it (fd-share.c). */
struct rst_share_file {
	uint32_t id;
	int owner;			/* the process that creates it (index) */
	int *holders;			/* the other processes that hold it */
	size_t nr_holders;
	struct rst_fd fd;		/* one holder's fd of it (kind, number) */
	bool *by_fork;			/* per holder: a descendant of the owner, which
					 * inherits it (fd-share.c); NULL: none does */
	int early_fd;			/* where the owner opened it before its first
					 * fork (in the owner and those it forks), or -1 */
};

/* A task's helper fds (the error pipe, the log...) go from here up at least,
 * above its own fds (fds.c). */
#define RST_HELPER_BASE_MIN	64

/* The files shared between processes, and how they travel. */
struct rst_share {
	struct rst_share_file *files;	/* ascending id */
	size_t nr;
	int *sk;			/* per process: the socket it receives on, or -1 */
	struct sockaddr_un *addr;	/* its name (autobound, abstract) */
	socklen_t *addr_len;
	pid_t *pids;			/* per process: its pid in the images */
	int early_base;			/* the fds opened before the forks go from here
					 * up: above every fd of every process */
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
	bool go_sent;			/* told to rebuild itself ('r') */
	bool finalized;			/* its last steps done (stages.c) */
	struct rst_images ri;		/* ALIVE only */
	struct rst_plan plan;		/* ALIVE only */
	struct rst_task t;
	struct rst_pin pin;		/* its affinity while on our CPU (cpu-pin.c) */
};

/* Our credentials as every thread has them until its blob sets its own
 * (attrs/creds-ours.c); more groups than these: not known. */
#define RST_OURS_GROUPS_MAX	64
struct rst_creds_ours {
	bool known;
	uint32_t uid[4], gid[4];	/* real, effective, saved, fs */
	uint32_t cap_inh[2], cap_prm[2], cap_eff[2], cap_bnd[2], cap_amb[2];
	uint32_t secbits;
	bool no_new_privs;
	size_t nr_groups;
	uint32_t groups[RST_OURS_GROUPS_MAX];
};

/* What every task inherits from us (attrs/proc-knobs.c): a task or thread
 * sets only what differs from its dumped value. */
struct rst_knobs {
	struct rst_creds_ours creds;	/* attrs/creds-ours.c */
	bool sched_known;		/* attrs/sched.c */
	int sched_policy, sched_prio, sched_nice;
	bool oom_known;
	int oom_score_adj;
	bool loginuid_known;
	bool loginuid_absent;		/* a kernel without audit */
	uint32_t loginuid;
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
	bool early_go;			/* each rebuilds itself once ready (tree.c) */
	/* test only (CRIU_LAZY_TEST_DELAY_CREATED_MS): a parent's EV_CREATED
	 * that late after its clone (tree.c; 0: at once) */
	uint32_t test_delay_created_ms;
	/* test only (CRIU_LAZY_TEST_DELAY_FINALIZE_MS): a wait after each
	 * process's last steps, failed or not, and before the pidfile
	 * (stages.c; 0: none) */
	uint32_t test_delay_finalize_ms;
	uint64_t t_start, fork_us, pages_filled;
	/* our signal actions as the tasks inherit them (attrs/sigactions.c):
	 * [sig], 1..64; !sa_known: not read, every action is set */
	struct rst_ksigaction sa_inherited[65];
	bool sa_known;
	struct rst_knobs knobs;		/* ours, as the tasks inherit them */
	/* from the first blob's end to the resume: our own affinity, and the
	 * one CPU we and the finished processes share (cpu-pin.c) */
	struct rst_pin pin_self;
	int pin_cpu;
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
	int uffd_tx;			/* lazy: where the blob sends its uffd, or -1 */
	const struct rst_ksigaction *sa_inherited;	/* from us, or NULL: unknown */
	const struct rst_knobs *knobs;			/* from us */
};

/* tasks -> restore process, on the tree's event pipe (written whole) */
enum { EV_CREATED = 1, EV_READY, EV_GROUP, EV_FDT_APART, EV_FDT_DONE };

struct rst_event {
	int32_t idx;		/* the process the event is about */
	int32_t kind;
	int32_t pid;		/* EV_CREATED: its pid here */
};

/* The highest fd number @ri's restore uses: its own fds, and the one its
 * kinds take for a moment (fd_max_extra); -1 for none. */
static inline int rst_fd_top(const struct rst_images *ri)
{
	int top = ri->fd_max_extra;

	for (size_t i = 0; i < ri->nr_fds; i++)
		if (ri->fds[i].fd > top)
			top = ri->fds[i].fd;
	return top;
}

/* The images that hold @ri's descriptors: its own, or its table's owner's. */
static inline const struct rst_images *rst_fdt_images(const struct rst_images *ri)
{
	return ri->fdt_owner ? ri->fdt_owner : ri;
}

#endif
