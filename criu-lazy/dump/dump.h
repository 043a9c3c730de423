/*
 * Private to dump/: the state one dump run collects, and the steps that
 * collect and write it.
 *
 * A run is a struct dump_ctx (directory, options, the file objects shared
 * by all tasks, counters, the tree: ctx->tasks, parents first) and one
 * struct dump_task per process of the tree (seize-tree.c).  Every step
 * takes the task it works on; the tables that must be unique across the
 * tree (file ids, namespace ids, pages file numbers, shared memory
 * objects written) live in the context.
 *
 * Each step fills protobuf messages that live inside the task (struct
 * task_core, struct task_mm, ...), so writing an image is only packing what
 * is there.  Errors follow the project rule: the function that detects one
 * logs it once and returns a negative errno; the others only propagate.
 * When a task disappears under us, dump_task_error() turns whatever failed into
 * the one line "task N exited during dump".
 */
#ifndef CRIU_LAZY_DUMP_DUMP_H
#define CRIU_LAZY_DUMP_DUMP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/user.h>

#include "common/proc-maps.h"
#include "common/proc-stat.h"
#include "common/proc-status.h"
#include "files/net-lock.h"
#include "images/image.h"
#include "images/pagemap.h"
#include "options.h"
#include "pageserver/ps-server.h"
#include "pageserver/ps-store.h"

#include "core.pb-c.h"
#include "fdinfo.pb-c.h"
#include "fs.pb-c.h"
#include "mm.pb-c.h"
#include "regfile.pb-c.h"

#define TASK_STATE_ALIVE	1
#define TASK_STATE_DEAD		2	/* a zombie */
#define TASK_STATE_STOPPED	3

#define DUMP_NR_SIGACTIONS	62	/* 1..64 without SIGKILL and SIGSTOP */
#define DUMP_NR_RLIMITS		16
#define DUMP_NR_TLS		3	/* GDT TLS slots 12..14 */
#define DUMP_TLS_FIRST		12
#define DUMP_AUXV_MAX		128	/* words; the kernel has at most ~50 */

/* core-PID.img: the messages and the storage of their arrays. */
struct task_core {
	CoreEntry core;
	ThreadInfoX86 ti;
	UserX86RegsEntry gpregs;
	UserX86FpregsEntry fpregs;
	UserX86XsaveEntry xsave;
	uint32_t st_space[32], xmm_space[64], ymmh[64], pkru[2];
	uint64_t bndreg[8], bndcsr[8], opmask[8], zmm_upper[64], hi16_zmm[128];
	UserDescT tls[DUMP_NR_TLS];
	UserDescT *tls_p[DUMP_NR_TLS];

	TaskCoreEntry tc;
	TaskTimersEntry timers;
	ItimerEntry itimers[3];
	PosixTimerEntry *posix;			/* malloc'ed, nr_posix of them */
	PosixTimerEntry **posix_p;
	size_t nr_posix;
	TaskRlimitsEntry rlimits;
	RlimitEntry rlim[DUMP_NR_RLIMITS];
	RlimitEntry *rlim_p[DUMP_NR_RLIMITS];
	SaEntry sa[DUMP_NR_SIGACTIONS];
	SaEntry *sa_p[DUMP_NR_SIGACTIONS];
	SignalQueueEntry signals_s, signals_p;	/* entries malloc'ed */
	char comm[32];

	ThreadCoreEntry thread;
	ThreadSasEntry sas;
	RseqEntry rseq;
	CredsEntry creds;
	uint32_t cap_inh[2], cap_prm[2], cap_eff[2], cap_bnd[2], cap_amb[2];
	uint32_t *groups;			/* malloc'ed */
};

/* mm-PID.img, and what the page dumper needs to know per VMA. */
struct task_mm {
	MmEntry mm;
	uint64_t auxv[DUMP_AUXV_MAX];
	VmaEntry *vmas;				/* one per proc_vma of the task */
	VmaEntry **vmas_p;
	bool *uffd_missing;			/* registered with a userfaultfd */
	size_t nr_vmas;
	VmaEntry *guards;			/* guard regions (guards.c), ascending */
	size_t nr_guards, cap_guards;
};

