/*
 * Unix sockets (FD_TYPES__UNIXSK): one unix_sk_entry per socket (file_entry.usk)
 * with what UNIX_DIAG says (type, state, peer, shutdown) and the generic
 * options (sk-opts.c); its receive queue goes to sk-queues.img (sk-queue.c).
 *
 * Both ends of a connection are tied by inode: an entry's peer is the
 * other's ino.  Dump refuses a peer outside the dumped tree, once every
 * socket is known (dump_write), naming the fd.
 *
 * Restore: the first end a task opens makes the pair with socketpair(2)
 * and stashes the other end for its own file id; a connected socket whose
 * peer was closed is made the same way, and the helper end closed once it
 * has refilled the queue (which leaves the kernel's own state of a
 * dangling connection: shut down both ways).  The order on a new pair:
 * the queues first (each through the other end, with room enough whatever
 * the buffers were), then the options, the shutdown state, the peek offset
 * and the file flags.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/xattr.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "files/sk-opts.h"
#include "files/sk-queue.h"
#include "files/unix-diag.h"
#include "restore/restore.h"

#include "sk-unix.pb-c.h"

/* status flags of a socket that F_SETFL sets back */
#define SK_SETFL_FLAGS (O_NONBLOCK | O_ASYNC)
#define SK_FILL_SNDBUF (1 << 30)	/* room to refill any queue; halved by the kernel */

struct unix_dump {
	UnixSkEntry ue;
	SkOptsEntry opts;
	struct sk_queue q;
	pid_t pid;			/* for the messages of dump_write */
	int fd;
};

static const char *type_name(unsigned int type)
{
	switch (type) {
	case SOCK_STREAM:	return "stream";
	case SOCK_DGRAM:	return "datagram";
	case SOCK_SEQPACKET:	return "seqpacket";
	default:		return "unknown-type";
	}
}

static bool unix_match(const struct dump_ctx *ctx, const struct fd_probe *p)
{
	char path[64], proto[32];
	unsigned long long ino;
	ssize_t n;

	if (sscanf(p->link, "socket:[%llu]", &ino) != 1)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", p->t->pid, p->fd);
	n = getxattr(path, "system.sockprotoname", proto, sizeof(proto) - 1);
	if (n <= 0)
		return false;
	proto[n] = '\0';
	return !strncmp(proto, "UNIX", 4);	/* "UNIX", "UNIX-STREAM" */
}

/* What this increment cannot carry yet: said before anything is done. */
static int refuse_state(const struct fd_probe *p, const struct unix_diag_info *u)
{
	const char *what = NULL;

	if (u->type != SOCK_STREAM && u->type != SOCK_DGRAM && u->type != SOCK_SEQPACKET)
		what = "of an unknown type";
	else if (u->state == TCP_LISTEN)
		what = "listening";
	else if (u->namelen)
		what = u->name[0] ? "bound to a path" : "bound to an abstract name";
	if (!what)
		return 0;
	pr_err("fd %d of task %d is a unix %s socket %s (inode %u): such unix sockets are not supported yet",
	       p->fd, p->t->pid, type_name(u->type), what, u->ino);
	return -EOPNOTSUPP;
}

static int unix_dump(struct dump_ctx *ctx, const struct fd_probe *p, struct dump_file *f)
{
	struct unix_dump *ud = calloc(1, sizeof(*ud));
	struct unix_diag_info u;
	int sk, ret;

	if (!ud)
		return -ENOMEM;
	f->priv = ud;
	ud->pid = p->t->pid;
	ud->fd = p->fd;
	ret = unix_diag_get(p->st.st_ino, &u);
	if (ret == -ENOENT)
		return dump_task_error(p->t, ret, "fd %d of task %d: sock_diag knows no unix socket of inode %llu",
				       p->fd, p->t->pid, (unsigned long long)p->st.st_ino);
	if (ret)
		return ret;
	ret = refuse_state(p, &u);
	if (ret)
		goto out;

	unix_sk_entry__init(&ud->ue);
	ud->ue.id = f->fe.id;
	ud->ue.ino = u.ino;
	ud->ue.type = u.type;
	ud->ue.state = u.state;
	ud->ue.flags = p->flags & ~O_CLOEXEC;
	ud->ue.peer = u.peer;
	ud->ue.fown = &f->fown;
	ud->ue.opts = &ud->opts;
	ud->ue.has_shutdown = true;
	ud->ue.shutdown = u.shutdown & SK_SHUTDOWN__BOTH;	/* RCV 1 = READ, SEND 2 = WRITE */
	f->fe.usk = &ud->ue;

	sk = sk_grab_fd(p);
	if (sk < 0) {
		ret = sk;
		goto out;
	}
	ret = sk_opts_dump(p, sk, &ud->opts);
	if (!ret && u.state == TCP_ESTABLISHED)
		ret = sk_queue_dump(p, sk, u.type, u.shutdown & 1, f->fe.id, &ud->q);
	close(sk);
	if (!ret)
		ret = dump_fown(p->t, p->fd, &f->fown);
	if (!ret)
		pr_debug("task %d: fd %d: unix %s socket %u, state %u, peer %u, shutdown %u, %zu packets queued",
			 p->t->pid, p->fd, type_name(u.type), u.ino, u.state, u.peer, u.shutdown,
			 ud->q.nr);
out:
	unix_diag_info_free(&u);
	return ret;
}

