/*
 * Unix sockets (FD_TYPES__UNIXSK): one unix_sk_entry per socket
 * (file_entry.usk), its receive queue in sk-queues.img (sk-queue.c); the
 * dump side is unix-sk-dump.c, binding and connecting by name
 * unix-sk-name.c.  Both ends of a connection are tied by
 * inode: an entry's peer is the other's ino.
 *
 * Restore, by what the socket was:
 *   pair       a connection of two unnamed ends (socketpair), or one whose
 *              peer is closed: socketpair(2), the helper end closed once it
 *              has refilled the queue (the kernel's own state of a dangling
 *              connection: shut down both ways)
 *   accepted   a stream connection accepted from a listener of the task:
 *              the client connects to the listener and the listener accepts
 *              at once, so both ends have their names back
 *   listener   bound, listening with its backlog; in FD_STAGE_CONNECT its
 *              clients not yet accepted connect to it, in files.img order
 *              (the backlog's), each sending again the data that waited in
 *              its connection (sk-queues.img names the client for it); a
 *              client that was closed (no fd holds it) is made, connected,
 *              refilled and closed there by the listener's maker
 *   plain      anything else: socket(2), bound to its name (a stale socket
 *              file at the path is removed first, a deleted one unlinked
 *              afterwards), its datagrams sent again to its name by a
 *              helper, and in FD_STAGE_CONNECT connected to its peer
 * The first end of a pair a task opens makes both and stashes the other.
 * On a new socket: the queues first (with room enough whatever the
 * buffers were), then the options, the shutdown state, the peek offset
 * and the file flags.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "files/sk-opts.h"
#include "files/sk-queue.h"
#include "files/sk-scm.h"
#include "files/unix-sk.h"
#include "restore/restore.h"
#include "restore/child.h"

/* status flags of a socket that F_SETFL sets back */
#define SK_SETFL_FLAGS (O_NONBLOCK | O_ASYNC)

static const UnixSkEntry *find_ino(const struct rst_images *ri, uint32_t ino)
{
	for (size_t i = 0; ino && i < ri->nr_files; i++) {
		const FileEntry *fe = ri->files[i];

		if (fe->type == FD_TYPES__UNIXSK && fe->usk && fe->usk->ino == ino)
			return fe->usk;
	}
	return NULL;
}

static bool same_name(const UnixSkEntry *a, const UnixSkEntry *b)
{
	return a->name.len && a->name.len == b->name.len &&
	       !memcmp(a->name.data, b->name.data, a->name.len);
}

/* A listener of the images bound to @ue's name, if @ue is one's accepted end. */
static const UnixSkEntry *listener_of(const struct rst_images *ri, const UnixSkEntry *ue)
{
	for (size_t i = 0; ue->name.len && i < ri->nr_files; i++) {
		const FileEntry *fe = ri->files[i];

		if (fe->type == FD_TYPES__UNIXSK && fe->usk && fe->usk->state == TCP_LISTEN &&
		    !(fe->usk->uflags & USK_EXTERN) && same_name(fe->usk, ue))
			return fe->usk;
	}
	return NULL;
}

enum unix_how unix_classify(const struct rst_images *ri, const UnixSkEntry *ue,
			      const UnixSkEntry **peer)
{
	const UnixSkEntry *pe = find_ino(ri, ue->peer);

	*peer = pe;
	if (ue->state == TCP_LISTEN)
		return UNIX_LISTENER;
	if (ue->state != TCP_ESTABLISHED)
		return UNIX_PLAIN;
	if (!pe && ue->type == SOCK_DGRAM && ue->name.len)
		return UNIX_PLAIN;			/* another connected to it */
	if (!pe)
		return UNIX_PAIR;			/* the peer is closed */
	if (pe->uflags & USK_EXTERN || pe->state == TCP_LISTEN)
		return UNIX_PLAIN;			/* connects in FD_STAGE_CONNECT */
	if (ue->type != SOCK_DGRAM && (listener_of(ri, ue) || listener_of(ri, pe)))
		return UNIX_ACCEPTED;
	if (ue->type == SOCK_DGRAM && (ue->name.len || pe->name.len || pe->peer != ue->ino))
		return UNIX_PLAIN;			/* connected by name */
	return UNIX_PAIR;
}