/* One open descriptor of a task: fdinfo-<files_id>.img. */
struct dump_fd {
	FdinfoEntry fdi;
};

/*
 * One thread of a task (threads.c): threads[0] is the leader, whose freeze
 * state and core are the task's own (copied or pointed to here); the
 * others are frozen by threads.c and have a core-<vtid>.img of their own
 * without task_core_entry.
 */
struct dump_thread {
	pid_t tid;			/* here: /proc, ptrace */
	pid_t vtid;			/* as the task sees it = in the images */
	bool seized;
	bool exited;			/* seen gone after it was frozen */
	bool regs_valid;
	struct user_regs_struct regs;	/* as found: put back when released */
	struct task_core *core;
};

struct dump_task {
	pid_t pid;			/* here: /proc, ptrace, process_vm_readv */
	pid_t vpid;			/* as it sees itself = in the images (pidns.c) */
	bool in_pidns;			/* in a pid namespace below ours (pidns.c) */
	pid_t ppid, pgid, sid;		/* as it sees them */
	int state;			/* TASK_STATE_* */
	int stop_signo;			/* group-stop signal when state is STOPPED */
	struct dump_task *parent;	/* NULL for the root */
	bool zombie;			/* not seized: pstree entry and exit code only */
	bool shares_files;		/* its parent's descriptor table (CLONE_FILES):
					 * no fds of its own, its parent's files_id */
	int exit_code;			/* a zombie's, in wait() encoding */

	bool self;			/* not a task: the dump process itself, holding
					 * files in flight (dump_file_in_flight()) */
	struct dump_task *owner;	/* self: the task whose socket carries them
					 * (its cwd names a relative socket name) */
	bool seized;
	bool may_vanish;		/* being seized as a child: an exit is no error */
	bool exited;			/* seen gone; its one error line is out */
	bool regs_valid;
	struct user_regs_struct regs;	/* as found: put back when released */
	unsigned long syscall_ip;	/* a `syscall` in its vdso, for injection */
	unsigned long scratch;		/* our scratch page inside it, 0 if none */

	struct dump_thread *threads;	/* [0] the leader */
	size_t nr_threads, cap_threads;

	struct proc_vma *maps;		/* /proc/PID/maps before the scratch page */
	size_t nr_maps;

	struct task_core *core;
	struct task_mm mm;
	TaskKobjIdsEntry ids;
	FsEntry fs;
	struct dump_fd *fds;
	size_t nr_fds;

	/* --lazy-pages: the lazy runs, not written, served from the task */
	struct ps_run *lazy_runs;
	size_t nr_lazy_runs, cap_lazy_runs;
};

/* A file object of files.img.  Path-based ones (mapped files, the exe,
 * cwd, root) are shared by every user of the same dev/ino; fd ones are one
 * per open file description. */
struct dump_file {
	const struct fd_kind_ops *ops;	/* its kind (files/fd-kind.h) */
	FileEntry fe;
	RegFileEntry reg;		/* REG kinds: fe.reg points here */
	FownEntry fown;
	dev_t dev;
	ino_t ino;
	bool by_path;
	void *priv;			/* the kind's own (payloads, data) */
};

struct dump_files {
	struct dump_file **v;
	size_t nr, cap;
	uint32_t next_id;
};

/* Namespace inode -> small id, shared by every task and inventory.root_ids */
struct dump_ns_ids {
	struct { uint64_t ino; uint32_t id; } *v;
	size_t nr, cap;
	uint32_t next_id;
};

struct dump_stats {
	uint64_t t_start, t_frozen, t_released;	/* µs, CLOCK_MONOTONIC */
	uint64_t memdump_us, memwrite_us;
	uint64_t pages_scanned, pages_written, pages_lazy;
	uint64_t shpages_scanned, shpages_written;
};

struct fd_kind_ops;

/* Socket inode -> kind, from sock_diag (loaded on first use). */
struct sock_diag_cache;
/* Locks held by the tree (file-locks.c). */
struct dump_locks;
/* The tree's ptys (files/pty-dump.c). */
struct pty_dump;

