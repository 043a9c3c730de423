/*
 * epoll (FD_TYPES__EVENTPOLL): every watch, from fdinfo ("tfd: events:
 * data: pos: ino: sdev:"), as eventpoll_tfd_entry with the descriptor
 * number it was added under, its events (EPOLLET, EPOLLONESHOT, ... with
 * them) and data.
 *
 * A watch names a descriptor number, but the kernel watches the file: the
 * dump checks with kcmp(KCMP_EPOLL_TFD) that the number still names the
 * watched file, and refuses a watch whose descriptor was closed or
 * replaced since.  It refuses an epoll watching another epoll too (their
 * restore order is not worked out yet).
 *
 * Restore: after every other descriptor of the task is in place
 * (FD_STAGE_AFTER_FILES), a new epoll gets each watch back with
 * EPOLL_CTL_ADD, and the kernel works out again what is ready.
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
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "restore/restore.h"

#include "eventpoll.pb-c.h"

struct epoll_dump {
	EventpollFileEntry e;
	EventpollTfdEntry *tfds;		/* the storage of e.tfd[] */
	EventpollTfdEntry **tfd_p;
};

static bool epoll_match(const struct dump_ctx *ctx, const struct fd_probe *p)
{
	return !strcmp(p->link, "anon_inode:[eventpoll]");
}

/* Is fd @tfd of the task still the file its epoll @efd watches as @tfd? */
static int check_watch(const struct fd_probe *p, int tfd)
{
	struct kcmp_epoll_slot slot = { .efd = p->fd, .tfd = tfd, .toff = 0 };
	char path[64], link[64];
	ssize_t n;

	if (syscall(SYS_kcmp, p->t->pid, p->t->pid, KCMP_EPOLL_TFD, tfd, &slot)) {
		pr_err("fd %d of task %d is an epoll watching fd %d, which was closed or replaced since it was added: not supported yet",
		       p->fd, p->t->pid, tfd);
		return -EOPNOTSUPP;
	}
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", p->t->pid, tfd);
	n = readlink(path, link, sizeof(link) - 1);
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
		if (ret)
			return ret;
		if (nr == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			EventpollTfdEntry *grown = realloc(ed->tfds, ncap * sizeof(*grown));

			if (!grown)
				return -ENOMEM;
			ed->tfds = grown;
			cap = ncap;
		}
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
	 * some of them since the fork.
	 */
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
};
