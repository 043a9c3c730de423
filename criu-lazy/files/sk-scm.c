/*
 * Files in flight: descriptors passed with SCM_RIGHTS and not received
 * yet, in the queues of unix sockets (sk_packet_entry.scm, each a list of
 * files.img ids, as CRIU writes them).
 *
 * Dump: the peeks that read a queue gave us our own copies of them
 * (sk-queue.c).  Once every task's descriptors are known, each becomes a
 * file id: the file object of a descriptor of the socket's task when kcmp
 * says they are one open file description, the one of a file already met
 * in flight, or else a new file object that its kind dumps from our copy
 * (dump_file_in_flight()); our copy of a file already known is closed
 * then, so a file passed many times costs one descriptor.  The descriptor
 * may be another process's: the file is that process's file object then,
 * as is one in flight in the queues of two processes (and a pipe or a
 * socketpair with one end in flight and the other held elsewhere is one
 * group, as pipes always are).
 * A new unix socket has a queue of its own, read in turn.  Refused, with
 * the socket named: a kind that names a task's descriptors (epoll), and a
 * unix socket in flight that carries files in flight itself (the kernel's
 * garbage collector's ground: loops).
 *
 * Restore: every file in flight of a socket's queue is checked like a
 * descriptor before any task exists; the task that refills the queue opens
 * each (child_file_get(): the task's own if it holds it too) and passes it
 * again with the packet that carried it.  A file other processes hold too
 * is made once and passed between them (restore/fd-share-plan.c counts
 * the refilling task among its holders), so it stays one open file
 * description with one offset.
 */
#include <errno.h>
#include <linux/kcmp.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "files/sk-scm.h"
#include "files/unix-sk.h"
#include "restore/restore.h"
#include "restore/files.h"

/* Files met in flight so far: our copy and its id. */
struct scm_seen {
	struct { int fd; uint32_t id; } *v;
	size_t nr;
};

static bool same_file(pid_t pid1, int fd1, pid_t pid2, int fd2)
{
	return syscall(SYS_kcmp, pid1, pid2, KCMP_FILE, fd1, fd2) == 0;
}

/* A descriptor of a task of the tree with @match(its file, @arg), or NULL. */
static const struct dump_fd *find_held(struct dump_ctx *ctx, pid_t skip,
				       bool (*match)(const struct dump_file *f, const void *arg,
						     pid_t pid, int fd),
				       const void *arg, struct dump_task **holder)
{
	for (size_t i = 0; i < ctx->nr_tasks; i++) {
		struct dump_task *t = ctx->tasks[i];

		if (t->zombie || t->pid == skip)
			continue;
		for (size_t j = 0; j < t->nr_fds; j++) {
			const struct dump_file *f = dump_file_find(ctx, t->fds[j].fdi.id);

			if (f && match(f, arg, t->pid, t->fds[j].fdi.fd)) {
				*holder = t;
				return &t->fds[j];
			}
		}
	}
	return NULL;
}

static struct dump_task *task_of(struct dump_ctx *ctx, pid_t pid)
{
	for (size_t i = 0; i < ctx->nr_tasks; i++)
		if (ctx->tasks[i]->pid == pid)
			return ctx->tasks[i];
	return NULL;
}

struct same_fd_arg {
	const struct stat *st;
	int fd;
};

static bool match_same_fd(const struct dump_file *f, const void *arg, pid_t pid, int fd)
{
	const struct same_fd_arg *a = arg;

	return f->dev == a->st->st_dev && f->ino == a->st->st_ino &&
	       same_file(getpid(), a->fd, pid, fd);
}

/* The same object (a pipe's other end: one inode) */
static bool match_inode(const struct dump_file *f, const void *arg, pid_t pid, int fd)
{
	const struct stat *st = arg;

	return f->ops != &fd_kind_reg && f->dev == st->st_dev && f->ino == st->st_ino;
}

static bool match_unix_ino(const struct dump_file *f, const void *arg, pid_t pid, int fd)
{
	const struct unix_dump *ud = f->priv;

	return f->ops == &fd_kind_unix && ud && ud->ue.ino == *(const uint32_t *)arg;
}

