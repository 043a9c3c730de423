/*
 * A listening unix socket's connections not yet accepted (its backlog),
 * dump side.
 *
 * UNIX_DIAG_ICONS names, in the order accept() would return them, the
 * client at the other end of each connection waiting on a listener.  The
 * server end of such a connection (the "embryo") has no file and no inode
 * until it is accepted, and what the client sent before that waits in the
 * embryo's receive queue: nothing but accept() reaches it.  So, when a
 * client has sent something (its write queue is not empty), or a client
 * is closed (its icon is inode 0: what it sent is not seen but by
 * accepting), the dump accepts every waiting connection of that listener
 * on its own copy of it (pidfd_getfd: the same socket), reads each queue
 * with the peeks of sk-queue.c and closes them.  That changes the tree: it
 * is done only when the tree will not run on (not with --leave-running or
 * --leave-stopped), and last, after every refusal of the listener's own;
 * should the dump still fail later, the connections are lost and an error
 * says which.
 *
 * Images: a waiting client has no receive queue of its own (its peer cannot
 * send before the accept), so the packets sk-queues.img names it for are
 * the ones it sent, waiting in its connection.  The clients of a listener
 * come in files.img in the order of its backlog; the restore connects them
 * in that order and each sends its packets again (unix-sk.c).  A closed
 * client is an entry no fd holds, in state TCP_CLOSE with the listener as
 * its peer and the name the accepted end saw for it: the restore makes it,
 * connects it, sends its packets again and closes it, so the accepted end
 * reads them and then the end of the stream, as it would have (the kernel
 * gives no ECONNRESET there: a client that was never accepted cannot have
 * unread data of its own, the one case in which its close resets).
 */
#include <errno.h>
#include <netinet/tcp.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "common/proc-fd.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "files/sk-opts.h"
#include "files/sk-scm.h"
#include "files/sock-diag.h"
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

/* Every waiting client in the tree or closed, or the refusal naming the
 * first that is neither. */
static int check_clients(struct dump_ctx *ctx, const struct unix_dump *l)
{
	for (unsigned int i = 0; i < l->nr_icons; i++) {
		if (l->icons[i] && !find_by_ino(ctx, l->icons[i], NULL)) {
			pr_err("fd %d of task %d is a listening unix socket with a connection not yet accepted from a client outside the dumped tree (client inode %u): not supported",
			       l->fd, l->pid, l->icons[i]);
			return -EOPNOTSUPP;
		}
	}
	return 0;
}

static bool has_closed(const struct unix_dump *l)
{
	for (unsigned int i = 0; i < l->nr_icons; i++)
		if (!l->icons[i])
			return true;
	return false;
}

/* The @i-th waiting client: in the tree, or the entry of a closed one. */
static struct unix_dump *client_of(struct dump_ctx *ctx, const struct unix_dump *l,
				   unsigned int i)
{
	if (l->closed && l->closed[i])
		return l->closed[i];
	return find_by_ino(ctx, l->icons[i], NULL);
}

/* The name of a closed client @c, as the accepted end @sk sees its peer. */
static int closed_name(struct unix_dump *c, int sk)
{
	struct sockaddr_un a;
	socklen_t len = sizeof(a);
	char full[PATH_MAX + sizeof(a.sun_path) + 2];
	struct stat st;
	size_t n;

	if (getpeername(sk, (struct sockaddr *)&a, &len)) {
		pr_perror("fd %d of task %d: the name of a closed client waiting on it", c->fd,
			  c->pid);
		return -errno;
	}
	n = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
	if (n && a.sun_path[0] && a.sun_path[n - 1] == '\0')
		n--;				/* a path: without its NUL */
	if (n > UNIX_DIAG_NAME_MAX)
		n = UNIX_DIAG_NAME_MAX;
	memcpy(c->name, a.sun_path, n);
	c->ue.name.data = (uint8_t *)c->name;
	c->ue.name.len = n;
	if (!n || !a.sun_path[0])
		return 0;
	/* a path: from the listener's directory when relative (the client's
	 * own is gone with it); deleted unless a socket file is still there */
	c->name[n] = '\0';
	snprintf(full, sizeof(full), "%s", c->name);
	if (c->name[0] != '/') {
		c->ue.name_dir = c->name_dir;	/* read before the accept */
		snprintf(full, sizeof(full), "%s/%s", c->name_dir, c->name);
	}
	if (stat(full, &st) || !S_ISSOCK(st.st_mode)) {
		c->ue.has_deleted = true;
		c->ue.deleted = true;
	}
	return 0;
}

