/*
 * pidfd (FD_TYPES__PIDFD): a descriptor referring to a task of the dumped
 * tree.  fdinfo says which one ("Pid:" in our pid namespace, "NSpid:" down
 * to the task's own) and f_flags keep PIDFD_NONBLOCK (O_NONBLOCK) and
 * PIDFD_THREAD (O_EXCL).  CRIU's entry keeps the task as the owner sees it
 * (nspid) and the pidfs inode.
 *
 * The task may be any process or thread of the dumped tree (the task
 * itself, a child, a zombie child not reaped yet, the parent...): the dump
 * maps the pid fdinfo shows through the tree's tasks and threads.  A pidfd
 * of a task outside the tree, or of one already gone, is refused, naming
 * the fd.
 *
 * Restore: pidfd_open() of that pid, from inside the new task: the fds are
 * opened after every task of the tree exists with its pid (zombies too:
 * they exit before the fds are opened, and stay until reaped), so the new
 * pidfd refers to the restored task, signals it and polls for its exit.
 * The check makes sure the pid is one pstree.img lists, so a pidfd never
 * comes back naming a stranger that happens to have that pid here.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "images/image.h"
#include "restore/restore.h"
#include "restore/child.h"

#include "pidfd.pb-c.h"
#include "pstree.pb-c.h"

#define PIDFD_FLAGS	(O_NONBLOCK | O_EXCL)	/* PIDFD_NONBLOCK, PIDFD_THREAD */

static bool pidfd_match(const struct dump_ctx *ctx, const struct fd_probe *p)
{
	return !strcmp(p->link, "anon_inode:[pidfd]") || !strncmp(p->link, "pidfd:", 6);
}

/* The task a pidfd names, as the dumped task sees it, or -errno (logged):
 * a process or thread of the tree. */
static int pidfd_nspid(const struct dump_ctx *ctx, const struct fd_probe *p, long pid,
		       int32_t *nspid)
{
	if (pid == p->t->pid) {
		*nspid = p->t->vpid;
		return 0;
	}
	for (size_t i = 0; pid > 0 && i < ctx->nr_tasks; i++) {
		const struct dump_task *t = ctx->tasks[i];

		if (t->pid == pid) {
			*nspid = t->vpid;
			return 0;
		}
		for (size_t k = 1; k < t->nr_threads; k++) {
			if (t->threads[k].tid == pid) {
				*nspid = t->threads[k].vtid;
				return 0;
			}
		}
	}
	if (pid <= 0) {
		pr_err("fd %d of task %d is a pidfd of a task that has exited: not supported yet",
		       p->fd, p->t->pid);
		return -EOPNOTSUPP;
	}
	pr_err("fd %d of task %d is a pidfd of process %ld, which is not being dumped", p->fd,
	       p->t->pid, pid);
	return -EOPNOTSUPP;
}

static int pidfd_dump(struct dump_ctx *ctx, const struct fd_probe *p, struct dump_file *f)
{
	PidfdEntry *e = calloc(1, sizeof(*e));
	const char *v;
	int ret;

	if (!e)
		return -ENOMEM;
	f->priv = e;
	pidfd_entry__init(e);
	v = proc_status_field(p->fdinfo, "Pid");
	if (!v) {
		pr_err("fd %d of task %d (pidfd): no Pid in its fdinfo", p->fd, p->t->pid);
		return -EIO;
	}
	ret = pidfd_nspid(ctx, p, strtol(v, NULL, 10), &e->nspid);
	if (ret)
		return ret;
	e->id = f->fe.id;
	e->ino = (uint32_t)p->st.st_ino;
	e->flags = p->flags & ~O_CLOEXEC;
	e->fown = &f->fown;
	f->fe.pidfd = e;
	pr_debug("task %d: fd %d pidfd of %d, flags %#o", p->t->pid, p->fd, e->nspid, e->flags);
	return dump_fown(p->t, p->fd, &f->fown);
}

static void pidfd_dump_free(struct dump_file *f)
{
	free(f->priv);
}

/* Is @arg's pid a process or a thread pstree.img lists? */
static int pstree_has(struct cr_img *img, ProtobufCMessage *msg, void *arg)
{
	const PstreeEntry *ps = (const PstreeEntry *)msg;
	int32_t pid = *(int32_t *)arg;

	(void)img;
	if (ps->pid == (uint32_t)pid)
		return 1;
	for (size_t i = 0; i < ps->n_threads; i++)
		if (ps->threads[i] == (uint32_t)pid)
			return 1;
	return 0;
}

static int pidfd_check(const struct opts *o, struct rst_images *ri, struct rst_fd *f)
{
	const PidfdEntry *e = f->fe->pidfd;
	int32_t pid;
	int ret;

	if (!e || e->id != f->fe->id) {
		pr_err("files.img: pidfd %u has no or a mismatching pidfd entry", f->fe->id);
		return -EINVAL;
	}
	if (e->nspid <= 0) {
		pr_err("files.img: pidfd %u (fd %d of task %d) refers to a task that had exited: "
		       "not supported yet", f->fe->id, f->fd, ri->pid);
		return -EOPNOTSUPP;
	}
	pid = e->nspid;
	ret = pid == ri->pid ? 1 : img_for_each_entry(ri->dirfd, IMG_PSTREE, 0,
						      &pstree_entry__descriptor, pstree_has, &pid);
	if (ret < 0)
		return ret;
	if (!ret) {
		pr_err("files.img: pidfd %u (fd %d of task %d) refers to task %d, which "
		       "pstree.img does not list", f->fe->id, f->fd, ri->pid, e->nspid);
		return -EINVAL;
	}
	if (e->flags & ~(PIDFD_FLAGS | O_ACCMODE)) {
		pr_err("files.img: pidfd %u has flags %#o, not a pidfd's", f->fe->id, e->flags);
		return -EINVAL;
	}
	return 0;
}

static int pidfd_open_fd(struct rst_child *c, const struct rst_fd *f)
{
	const PidfdEntry *e = f->fe->pidfd;
	int fd;

	fd = syscall(SYS_pidfd_open, e->nspid, e->flags & PIDFD_FLAGS);
	if (fd < 0)
		return child_err(c, errno, "pidfd %u (fd %d of task %d): pidfd_open(%d): %s",
				 e->id, f->fd, c->ri->pid, e->nspid, strerror(errno));
	return fd;
}

const struct fd_kind_ops fd_kind_pidfd = {
	.name = "pidfd",
	.type = FD_TYPES__PIDFD,
	.stage = FD_STAGE_OPEN,
	.match = pidfd_match,
	.dump = pidfd_dump,
	.dump_free = pidfd_dump_free,
	.check = pidfd_check,
	.open = pidfd_open_fd,
};