bool unix_closed_client(const UnixSkEntry *ue, const UnixSkEntry *l)
{
	return ue->peer == l->ino && ue->state == TCP_CLOSE && ue->type != SOCK_DGRAM &&
	       l->state == TCP_LISTEN;
}

bool unix_opens_alone(const struct rst_images *ri, const UnixSkEntry *ue)
{
	const UnixSkEntry *pe;
	enum unix_how how = unix_classify(ri, ue, &pe);

	return how == UNIX_PAIR || (how == UNIX_PLAIN && !pe);
}

/* ---- setting up a socket ---- */

const struct sk_queue *unix_queue_of(const struct rst_child *c, const UnixSkEntry *ue)
{
	return sk_queue_find(c->ri->kind_state[fd_kind_index(&fd_kind_unix)], ue->id);
}

int unix_set_sndbuf(struct rst_child *c, int sk, const UnixSkEntry *ue, int v)
{
	if (setsockopt(sk, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v)))
		return child_err(c, errno, "unix socket %u of task %d: SO_SNDBUFFORCE: %s", ue->id,
				 c->ri->pid, strerror(errno));
	return 0;
}

int unix_new_socket(struct rst_child *c, const UnixSkEntry *ue)
{
	int sk = socket(AF_UNIX, ue->type | SOCK_CLOEXEC, 0);

	if (sk < 0)
		return child_err(c, errno, "unix socket %u of task %d: socket: %s", ue->id,
				 c->ri->pid, strerror(errno));
	return sk;
}

int unix_do_shutdown(struct rst_child *c, int sk, const UnixSkEntry *ue)
{
	int how = -1;

	switch (ue->has_shutdown ? ue->shutdown : SK_SHUTDOWN__NONE) {
	case SK_SHUTDOWN__READ:		how = SHUT_RD; break;
	case SK_SHUTDOWN__WRITE:	how = SHUT_WR; break;
	case SK_SHUTDOWN__BOTH:		how = SHUT_RDWR; break;
	default:			return 0;
	}
	if (shutdown(sk, how) && errno != ENOTCONN)
		return child_err(c, errno, "unix socket %u of task %d: shutdown(%d): %s", ue->id,
				 c->ri->pid, how, strerror(errno));
	return 0;
}

/* After the queues: options, shutdown, peek offset, file flags. */
static int finish(struct rst_child *c, int sk, const UnixSkEntry *ue, bool shut)
{
	int ret;

	ret = sk_opts_restore(c, sk, ue->opts, ue->id);
	if (!ret && shut)
		ret = unix_do_shutdown(c, sk, ue);
	if (!ret)
		ret = sk_opts_peek_off(c, sk, ue->opts, ue->id);
	if (ret)
		return ret;
	if (fcntl(sk, F_SETFL, ue->flags & SK_SETFL_FLAGS))
		return child_err(c, errno, "unix socket %u of task %d: F_SETFL %#o: %s", ue->id,
				 c->ri->pid, ue->flags, strerror(errno));
	return 0;
}

/* ---- pairs ---- */

static int open_file(struct rst_child *c, const UnixSkEntry *ue);

/* The fd of the listener @l in this task, opened (and stashed) if need be. */
static int listener_fd(struct rst_child *c, const UnixSkEntry *l)
{
	int fd = child_file_lookup(c, l->id), ret;

	if (fd >= 0)
		return fd;
	fd = open_file(c, l);
	if (fd < 0)
		return fd;
	ret = child_file_stash(c, l->id, fd);
	return ret ? ret : child_file_lookup(c, l->id);
}