/* A new file object for our copy @fd, and what ties it to other processes. */
static int dump_new(struct dump_ctx *ctx, const struct unix_dump *s, int fd,
		    const struct stat *st, uint32_t *id)
{
	const struct dump_fd *d;
	struct dump_task *t;
	struct dump_file *f;
	char what[96];
	int ret;

	snprintf(what, sizeof(what), "a file in flight in the queue of fd %d of task %d", s->fd,
		 s->pid);
	ret = dump_file_in_flight(ctx, fd, task_of(ctx, s->pid), what, &f);
	if (ret)
		return ret;
	*id = f->fe.id;
	d = find_held(ctx, s->pid, match_inode, st, &t);
	if (d)
		pr_debug("fd %d of task %d: the other end of a pipe in flight in its queue is fd %d of task %d",
			 s->fd, s->pid, d->fdi.fd, t->pid);
	if (f->ops == &fd_kind_unix) {
		struct unix_dump *ud = f->priv;

		/* it belongs to the task whose socket carries it */
		ud->pid = s->pid;
		ud->fd = -1;
		ud->in_flight = true;
		if (ud->ue.state == TCP_LISTEN) {
			pr_err("fd %d of task %d is a unix socket with a listening unix socket in flight in its queue: not supported",
			       s->fd, s->pid);
			return -EOPNOTSUPP;
		}
		d = ud->ue.peer ? find_held(ctx, s->pid, match_unix_ino, &ud->ue.peer, &t) : NULL;
		if (d)
			pr_debug("fd %d of task %d: the peer of a unix socket in flight in its queue is fd %d of task %d",
				 s->fd, s->pid, d->fdi.fd, t->pid);
	}
	return 0;
}

static int seen_add(struct scm_seen *seen, int fd, uint32_t id)
{
	void *grown = realloc(seen->v, (seen->nr + 1) * sizeof(seen->v[0]));

	if (!grown)
		return -ENOMEM;
	seen->v = grown;
	seen->v[seen->nr].fd = fd;
	seen->v[seen->nr++].id = id;
	return 0;
}

/* The id of the file in flight we hold as @fd. */
static int resolve_one(struct dump_ctx *ctx, struct scm_seen *seen, const struct unix_dump *s,
		       int fd, uint32_t *id)
{
	struct stat st;
	struct same_fd_arg arg = { &st, fd };
	const struct dump_fd *d;
	struct dump_task *t;
	int ret;

	if (fstat(fd, &st)) {
		pr_perror("fd %d of task %d: a file in flight in its queue", s->fd, s->pid);
		return -errno;
	}
	/* held by a task (any: the restore shares it), or met in flight before */
	d = find_held(ctx, 0, match_same_fd, &arg, &t);
	if (d) {
		*id = d->fdi.id;
		return 0;
	}
	for (size_t i = 0; i < seen->nr; i++) {
		if (!same_file(getpid(), fd, getpid(), seen->v[i].fd))
			continue;
		*id = seen->v[i].id;
		return 0;
	}
	ret = dump_new(ctx, s, fd, &st, id);
	return ret ? ret : seen_add(seen, fd, *id);
}

static int resolve_queue(struct dump_ctx *ctx, struct scm_seen *seen, struct unix_dump *ud)
{
	for (size_t i = 0; i < ud->q.nr; i++) {
		struct sk_packet *pk = &ud->q.v[i];

		if (!pk->nr_scm || pk->scm_ids)
			continue;
		if (ud->in_flight) {
			pr_err("fd %d of task %d is a unix socket with a unix socket in flight in its queue that carries files in flight itself: not supported",
			       ud->fd >= 0 ? ud->fd : -1, ud->pid);
			return -EOPNOTSUPP;
		}
		pk->scm_ids = calloc(pk->nr_scm, sizeof(*pk->scm_ids));
		if (!pk->scm_ids)
			return -ENOMEM;
		for (uint32_t j = 0; j < pk->nr_scm; j++) {
			size_t nr_seen = seen->nr;
			int ret = resolve_one(ctx, seen, ud, pk->scm_fds[j], &pk->scm_ids[j]);
			const struct dump_file *f = ret ? NULL : dump_file_find(ctx, pk->scm_ids[j]);
			const struct unix_dump *in = f && f->ops == &fd_kind_unix ? f->priv : NULL;

			if (ret)
				return ret;
			/* a file a task holds or one met before: our copy of it
			 * is not needed, and a backlog read holds only each new
			 * file's, not every pass's */
			if (seen->nr == nr_seen) {
				close(pk->scm_fds[j]);
				pk->scm_fds[j] = -1;
			}
			/* its refill would have to pass what it is being made from */
			if (in && (in->ue.ino == ud->ue.ino || in->ue.ino == ud->ue.peer)) {
				pr_err("fd %d of task %d is a unix socket with %s in flight in its own queue: not supported",
				       ud->fd, ud->pid, in->ue.ino == ud->ue.ino ? "itself" : "its peer");
				return -EOPNOTSUPP;
			}
		}
		pr_debug("unix socket %u: packet %zu carries %u files in flight", ud->ue.id, i,
			 pk->nr_scm);
	}
	return 0;
}