static struct unix_dump *find_by_ino(struct dump_ctx *ctx, uint32_t ino)
{
	for (size_t i = 0; i < ctx->files.nr; i++) {
		struct dump_file *f = ctx->files.v[i];

		if (f->ops == &fd_kind_unix && f->priv && ((struct unix_dump *)f->priv)->ue.ino == ino)
			return f->priv;
	}
	return NULL;
}

/* Every peer is in the tree; then the queues. */
static int unix_dump_write(struct dump_ctx *ctx)
{
	struct cr_img *img = NULL;
	int ret = 0;

	for (size_t i = 0; i < ctx->files.nr; i++) {
		struct dump_file *f = ctx->files.v[i];
		struct unix_dump *ud = f->priv;

		if (f->ops != &fd_kind_unix || !ud->ue.peer || find_by_ino(ctx, ud->ue.peer))
			continue;
		pr_err("fd %d of task %d is a unix %s socket connected to a peer outside the dumped tree (socket inode %u, peer inode %u)",
		       ud->fd, ud->pid, type_name(ud->ue.type), ud->ue.ino, ud->ue.peer);
		return -EOPNOTSUPP;
	}
	for (size_t i = 0; i < ctx->files.nr && !ret; i++) {
		struct dump_file *f = ctx->files.v[i];

		if (f->ops == &fd_kind_unix)
			ret = sk_queue_write(ctx, &img, &((struct unix_dump *)f->priv)->q);
	}
	if (!img)
		return ret;
	if (ret) {
		img_close(img);
		return ret;
	}
	return img_close(img);
}

static void unix_dump_free(struct dump_file *f)
{
	struct unix_dump *ud = f->priv;

	if (!ud)
		return;
	sk_queue_free(&ud->q);
	sk_opts_dump_free(&ud->opts);
	free(ud);
}

/* ---- restore ---- */

/* The peer's entry among the task's fds (open), or in files.img (check:
 * the task's fds are still being read then). */
static const UnixSkEntry *find_peer(const struct rst_images *ri, const UnixSkEntry *ue,
				    bool task_only)
{
	size_t nr = task_only ? ri->nr_fds : ri->nr_files;

	for (size_t i = 0; i < nr; i++) {
		const FileEntry *fe = task_only ? ri->fds[i].fe : ri->files[i];

		if (fe->type == FD_TYPES__UNIXSK && fe->usk && fe->usk->ino == ue->peer)
			return fe->usk;
	}
	return NULL;
}

static int unix_check(const struct opts *o, struct rst_images *ri, struct rst_fd *f)
{
	void **state = &ri->kind_state[fd_kind_index(&fd_kind_unix)];
	const UnixSkEntry *ue = f->fe->usk, *peer;

	if (!ue || ue->id != f->fe->id || !ue->opts) {
		pr_err("files.img: unix socket %u has no or a mismatching unix_sk_entry", f->fe->id);
		return -EINVAL;
	}
	if (ue->type != SOCK_STREAM && ue->type != SOCK_DGRAM && ue->type != SOCK_SEQPACKET) {
		pr_err("files.img: unix socket %u has an unknown type %u", ue->id, ue->type);
		return -EINVAL;
	}
	if (ue->name.len || ue->state == TCP_LISTEN) {
		pr_err("files.img: unix socket %u is %s: such unix sockets are not supported yet",
		       ue->id, ue->state == TCP_LISTEN ? "listening" : "bound to a name");
		return -EOPNOTSUPP;
	}
	if (ue->peer) {
		peer = find_peer(ri, ue, false);
		if (!peer) {
			pr_err("files.img: unix socket %u (inode %u): its peer (inode %u) is not in files.img",
			       ue->id, ue->ino, ue->peer);
			return -EINVAL;
		}
		if (peer->peer != ue->ino || peer->type != ue->type) {
			pr_err("files.img: unix sockets %u and %u are not each other's peer",
			       ue->id, peer->id);
			return -EINVAL;
		}
	}
	if (!*state)
		return sk_queue_load(ri, (struct sk_queue_set **)state);
	return 0;
}

static const struct sk_queue *queue_of(const struct rst_child *c, const UnixSkEntry *ue)
{
	return sk_queue_find(c->ri->kind_state[fd_kind_index(&fd_kind_unix)], ue->id);
}

