/*
 * epoll (FD_TYPES__EVENTPOLL): every watch, from fdinfo ("tfd: events:
 * data: pos: ino: sdev:"), as eventpoll_tfd_entry with the descriptor
 * number it was added under, its events (EPOLLET, EPOLLONESHOT, ... with
 * them) and data.
 *
 * A watch names a descriptor number, but the kernel watches the file
 * (its key is the file and that number): the dump checks with
 * kcmp(KCMP_EPOLL_TFD) that the number still names the watched file.  A
 * watch whose descriptor the task closed since lives on as long as the
 * file does: once every task is dumped, the dump looks for a descriptor
 * of the tree that holds the file, the task's own under another number or
 * another process's (kcmp KCMP_EPOLL_TFD across the two), and records its
 * file object (cl_file_id, a field of ours).  A descriptor replaced by
 * another file since, a watched file no descriptor of the tree holds, and
 * an epoll watching another epoll are refused.
 *
 * Restore: after every other descriptor of the task is in place
 * (FD_STAGE_AFTER_FILES), a new epoll gets each watch back with
 * EPOLL_CTL_ADD, and the kernel works out again what is ready.  A watch
 * on a closed descriptor is added through that number for a moment: the
 * file (the task's, or passed by its maker: fd-share-plan.c, in_flight()) is
 * put there, added, and the number closed again.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/array.h"
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "restore/restore.h"
#include "restore/child.h"
#include "restore/files.h"

#include "eventpoll.pb-c.h"

struct epoll_dump {
	EventpollFileEntry e;
	EventpollTfdEntry *tfds;		/* the storage of e.tfd[] */
	EventpollTfdEntry **tfd_p;
	pid_t pid;				/* the task it was dumped in */
	int efd;				/* and its fd there */
};

static bool epoll_match(const struct dump_ctx *ctx, const struct fd_probe *p)
{
	return !strcmp(p->link, "anon_inode:[eventpoll]");
}

/*
 * Is fd @tfd of the task still the file its epoll @efd watches as @tfd?
 * 1 when the task closed it since (epoll_dump_resolve() looks further).
 */
