/*
 * What inotify.c and fanotify.c share: the file handles of their marks.
 *
 * The kernel shows each mark on an inode in fdinfo with the inode's
 * number, its superblock (s_dev, the kernel's major << 20 | minor) and a
 * file handle ("fhandle-bytes:8 fhandle-type:1 f_handle:2a00...").  The
 * dump keeps the handle and, where the inode still has a name it can be
 * found by, that path; the restore opens the inode by its handle
 * (open_by_handle_at through a mount of the same superblock) or, failing
 * that, by the path, and puts the mark back through /proc/self/fd/N.
 */
#ifndef CRIU_LAZY_FILES_FSNOTIFY_H
#define CRIU_LAZY_FILES_FSNOTIFY_H

#include <stdint.h>

#include "fh.pb-c.h"

struct fd_probe;
struct rst_child;

/* A handle of the fdinfo text at @text ("fhandle-bytes:..."), into @fh,
 * whose handle[] is @words (FH_ENTRY_SIZES__min_entries of them). */
int fsn_parse_handle(const char *text, FhEntry *fh, uint64_t *words);

/*
 * A mark on a deleted file: kept only if the tree holds the file open too,
 * so that it is carried as a ghost file (dump/ghost.c); the restore then
 * puts the mark on the ghost.  Which is known once every task is dumped:
 * fsn_check_deleted() from the kind's dump_resolve().
 */
struct fsn_deleted {
	dev_t dev;
	ino_t ino;			/* 0: not deleted */
	int fd;
	pid_t pid;
	char what[48];
	char path[256];			/* the name it had, for the error line */
};

/* Dump: @fh opens (the mark's inode is alive); its path, when one leads to
 * the inode, goes to fh->path (malloc'ed).  @what names the mark for the
 * error line ("inotify watch 3").  A deleted file fills @del, and
 * fh->path gets the name it had. */
int fsn_dump_handle(const struct fd_probe *p, const char *what, uint32_t s_dev, uint64_t ino,
		    FhEntry *fh, struct fsn_deleted *del);
struct dump_ctx;
int fsn_check_deleted(struct dump_ctx *ctx, const struct fsn_deleted *del);

/* Restore, in the new task: an O_PATH descriptor of the marked inode, or
 * -errno after child_err(). */
int fsn_open_mark(struct rst_child *c, const char *what, uint32_t s_dev, uint64_t ino,
		  const FhEntry *fh);

/* The kernel's dev_t encoding of fdinfo's sdev: */
#define FSN_KDEV_MAJOR(d)	((unsigned int)((d) >> 20))
#define FSN_KDEV_MINOR(d)	((unsigned int)((d) & 0xfffff))

/* The bytes of events still queued on the group of fd @p (FIONREAD), 0 if
 * it cannot tell: CRIU drops them, so do we, with a warning. */
void fsn_warn_queued(const struct fd_probe *p, const char *kind);

#endif