/* A files.img entry for the closed @i-th client of @l: ctx->files' last. */
static int add_closed(struct dump_ctx *ctx, struct unix_dump *l, unsigned int i)
{
	struct stat st = { 0 };
	struct unix_dump *c = calloc(1, sizeof(*c));
	struct dump_file *f = c ? dump_file_add(ctx, &fd_kind_unix, &st) : NULL;
	char link[64], cwd[PATH_MAX];
	ssize_t r;

	if (!f) {
		free(c);
		return -ENOMEM;
	}
	f->priv = c;
	/* a relative name is the listener's directory's (the client's own is
	 * gone with it): read now, nothing left to fail after the accept */
	snprintf(link, sizeof(link), "/proc/%d/cwd", l->t->pid);
	r = readlink(link, cwd, sizeof(cwd) - 1);
	if (r < 0)
		return dump_task_error(l->t, -errno, "task %d: can't read %s: %m", l->t->pid, link);
	cwd[r] = '\0';
	c->name_dir = strdup(cwd);
	if (!c->name_dir)
		return -ENOMEM;
	unix_sk_entry__init(&c->ue);
	sk_opts_entry__init(&c->opts);
	c->ue.opts = &c->opts;
	c->ue.fown = &f->fown;
	c->ue.id = f->fe.id;
	c->ue.type = l->ue.type;
	c->ue.state = TCP_CLOSE;
	c->ue.peer = l->ue.ino;
	c->ue.has_shutdown = true;
	c->ue.shutdown = SK_SHUTDOWN__BOTH;
	f->fe.usk = &c->ue;
	c->pid = l->pid;		/* its connection is the listener's to make */
	c->t = l->t;
	c->fd = -1;
	c->gone = true;
	l->closed[i] = c;
	pr_debug("task %d: fd %d: connection %u not yet accepted, of a closed client: file %u",
		 l->pid, l->fd, i, c->ue.id);
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

static int resolve_now(void *ctx)
{
	return sk_scm_resolve(ctx);
}

/* Accept the @i-th waiting connection on @lfd, read what it holds and
 * resolve the files in flight it carries (a refusal there keeps the
 * connections after it waiting). */
static int drain_one(struct dump_ctx *ctx, struct unix_dump *l, int lfd, unsigned int i,
		     struct nl_sock *nl)
{
	struct unix_dump *c = client_of(ctx, l, i);
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
	ret = fstat(sk, &st) ? -errno : unix_diag_get_on(nl, st.st_ino, &u);
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
	if (!ret && c->gone)
		ret = closed_name(c, sk);
	if (!ret) {
		cp.fd = c->gone ? l->fd : c->fd;	/* for messages */
		/* each message's files resolved as it is read: the dump holds
		 * a copy of each new file, not of every pass of the queue */
		c->q.got_files = resolve_now;
		c->q.got_files_arg = ctx;
		ret = sk_queue_dump(&cp, sk, u.type, u.shutdown & 1, c->ue.id, &c->q);
		c->q.got_files = NULL;
	}
	if (!ret)
		pr_debug("task %d: fd %d: %zu packets wait in its connection to fd %d, not yet accepted%s",
			 c->pid, c->fd, c->q.nr, l->fd, c->gone ? " (its client is closed)" : "");
	unix_diag_info_free(&u);
	close(sk);
	return ret ? ret : sk_scm_resolve(ctx);
}

static int drain(struct dump_ctx *ctx, struct unix_dump *l, struct nl_sock *nl)
{
	struct fd_probe lp = { .t = l->t, .fd = l->fd };
	int lfd = sk_grab_fd(&lp), ret = 0;

	if (lfd < 0)
		return lfd;
	pr_info("task %d: fd %d: accepting its %u connections not yet accepted to read their data",
		l->pid, l->fd, l->nr_icons);
	for (unsigned int i = 0; i < l->nr_icons && !ret; i++)
		ret = drain_one(ctx, l, lfd, i, nl);
	close(lfd);
	return ret;
}

/* @l when a client of its backlog has sent data or is closed; refusals
 * come first */
static int must_drain(struct dump_ctx *ctx, struct unix_dump *l, bool *yes)
{
	const struct unix_dump *c = NULL;
	const char *leave;
	int ret;

	*yes = false;
	if (l->ue.state != TCP_LISTEN || !l->nr_icons)
		return 0;
	c = sender(ctx, l);
	if (!c && !has_closed(l))
		return 0;
	ret = check_clients(ctx, l);
	if (ret)
		return ret;
	leave = ctx->o->leave_running ? "--leave-running" :
		ctx->o->leave_stopped ? "--leave-stopped" : NULL;
	if (leave && c) {
		pr_err("fd %d of task %d: its connection to the listening unix socket at fd %d of task %d, not yet accepted, holds %u bytes, which only accepting it can read: not with %s",
		       c->fd, c->pid, l->fd, l->pid, c->wqueue, leave);
		return -EOPNOTSUPP;
	}
	if (leave) {
		pr_err("fd %d of task %d is a listening unix socket with a connection not yet accepted whose client is closed: what it sent only accepting it can read: not with %s",
		       l->fd, l->pid, leave);
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

/* The UNIX_DIAG socket that tells each accepted connection's peer is
 * opened before the first accept: nothing to open after it. */
int unix_backlog_drain(struct dump_ctx *ctx)
{
	struct nl_sock *nl = NULL;
	int ret = 0;

	for (size_t i = 0; i < ctx->files.nr && !ret; i++) {
		struct dump_file *f = ctx->files.v[i];
		struct unix_dump *l = f->priv;

		if (f->ops != &fd_kind_unix || !l || !l->drain)
			continue;
		if (!nl && !(nl = sock_diag_open()))
			return -EPROTONOSUPPORT;
		ret = drain(ctx, l, nl);
	}
	sock_diag_close(nl);
	return ret;
}

/*
 * The most a waiting connection's data can take in sk-queues.img, from what
 * is known before accepting it.  The listener's end of it, which holds the
 * data, is shown by nothing (not even a full UNIX_DIAG dump), but every
 * packet in it is charged to its client's send buffer, whose use UNIX_DIAG
 * shows (udiag_wqueue): each packet's truesize, its bytes plus an sk_buff
 * and its skb_shared_info (over 512 bytes), more than its bytes and its
 * frame in the image (PACKET_FRAME_MAX).  So the client's wqueue bounds
 * what its packets take, and a stream's read may cut one more packet per
 * 256 KiB (a peek returns at most that).  A closed client is not shown at
 * all: its use was bounded by its send buffer (a send waits while the use
 * is over it, then adds at most a buffer's worth), which SO_SNDBUF sets to
 * at most twice net.core.wmem_max (SO_SNDBUFFORCE, for CAP_NET_ADMIN, to
 * more: beyond this bound).
 */
#define PACKET_FRAME_MAX 16	/* u32 frame, id_for and length with their tags */
#define STREAM_PEEK_MAX (256u << 10)

static uint64_t closed_client_max(void)
{
	const char *names[] = { "/proc/sys/net/core/wmem_max", "/proc/sys/net/core/wmem_default" };
	uint64_t v[2] = { 4u << 20, 4u << 20 };	/* unread: 4 MiB, far above the defaults */

	for (int i = 0; i < 2; i++) {
		FILE *f = fopen(names[i], "re");
		unsigned long long x;

		if (f && fscanf(f, "%llu", &x) == 1)
			v[i] = x;
		if (f)
			fclose(f);
	}
	return 2 * (2 * v[0] > v[1] ? 2 * v[0] : v[1]) + 4096;
}

static uint64_t connection_max(const struct unix_dump *c, uint64_t closed_max)
{
	uint64_t mem = c && !c->gone ? c->wqueue : closed_max;

	return mem + (mem / STREAM_PEEK_MAX + 1) * PACKET_FRAME_MAX;
}

/*
 * Descriptors for the drain, made sure of before it: each accept gives one,
 * and a message read can carry up to SK_SCM_MAX files in flight, each a
 * descriptor of ours (with too few, the read is cut: MSG_CTRUNC, after the
 * accept).  The dump's soft limit is its hard one by now (dump.c).
 */
#define DRAIN_FDS (SK_SCM_MAX + 16)

static int check_fd_room(void)
{
	struct rlimit r;
	size_t open;
	int *fds, ret;

	if (getrlimit(RLIMIT_NOFILE, &r) || r.rlim_cur == RLIM_INFINITY)
		return 0;
	ret = proc_fd_list(0, &fds, &open);
	if (ret) {
		pr_err("can't count the dump's open files in /proc/self/fd: %s", strerror(-ret));
		return ret;
	}
	free(fds);
	if (open + DRAIN_FDS <= r.rlim_cur)
		return 0;
	pr_err("the dump has %llu of its %llu file descriptors free (RLIMIT_NOFILE), and reading the connections not yet accepted needs %u (the files in flight a message can carry): not accepting them",
	       (unsigned long long)(r.rlim_cur > open ? r.rlim_cur - open : 0),
	       (unsigned long long)r.rlim_cur, DRAIN_FDS);
	return -EMFILE;
}

/*
 * Before the accepts: sk-queues.img open with the space of every queue
 * read so far and of the most the connections to be read can hold
 * (connection_max), and what files.img may grow by (the names of closed
 * clients, learnt by accepting them).  Files in flight in those
 * connections are not known before: theirs is not in it.
 */
int unix_backlog_reserve(struct dump_ctx *ctx, uint64_t *files_extra)
{
	uint64_t closed_max = 0, bound = 0;
	unsigned int nr = 0;
	int ret;

	for (size_t i = 0; i < ctx->files.nr; i++) {
		struct unix_dump *l = ctx->files.v[i]->priv;

		if (ctx->files.v[i]->ops != &fd_kind_unix || !l || !l->drain)
			continue;
		for (unsigned int j = 0; j < l->nr_icons; j++) {
			struct unix_dump *c = client_of(ctx, l, j);

			if (c->gone && !closed_max)
				closed_max = closed_client_max();
			bound += connection_max(c, closed_max);
			if (c->gone)	/* name, name_dir, deleted, a longer length */
				*files_extra += UNIX_DIAG_NAME_MAX + strlen(c->name_dir) + 16;
			nr++;
		}
	}
	if (!nr)
		return 0;
	ret = check_fd_room();
	if (ret)
		return ret;
	ret = dump_img_open(ctx, IMG_SK_QUEUES, 0, &ctx->sk_queues_img);
	if (ret)
		return ret;
	bound += sk_queues_size(ctx);
	ret = img_reserve(ctx->sk_queues_img, bound);
	if (ret) {
		pr_err("sk-queues.img: can't reserve %llu bytes for the data of the %u connections not yet accepted that the dump reads, before accepting them: %s",
		       (unsigned long long)bound, nr, strerror(-ret));
		return ret;
	}
	pr_info("sk-queues.img: %llu bytes reserved, for %u connections not yet accepted among them",
		(unsigned long long)bound, nr);
	return 1;
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
	l->closed = has_closed(l) ? calloc(l->nr_icons, sizeof(*l->closed)) : NULL;
	if (!slots || !order || (has_closed(l) && !l->closed)) {
		ret = -ENOMEM;
		goto out;
	}
	for (unsigned int i = 0; i < l->nr_icons; i++) {
		struct unix_dump *c;

		if (!l->icons[i]) {
			ret = add_closed(ctx, l, i);
			if (ret)
				goto out;
			slots[i] = ctx->files.nr - 1;
			order[i] = ctx->files.v[slots[i]];
			continue;
		}
		c = find_by_ino(ctx, l->icons[i], &slots[i]);
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
		const struct unix_dump *c = client_of(ctx, l, i);
		int w;

		if (c && c->gone)
			w = snprintf(buf + len, size - len, "%sa closed client", i ? ", " : "");
		else if (c && c->fd >= 0)
			w = snprintf(buf + len, size - len, "%sfd %d of task %d", i ? ", " : "",
				     c->fd, c->pid);
		else
			w = snprintf(buf + len, size - len, "%sunix socket %u", i ? ", " : "",
				     l->icons[i]);
		len += w > 0 ? (size_t)w : 0;
	}
}

/*
 * A failed dump that had accepted connections: they cannot be put back (a
 * listener queues only what connect() makes, and their clients, connected
 * to the ends we accepted, cannot connect again: EISCONN), so its one
 * error line, said by the first such listener for all of them, is the
 * cause (held back since the accepts, log.h) and what is lost.
 */
int unix_backlog_release(struct dump_ctx *ctx, struct dump_file *f, bool resume)
{
	const struct unix_dump *l = f->priv;
	char lost[1536], cause[1024], msg[1800];
	size_t len = 0;

	if (!resume || !l || !l->nr_drained)
		return 0;
	for (size_t i = 0; i < ctx->files.nr; i++) {
		const struct unix_dump *o = ctx->files.v[i]->priv;

		if (ctx->files.v[i]->ops != &fd_kind_unix || !o || !o->nr_drained)
			continue;
		if (o != l && !len)
			return -ECONNABORTED;	/* the first one said it */
		if (len < sizeof(lost)) {
			char clients[512];
			int w;

			name_clients(ctx, o, o->nr_drained, clients, sizeof(clients));
			w = snprintf(lost + len, sizeof(lost) - len,
				     "%sthe listening unix socket at fd %d of task %d: %u (%s)",
				     len ? "; " : "", o->fd, o->pid, o->nr_drained, clients);
			len += w > 0 ? (size_t)w : 0;
		}
	}
	snprintf(msg, sizeof(msg), "the dump had accepted connections not yet accepted to read their data, which cannot be put back: they are lost (their clients see them closed): %s",
		 lost);
	if (ctx->lazy_failed) {
		/* a failed transfer's report is the one line: it says this too */
		ctx->lost = strdup(msg);
		return -ECONNABORTED;
	}
	snprintf(cause, sizeof(cause), "%s", log_held_error() ? log_held_error() : "");
	log_release_errors(true);
	pr_err("%s%s%s", cause, cause[0] ? "; " : "", msg);
	return -ECONNABORTED;
}
