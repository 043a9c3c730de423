/*
 * A listening unix socket's connections not yet accepted (its backlog),
 * dump side.
 *
 * UNIX_DIAG_ICONS names, in the order accept() would return them, the
 * client at the other end of each connection waiting on a listener.  The
 * server end of such a connection (the "embryo") has no file and no inode
 * until it is accepted, and what the client sent before that waits in the
 * embryo's receive queue: nothing but accept() reaches it.  So, when a
 * client has sent something (its write queue is not empty), the dump
 * accepts every waiting connection of that listener on its own copy of it
 * (pidfd_getfd: the same socket), reads each queue with the peeks of
 * sk-queue.c and closes them.  That changes the tree: it is done only when
 * the tree will not run on (not with --leave-running or --leave-stopped),
 * and last, after every refusal of the listener's own; should the dump
 * still fail later, the connections are lost and a warning says which.
 *
 * Images: a waiting client has no receive queue of its own (its peer cannot
 * send before the accept), so the packets sk-queues.img names it for are
 * the ones it sent, waiting in its connection.  The clients of a listener
 * come in files.img in the order of its backlog; the restore connects them
 * in that order and each sends its packets again (unix-sk.c).
 */
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "files/sk-opts.h"
#include "files/unix-sk.h"

static struct unix_dump *find_by_ino(struct dump_ctx *ctx, uint32_t ino, size_t *at)
{
	for (size_t i = 0; ino && i < ctx->files.nr; i++) {
		struct dump_file *f = ctx->files.v[i];

		if (f->ops == &fd_kind_unix && f->priv && ((struct unix_dump *)f->priv)->ue.ino == ino) {
			if (at)
				*at = i;
			return f->priv;
		}
	}
	return NULL;
}

/* Every waiting client in the tree, or the refusal naming the first that is not. */
static int check_clients(struct dump_ctx *ctx, const struct unix_dump *l)
{
	for (unsigned int i = 0; i < l->nr_icons; i++) {
		const char *why = NULL;

		if (!l->icons[i])
			why = "whose client is closed";
		else if (!find_by_ino(ctx, l->icons[i], NULL))
			why = "from a client outside the dumped tree";
		if (why) {
			pr_err("fd %d of task %d is a listening unix socket with a connection not yet accepted %s (client inode %u): not supported",
			       l->fd, l->pid, why, l->icons[i]);
			return -EOPNOTSUPP;
		}
	}
	return 0;
}

/* A client of @l's backlog that has sent data, or NULL. */
static const struct unix_dump *sender(struct dump_ctx *ctx, const struct unix_dump *l)
{
	for (unsigned int i = 0; i < l->nr_icons; i++) {
		const struct unix_dump *c = find_by_ino(ctx, l->icons[i], NULL);

		if (c && c->wqueue)
			return c;
	}
	return NULL;
}

/* Accept the @i-th waiting connection on @lfd and read what it holds. */
static int drain_one(struct dump_ctx *ctx, struct unix_dump *l, int lfd, unsigned int i)
{
	struct unix_dump *c = find_by_ino(ctx, l->icons[i], NULL);
	struct fd_probe cp = { .t = c->t, .fd = c->fd };
	struct unix_diag_info u = { 0 };
	struct stat st;
	int sk, ret;

	sk = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (sk < 0) {
		pr_perror("fd %d of task %d: accepting its connection %u not yet accepted to read it",
			  l->fd, l->pid, i);
		return -errno;
	}
	l->nr_drained++;
	ret = fstat(sk, &st) ? -errno : unix_diag_get(st.st_ino, &u);
	if (!ret && u.peer != l->icons[i]) {
		pr_err("fd %d of task %d: its backlog changed while it was dumped (connection %u from inode %u, expected %u)",
		       l->fd, l->pid, i, u.peer, l->icons[i]);
		ret = -EAGAIN;
	}
	if (!ret && c->q.nr) {
		pr_err("fd %d of task %d: a unix socket waiting on a listener has a receive queue of its own",
		       c->fd, c->pid);
		ret = -EINVAL;
	}
	if (!ret)
		ret = sk_queue_dump(&cp, sk, u.type, u.shutdown & 1, c->ue.id, &c->q);
	if (!ret)
		pr_debug("task %d: fd %d: %zu packets wait in its connection to fd %d, not yet accepted",
			 c->pid, c->fd, c->q.nr, l->fd);
	unix_diag_info_free(&u);
	close(sk);
	return ret;
}

static int drain(struct dump_ctx *ctx, struct unix_dump *l)
{
	struct fd_probe lp = { .t = l->t, .fd = l->fd };
	int lfd = sk_grab_fd(&lp), ret = 0;

	if (lfd < 0)
		return lfd;
	pr_info("task %d: fd %d: accepting its %u connections not yet accepted to read their data",
		l->pid, l->fd, l->nr_icons);
	for (unsigned int i = 0; i < l->nr_icons && !ret; i++)
		ret = drain_one(ctx, l, lfd, i);
	close(lfd);
	return ret;
}

