/*
 * One ops table per kind of file descriptor (regular file, terminal, pipe,
 * eventfd, ...), each kind in a file of its own under files/, all of them
 * listed once in kinds.c.  Adding a kind is a new file and one line there.
 *
 * Dump: for every descriptor, dump/files.c reads what /proc says about it
 * (struct fd_probe), asks the registry for the first kind whose match()
 * takes it and lets its dump() fill a file object (struct dump_file, one
 * per open file description, so dup'ed descriptors share one id).  A
 * descriptor no kind takes is refused by refused.c, naming the fd, the
 * task and what it is.  After every task, each kind's dump_write() writes
 * the images it keeps apart from files.img (pipes-data.img, ...).
 *
 * Restore: every file object of files.img is identified by its id; each
 * task opens an id once (open()) and dups it for every other descriptor of
 * the same id.  check() runs before any task exists, in the restore
 * process, so a missing path or a bad entry fails the restore before
 * anything is created; open() runs in the new task, in the order of
 * enum fd_stage.  Per-kind state shared by all tasks (pipe data read from
 * the images, ...) lives in rst_images.kind_state[kind index].
 *
 * Between processes: a file several processes of the tree hold (one open
 * file description inherited across fork) is made by one of them and
 * passed to the others (restore/fd-share.c); so is a group of files one
 * open() makes together (share_key()).  A kind needs nothing more for it.
 */
#ifndef CRIU_LAZY_FILES_FD_KIND_H
#define CRIU_LAZY_FILES_FD_KIND_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "fdinfo.pb-c.h"

struct dump_ctx;
struct dump_task;
struct dump_file;
struct opts;
struct rst_images;
struct rst_fd;
struct rst_child;
struct rst_tree;

/* What the dump knows about a descriptor before a kind takes it. */
struct fd_probe {
	struct dump_task *t;
	int fd;
	const char *link;		/* readlink of /proc/PID/fd/N */
	struct stat st;			/* stat through that link */
	const char *fdinfo;		/* the text of /proc/PID/fdinfo/N */
	unsigned int flags;		/* f_flags ("flags:", octal), with O_CLOEXEC */
	uint64_t pos;
	int mnt_id;			/* -1 when the kernel does not say */
};

/*
 * The order in which a task's descriptors are opened at restore.  A kind
 * that refers to other descriptors of the task (epoll watches them) comes
 * after the ones it refers to.
 */
enum fd_stage {
	FD_STAGE_OPEN,			/* standing alone, or created with its peers */
	FD_STAGE_CONNECT,		/* the connect() step of kinds that have one */
	FD_STAGE_AFTER_FILES,		/* needs the task's other descriptors in place */
	FD_STAGE_NR,
};

struct fd_kind_ops {
	const char *name;		/* for messages and the log */
	FdTypes type;			/* file_entry.type / fdinfo_entry.type */
	enum fd_stage stage;

	/* Dump.  match() must not fail: it decides from the probe alone. */
	bool (*match)(const struct dump_ctx *ctx, const struct fd_probe *p);
	int (*dump)(struct dump_ctx *ctx, const struct fd_probe *p, struct dump_file *f);
	/* Once per dump after every task, before files.img is written: what
	 * ties files together (a socket's peer), more file objects.  Optional. */
	int (*dump_resolve)(struct dump_ctx *ctx);
	/* Once per dump, once every image but the files' is written: what
	 * reads a file only by changing the tree (accepting a listener's
	 * waiting connections), so that no refusal or image of the dump can
	 * fail after it but files.img and the images dump_reserve() took
	 * the space of.  Optional. */
	int (*dump_accept)(struct dump_ctx *ctx);
	/* Once per dump after every task, before dump_accept: the kind's own
	 * images; again after it for a kind it brought files of (files in
	 * flight in the connections it read).  Optional. */
	int (*dump_write)(struct dump_ctx *ctx);
	/* Right before dump_accept: open the images that hold what it reads,
	 * with their space reserved (img_reserve()), and add to *@files_extra
	 * what files.img may grow by; 1 when dump_accept will read something,
	 * else 0.  Optional. */
	int (*dump_reserve)(struct dump_ctx *ctx, uint64_t *files_extra);
	/* After dump_accept and files.img: the images dump_reserve() opened
	 * (written whether it opened them or not).  Optional. */
	int (*dump_write_late)(struct dump_ctx *ctx);
	/* Right before the tree is let go (killed, or resumed when @resume):
	 * what dump() changed in the task's file goes back (a TCP connection
	 * leaves repair mode).  Optional. */
	int (*dump_release)(struct dump_ctx *ctx, struct dump_file *f, bool resume);
	/* Frees what dump() hung on f (f->priv, payloads).  Optional. */
	void (*dump_free)(struct dump_file *f);

