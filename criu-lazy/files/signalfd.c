/*
 * signalfd (FD_TYPES__SIGNALFD): the mask ("sigmask:" of fdinfo, hex) and
 * the flags.  The signals pending for the task are the task's, restored
 * with it; the signalfd only reads them.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "restore/restore.h"
#include "restore/child.h"

#include "signalfd.pb-c.h"

static bool sfd_match(const struct dump_ctx *ctx, const struct fd_probe *p)
{
	return !strcmp(p->link, "anon_inode:[signalfd]");
}

static int sfd_dump(struct dump_ctx *ctx, const struct fd_probe *p, struct dump_file *f)
{
	SignalfdEntry *e = calloc(1, sizeof(*e));
	const char *v;

	if (!e)
		return -ENOMEM;
	f->priv = e;
	signalfd_entry__init(e);
	v = proc_status_field(p->fdinfo, "sigmask");
	if (!v) {
		pr_err("fd %d of task %d (signalfd): no sigmask in its fdinfo", p->fd, p->t->pid);
		return -EIO;
	}
	e->sigmask = strtoull(v, NULL, 16);
	e->id = f->fe.id;
	e->flags = p->flags & ~O_CLOEXEC;
	e->fown = &f->fown;
	f->fe.sgfd = e;
	return dump_fown(p->t, p->fd, &f->fown);
}

static void sfd_dump_free(struct dump_file *f)
{
	free(f->priv);
}

static int sfd_check(const struct opts *o, struct rst_images *ri, struct rst_fd *f)
{
	if (!f->fe->sgfd || f->fe->sgfd->id != f->fe->id) {
		pr_err("files.img: signalfd %u has no or a mismatching signalfd entry", f->fe->id);
		return -EINVAL;
	}
	return 0;
}

static int sfd_open(struct rst_child *c, const struct rst_fd *f)
{
	const SignalfdEntry *e = f->fe->sgfd;
	uint64_t mask = e->sigmask;
	int fd;

	/* the raw kernel mask: 8 bytes, as the kernel shows it */
	fd = syscall(SYS_signalfd4, -1, &mask, sizeof(mask),
		     SFD_CLOEXEC | (e->flags & O_NONBLOCK));
	if (fd < 0)
		return child_err(c, errno, "signalfd %u (fd %d of task %d, mask %#llx): %s", e->id,
				 f->fd, c->ri->pid, (unsigned long long)mask, strerror(errno));
	return fd;
}

const struct fd_kind_ops fd_kind_signalfd = {
	.name = "signalfd",
	.type = FD_TYPES__SIGNALFD,
	.stage = FD_STAGE_OPEN,
	.match = sfd_match,
	.dump = sfd_dump,
	.dump_free = sfd_dump_free,
	.check = sfd_check,
	.open = sfd_open,
};
