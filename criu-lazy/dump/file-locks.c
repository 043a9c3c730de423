/*
 * File locks (filelocks.img, CRIU's file_lock_entry): flock(2), POSIX
 * (fcntl F_SETLK) and OFD (F_OFD_SETLK) locks held by the tasks of the
 * tree, with --file-locks; without it a held lock fails the dump with a
 * line naming the descriptor and the flag.
 *
 * The kernel shows a descriptor's locks in its fdinfo ("lock:\t1: POSIX
 * ADVISORY  WRITE 4711 fd:00:1234 0 EOF"): the locks on its inode taken
 * through its open file description, by the task itself (POSIX) or by the
 * description (flock and OFD locks belong to it, wherever it is open).
 * So each lock shows at every descriptor of its open file description:
 * it is written once, for the first of them (pid and fd of that entry).
 * A flock or OFD lock held through a description other processes of the
 * tree share is written once too: they hold one file object, made once
 * at restore.  Should they ever hold two for one description (the
 * restore would open the file twice, and the second lock would conflict
 * with the first), the lock is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/array.h"
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"

#include "file-lock.pb-c.h"

#define FL_POSIX	1
#define FL_FLOCK	2
#define FL_OFD		4

struct dump_lock {
	FileLockEntry e;
	uint32_t file_id;
	pid_t real_pid;			/* for kcmp */
};

struct dump_locks {
	struct dump_lock *v;
	size_t nr, cap;
};

static const char *lock_name(uint32_t flag, uint32_t type)
{
	static const char *const names[][2] = {
		{ "POSIX read lock", "POSIX write lock" },
		{ "flock shared lock", "flock exclusive lock" },
		{ "OFD read lock", "OFD write lock" },
	};
	int k = flag == FL_POSIX ? 0 : flag == FL_FLOCK ? 1 : 2;

	return names[k][type == F_WRLCK];
}

/* One "lock:" line into @e; -EOPNOTSUPP for a lease or anything else. */
static int parse_lock(const struct fd_probe *p, const char *line, FileLockEntry *e)
{
	char kind[16], type[16], end[32];
	long long start;
	int pid;

	file_lock_entry__init(e);
	if (sscanf(line, "lock:\t%*d: %15s %*s %15s %d %*s %lld %31s", kind, type, &pid, &start,
		   end) != 5) {
		pr_err("fd %d of task %d (%s): cannot parse the fdinfo line '%.80s'", p->fd,
		       p->t->pid, p->link, line);
		return -EIO;
	}
	if (!strcmp(kind, "POSIX"))
		e->flag = FL_POSIX;
	else if (!strcmp(kind, "FLOCK"))
		e->flag = FL_FLOCK;
	else if (!strcmp(kind, "OFDLCK"))
		e->flag = FL_OFD;
	else {
		pr_err("fd %d of task %d (%s) holds a %s: file leases and delegations are not supported",
		       p->fd, p->t->pid, p->link, kind);
		return -EOPNOTSUPP;
	}
	if (strcmp(type, "READ") && strcmp(type, "WRITE")) {
		pr_err("fd %d of task %d (%s): a %s lock of type %s: not supported", p->fd,
		       p->t->pid, p->link, kind, type);
		return -EOPNOTSUPP;
	}
	e->type = !strcmp(type, "WRITE") ? F_WRLCK : F_RDLCK;
	e->start = start;
	e->len = !strcmp(end, "EOF") ? 0 : atoll(end) - start + 1;
	e->pid = p->t->vpid;
	e->fd = p->fd;
	return 0;
}

static bool same_lock(const FileLockEntry *a, const FileLockEntry *b)
{
	return a->flag == b->flag && a->type == b->type && a->start == b->start &&
	       a->len == b->len;
}

/* Is @e (fd @p, file @file_id) a lock already written?  -errno to refuse. */
static int known_lock(struct dump_locks *l, const struct fd_probe *p, uint32_t file_id,
		      const FileLockEntry *e)
{
	for (size_t i = 0; i < l->nr; i++) {
		const struct dump_lock *o = &l->v[i];

		if (!same_lock(&o->e, e))
			continue;
		if (o->file_id == file_id && (e->flag != FL_POSIX || o->e.pid == e->pid))
			return 1;
		if (e->flag == FL_POSIX || o->e.pid == e->pid ||
		    syscall(SYS_kcmp, o->real_pid, p->t->pid, KCMP_FILE, o->e.fd, p->fd))
			continue;
		pr_err("fd %d of task %d (%s) holds a %s through an open file it shares with task %d (fd %d): a lock through a file shared between processes is not supported yet",
		       p->fd, p->t->pid, p->link, lock_name(e->flag, e->type), o->e.pid, o->e.fd);
		return -EOPNOTSUPP;
	}
	return 0;
}

int dump_fd_locks(struct dump_ctx *ctx, const struct fd_probe *p, uint32_t file_id)
{
	struct dump_locks *l = ctx->locks;
	FileLockEntry e;
	int ret;

	for (const char *s = p->fdinfo; s; s = strchr(s, '\n'), s = s ? s + 1 : NULL) {
		if (strncmp(s, "lock:", 5))
			continue;
		ret = parse_lock(p, s, &e);
		if (ret)
			return ret;
		if (!ctx->o->file_locks) {
			pr_err("fd %d of task %d (%s) holds a %s: dump with --file-locks to keep it",
			       p->fd, p->t->pid, p->link, lock_name(e.flag, e.type));
			return -EOPNOTSUPP;
		}
		if (!l) {
			l = ctx->locks = calloc(1, sizeof(*l));
			if (!l)
				return -ENOMEM;
		}
		ret = known_lock(l, p, file_id, &e);
		if (ret)
			return ret < 0 ? ret : 0;
		if (ARRAY_GROW(l->v, l->cap, l->nr + 1, 8))
			return -ENOMEM;
		l->v[l->nr++] = (struct dump_lock){ .e = e, .file_id = file_id,
						    .real_pid = p->t->pid };
		pr_info("task %d: fd %d: %s from %lld, %lld bytes (0: to the end)", p->t->pid,
			p->fd, lock_name(e.flag, e.type), (long long)e.start, (long long)e.len);
	}
	return 0;
}

int dump_file_locks_write(struct dump_ctx *ctx)
{
	struct dump_locks *l = ctx->locks;
	struct cr_img *img;
	int ret = 0;

	if (!l || !l->nr)
		return 0;
	ret = dump_img_open(ctx, IMG_FILE_LOCKS, 0, &img);
	if (ret)
		return ret;
	for (size_t i = 0; i < l->nr && !ret; i++)
		ret = img_write_entry(img, &l->v[i].e.base);
	if (ret) {
		img_close(img);
		return ret;
	}
	return img_close(img);
}

void dump_file_locks_free(struct dump_ctx *ctx)
{
	if (ctx->locks)
		free(ctx->locks->v);
	free(ctx->locks);
	ctx->locks = NULL;
}