static int set_int(struct rst_child *c, int sk, const UnixSkEntry *ue, int name,
		   const char *what, int v)
{
	if (setsockopt(sk, SOL_SOCKET, name, &v, sizeof(v)))
		return child_err(c, errno, "unix socket %u of task %d: setsockopt(%s): %s",
				 ue->id, c->ri->pid, what, strerror(errno));
	return 0;
}

/* After the queues: options, shutdown, peek offset, file flags. */
static int finish(struct rst_child *c, int sk, const UnixSkEntry *ue)
{
	int how = -1, ret;

	ret = sk_opts_restore(c, sk, ue->opts, ue->id);
	if (ret)
		return ret;
	switch (ue->has_shutdown ? ue->shutdown : SK_SHUTDOWN__NONE) {
	case SK_SHUTDOWN__READ:		how = SHUT_RD; break;
	case SK_SHUTDOWN__WRITE:	how = SHUT_WR; break;
	case SK_SHUTDOWN__BOTH:		how = SHUT_RDWR; break;
	default:			break;
	}
	if (how >= 0 && shutdown(sk, how) && errno != ENOTCONN)
		return child_err(c, errno, "unix socket %u of task %d: shutdown(%d): %s", ue->id,
				 c->ri->pid, how, strerror(errno));
	ret = sk_opts_peek_off(c, sk, ue->opts, ue->id);
	if (ret)
		return ret;
	if (fcntl(sk, F_SETFL, ue->flags & SK_SETFL_FLAGS))
		return child_err(c, errno, "unix socket %u of task %d: F_SETFL %#o: %s", ue->id,
				 c->ri->pid, ue->flags, strerror(errno));
	return 0;
}

/*
 * A connected pair: sv[0] is @ue, sv[1] its peer @pe (NULL: the peer was
 * closed, sv[1] is only a helper that refills the queue).
 */
static int make_pair(struct rst_child *c, const UnixSkEntry *ue, const UnixSkEntry *pe, int sv[2])
{
	int ret;

	if (socketpair(AF_UNIX, ue->type | SOCK_CLOEXEC, 0, sv))
		return child_err(c, errno, "unix socket %u of task %d: socketpair: %s", ue->id,
				 c->ri->pid, strerror(errno));
	ret = set_int(c, sv[1], ue, SO_SNDBUFFORCE, "SO_SNDBUFFORCE", SK_FILL_SNDBUF);
	if (!ret)
		ret = sk_queue_fill(c, sv[1], queue_of(c, ue));
	if (!ret && pe) {
		ret = set_int(c, sv[0], ue, SO_SNDBUFFORCE, "SO_SNDBUFFORCE", SK_FILL_SNDBUF);
		if (!ret)
			ret = sk_queue_fill(c, sv[0], queue_of(c, pe));
		if (!ret)
			ret = finish(c, sv[1], pe);
	}
	if (!pe) {
		close(sv[1]);
		sv[1] = -1;
	}
	if (!ret)
		ret = finish(c, sv[0], ue);
	if (ret) {
		close(sv[0]);
		if (sv[1] >= 0)
			close(sv[1]);
	}
	return ret;
}

static int unix_open(struct rst_child *c, const struct rst_fd *f)
{
	const UnixSkEntry *ue = f->fe->usk, *pe = NULL;
	int sv[2] = { -1, -1 }, ret;

	if (ue->state != TCP_ESTABLISHED) {
		/* a socket never connected (or disconnected): standing alone */
		sv[0] = socket(AF_UNIX, ue->type | SOCK_CLOEXEC, 0);
		if (sv[0] < 0)
			return child_err(c, errno, "unix socket %u of task %d: socket: %s", ue->id,
					 c->ri->pid, strerror(errno));
		ret = finish(c, sv[0], ue);
		if (ret) {
			close(sv[0]);
			return ret;
		}
		return sv[0];
	}
	if (ue->peer) {
		pe = find_peer(c->ri, ue, true);
		if (!pe)
			return child_err(c, EOPNOTSUPP,
					 "unix socket %u of task %d: its peer (inode %u) belongs to another task: not supported yet",
					 ue->id, c->ri->pid, ue->peer);
	}
	ret = make_pair(c, ue, pe, sv);
	if (ret)
		return ret;
	if (pe) {
		ret = child_file_stash(c, pe->id, sv[1]);
		if (ret) {
			close(sv[0]);
			return ret;
		}
	}
	return sv[0];
}

const struct fd_kind_ops fd_kind_unix = {
	.name = "unix socket",
	.type = FD_TYPES__UNIXSK,
	.stage = FD_STAGE_OPEN,
	.match = unix_match,
	.dump = unix_dump,
	.dump_write = unix_dump_write,
	.dump_free = unix_dump_free,
	.check = unix_check,
	.open = unix_open,
	.rst_free = sk_queue_set_free,
};