/* sv[0] accepted from @l, sv[1] the client @cl connected to it. */
static int make_accepted(struct rst_child *c, const UnixSkEntry *l, const UnixSkEntry *cl,
			 int sv[2])
{
	int lfd = listener_fd(c, l), ret;

	if (lfd < 0)
		return lfd;
	sv[1] = unix_new_socket(c, cl);
	if (sv[1] < 0)
		return sv[1];
	ret = unix_bind_name(c, sv[1], cl);
	if (!ret)
		ret = unix_connect_name(c, sv[1], l);
	if (!ret) {
		sv[0] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (sv[0] < 0)
			ret = child_err(c, errno, "unix socket %u of task %d: accept: %s", l->id,
					c->ri->pid, strerror(errno));
	}
	if (ret)
		close(sv[1]);
	return ret;
}

/*
 * A connection: sv[0] is @ue, sv[1] its peer @pe (NULL: the peer was
 * closed, sv[1] is only a helper that refills the queue).
 */
static int make_pair(struct rst_child *c, const UnixSkEntry *ue, const UnixSkEntry *pe,
		     enum unix_how how, int sv[2])
{
	const UnixSkEntry *l;
	int ret;

	if (how == UNIX_ACCEPTED) {
		l = listener_of(c->ri, ue);
		if (l) {
			ret = make_accepted(c, l, pe, sv);
		} else {
			ret = make_accepted(c, listener_of(c->ri, pe), ue, sv);
			if (!ret) {
				int t = sv[0];

				sv[0] = sv[1];
				sv[1] = t;
			}
		}
		if (ret)
			return ret;
	} else if (socketpair(AF_UNIX, ue->type | SOCK_CLOEXEC, 0, sv)) {
		return child_err(c, errno, "unix socket %u of task %d: socketpair: %s", ue->id,
				 c->ri->pid, strerror(errno));
	}
	ret = unix_set_sndbuf(c, sv[1], ue, SK_FILL_SNDBUF);
	if (!ret)
		ret = sk_queue_fill(c, sv[1], unix_queue_of(c, ue));
	if (!ret && pe) {
		ret = unix_set_sndbuf(c, sv[0], ue, SK_FILL_SNDBUF);
		if (!ret)
			ret = sk_queue_fill(c, sv[0], unix_queue_of(c, pe));
		if (!ret)
			ret = finish(c, sv[1], pe, true);
	}
	if (!pe) {
		close(sv[1]);
		sv[1] = -1;
	}
	if (!ret)
		ret = finish(c, sv[0], ue, true);
	if (ret) {
		close(sv[0]);
		if (sv[1] >= 0)
			close(sv[1]);
	}
	return ret;
}

/* ---- plain sockets and listeners ---- */

/* Datagrams queued on a socket that is not part of a pair: sent again to
 * its name by a helper, before it connects anywhere. */
static int refill_by_name(struct rst_child *c, const UnixSkEntry *ue)
{
	const struct sk_queue *q = unix_queue_of(c, ue);
	int helper, ret;

	if (!q || !q->nr)
		return 0;
	helper = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (helper < 0)
		return child_err(c, errno, "unix socket %u of task %d: a helper socket: %s", ue->id,
				 c->ri->pid, strerror(errno));
	ret = unix_set_sndbuf(c, helper, ue, SK_FILL_SNDBUF);
	if (!ret)
		ret = unix_connect_name(c, helper, ue);
	if (!ret)
		ret = sk_queue_fill(c, helper, q);
	close(helper);
	return ret;
}

static int open_plain(struct rst_child *c, const UnixSkEntry *ue, enum unix_how how)
{
	int sk = unix_new_socket(c, ue), ret;

	if (sk < 0)
		return sk;
	ret = unix_bind_name(c, sk, ue);
	if (!ret && how == UNIX_LISTENER && listen(sk, ue->backlog))
		ret = child_err(c, errno, "unix socket %u of task %d: listen: %s", ue->id,
				c->ri->pid, strerror(errno));
	if (!ret && ue->type == SOCK_DGRAM)
		ret = refill_by_name(c, ue);
	/* a socket that connects later is shut down once connected */
	if (!ret)
		ret = finish(c, sk, ue, !ue->peer);
	if (ret) {
		close(sk);
		return ret;
	}
	return sk;
}

