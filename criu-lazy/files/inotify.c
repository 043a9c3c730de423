/*
 * inotify (FD_TYPES__INOTIFY): the group's flags and every watch, from
 * fdinfo ("inotify wd:3 ino:... sdev:... mask:... ignored_mask:0
 * fhandle-bytes:... fhandle-type:... f_handle:..."), as CRIU's
 * inotify_file_entry with one inotify_wd_entry per watch.
 *
 * The watched inode is found again by its file handle, or by the name it
 * had at dump (fsnotify.c).  A watch on a deleted file is kept when the
 * tree holds that file open too (a ghost file: the watch goes on the file
 * made again), else refused: nothing would find that inode again.  Events still queued are dropped, as CRIU
 * drops them (with a warning in the log).
 *
 * Restore: a new group, and each watch added again through
 * /proc/self/fd/N of its inode, in ascending wd order, each with the wd it
 * had (INOTIFY_IOC_SETNEXTWD; without it, watches are added and removed
 * until the kernel hands out the wanted number).  The mask keeps the
 * events, IN_ONESHOT and IN_EXCL_UNLINK, which is what the kernel shows.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "files/fsnotify.h"
#include "restore/restore.h"
#include "restore/child.h"

#include "fsnotify.pb-c.h"

#ifndef INOTIFY_IOC_SETNEXTWD
#define INOTIFY_IOC_SETNEXTWD _IOW('I', 0, int)
#endif

#define IFY_MASK (IN_ALL_EVENTS | IN_ONESHOT | IN_EXCL_UNLINK)

struct ify_dump {
	InotifyFileEntry e;
	InotifyWdEntry *wds;
	InotifyWdEntry **wd_p;
	FhEntry *fhs;
	uint64_t (*words)[FH_ENTRY_SIZES__min_entries];
	struct fsn_deleted *del;
};

static bool ify_match(const struct dump_ctx *ctx, const struct fd_probe *p)
{
	return !strcmp(p->link, "anon_inode:inotify");
}

static size_t count_lines(const char *text, const char *prefix)
{
	size_t n = 0;

	for (const char *l = text; l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		n += !strncmp(l, prefix, strlen(prefix));
	return n;
}

static int parse_wd(const struct fd_probe *p, const char *line, InotifyWdEntry *w, FhEntry *fh,
		    uint64_t *words, struct fsn_deleted *del)
{
	unsigned long long ino;
	const char *h;
	char what[48];
	int ret;

	inotify_wd_entry__init(w);
	if (sscanf(line, "inotify wd:%x ino:%llx sdev:%x mask:%x ignored_mask:%x", &w->wd, &ino,
		   &w->s_dev, &w->mask, &w->ignored_mask) != 5) {
		pr_err("fd %d of task %d (inotify): cannot parse the fdinfo line '%.80s'", p->fd,
		       p->t->pid, line);
		return -EIO;
	}
	w->i_ino = ino;
	snprintf(what, sizeof(what), "inotify watch %u", w->wd);
	h = strstr(line, "fhandle-bytes:");
	if (!h || h > strchrnul(line, '\n')) {
		pr_err("fd %d of task %d: %s (inode %llu on %u:%u): its filesystem gives no file handle to find it again: not supported",
		       p->fd, p->t->pid, what, ino, FSN_KDEV_MAJOR(w->s_dev),
		       FSN_KDEV_MINOR(w->s_dev));
		return -EOPNOTSUPP;
	}
	if (fsn_parse_handle(h, fh, words)) {
		pr_err("fd %d of task %d: %s: cannot parse its file handle '%.80s'", p->fd,
		       p->t->pid, what, h);
		return -EIO;
	}
	w->f_handle = fh;
	ret = fsn_dump_handle(p, what, w->s_dev, w->i_ino, fh, del);
	if (ret)
		return ret;
	pr_debug("task %d: fd %d inotify wd %u mask %#x inode %llu", p->t->pid, p->fd, w->wd,
		 w->mask, ino);
	return 0;
}

static int ify_dump(struct dump_ctx *ctx, const struct fd_probe *p, struct dump_file *f)
{
	struct ify_dump *d = calloc(1, sizeof(*d));
	size_t n = count_lines(p->fdinfo, "inotify wd:"), i = 0;
	int ret;

	if (!d)
		return -ENOMEM;
	f->priv = d;
	inotify_file_entry__init(&d->e);
	d->wds = calloc(n + 1, sizeof(*d->wds));
	d->wd_p = calloc(n + 1, sizeof(*d->wd_p));
	d->fhs = calloc(n + 1, sizeof(*d->fhs));
	d->words = calloc(n + 1, sizeof(*d->words));
	d->del = calloc(n + 1, sizeof(*d->del));
	if (!d->wds || !d->wd_p || !d->fhs || !d->words || !d->del)
		return -ENOMEM;
	for (const char *l = p->fdinfo; l && i < n; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		if (strncmp(l, "inotify wd:", 11))
			continue;
		ret = parse_wd(p, l, &d->wds[i], &d->fhs[i], d->words[i], &d->del[i]);
		if (ret)
			return ret;
		d->wds[i].id = f->fe.id;
		d->wd_p[i] = &d->wds[i];
		d->e.n_wd = ++i;
	}
	d->e.wd = d->wd_p;
	d->e.id = f->fe.id;
	d->e.flags = p->flags & ~O_CLOEXEC;
	d->e.fown = &f->fown;
	f->fe.ify = &d->e;
	fsn_warn_queued(p, "inotify");
	return dump_fown(p->t, p->fd, &f->fown);
}

static void ify_dump_free(struct dump_file *f)
{
	struct ify_dump *d = f->priv;

	if (!d)
		return;
	for (size_t i = 0; i < d->e.n_wd; i++)
		free(d->fhs[i].path);
	free(d->wds);
	free(d->wd_p);
	free(d->fhs);
	free(d->words);
	free(d->del);
	free(d);
}

/* Watches on deleted files: only on those the tree holds (ghost files). */
static int ify_dump_resolve(struct dump_ctx *ctx)
{
	for (size_t i = 0; i < ctx->files.nr; i++) {
		const struct dump_file *f = ctx->files.v[i];
		const struct ify_dump *d = f->priv;

		if (f->ops != &fd_kind_inotify || !d)
			continue;
		for (size_t k = 0; k < d->e.n_wd; k++) {
			int ret = fsn_check_deleted(ctx, &d->del[k]);

			if (ret)
				return ret;
		}
	}
	return 0;
}

