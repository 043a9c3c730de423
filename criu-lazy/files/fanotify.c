/*
 * fanotify (FD_TYPES__FANOTIFY): the group's init flags and event flags
 * ("fanotify flags:... event-flags:..." of fdinfo) and its marks, as
 * CRIU's fanotify_file_entry with one fanotify_mark_entry per mark:
 *
 *   fanotify ino:... sdev:... mflags:... mask:... ignored_mask:... fhandle...
 *	an inode mark: found again by its file handle or name (fsnotify.c)
 *   fanotify mnt_id:... mflags:... mask:... ignored_mask:...
 *	a mount mark: kept with the mount's path (mountinfo of the task)
 *
 * A filesystem mark (FAN_MARK_FILESYSTEM) has no place in CRIU's format
 * and is refused.  Events still queued are dropped, as CRIU drops them.
 *
 * Restore: fanotify_init() with the dumped flags (the group shows them, so
 * they come back as they were), the file's O_NONBLOCK, then each mark, oldest first (fdinfo
 * lists the newest first), in two fanotify_mark() calls: the events, then
 * the ignore mask (FAN_MARK_IGNORE where the mark was made with it, else
 * FAN_MARK_IGNORED_MASK), with the mark's flags (FAN_MARK_EVICTABLE,
 * FAN_MARK_IGNORED_SURV_MODIFY).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "files/fsnotify.h"
#include "restore/restore.h"
#include "restore/child.h"

#include "fsnotify.pb-c.h"

struct fan_mark {
	FanotifyMarkEntry m;
	FanotifyInodeMarkEntry ie;
	FanotifyMountMarkEntry me;
	FhEntry fh;
	uint64_t words[FH_ENTRY_SIZES__min_entries];
	struct fsn_deleted del;
};

struct fan_dump {
	FanotifyFileEntry e;
	struct fan_mark *marks;
	FanotifyMarkEntry **mark_p;
};

static bool fan_match(const struct dump_ctx *ctx, const struct fd_probe *p)
{
	return !strcmp(p->link, "anon_inode:[fanotify]");
}

/* The mount point of mount @mnt_id in the task's mountinfo, malloc'ed. */
static char *mount_path(const struct fd_probe *p, unsigned int mnt_id)
{
	char path[64], line[4096], mnt[PATH_MAX];
	char *found = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/mountinfo", p->t->pid);
	f = fopen(path, "re");
	if (!f)
		return NULL;
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned int id;

		if (sscanf(line, "%u %*d %*u:%*u %*s %4095s", &id, mnt) == 2 && id == mnt_id)
			found = strdup(mnt);
	}
	fclose(f);
	return found;
}

static int parse_mark(const struct fd_probe *p, const char *line, struct fan_mark *k,
		      unsigned int n)
{
	FanotifyMarkEntry *m = &k->m;
	unsigned long long ino;
	unsigned int mnt_id;
	char what[48];
	const char *h;

	fanotify_mark_entry__init(m);
	snprintf(what, sizeof(what), "fanotify mark %u", n);
	if (sscanf(line, "fanotify ino:%llx sdev:%x mflags:%x mask:%x ignored_mask:%x", &ino,
		   &m->s_dev, &m->mflags, &m->mask, &m->ignored_mask) == 5) {
		m->type = MARK_TYPE__INODE;
		fanotify_inode_mark_entry__init(&k->ie);
		k->ie.i_ino = ino;
		m->ie = &k->ie;
		h = strstr(line, "fhandle-bytes:");
		if (!h || h > strchrnul(line, '\n')) {
			pr_err("fd %d of task %d: %s (inode %llu on %u:%u): its filesystem gives no file handle to find it again: not supported",
			       p->fd, p->t->pid, what, ino, FSN_KDEV_MAJOR(m->s_dev),
			       FSN_KDEV_MINOR(m->s_dev));
			return -EOPNOTSUPP;
		}
		if (fsn_parse_handle(h, &k->fh, k->words)) {
			pr_err("fd %d of task %d: %s: cannot parse its file handle '%.80s'", p->fd,
			       p->t->pid, what, h);
			return -EIO;
		}
		k->ie.f_handle = &k->fh;
		return fsn_dump_handle(p, what, m->s_dev, ino, &k->fh, &k->del);
	}
	if (sscanf(line, "fanotify mnt_id:%x mflags:%x mask:%x ignored_mask:%x", &mnt_id,
		   &m->mflags, &m->mask, &m->ignored_mask) == 4) {
		m->type = MARK_TYPE__MOUNT;
		fanotify_mount_mark_entry__init(&k->me);
		k->me.mnt_id = mnt_id;
		k->me.path = mount_path(p, mnt_id);
		if (!k->me.path) {
			pr_err("fd %d of task %d: %s is on mount %u, which the task's mountinfo does not show",
			       p->fd, p->t->pid, what, mnt_id);
			return -ENOENT;
		}
		m->me = &k->me;
		return 0;
	}
	if (!strncmp(line, "fanotify sdev:", 14)) {
		pr_err("fd %d of task %d: %s is a filesystem mark (FAN_MARK_FILESYSTEM), which CRIU's image format has no place for: not supported",
		       p->fd, p->t->pid, what);
		return -EOPNOTSUPP;
	}
	pr_err("fd %d of task %d: %s: unknown kind of mark '%.80s': not supported", p->fd,
	       p->t->pid, what, line);
	return -EOPNOTSUPP;
}