static int check_watch(const struct fd_probe *p, int tfd)
{
	struct kcmp_epoll_slot slot = { .efd = p->fd, .tfd = tfd, .toff = 0 };
	char path[64], link[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", p->t->pid, tfd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0 && errno == ENOENT)
		return 1;
	if (syscall(SYS_kcmp, p->t->pid, p->t->pid, KCMP_EPOLL_TFD, tfd, &slot)) {
		pr_err("fd %d of task %d is an epoll watching fd %d, which was replaced by another file since it was added: not supported yet",
		       p->fd, p->t->pid, tfd);
		return -EOPNOTSUPP;
	}
	if (n > 0) {
		link[n] = '\0';
		if (!strcmp(link, "anon_inode:[eventpoll]")) {
			pr_err("fd %d of task %d is an epoll watching another epoll (fd %d): not supported yet",
			       p->fd, p->t->pid, tfd);
			return -EOPNOTSUPP;
		}
	}
	return 0;
}

static int epoll_dump(struct dump_ctx *ctx, const struct fd_probe *p, struct dump_file *f)
{
	struct epoll_dump *ed = calloc(1, sizeof(*ed));
	size_t nr = 0, cap = 0;
	const char *line;
	int ret;

	if (!ed)
		return -ENOMEM;
	f->priv = ed;
	eventpoll_file_entry__init(&ed->e);
	ed->e.id = f->fe.id;
	ed->e.flags = p->flags & ~O_CLOEXEC;
	ed->e.fown = &f->fown;
	f->fe.epfd = &ed->e;
	ed->pid = p->t->pid;
	ed->efd = p->fd;

	for (line = p->fdinfo; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		unsigned long long data, ino;
		unsigned int events, sdev;
		long long pos;
		int tfd;
		EventpollTfdEntry *t;

		if (sscanf(line, "tfd: %d events: %x data: %llx pos:%lli ino:%llx sdev:%x", &tfd,
			   &events, &data, &pos, &ino, &sdev) != 6)
			continue;
		ret = check_watch(p, tfd);
		if (ret < 0)
			return ret;
		if (ARRAY_GROW(ed->tfds, cap, nr + 1, 8))
			return -ENOMEM;
		t = &ed->tfds[nr++];
		eventpoll_tfd_entry__init(t);
		t->id = f->fe.id;
		t->tfd = tfd;
		t->events = events;
		t->data = data;
		t->has_dev = t->has_inode = t->has_pos = true;
		t->dev = sdev;
		t->inode = ino;
		t->pos = pos;
		t->has_cl_file_id = ret;	/* closed: its file found later */
	}
	ed->tfd_p = calloc(nr ? nr : 1, sizeof(*ed->tfd_p));
	if (!ed->tfd_p)
		return -ENOMEM;
	for (size_t i = 0; i < nr; i++)
		ed->tfd_p[i] = &ed->tfds[i];
	ed->e.n_tfd = nr;
	ed->e.tfd = ed->tfd_p;
	pr_debug("task %d: fd %d epoll with %zu watches", p->t->pid, p->fd, nr);
	return dump_fown(p->t, p->fd, &f->fown);
}

/* The file object of a descriptor of @u that is the file watch @t of @ed. */
static int holder_in(struct dump_ctx *ctx, const struct dump_task *u,
		     const struct epoll_dump *ed, EventpollTfdEntry *t)
{
	struct kcmp_epoll_slot slot = { .efd = ed->efd, .tfd = t->tfd, .toff = 0 };

	for (size_t k = 0; k < u->nr_fds; k++) {
		const FdinfoEntry *fdi = &u->fds[k].fdi;

		if (syscall(SYS_kcmp, u->pid, ed->pid, KCMP_EPOLL_TFD, fdi->fd, &slot))
			continue;
		if (fdi->type == FD_TYPES__EVENTPOLL) {
			pr_err("fd %d of task %d is an epoll watching another epoll (fd %d of task "
			       "%d): not supported yet", ed->efd, ed->pid, fdi->fd, u->pid);
			return -EOPNOTSUPP;
		}
		t->cl_file_id = fdi->id;
		pr_info("task %d: epoll fd %d watches fd %u it closed: file %u (fd %d of task %d)",
			ed->pid, ed->efd, t->tfd, fdi->id, fdi->fd, u->pid);
		return 1;
	}
	(void)ctx;
	return 0;
}

/*
 * A watch whose descriptor its task closed: the file lives on, held by
 * another descriptor (of the task itself first, else of another process).
 */
static int epoll_dump_resolve(struct dump_ctx *ctx)
{
	for (size_t i = 0; i < ctx->files.nr; i++) {
		const struct dump_file *f = ctx->files.v[i];
		const struct epoll_dump *ed = f->priv;

		if (f->ops != &fd_kind_epoll || !ed)
			continue;
		for (size_t k = 0; k < ed->e.n_tfd; k++) {
			EventpollTfdEntry *t = ed->e.tfd[k];
			int ret = 0;

			for (size_t pass = 0; pass < 2 && !ret && t->has_cl_file_id; pass++)
				for (size_t j = 0; j < ctx->nr_tasks && !ret; j++) {
					const struct dump_task *u = ctx->tasks[j];

					if (!u->zombie && !u->self && (u->pid == ed->pid) == !pass)
						ret = holder_in(ctx, u, ed, t);
				}
			if (ret < 0)
				return ret;
			if (t->has_cl_file_id && !ret) {
				pr_err("fd %d of task %d is an epoll watching fd %u, which it closed "
				       "since, and no descriptor of the tree holds that file (it "
				       "lives on in a mapping, in flight or outside the tree): not "
				       "supported", ed->efd, ed->pid, t->tfd);
				return -EOPNOTSUPP;
			}
		}
	}
	return 0;
}

static void epoll_dump_free(struct dump_file *f)
{
	struct epoll_dump *ed = f->priv;

	if (ed) {
		free(ed->tfds);
		free(ed->tfd_p);
	}
	free(ed);
}

static int epoll_check(const struct opts *o, struct rst_images *ri, struct rst_fd *f)
{
	const EventpollFileEntry *e = f->fe->epfd;

	if (!e || e->id != f->fe->id) {
		pr_err("files.img: epoll %u has no or a mismatching eventpoll entry", f->fe->id);
		return -EINVAL;
	}
	/*
	 * The fds it watches are looked for where it is made: an epoll shared
	 * between processes is made by the first that holds it (the one the
	 * dump checked the watches in), and another holder may have closed
	 * some of them since the fork.  A watch on a closed fd names its file,
	 * and that number is used for a moment: above it go the helpers.
	 */
	for (size_t i = 0; i < e->n_tfd; i++) {
		const EventpollTfdEntry *t = e->tfd[i];
		const FileEntry *fe;

		if (!t->has_cl_file_id)
			continue;
		fe = rst_file_find(ri, t->cl_file_id);
		if (!fe || fe->type == FD_TYPES__EVENTPOLL) {
			pr_err("files.img: epoll %u watches fd %u through file %u, which is %s",
			       e->id, t->tfd, t->cl_file_id, fe ? "an epoll" : "not there");
			return -EINVAL;
		}
		if ((int)t->tfd > ri->fd_max_extra)
			ri->fd_max_extra = t->tfd;
	}
	return 0;
}

/* The files its watches on closed fds are on: the task that makes the
 * epoll needs them (fd-share-plan.c hands them to it). */
static int epoll_in_flight(const struct rst_images *ri, const FileEntry *fe,
			   int (*fn)(void *arg, uint32_t id), void *arg)
{
	(void)ri;
	for (size_t i = 0; fe->epfd && i < fe->epfd->n_tfd; i++) {
		int ret = fe->epfd->tfd[i]->has_cl_file_id ? fn(arg, fe->epfd->tfd[i]->cl_file_id) : 0;

		if (ret)
			return ret;
	}
	return 0;
}

/* Watch @t's file through its number, which the task no longer has. */
static int watch_closed(struct rst_child *c, int ep, const EventpollTfdEntry *t,
			struct epoll_event *ev)
{
	int src = child_file_get(c, t->cl_file_id), err = 0;

	if (src < 0)
		return src;
	if (fcntl(t->tfd, F_GETFD) >= 0)
		return child_err(c, EBUSY, "task %d: fd %u, which an epoll watched and the task "
				 "closed, is taken", c->ri->pid, t->tfd);
	if (dup3(src, t->tfd, O_CLOEXEC) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, t->tfd, ev))
		err = errno;
	close(t->tfd);
	if (err)
		return child_err(c, err, "task %d: an epoll watching file %u as fd %u (events %#x): %s",
				 c->ri->pid, t->cl_file_id, t->tfd, t->events, strerror(err));
	return 0;
}