static int ify_check(const struct opts *o, struct rst_images *ri, struct rst_fd *f)
{
	const InotifyFileEntry *e = f->fe->ify;

	if (!e || e->id != f->fe->id) {
		pr_err("files.img: inotify %u has no or a mismatching inotify entry", f->fe->id);
		return -EINVAL;
	}
	for (size_t i = 0; i < e->n_wd; i++) {
		const InotifyWdEntry *w = e->wd[i];

		if (!w->f_handle || w->f_handle->n_handle * 8 < w->f_handle->bytes ||
		    w->f_handle->bytes > FH_ENTRY_SIZES__min_entries * 8 || (int)w->wd < 1) {
			pr_err("files.img: inotify %u: watch %u has no usable file handle or a bad number",
			       e->id, w->wd);
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++) {
			if (e->wd[j]->wd == w->wd) {
				pr_err("files.img: inotify %u: watch %u appears twice", e->id, w->wd);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* Add @w to @ifd with the wd it had. */
static int add_watch(struct rst_child *c, const struct rst_fd *f, int ifd, const InotifyWdEntry *w)
{
	char what[96], path[64];
	int target, wd, err = 0;
	bool setnext;

	snprintf(what, sizeof(what), "inotify watch %u (fd %d of task %d)", w->wd, f->fd,
		 c->ri->pid);
	target = fsn_open_mark(c, what, w->s_dev, w->i_ino, w->f_handle);
	if (target < 0)
		return target;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", target);
	setnext = !ioctl(ifd, INOTIFY_IOC_SETNEXTWD, w->wd);
	for (;;) {
		wd = inotify_add_watch(ifd, path, w->mask & IFY_MASK);
		if (wd < 0) {
			err = errno;
			break;
		}
		if ((uint32_t)wd == w->wd)
			break;
		/* the wds before it are free: take them until it comes */
		if (setnext || (uint32_t)wd > w->wd) {
			err = EBUSY;
			break;
		}
		inotify_rm_watch(ifd, wd);
	}
	close(target);
	if (err == EBUSY)
		return child_err(c, err, "%s: the kernel gave watch number %d", what, wd);
	if (err)
		return child_err(c, err, "%s: inotify_add_watch (mask %#x): %s", what, w->mask,
				 strerror(err));
	return 0;
}

static int ify_open(struct rst_child *c, const struct rst_fd *f)
{
	const InotifyFileEntry *e = f->fe->ify;
	uint32_t last = 0;
	int fd, ret;

	fd = inotify_init1(IN_CLOEXEC | (e->flags & O_NONBLOCK ? IN_NONBLOCK : 0));
	if (fd < 0)
		return child_err(c, errno, "inotify %u (fd %d of task %d): %s", e->id, f->fd,
				 c->ri->pid, strerror(errno));
	/* ascending wd: the kernel hands them out upwards */
	for (size_t done = 0; done < e->n_wd; done++) {
		const InotifyWdEntry *next = NULL;

		for (size_t i = 0; i < e->n_wd; i++)
			if (e->wd[i]->wd > last && (!next || e->wd[i]->wd < next->wd))
				next = e->wd[i];
		ret = add_watch(c, f, fd, next);
		if (ret) {
			close(fd);
			return ret;
		}
		last = next->wd;
	}
	return fd;
}

const struct fd_kind_ops fd_kind_inotify = {
	.name = "inotify",
	.type = FD_TYPES__INOTIFY,
	.stage = FD_STAGE_OPEN,
	.match = ify_match,
	.dump = ify_dump,
	.dump_resolve = ify_dump_resolve,
	.dump_free = ify_dump_free,
	.check = ify_check,
	.open = ify_open,
};