	/* Restore.  rst_match() picks among kinds sharing a type.  Optional. */
	bool (*rst_match)(const struct rst_images *ri, const FileEntry *fe);
	int (*check)(const struct opts *o, struct rst_images *ri, struct rst_fd *f);
	/* In the new task: a new descriptor (any number) for f's file, or -errno
	 * after child_err(). */
	int (*open)(struct rst_child *c, const struct rst_fd *f);
	/* In FD_STAGE_CONNECT, once per file, every fd of the task open (a
	 * socket connects to a peer that exists by now): @fd is its fd.
	 * Optional. */
	int (*connect)(struct rst_child *c, const struct rst_fd *f, int fd);
	/*
	 * Files made together by one open() (both ends of a pipe, a socketpair,
	 * a listener and its connections) return one key: when processes of
	 * the tree hold files of one key, one of them makes them all and hands
	 * each to the others (restore/fd-share.c).  Optional: without it a
	 * file is a group of its own, shared only as one open file description.
	 */
	uint64_t (*share_key)(const struct rst_images *ri, const FileEntry *fe);
	/* The files in flight that making @fe passes again (SCM_RIGHTS in the
	 * queue it refills), or that it needs otherwise (an epoll's watch on a
	 * fd the task closed since), each given to @fn: the process that makes
	 * @fe holds them too (restore/fd-share-plan.c).  Optional. */
	int (*in_flight)(const struct rst_images *ri, const FileEntry *fe,
			 int (*fn)(void *arg, uint32_t id), void *arg);
	/* In the restore process, every task complete and still stopped,
	 * right before they resume (a TCP connection leaves repair mode).
	 * Optional. */
	int (*rst_finish)(struct rst_tree *tree);
	/* Frees rst_images.kind_state[] of the kind.  Optional. */
	void (*rst_free)(void *state);

	bool needs_our_tty;		/* open() uses rst_child.tty_fd */
	/* open() may run in the owner before it forks: the processes it forks
	 * then hold the very same object, inherited (fd-share.c) */
	bool by_fork;
};

/* kinds.c: the registry */
extern const struct fd_kind_ops *const fd_kinds[];
extern const unsigned int fd_kinds_nr;
#define FD_KINDS_MAX 32

const struct fd_kind_ops *fd_kind_for_dump(const struct dump_ctx *ctx, const struct fd_probe *p);
const struct fd_kind_ops *fd_kind_for_restore(const struct rst_images *ri, const FileEntry *fe);
unsigned int fd_kind_index(const struct fd_kind_ops *ops);
/* "a pipe", "an eventfd": what a file_entry type is, for messages */
const char *fd_type_name(int type);

/* refused.c: the one error line for a descriptor no kind takes */
int fd_refuse(const struct dump_ctx *ctx, const struct fd_probe *p);

/* The kinds (one file each) */
extern const struct fd_kind_ops fd_kind_pty;
extern const struct fd_kind_ops fd_kind_tty;
extern const struct fd_kind_ops fd_kind_tty_criu;
extern const struct fd_kind_ops fd_kind_reg;
extern const struct fd_kind_ops fd_kind_pipe;
extern const struct fd_kind_ops fd_kind_fifo;
extern const struct fd_kind_ops fd_kind_eventfd;
extern const struct fd_kind_ops fd_kind_signalfd;
extern const struct fd_kind_ops fd_kind_timerfd;
extern const struct fd_kind_ops fd_kind_unix;
extern const struct fd_kind_ops fd_kind_epoll;
extern const struct fd_kind_ops fd_kind_pidfd;
extern const struct fd_kind_ops fd_kind_memfd;
extern const struct fd_kind_ops fd_kind_inet;
extern const struct fd_kind_ops fd_kind_netlink;
extern const struct fd_kind_ops fd_kind_inotify;
extern const struct fd_kind_ops fd_kind_fanotify;

#endif