struct dump_ctx {
	struct opts *o;
	int dirfd;
	struct dump_task *root;		/* = tasks[0] */
	struct dump_task **tasks;	/* the tree, parents before children */
	size_t nr_tasks, cap_tasks;
	uint32_t next_kobj_id;		/* vm/files/fs/sighand ids of ids-PID.img */
	uint64_t *shmids_done;		/* shared memory objects already written */
	size_t nr_shmids_done;
	uint64_t *sysv_shmids;		/* SysV segments written (ipc-ns.c) */
	size_t nr_sysv_shmids;

	struct dump_files files;
	struct dump_ns_ids ns;
	TaskKobjIdsEntry root_ids;	/* our own: inventory.root_ids */
	bool root_ids_done;
	uint32_t next_pages_id;		/* pages-N.img numbering, from 1 */
	uint64_t zero_pfn;		/* PFN of the kernel's zero page, 0 unknown */
	uint64_t uffd_zero_pfn;		/* the one UFFDIO_ZEROPAGE maps (pages-uffd.c) */
	bool uffd_zero_tried;
	bool no_pagemap_scan;		/* PAGEMAP_SCAN refused: read whole pagemaps */
	bool no_scan_guard;		/* PAGEMAP_SCAN knows no PAGE_IS_GUARD */
	struct sock_diag_cache *sk;
	struct dump_locks *locks;
	struct pty_dump *pty;
	char run_id[40];		/* inventory.dump_criu_run_id (a UUID) */
	struct net_lock netlock;	/* --network-lock of TCP connections */
	/* the tree's own netns (net/netns-dump.c): -1 when it is ours; its
	 * firewall as saved before anything of ours locked it (memfds, -1:
	 * none) */
	int netns_fd, own_netns_fd;
	int netns_fw[3];

	/* the images written after the accepts (dump_reserve_files), open
	 * with their space reserved before them; NULL: not opened yet */
	struct cr_img *files_img, *sk_queues_img;
	size_t files_before_accept;	/* ctx->files.nr then: later ones came in flight */

	char (*written)[IMG_NAME_MAX];	/* every image created: removed on failure */
	size_t nr_written, cap_written;

	struct dump_stats st;
	struct dump_seccomp *seccomp;	/* every seccomp filter of the tree (attrs/seccomp.c) */

	/* --lazy-pages (lazy-migrate.c) */
	struct ps_server srv;
	struct ps_store *lazy_store;
	bool lazy_failed;		/* the transfer failed: srv.why or a signal */
	char *lost;			/* what the tree lost, for that report (unix-backlog.c) */
	bool failed;			/* set when the tree is let go: the dump failed */
};

/* dump.c */
int dump_img_open(struct dump_ctx *ctx, enum img_type type, unsigned long id, struct cr_img **out);
/* A raw image (no magic, another tool's bytes) created in the images dir
 * and removed again if the dump fails: its fd, or -errno logged. */
int dump_raw_open(struct dump_ctx *ctx, const char *name);
int dump_img_write_one(struct dump_ctx *ctx, enum img_type type, unsigned long id,
		       const ProtobufCMessage *msg);
int dump_pagemap_open(struct dump_ctx *ctx, enum img_type type, unsigned long id,
		      struct pagemap_writer **out);

/* seize.c: freezing, checks, letting go */
int dump_seize(struct dump_task *t);
/* Test only: waits that make the races of a freeze happen every time
 * (criu-lazy.8): between listing what is to be seized (a frozen task's
 * children, a task's threads) and the seizes (CRIU_LAZY_TEST_DELAY_SEIZE_MS),
 * and between a task's or thread's seize and its interrupt
 * (CRIU_LAZY_TEST_DELAY_INTERRUPT_MS). */
