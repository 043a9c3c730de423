/*
 * eventfd (FD_TYPES__EVENTFD): the counter and the flags, from fdinfo
 * ("eventfd-count:" in hex, "eventfd-semaphore:").  CRIU's entry keeps
 * f_flags; EFD_SEMAPHORE, which is no file flag, rides in bit 0 (never an
 * eventfd's: it is always O_RDWR).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "restore/restore.h"
#include "restore/child.h"

#include "eventfd.pb-c.h"

static bool efd_match(const struct dump_ctx *ctx, const struct fd_probe *p)
{
	return !strcmp(p->link, "anon_inode:[eventfd]");
}

static int efd_dump(struct dump_ctx *ctx, const struct fd_probe *p, struct dump_file *f)
{
	EventfdFileEntry *e = calloc(1, sizeof(*e));
	const char *v;

	if (!e)
		return -ENOMEM;
	f->priv = e;
	eventfd_file_entry__init(e);
	v = proc_status_field(p->fdinfo, "eventfd-count");
	if (!v) {
		pr_err("fd %d of task %d (eventfd): no eventfd-count in its fdinfo", p->fd,
		       p->t->pid);
		return -EIO;
	}
	e->counter = strtoull(v, NULL, 16);
	e->id = f->fe.id;
	e->flags = p->flags & ~O_CLOEXEC;
	v = proc_status_field(p->fdinfo, "eventfd-semaphore");
	if (v && *v == '1')
		e->flags |= EFD_SEMAPHORE;
	e->fown = &f->fown;
	f->fe.efd = e;
	pr_debug("task %d: fd %d eventfd counter %llu flags %#o", p->t->pid, p->fd,
		 (unsigned long long)e->counter, e->flags);
	return dump_fown(p->t, p->fd, &f->fown);
}

static void efd_dump_free(struct dump_file *f)
{
	free(f->priv);
}

static int efd_check(const struct opts *o, struct rst_images *ri, struct rst_fd *f)
{
	const EventfdFileEntry *e = f->fe->efd;

	if (!e || e->id != f->fe->id) {
		pr_err("files.img: eventfd %u has no or a mismatching eventfd entry", f->fe->id);
		return -EINVAL;
	}
	if (e->counter >= UINT64_MAX) {
		pr_err("files.img: eventfd %u: counter %#llx is above the largest an eventfd holds",
		       f->fe->id, (unsigned long long)e->counter);
		return -EINVAL;
	}
	return 0;
}

static int efd_open(struct rst_child *c, const struct rst_fd *f)
{
	const EventfdFileEntry *e = f->fe->efd;
	int flags = EFD_CLOEXEC | (e->flags & (O_NONBLOCK | EFD_SEMAPHORE));
	uint64_t rest = e->counter;
	int fd;

	/* eventfd() takes an unsigned int: the rest goes in by write() */
	fd = eventfd(rest > UINT32_MAX ? UINT32_MAX : rest, flags);
	if (fd < 0)
		return child_err(c, errno, "eventfd %u (fd %d of task %d): %s", e->id, f->fd,
				 c->ri->pid, strerror(errno));
	rest -= rest > UINT32_MAX ? UINT32_MAX : rest;
	if (rest && eventfd_write(fd, rest)) {
		int err = errno;

		close(fd);
		return child_err(c, err, "eventfd %u (fd %d of task %d): counter %llu: %s", e->id,
				 f->fd, c->ri->pid, (unsigned long long)e->counter, strerror(err));
	}
	return fd;
}

const struct fd_kind_ops fd_kind_eventfd = {
	.name = "eventfd",
	.type = FD_TYPES__EVENTFD,
	.stage = FD_STAGE_OPEN,
	.match = efd_match,
	.dump = efd_dump,
	.dump_free = efd_dump_free,
	.check = efd_check,
	.open = efd_open,
};