static int fan_dump(struct dump_ctx *ctx, const struct fd_probe *p, struct dump_file *f)
{
	struct fan_dump *d = calloc(1, sizeof(*d));
	const char *head = strstr(p->fdinfo, "fanotify flags:");
	size_t n = 0;
	int ret;

	if (!d)
		return -ENOMEM;
	f->priv = d;
	fanotify_file_entry__init(&d->e);
	if (!head || sscanf(head, "fanotify flags:%x event-flags:%x", &d->e.faflags,
			    &d->e.evflags) != 2) {
		pr_err("fd %d of task %d (fanotify): no 'fanotify flags:' line in its fdinfo", p->fd,
		       p->t->pid);
		return -EIO;
	}
	for (const char *l = p->fdinfo; l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		n += !strncmp(l, "fanotify ", 9) && strncmp(l, "fanotify flags:", 15);
	d->marks = calloc(n + 1, sizeof(*d->marks));
	d->mark_p = calloc(n + 1, sizeof(*d->mark_p));
	if (!d->marks || !d->mark_p)
		return -ENOMEM;
	d->e.mark = d->mark_p;
	for (const char *l = p->fdinfo; l && d->e.n_mark < n;
	     l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		struct fan_mark *k = &d->marks[d->e.n_mark];

		if (strncmp(l, "fanotify ", 9) || !strncmp(l, "fanotify flags:", 15))
			continue;
		ret = parse_mark(p, l, k, d->e.n_mark + 1);
		if (ret)
			return ret;
		k->m.id = f->fe.id;
		d->mark_p[d->e.n_mark++] = &k->m;
	}
	d->e.id = f->fe.id;
	d->e.flags = p->flags & ~O_CLOEXEC;
	d->e.fown = &f->fown;
	f->fe.ffy = &d->e;
	pr_debug("task %d: fd %d fanotify flags %#x event-flags %#x, %zu marks", p->t->pid, p->fd,
		 d->e.faflags, d->e.evflags, d->e.n_mark);
	fsn_warn_queued(p, "fanotify");
	return dump_fown(p->t, p->fd, &f->fown);
}

static void fan_dump_free(struct dump_file *f)
{
	struct fan_dump *d = f->priv;

	if (!d)
		return;
	for (size_t i = 0; i < d->e.n_mark; i++) {
		free(d->marks[i].fh.path);
		free(d->marks[i].me.path);
	}
	free(d->marks);
	free(d->mark_p);
	free(d);
}

/* Marks on deleted files: only on those the tree holds (ghost files). */
static int fan_dump_resolve(struct dump_ctx *ctx)
{
	for (size_t i = 0; i < ctx->files.nr; i++) {
		const struct dump_file *f = ctx->files.v[i];
		const struct fan_dump *d = f->priv;

		if (f->ops != &fd_kind_fanotify || !d)
			continue;
		for (size_t k = 0; k < d->e.n_mark; k++) {
			int ret = fsn_check_deleted(ctx, &d->marks[k].del);

			if (ret)
				return ret;
		}
	}
	return 0;
}

static int fan_check(const struct opts *o, struct rst_images *ri, struct rst_fd *f)
{
	const FanotifyFileEntry *e = f->fe->ffy;

	if (!e || e->id != f->fe->id) {
		pr_err("files.img: fanotify %u has no or a mismatching fanotify entry", f->fe->id);
		return -EINVAL;
	}
	for (size_t i = 0; i < e->n_mark; i++) {
		const FanotifyMarkEntry *m = e->mark[i];
		const FhEntry *fh = m->ie ? m->ie->f_handle : NULL;
		bool ok;

		if (m->type == MARK_TYPE__INODE)
			ok = fh && fh->n_handle * 8 >= fh->bytes &&
			     fh->bytes <= FH_ENTRY_SIZES__min_entries * 8;
		else
			ok = m->type == MARK_TYPE__MOUNT && m->me && m->me->path;
		if (!ok) {
			pr_err("files.img: fanotify %u: mark %zu is neither an inode mark with a file handle nor a mount mark with a path",
			       e->id, i + 1);
			return -EINVAL;
		}
	}
	return 0;
}

static int add_mark(struct rst_child *c, const struct rst_fd *f, int ffd,
		    const FanotifyMarkEntry *m, size_t n)
{
	unsigned int flags = FAN_MARK_ADD | (m->mflags & ~FAN_MARK_IGNORE);
	char what[96], path[64];
	int target, err = 0;

	snprintf(what, sizeof(what), "fanotify mark %zu (fd %d of task %d)", n, f->fd, c->ri->pid);
	if (m->type == MARK_TYPE__MOUNT) {
		target = open(m->me->path, O_PATH | O_CLOEXEC);
		if (target < 0)
			return child_err(c, errno, "%s: mount point %s: %s", what, m->me->path,
					 strerror(errno));
		flags |= FAN_MARK_MOUNT;
	} else {
		target = fsn_open_mark(c, what, m->s_dev, m->ie->i_ino, m->ie->f_handle);
		if (target < 0)
			return target;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", target);
	if (m->mask && fanotify_mark(ffd, flags, m->mask, AT_FDCWD, path))
		err = errno;
	if (!err && m->ignored_mask &&
	    fanotify_mark(ffd, flags | (m->mflags & FAN_MARK_IGNORE ? FAN_MARK_IGNORE :
					FAN_MARK_IGNORED_MASK),
			  m->ignored_mask, AT_FDCWD, path))
		err = errno;
	close(target);
	if (err)
		return child_err(c, err, "%s: fanotify_mark (flags %#x, mask %#x, ignored %#x): %s",
				 what, m->mflags, m->mask, m->ignored_mask, strerror(err));
	return 0;
}

static int fan_open(struct rst_child *c, const struct rst_fd *f)
{
	const FanotifyFileEntry *e = f->fe->ffy;
	int fd, ret;

	/* the group keeps its init flags (fdinfo shows them): as they were */
	fd = fanotify_init(e->faflags, e->evflags);
	if (fd < 0)
		return child_err(c, errno, "fanotify %u (fd %d of task %d): fanotify_init(%#x, %#x): %s",
				 e->id, f->fd, c->ri->pid, e->faflags, e->evflags, strerror(errno));
	/* O_NONBLOCK of the file, which fcntl may have changed since */
	if (fcntl(fd, F_SETFL, e->flags & O_NONBLOCK)) {
		ret = child_err(c, errno, "fanotify %u (fd %d of task %d): F_SETFL: %s", e->id,
				f->fd, c->ri->pid, strerror(errno));
		close(fd);
		return ret;
	}
	for (size_t i = e->n_mark; i-- > 0;) {
		ret = add_mark(c, f, fd, e->mark[i], i + 1);
		if (ret) {
			close(fd);
			return ret;
		}
	}
	return fd;
}

const struct fd_kind_ops fd_kind_fanotify = {
	.name = "fanotify",
	.type = FD_TYPES__FANOTIFY,
	.stage = FD_STAGE_OPEN,
	.match = fan_match,
	.dump = fan_dump,
	.dump_resolve = fan_dump_resolve,
	.dump_free = fan_dump_free,
	.check = fan_check,
	.open = fan_open,
};