enum dump_test_delay { DUMP_DELAY_SEIZE, DUMP_DELAY_INTERRUPT, DUMP_NR_DELAYS };
void dump_test_delay(enum dump_test_delay which);
int dump_check_task(struct dump_ctx *ctx, struct dump_task *t);
enum task_release_mode { RELEASE_KILL, RELEASE_RUN, RELEASE_STOP };
void dump_release(struct dump_task *t, enum task_release_mode mode);
bool dump_task_exited(struct dump_task *t);
bool dump_task_is_zombie(pid_t pid);
int dump_task_error(struct dump_task *t, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Once @tid is seized and interrupted: its interrupt stop (signals that come
 * first passed on, a group-stop left for the pending trap) and its
 * registers.  0 with *stop_sig SIGTRAP if it was running, else the signal
 * of its group-stop; DUMP_FREEZE_EXITED if it exited meanwhile; else a
 * negative errno, logged, naming it as @who. */
#define DUMP_FREEZE_EXITED	1
int dump_freeze_stop(pid_t tid, const char *who, int *stop_sig, struct user_regs_struct *regs);

/* threads.c: every thread frozen, its own state, its core image, let go */
int dump_seize_threads(struct dump_task *t);
int dump_check_threads(struct dump_task *t);
int dump_threads_collect(struct dump_ctx *ctx, struct dump_task *t, int attr_stage);
int dump_write_thread_cores(struct dump_ctx *ctx, struct dump_task *t);
void dump_release_threads(struct dump_task *t, enum task_release_mode mode);
void dump_threads_free(struct dump_task *t);

/* seize-tree.c, tree-check.c, zombie.c: the tree */
int dump_seize_tree(struct dump_ctx *ctx);
int dump_check_tree(struct dump_ctx *ctx);
void dump_release_tree(struct dump_ctx *ctx, enum task_release_mode mode);
void dump_tree_free(struct dump_ctx *ctx);
int dump_zombie(struct dump_ctx *ctx, struct dump_task *t);

/* remote.c: syscalls executed inside the task, its scratch page */
int dump_remote_syscall(struct dump_task *t, long nr, const unsigned long args[6], long *res);
int dump_remote_call(struct dump_task *t, const char *what, long nr, unsigned long a0,
		     unsigned long a1, unsigned long a2, unsigned long a3, long *res);
int dump_remote_read(struct dump_task *t, unsigned long addr, void *buf, size_t len);
int dump_remote_prctl_int(struct dump_task *t, const char *what, int op, int *val);
int dump_scratch_map(struct dump_task *t);
int dump_scratch_unmap(struct dump_task *t);

/* pidns.c: the pids of the images (t->vpid, and sid/pgid of a namespace init) */
int dump_pid_ns(struct dump_task *t, const char *status, bool root);

/* proc.c: small /proc files of the task */
int dump_proc_read(struct dump_task *t, const char *name, char *buf, size_t size);
int dump_proc_stat(struct dump_task *t, struct proc_stat *st);
int dump_proc_ulong(struct dump_task *t, const char *name, int base, unsigned long *val,
		    bool optional);

/* regs.c */
int dump_regs(struct dump_task *t);

/* mm.c */
int dump_mm(struct dump_ctx *ctx, struct dump_task *t);
/* guards.c: the guard regions of t's VMAs (before its pages) */
int dump_guards(struct dump_ctx *ctx, struct dump_task *t);
bool dump_guard_at(const struct task_mm *mm, uint64_t addr, uint64_t *end);
int dump_write_mm(struct dump_ctx *ctx, struct dump_task *t);
void dump_mm_free(struct task_mm *mm);

/* lazy-migrate.c: dump --lazy-pages serves the lazy pages from the task */
int dump_lazy_listen(struct dump_ctx *ctx);
int dump_lazy_add_run(struct dump_task *t, uint64_t vaddr, uint64_t nr_pages);
int dump_lazy_serve(struct dump_ctx *ctx);
enum task_release_mode dump_lazy_failed_mode(const struct dump_ctx *ctx);
void dump_lazy_report(struct dump_ctx *ctx, enum task_release_mode mode);
void dump_lazy_fini(struct dump_ctx *ctx);

/* pages.c, shmem.c */
int dump_find_zero_pfn(struct dump_ctx *ctx);
/* pages-uffd.c: a VMA registered with a userfaultfd (a task restored lazily):
 * every page read, so the daemon answers for the missing ones, and the PFN
 * of the zero page it maps for the holes (0 unknown) */
int dump_uffd_touch(struct dump_task *t, uint64_t start, uint64_t end, uint8_t *buf,
		    size_t size);
uint64_t dump_uffd_zero_pfn(struct dump_ctx *ctx);
int dump_pages(struct dump_ctx *ctx, struct dump_task *t);
int dump_shmem(struct dump_ctx *ctx, struct dump_task *t);
/* ipc-ns.c, ipc-msg-sem.c: the tree's own IPC namespace */
bool dump_ipc_ns_own(const struct dump_ctx *ctx);
int dump_ipc_ns_check(struct dump_ctx *ctx);
int dump_ipc_ns(struct dump_ctx *ctx);
int dump_ipc_msg_sem(struct dump_ctx *ctx, uint32_t ns_id);
struct ipc_perm;
struct IpcDescEntry;
/* an object's ipc_desc_entry from what its IPC_STAT says of it */
void dump_ipc_desc(struct IpcDescEntry *d, int id, const struct ipc_perm *p);
/* One kind of SysV object (queues, sets, segments), walked slot by slot */
struct dump_ipc_kind {
	const char *what;		/* plural: "SysV message queues" */
	const char *info_call;		/* "msgctl(MSG_INFO)", for its error */
	enum img_type img;
	/* @info from *ctl(*_INFO), *@nr the objects in use: the highest slot
	 * in use, or -1 with errno */
	int (*info)(void *info, int *nr);
	/* slot @idx into @ds and @d: the object's id, -ENOENT for a free slot
	 * or -errno (logged) */
	int (*stat)(int idx, void *ds, struct IpcDescEntry *d);
	/* the object's entry (with @d) and data into @img */
	int (*dump)(struct dump_ctx *ctx, struct cr_img *img, const void *info,
		    const void *ds, struct IpcDescEntry *d);
};
/* a failed *ctl(*_STAT) of slot @idx: -ENOENT for a free slot (EINVAL),
 * else -errno, logged */
int dump_ipc_stat_failed(const char *call, int idx);
/* Every object of @k in the IPC namespace we are in, into its image (made at
 * the first one), checked against the count its *_INFO gives */
int dump_ipc_objects(struct dump_ctx *ctx, uint32_t ns_id, const struct dump_ipc_kind *k);
/* The data of a shmem object open as @fd (a memfd): pagemap-shmem-<shmid>.img */
int dump_shmem_write_fd(struct dump_ctx *ctx, int fd, uint64_t shmid, uint64_t size);
/* A userfaultfd-registered shared VMA (a lazy restore's): its pages filled first */
int dump_shmem_fault_in(struct dump_task *t, const VmaEntry *v);

/* files.c */
int dump_file_by_path(struct dump_ctx *ctx, struct dump_task *t, const char *link,
		      const char *what, int open_flags, uint32_t *id);
int dump_fds(struct dump_ctx *ctx, struct dump_task *t);
int dump_fown(struct dump_task *t, int fd, FownEntry *fown);
int dump_file_reg_init(struct dump_file *f, const struct stat *st, const char *name);
struct dump_file *dump_file_find(struct dump_ctx *ctx, uint32_t id);
struct dump_file *dump_file_add_reg(struct dump_ctx *ctx, const struct stat *st, const char *name);
/* A file object of @ops's kind that no descriptor of the task holds (an
 * external peer); its id is the next one. */
struct dump_file *dump_file_add(struct dump_ctx *ctx, const struct fd_kind_ops *ops,
				const struct stat *st);
/* A file in flight we received as @fd, in a queue of @owner's: a new file
 * object of its kind. */
int dump_file_in_flight(struct dump_ctx *ctx, int fd, struct dump_task *owner, const char *what,
			struct dump_file **out);
int dump_fs(struct dump_ctx *ctx, struct dump_task *t, const char *status);
int dump_resolve_files(struct dump_ctx *ctx);
/* each kind's own images, before the accepts */
int dump_write_kinds(struct dump_ctx *ctx);
/* files.img and what the accepts fill opened, their space reserved */
int dump_reserve_files(struct dump_ctx *ctx);
int dump_accept_files(struct dump_ctx *ctx);
/* after the accepts: files.img, the late images, the kinds' images again
 * for the files the accepts brought */
int dump_write_files(struct dump_ctx *ctx);
/* Before the tree is let go: each kind's dump_release(); @resume: the tasks
 * run on (-R or a failed dump).  The first error. */
int dump_files_release(struct dump_ctx *ctx, bool resume);
int dump_write_fdinfo(struct dump_ctx *ctx, struct dump_task *t);
int dump_write_fs(struct dump_ctx *ctx, struct dump_task *t);
void dump_files_free(struct dump_files *files);

/* file-locks.c: the locks of a descriptor (its fdinfo), filelocks.img */
struct fd_probe;
int dump_fd_locks(struct dump_ctx *ctx, const struct fd_probe *p, uint32_t file_id);
int dump_file_locks_write(struct dump_ctx *ctx);
void dump_file_locks_free(struct dump_ctx *ctx);
/*
 * f->priv of a REG file object whose name leads nowhere at the dump: a
 * ghost (ghost.c: a deleted file, carried in ghost-file-<id>.img) or a
 * link (link-remap.c: a file whose name is gone but that still has other
 * links, given one more, "link_remap.<id>", with --link-remap).
 */
struct reg_remap {
	int type;			/* REMAP_TYPE__GHOST or REMAP_TYPE__LINKED */
	uint32_t remap_id;		/* the ghost's number, or the link's file id */
	int fd;				/* LINKED: O_PATH of the file until linked, or -1 */
	char *link;			/* LINKED: the link's name */
	bool made;			/* LINKED: the link exists (ours to remove) */
};

/* ghost.c: deleted files the tree holds (ghost-file-N.img) */
void dump_ghost_strip(char *name);
/* @f (a REG file object, reg.name the link) is a deleted file: strip the
 * name, write its ghost unless another object's has it; @proc_path reads it. */
int dump_ghost(struct dump_ctx *ctx, struct dump_file *f, const char *proc_path,
	       const struct stat *st, const char *what);
/* link-remap.c: files whose name is gone while they have other links */
/* @name (a /proc link) names a file that still has links but not by it. */
bool dump_name_gone(const char *name, const struct stat *st);
/* @f is such a file: refused without --link-remap, else its link object
 * is made (the link itself when the images are written). */
int dump_link_remap(struct dump_ctx *ctx, struct dump_file *f, const char *proc_path,
		    const struct stat *st, const char *what);
/* remap-fpath.img (ghosts and links), the links made first */
int dump_remaps_write(struct dump_ctx *ctx);
/* A link goes again when the dump failed or the tree runs on (CRIU) */
int dump_remap_release(struct dump_ctx *ctx, struct dump_file *f, bool resume);
void dump_remap_free(struct dump_file *f);

/* files/memfd.c: the file object of a mapped memfd (/proc/PID/@link), one
 * per inode for every mapping of it */
int dump_memfd_vma(struct dump_ctx *ctx, struct dump_task *t, const char *link,
		   const char *what, int open_flags, uint32_t *id);

/* sockets.c */
int dump_sock_describe(struct dump_ctx *ctx, struct dump_task *t, int fd, uint64_t ino,
		       char *buf, size_t size);
void dump_sock_diag_free(struct sock_diag_cache *sk);

/* ids.c: ids, pstree, inventory, stats */
int dump_ids(struct dump_ctx *ctx, struct dump_task *t);
void dump_root_ids(struct dump_ctx *ctx);
int dump_write_ids(struct dump_ctx *ctx, struct dump_task *t);
int dump_write_inventory(struct dump_ctx *ctx);
int dump_write_pstree(struct dump_ctx *ctx);
int dump_write_stats(struct dump_ctx *ctx);

/* attrs/seccomp.c: seccomp.img, once for the tree */
int dump_seccomp_write(struct dump_ctx *ctx);
void dump_seccomp_free(struct dump_ctx *ctx);

/* core.c; the task attributes that fill it are in criu-lazy/attrs/ */
struct task_core *dump_core_alloc(void);
int dump_core_basics(struct dump_task *t);
void dump_core_free(struct task_core *c);
int dump_write_core(struct dump_ctx *ctx, struct dump_task *t);

#endif