int sk_scm_resolve(struct dump_ctx *ctx)
{
	struct scm_seen seen = { NULL, 0 };
	int ret = 0;

	/* a second call (the queues read by accepting connections): the
	 * files met in flight by the first are met again */
	for (size_t i = 0; i < ctx->files.nr && !ret; i++) {
		struct dump_file *f = ctx->files.v[i];
		const struct unix_dump *ud = f->priv;

		if (f->ops != &fd_kind_unix || !ud)
			continue;
		for (size_t k = 0; k < ud->q.nr && !ret; k++) {
			const struct sk_packet *pk = &ud->q.v[k];

			for (uint32_t j = 0; pk->scm_ids && j < pk->nr_scm && !ret; j++)
				if (pk->scm_fds[j] >= 0)
					ret = seen_add(&seen, pk->scm_fds[j], pk->scm_ids[j]);
		}
	}
	/* ctx->files grows as files in flight are added: they are walked too */
	for (size_t i = 0; i < ctx->files.nr && !ret; i++) {
		struct dump_file *f = ctx->files.v[i];

		if (f->ops == &fd_kind_unix && f->priv)
			ret = resolve_queue(ctx, &seen, f->priv);
	}
	free(seen.v);
	return ret;
}

/* ---- restore ---- */

/* Does a fd of the task hold file @id?  (Checks run once every fd is
 * loaded.) */
static bool held(const struct rst_images *ri, uint32_t id)
{
	for (size_t i = 0; i < ri->nr_fds; i++)
		if (ri->fds[i].fe->id == id)
			return true;
	return false;
}

static int check_one(const struct opts *o, struct rst_images *ri, const struct sk_queue_set *set,
		     const UnixSkEntry *ue, uint32_t id)
{
	const FileEntry *fe = rst_file_find(ri, id);
	struct rst_fd f = { .fd = -1, .cloexec = true, .fe = fe };
	const struct sk_queue *q;

	if (!fe) {
		pr_err("sk-queues.img: unix socket %u has file %u in flight, which files.img lacks",
		       ue->id, id);
		return -EINVAL;
	}
	f.ops = fd_kind_for_restore(ri, fe);
	if (!f.ops || f.ops->stage == FD_STAGE_AFTER_FILES) {
		pr_err("unix socket %u of task %d has %s in flight (file %u): not supported%s",
		       ue->id, ri->pid, fd_type_name(fe->type), id, f.ops ? " in flight" : " yet");
		return -EOPNOTSUPP;
	}
	if (fe->type == FD_TYPES__UNIXSK && fe->usk) {
		q = sk_queue_find(set, fe->usk->id);
		if (fe->usk->id == ue->id || fe->usk->ino == ue->peer) {
			pr_err("sk-queues.img: unix socket %u has itself or its peer in flight (file %u): not supported",
			       ue->id, id);
			return -EOPNOTSUPP;
		}
		/* one the task holds itself refills its own queue */
		for (size_t i = 0; q && i < q->nr && !held(ri, id); i++) {
			if (q->v[i].nr_scm) {
				pr_err("sk-queues.img: unix socket %u has a unix socket in flight (file %u) that carries files in flight itself: not supported",
				       ue->id, id);
				return -EOPNOTSUPP;
			}
		}
		if (!held(ri, id) && !unix_opens_alone(ri, fe->usk)) {
			pr_err("unix socket %u of task %d has a unix socket in flight (file %u) that was connected by name or listening: not supported",
			       ue->id, ri->pid, id);
			return -EOPNOTSUPP;
		}
	}
	return f.ops->check(o, ri, &f);
}

int sk_scm_check(const struct opts *o, struct rst_images *ri, const struct sk_queue_set *set,
		 const UnixSkEntry *ue)
{
	const struct sk_queue *q = sk_queue_find(set, ue->id);

	for (size_t i = 0; q && i < q->nr; i++) {
		for (uint32_t j = 0; j < q->v[i].nr_scm; j++) {
			int ret = check_one(o, ri, set, ue, q->v[i].scm_ids[j]);

			if (ret)
				return ret;
		}
	}
	return 0;
}