/* @l when a client of its backlog has sent data; refusals come first */
static int must_drain(struct dump_ctx *ctx, struct unix_dump *l, bool *yes)
{
	const struct unix_dump *c = NULL;
	int ret;

	*yes = false;
	if (l->ue.state != TCP_LISTEN || !l->nr_icons)
		return 0;
	c = sender(ctx, l);
	if (!c)
		return 0;
	ret = check_clients(ctx, l);
	if (ret)
		return ret;
	if (ctx->o->leave_running || ctx->o->leave_stopped) {
		pr_err("fd %d of task %d: its connection to the listening unix socket at fd %d of task %d, not yet accepted, holds %u bytes, which only accepting it can read: not with %s",
		       c->fd, c->pid, l->fd, l->pid, c->wqueue,
		       ctx->o->leave_running ? "--leave-running" : "--leave-stopped");
		return -EOPNOTSUPP;
	}
	*yes = true;
	return 0;
}

int unix_backlog_plan(struct dump_ctx *ctx)
{
	for (size_t i = 0; i < ctx->files.nr; i++) {
		struct dump_file *f = ctx->files.v[i];
		struct unix_dump *l = f->priv;
		int ret;

		if (f->ops != &fd_kind_unix || !l)
			continue;
		ret = must_drain(ctx, l, &l->drain);
		if (ret)
			return ret;
	}
	return 0;
}

int unix_backlog_drain(struct dump_ctx *ctx)
{
	for (size_t i = 0; i < ctx->files.nr; i++) {
		struct dump_file *f = ctx->files.v[i];
		struct unix_dump *l = f->priv;
		int ret;

		if (f->ops != &fd_kind_unix || !l || !l->drain)
			continue;
		ret = drain(ctx, l);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * The clients waiting on @l: in the tree, each naming @l as its peer, and
 * in files.img in the order of the backlog (their slots among the files
 * given out again in that order).
 */
int unix_backlog_resolve(struct dump_ctx *ctx, struct unix_dump *l)
{
	struct dump_file **order;
	size_t *slots;
	int ret = check_clients(ctx, l);

	if (ret || !l->nr_icons)
		return ret;
	slots = calloc(l->nr_icons, sizeof(*slots));
	order = calloc(l->nr_icons, sizeof(*order));
	if (!slots || !order) {
		ret = -ENOMEM;
		goto out;
	}
	for (unsigned int i = 0; i < l->nr_icons; i++) {
		struct unix_dump *c = find_by_ino(ctx, l->icons[i], &slots[i]);

		if (c->wqueue && !l->drain) {
			pr_err("fd %d of task %d: its connection to the listening unix socket at fd %d, not yet accepted, holds %u bytes: a client in flight with data waiting is not supported",
			       c->fd, c->pid, l->fd, c->wqueue);
			ret = -EOPNOTSUPP;
			goto out;
		}
		c->ue.peer = l->ue.ino;
		order[i] = ctx->files.v[slots[i]];
	}
	for (unsigned int i = 1; i < l->nr_icons; i++) {	/* insertion sort of the slots */
		size_t s = slots[i];
		unsigned int j = i;

		for (; j > 0 && slots[j - 1] > s; j--)
			slots[j] = slots[j - 1];
		slots[j] = s;
	}
	for (unsigned int i = 0; i < l->nr_icons; i++)
		ctx->files.v[slots[i]] = order[i];
out:
	free(slots);
	free(order);
	return ret;
}

/* The clients of the @n connections of @l accepted: "fd 21 of task 7, ..." */
static void name_clients(struct dump_ctx *ctx, const struct unix_dump *l, unsigned int n,
			 char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (unsigned int i = 0; i < n && len < size; i++) {
		const struct unix_dump *c = find_by_ino(ctx, l->icons[i], NULL);
		int w;

		if (c && c->fd >= 0)
			w = snprintf(buf + len, size - len, "%sfd %d of task %d", i ? ", " : "",
				     c->fd, c->pid);
		else
			w = snprintf(buf + len, size - len, "%sunix socket %u", i ? ", " : "",
				     l->icons[i]);
		len += w > 0 ? (size_t)w : 0;
	}
}

int unix_backlog_release(struct dump_ctx *ctx, struct dump_file *f, bool resume)
{
	const struct unix_dump *l = f->priv;
	char clients[512];

	if (!resume || !l || !l->nr_drained)
		return 0;
	/* the one thing a failed dump cannot give back: said as its error */
	name_clients(ctx, l, l->nr_drained, clients, sizeof(clients));
	pr_err("the dump failed after accepting %u connections not yet accepted by the listening unix socket at fd %d of task %d, to read their data: they are lost (their clients see them closed): %s",
	       l->nr_drained, l->fd, l->pid, clients);
	return -ECONNABORTED;
}