static int open_file(struct rst_child *c, const UnixSkEntry *ue)
{
	const UnixSkEntry *pe;
	enum unix_how how = unix_classify(c->ri, ue, &pe);
	int sv[2] = { -1, -1 }, ret;

	if (how == UNIX_LISTENER || how == UNIX_PLAIN)
		return open_plain(c, ue, how);
	ret = make_pair(c, ue, pe, how, sv);
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

static int unix_open(struct rst_child *c, const struct rst_fd *f)
{
	return open_file(c, f->fe->usk);
}

static int unix_check(const struct opts *o, struct rst_images *ri, struct rst_fd *f)
{
	void **state = &ri->kind_state[fd_kind_index(&fd_kind_unix)];
	const UnixSkEntry *ue = f->fe->usk, *pe;
	enum unix_how how;
	char what[128];
	int ret;

	if (!ue || ue->id != f->fe->id || !ue->opts) {
		pr_err("files.img: unix socket %u has no or a mismatching unix_sk_entry", f->fe->id);
		return -EINVAL;
	}
	if (ue->type != SOCK_STREAM && ue->type != SOCK_DGRAM && ue->type != SOCK_SEQPACKET) {
		pr_err("files.img: unix socket %u has an unknown type %u", ue->id, ue->type);
		return -EINVAL;
	}
	if (ue->uflags & USK_EXTERN) {
		pr_err("files.img: unix socket %u is an outside peer, yet fd %d of task %d holds it",
		       ue->id, f->fd, ri->pid);
		return -EINVAL;
	}
	how = unix_classify(ri, ue, &pe);
	if (ue->peer && !pe) {
		pr_err("files.img: unix socket %u (inode %u): its peer (inode %u) is not in files.img",
		       ue->id, ue->ino, ue->peer);
		return -EINVAL;
	}
	if (pe && pe->uflags & USK_EXTERN && !o->ext_unix_sk) {
		pr_err("unix socket %u (fd %d of task %d) was connected to %s, outside the dumped tree: restore with --ext-unix-sk to reconnect it",
		       ue->id, f->fd, ri->pid, unix_name_str(pe, what, sizeof(what)));
		return -EOPNOTSUPP;
	}
	if (pe && how == UNIX_PLAIN && !pe->name.len && pe->state != TCP_LISTEN) {
		pr_err("files.img: unix socket %u is connected to socket %u, which has no name to connect to",
		       ue->id, pe->id);
		return -EINVAL;
	}
	if (how == UNIX_PAIR && pe && (pe->peer != ue->ino || pe->type != ue->type)) {
		pr_err("files.img: unix sockets %u and %u are not each other's peer", ue->id, pe->id);
		return -EINVAL;
	}
	if (!*state) {
		ret = sk_queue_load(ri, (struct sk_queue_set **)state);
		if (ret)
			return ret;
	}
	ret = sk_scm_check(o, ri, *state, ue);
	for (size_t i = 0; !ret && how == UNIX_LISTENER && i < ri->nr_files; i++) {
		const UnixSkEntry *cl = ri->files[i]->usk;

		if (ri->files[i]->type != FD_TYPES__UNIXSK || !cl || !unix_closed_client(cl, ue))
			continue;
		if (cl->type != ue->type || !cl->opts) {
			pr_err("files.img: unix socket %u, a closed client of listener %u, is not of its type",
			       cl->id, ue->id);
			return -EINVAL;
		}
		ret = sk_scm_check(o, ri, *state, cl);
	}
	if (ret)
		return ret;
	/* a client waiting on a listener sends its own again */
	if (how == UNIX_PLAIN && !ue->name.len && !(pe && pe->state == TCP_LISTEN) &&
	    sk_queue_find(*state, ue->id) &&
	    sk_queue_find(*state, ue->id)->nr) {
		pr_err("sk-queues.img: unix socket %u holds messages but has no name nor pair to receive them again",
		       ue->id);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* The end of @ue's chain of connections by name: a socket connected
 * nowhere, a listener, or an outside peer; else the chain ends in a cycle
 * (two sockets connected to each other): its lowest inode. */
static uint64_t chain_key(const struct rst_images *ri, const UnixSkEntry *ue)
{
	const UnixSkEntry *cur = ue, *pe, *p;
	uint32_t low;

	for (size_t n = 0; n <= ri->nr_files; n++) {
		if (unix_classify(ri, cur, &pe) != UNIX_PLAIN || !pe || pe->uflags & USK_EXTERN)
			return cur->ino;
		if (pe->state == TCP_LISTEN)
			return pe->ino;
		cur = pe;
	}
	low = cur->ino;		/* in the cycle by now: once around it */
	for (unix_classify(ri, cur, &p); p && p != cur; unix_classify(ri, p, &p))
		if (p->ino < low)
			low = p->ino;
	return low;
}

/*
 * What one open_file() makes together: both ends of a pair, a listener
 * with its accepted connections and its clients not yet accepted; and a
 * socket that connects by name with its peer (bound before).  When
 * different processes hold them, one makes them all and passes them on
 * (restore/fd-share.c).
 */
static uint64_t unix_share_key(const struct rst_images *ri, const FileEntry *fe)
{
	const UnixSkEntry *ue = fe->usk, *pe, *l;

	switch (unix_classify(ri, ue, &pe)) {
	case UNIX_PAIR:
		return pe && pe->ino < ue->ino ? pe->ino : ue->ino;
	case UNIX_ACCEPTED:
		l = listener_of(ri, ue);
		return (l ? l : listener_of(ri, pe))->ino;
	case UNIX_PLAIN:
		/* connects to its peer's name: made with the peer, which is
		 * bound by then (a listener's clients, datagram clients), and
		 * with whatever that peer connects to (a chain X -> Y -> Z, one
		 * maker: Y bound before X connects, X connected before Y) */
		return chain_key(ri, ue);
	case UNIX_LISTENER:
		break;
	}
	return ue->ino;
}

/* The files in flight of @fe's queue, which the task that makes it passes
 * again (a client waiting on a listener: what it sent). */
static int queue_in_flight(const struct rst_images *ri, uint32_t id,
			   int (*fn)(void *arg, uint32_t id), void *arg)
{
	const struct sk_queue *q = sk_queue_find(ri->kind_state[fd_kind_index(&fd_kind_unix)], id);

	for (size_t i = 0; q && i < q->nr; i++) {
		for (uint32_t j = 0; j < q->v[i].nr_scm; j++) {
			int ret = fn(arg, q->v[i].scm_ids[j]);

			if (ret)
				return ret;
		}
	}
	return 0;
}

/* ... and a listener's closed clients' (the listener's maker makes them). */
static int unix_in_flight(const struct rst_images *ri, const FileEntry *fe,
			  int (*fn)(void *arg, uint32_t id), void *arg)
{
	int ret = queue_in_flight(ri, fe->id, fn, arg);

	for (size_t i = 0; !ret && fe->usk && fe->usk->state == TCP_LISTEN && i < ri->nr_files; i++) {
		const FileEntry *cf = ri->files[i];

		if (cf->type == FD_TYPES__UNIXSK && cf->usk && unix_closed_client(cf->usk, fe->usk))
			ret = queue_in_flight(ri, cf->id, fn, arg);
	}
	return ret;
}

const struct fd_kind_ops fd_kind_unix = {
	.name = "unix socket",
	.type = FD_TYPES__UNIXSK,
	.stage = FD_STAGE_OPEN,
	.match = unix_match,
	.dump = unix_dump,
	.dump_resolve = unix_dump_resolve,
	.dump_accept = unix_dump_accept,
	.dump_reserve = unix_backlog_reserve,
	.dump_write_late = sk_queues_write,	/* every socket kind's queues */
	.dump_release = unix_backlog_release,
	.dump_free = unix_dump_free,
	.check = unix_check,
	.open = unix_open,
	.connect = unix_connect,
	.share_key = unix_share_key,
	.in_flight = unix_in_flight,
	.rst_free = sk_queue_set_free,
};
