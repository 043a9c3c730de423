/*
 * Unix sockets at restore, FD_STAGE_CONNECT (unix-sk.c makes them): a
 * plain socket connects to its peer by name, once those connected to it
 * have (a chain), and a listener's clients not yet accepted connect to it
 * in backlog order, each sending again what waited in its connection; a
 * closed one is made, connected, refilled and closed here.
 */
#include <errno.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "files/fd-kind.h"
#include "files/sk-opts.h"
#include "files/sk-queue.h"
#include "files/unix-sk.h"
#include "restore/restore.h"
#include "restore/child.h"

/* FD_STAGE_CONNECT: a plain socket to its peer, a listener's waiting
 * clients (in backlog order), each sending again what it had sent before
 * its connection was accepted (unix-backlog.c), with room enough, then its
 * own buffer sizes back. */
static int connect_one(struct rst_child *c, int sk, const UnixSkEntry *ue, const UnixSkEntry *to)
{
	const struct sk_queue *q = to->state == TCP_LISTEN ? unix_queue_of(c, ue) : NULL;
	int ret = unix_connect_name(c, sk, to);

	if (!ret && q && q->nr) {
		ret = unix_set_sndbuf(c, sk, ue, SK_FILL_SNDBUF);
		if (!ret)
			ret = sk_queue_fill(c, sk, q);
		if (!ret)
			ret = sk_opts_restore(c, sk, ue->opts, ue->id);
	}
	return ret ? ret : unix_do_shutdown(c, sk, ue);
}

static int connect_plain(struct rst_child *c, int fd, const UnixSkEntry *ue,
			 const UnixSkEntry *pe, int depth);

/*
 * Before @ue connects on to its own peer, the sockets we made that are
 * connected to it (a datagram chain X -> @ue -> Z): once @ue has a peer,
 * the kernel lets no other connect to it (EPERM).  Two sockets connected
 * to each other are no chain: either may go first.
 */
static int connect_upstream(struct rst_child *c, const UnixSkEntry *ue, int depth)
{
	for (size_t i = 0; i < c->ri->nr_files; i++) {
		const FileEntry *fe = c->ri->files[i];
		const UnixSkEntry *t = fe->usk, *tp;
		int fd, ret;

		if (fe->type != FD_TYPES__UNIXSK || !t || t->peer != ue->ino || t->ino == ue->peer ||
		    unix_classify(c->ri, t, &tp) != UNIX_PLAIN)
			continue;
		fd = child_file_lookup(c, t->id);
		if (fd < 0)
			continue;	/* not ours: its maker is ours too (share key) */
		ret = connect_plain(c, fd, t, ue, depth + 1);
		if (ret)
			return ret;
	}
	return 0;
}

/* @ue to its peer @pe, once: those connected to @ue first. */
static int connect_plain(struct rst_child *c, int fd, const UnixSkEntry *ue,
			 const UnixSkEntry *pe, int depth)
{
	struct sockaddr_un a;
	socklen_t len = sizeof(a);
	int ret;

	if (!getpeername(fd, (struct sockaddr *)&a, &len))
		return 0;	/* done already, before its peer connected on */
	if (depth > (int)c->ri->nr_files)
		return child_err(c, ELOOP, "unix socket %u of task %d: a chain of connections "
				 "that does not end", ue->id, c->ri->pid);
	ret = connect_upstream(c, ue, depth);
	return ret ? ret : connect_one(c, fd, ue, pe);
}

/* A client closed while it waited on @l: made, connected, its data sent
 * again, closed; its connection waits on @l with the data, then the end
 * (its options went with it: none are kept). */
static int connect_closed(struct rst_child *c, const UnixSkEntry *cl, const UnixSkEntry *l)
{
	int sk = unix_new_socket(c, cl), ret;

	if (sk < 0)
		return sk;
	ret = cl->name.len ? unix_bind_name(c, sk, cl) : 0;
	if (!ret)
		ret = unix_connect_name(c, sk, l);
	if (!ret)
		ret = unix_set_sndbuf(c, sk, cl, SK_FILL_SNDBUF);
	if (!ret)
		ret = sk_queue_fill(c, sk, unix_queue_of(c, cl));
	close(sk);
	return ret;
}

int unix_connect(struct rst_child *c, const struct rst_fd *f, int fd)
{
	const UnixSkEntry *ue = f->fe->usk, *pe;
	enum unix_how how = unix_classify(c->ri, ue, &pe);

	if (how == UNIX_PLAIN && pe && pe->state != TCP_LISTEN)
		return connect_plain(c, fd, ue, pe, 0);
	if (how != UNIX_LISTENER)
		return 0;
	for (size_t i = 0; i < c->ri->nr_files; i++) {
		const FileEntry *fe = c->ri->files[i];
		int cfd, ret;

		if (fe->type != FD_TYPES__UNIXSK || !fe->usk || fe->usk->peer != ue->ino)
			continue;
		if (unix_closed_client(fe->usk, ue)) {
			ret = connect_closed(c, fe->usk, ue);
			if (ret)
				return ret;
			continue;
		}
		if (fe->usk->state != TCP_ESTABLISHED)
			continue;
		cfd = child_file_lookup(c, fe->id);
		if (cfd < 0)
			return child_err(c, EOPNOTSUPP,
					 "unix socket %u of task %d: its client %u, not yet accepted, belongs to another task: not supported yet",
					 ue->id, c->ri->pid, fe->id);
		ret = connect_one(c, cfd, fe->usk, ue);
		if (ret)
			return ret;
	}
	return 0;
}