static int epoll_open(struct rst_child *c, const struct rst_fd *f)
{
	const EventpollFileEntry *e = f->fe->epfd;
	int fd = epoll_create1(EPOLL_CLOEXEC);

	if (fd < 0)
		return child_err(c, errno, "epoll %u (fd %d of task %d): %s", e->id, f->fd,
				 c->ri->pid, strerror(errno));
	for (size_t i = 0; i < e->n_tfd; i++) {
		const EventpollTfdEntry *t = e->tfd[i];
		struct epoll_event ev = { .events = t->events, .data.u64 = t->data };

		if (t->has_cl_file_id) {
			int ret = watch_closed(c, fd, t, &ev);

			if (ret) {
				close(fd);
				return ret;
			}
			continue;
		}
		if (epoll_ctl(fd, EPOLL_CTL_ADD, t->tfd, &ev)) {
			int err = errno;

			close(fd);
			if (err == EBADF)
				return child_err(c, err, "epoll %u (fd %d of task %d) watches fd %u, which the task does not have",
						 e->id, f->fd, c->ri->pid, t->tfd);
			return child_err(c, err, "epoll %u (fd %d of task %d): watching fd %u (events %#x): %s",
					 e->id, f->fd, c->ri->pid, t->tfd, t->events, strerror(err));
		}
	}
	if ((e->flags & O_NONBLOCK) && fcntl(fd, F_SETFL, O_NONBLOCK)) {
		int err = errno;

		close(fd);
		return child_err(c, err, "epoll %u (fd %d of task %d): F_SETFL: %s", e->id, f->fd,
				 c->ri->pid, strerror(err));
	}
	return fd;
}

const struct fd_kind_ops fd_kind_epoll = {
	.name = "epoll",
	.type = FD_TYPES__EVENTPOLL,
	.stage = FD_STAGE_AFTER_FILES,
	.match = epoll_match,
	.dump = epoll_dump,
	.dump_free = epoll_dump_free,
	.check = epoll_check,
	.open = epoll_open,
	.dump_resolve = epoll_dump_resolve,
	.in_flight = epoll_in_flight,
};
