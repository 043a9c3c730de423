/*
 * Netlink sockets (FD_TYPES__NETLINKSK): one netlink_sk_entry per socket
 * (file_entry.nlsk), as CRIU writes it.  The dump reads our copy of the
 * socket (pidfd_getfd): its protocol (SO_PROTOCOL), the generic options
 * and the SOL_NETLINK flags; NETLINK_DIAG gives its port id, its peer
 * (a connected socket's dst_portid and dst_group) and its multicast
 * groups.  An unbound socket is in no table NETLINK_DIAG walks: it has no
 * port id, peer nor groups.
 *
 * Queued messages: netlink has no peek offset (a peek sees the first
 * message only), so the dump takes them out of the queue and puts them
 * back at once, in order, sent to the socket's port id by a helper socket
 * of the same protocol; the restore refills the queue the same way.  Their
 * bytes and boundaries are kept, not who sent them: a message read after
 * either comes from the helper's port id, not the kernel's (0), and with
 * no multicast group.  CRIU refuses a netlink socket with data to read.
 * Refused, naming the fd: a socket connected to another port (its peer
 * would refuse the helper), a dump still running in the kernel for it
 * (NETLINK_DIAG's CB_RUNNING: the kernel's state of it cannot be made
 * again).
 *
 * Restore: socket(2), the options, bound to its port id with the first 32
 * groups (the others joined with NETLINK_ADD_MEMBERSHIP), the queue
 * refilled, then connected to its peer; the port id must be free.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/netlink_diag.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "files/netlink-diag.h"
#include "files/sk-opts.h"
#include "files/sk-queue.h"
#include "restore/restore.h"
#include "restore/child.h"

#include "sk-netlink.pb-c.h"

#define SK_SETFL_FLAGS (O_NONBLOCK | O_ASYNC)
#define NL_MSG_MAX (1u << 20)		/* the largest message we take out */
#define NL_FILL_RCVBUF (1 << 30)	/* room to put any queue back */

#ifndef SO_BUF_LOCK
#define SO_BUF_LOCK 72
#endif
#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif

struct nl_dump {
	struct sk_queue q;		/* first: sk_queues_write() finds it there */
	NetlinkSkEntry ne;
	SkOptsEntry opts;
	NlSkOptsEntry nlo;
	uint32_t groups[NETLINK_DIAG_GROUP_WORDS];
};

static bool nl_match(const struct dump_ctx *ctx, const struct fd_probe *p)
{
	char proto[32];

	if (!sk_proto_name(p, proto, sizeof(proto)))
		return false;
	return !strcmp(proto, "NETLINK");
}

static int get_flag(const struct fd_probe *p, int sk, int name, const char *what,
		    protobuf_c_boolean *val)
{
	int v = 0;
	socklen_t len = sizeof(v);

	if (getsockopt(sk, SOL_NETLINK, name, &v, &len)) {
		if (errno == ENOPROTOOPT)
			return 0;	/* an older kernel's: off */
		pr_perror("fd %d of task %d: getsockopt(%s)", p->fd, p->t->pid, what);
		return -errno;
	}
	*val = v;
	return 0;
}

static int dump_nl_opts(const struct fd_probe *p, int sk, NlSkOptsEntry *o)
{
	int ret;

	nl_sk_opts_entry__init(o);
	o->has_ext_ack = o->has_get_strict_chk = true;
	ret = get_flag(p, sk, NETLINK_PKTINFO, "NETLINK_PKTINFO", &o->pktinfo);
	if (!ret)
		ret = get_flag(p, sk, NETLINK_BROADCAST_ERROR, "NETLINK_BROADCAST_ERROR",
			       &o->broadcast_error);
	if (!ret)
		ret = get_flag(p, sk, NETLINK_NO_ENOBUFS, "NETLINK_NO_ENOBUFS", &o->no_enobufs);
	if (!ret)
		ret = get_flag(p, sk, NETLINK_LISTEN_ALL_NSID, "NETLINK_LISTEN_ALL_NSID",
			       &o->listen_all_nsid);
	if (!ret)
		ret = get_flag(p, sk, NETLINK_CAP_ACK, "NETLINK_CAP_ACK", &o->cap_ack);
	if (!ret)
		ret = get_flag(p, sk, NETLINK_EXT_ACK, "NETLINK_EXT_ACK", &o->ext_ack);
	if (!ret)
		ret = get_flag(p, sk, NETLINK_GET_STRICT_CHK, "NETLINK_GET_STRICT_CHK",
			       &o->get_strict_chk);
	return ret;
}

/* A helper socket of @protocol that can send a queue back to a port. */
static int helper_socket(int protocol)
{
	int sk = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol), v = NL_FILL_RCVBUF;

	if (sk < 0)
		return -errno;
	if (setsockopt(sk, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v))) {
		int err = errno;

		close(sk);
		return -err;
	}
	return sk;
}

static int send_to_port(int helper, uint32_t portid, const struct sk_packet *pk)
{
	struct sockaddr_nl to = { .nl_family = AF_NETLINK, .nl_pid = portid };

	if (sendto(helper, pk->data, pk->len, MSG_DONTWAIT, (struct sockaddr *)&to,
		   sizeof(to)) != (ssize_t)pk->len)
		return errno ? -errno : -EIO;
	return 0;
}

/*
 * Take the queue of our copy @sk out, then put it back from a helper.
 * The receive buffer is raised meanwhile (the copies may weigh a little
 * more than the kernel's messages) and set back, user lock included.
 */
static int cycle_queue(const struct fd_probe *p, int sk, struct nl_dump *nd)
{
	int rcvbuf, lock, big = NL_FILL_RCVBUF, helper, ret = 0;
	socklen_t len = sizeof(rcvbuf);

	if (getsockopt(sk, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &len) ||
	    (len = sizeof(lock), getsockopt(sk, SOL_SOCKET, SO_BUF_LOCK, &lock, &len))) {
		pr_perror("fd %d of task %d: its receive buffer", p->fd, p->t->pid);
		return -errno;
	}
	helper = helper_socket(nd->ne.protocol);
	if (helper < 0) {
		pr_err("fd %d of task %d: a netlink helper socket (protocol %u): %s", p->fd,
		       p->t->pid, nd->ne.protocol, strerror(-helper));
		return helper;
	}
	for (;;) {
		ssize_t n = recv(sk, NULL, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
		uint8_t *buf;

		if (n < 0) {
			if (errno != EAGAIN)
				ret = -errno;
			break;
		}
		if ((size_t)n > NL_MSG_MAX) {
			ret = -E2BIG;
			break;
		}
		buf = malloc(n ? n : 1);
		if (!buf || recv(sk, buf, n, MSG_DONTWAIT) != n ||
		    sk_queue_add(&nd->q, buf, n)) {
			/* never: it was peeked, nothing else reads it */
			free(buf);
			ret = buf ? -EIO : -ENOMEM;
			break;
		}
	}
	/* back, whatever happened: what was taken out is in nd->q */
	setsockopt(sk, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	for (size_t i = 0; i < nd->q.nr; i++) {
		int err = send_to_port(helper, nd->ne.portid, &nd->q.v[i]);

		if (err && !ret) {
			pr_err("fd %d of task %d: putting message %zu of its queue back: %s (the task lost it)",
			       p->fd, p->t->pid, i, strerror(-err));
			ret = err;
		}
	}
	close(helper);
	rcvbuf /= 2;
	if (setsockopt(sk, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) ||
	    setsockopt(sk, SOL_SOCKET, SO_BUF_LOCK, &lock, sizeof(lock))) {
		if (!ret)
			pr_perror("fd %d of task %d: putting its receive buffer back", p->fd,
				  p->t->pid);
		ret = ret ? ret : -errno;
	}
	if (ret == -E2BIG)
		pr_err("fd %d of task %d: a netlink message of more than %u bytes in its queue",
		       p->fd, p->t->pid, NL_MSG_MAX);
	else if (ret && ret != -EIO && ret != -ENOMEM && nd->q.nr == 0)
		pr_err("fd %d of task %d: reading its queue: %s", p->fd, p->t->pid,
		       strerror(-ret));
	return ret;
}

/* Is anything queued?  A peek takes nothing. */
static int has_data(const struct fd_probe *p, int sk)
{
	char c;

	if (recv(sk, &c, 1, MSG_PEEK | MSG_DONTWAIT) >= 0)
		return 1;
	if (errno == EAGAIN)
		return 0;
	pr_perror("fd %d of task %d: peeking at its queue", p->fd, p->t->pid);
	return -errno;
}

static int fill_from_diag(const struct fd_probe *p, const struct netlink_diag_info *d,
			  struct nl_dump *nd)
{
	if (d->flags & NDIAG_FLAG_CB_RUNNING) {
		pr_err("fd %d of task %d is a netlink socket (protocol %u) with a dump still running in the kernel for it: not supported",
		       p->fd, p->t->pid, d->protocol);
		return -EOPNOTSUPP;
	}
	nd->ne.portid = d->portid;
	nd->ne.state = d->state;
	nd->ne.dst_portid = d->dst_portid;
	nd->ne.dst_group = d->dst_group;
	memcpy(nd->groups, d->groups, sizeof(nd->groups));
	nd->ne.groups = nd->groups;
	nd->ne.n_groups = d->nr_groups;
	return 0;
}

static int nl_dump(struct dump_ctx *ctx, const struct fd_probe *p, struct dump_file *f)
{
	struct nl_dump *nd = calloc(1, sizeof(*nd));
	struct netlink_diag_info d;
	socklen_t len = sizeof(int);
	int sk, protocol, ret;

	if (!nd)
		return -ENOMEM;
	f->priv = nd;
	netlink_sk_entry__init(&nd->ne);
	nd->ne.id = f->fe.id;
	nd->ne.ino = p->st.st_ino;
	nd->ne.flags = p->flags & ~O_CLOEXEC;
	nd->ne.fown = &f->fown;
	nd->ne.opts = &nd->opts;
	nd->ne.nl_opts = &nd->nlo;
	nd->q.id_for = f->fe.id;
	f->fe.nlsk = &nd->ne;

	sk = sk_grab_fd(p);
	if (sk < 0)
		return sk;
	if (getsockopt(sk, SOL_SOCKET, SO_PROTOCOL, &protocol, &len)) {
		ret = -errno;
		pr_perror("fd %d of task %d: SO_PROTOCOL", p->fd, p->t->pid);
		goto out;
	}
	nd->ne.protocol = protocol;
	ret = netlink_diag_get(protocol, p->st.st_ino, &d);
	if (ret == -ENOENT)
		ret = 0;		/* never bound: in no table */
	else if (!ret)
		ret = fill_from_diag(p, &d, nd);
	if (!ret)
		ret = sk_opts_dump(p, sk, &nd->opts);
	if (!ret)
		ret = dump_nl_opts(p, sk, &nd->nlo);
	if (!ret)
		ret = has_data(p, sk);
	if (ret > 0 && nd->ne.state == NETLINK_CONNECTED && nd->ne.dst_portid) {
		pr_err("fd %d of task %d is a netlink socket connected to port %u with messages queued: not supported (nothing but its peer may send to it)",
		       p->fd, p->t->pid, nd->ne.dst_portid);
		ret = -EOPNOTSUPP;
	} else if (ret > 0) {
		ret = cycle_queue(p, sk, nd);
	}
	if (!ret)
		pr_debug("task %d: fd %d: netlink socket %lu, protocol %u, port %u, %u group words (first %#x), peer %u/%u, %zu messages queued",
			 p->t->pid, p->fd, (unsigned long)p->st.st_ino, protocol, nd->ne.portid,
			 (unsigned int)nd->ne.n_groups, nd->ne.n_groups ? nd->groups[0] : 0,
			 nd->ne.dst_portid, nd->ne.dst_group, nd->q.nr);
out:
	return sk_dump_end(p, f, sk, ret);
}

static void nl_dump_free(struct dump_file *f)
{
	struct nl_dump *nd = f->priv;

	if (!nd)
		return;
	sk_dump_parts_free(&nd->q, &nd->opts);
	free(nd);
}

/* ---- restore ---- */

static int nl_check(const struct opts *o, struct rst_images *ri, struct rst_fd *f)
{
	void **state = &ri->kind_state[fd_kind_index(&fd_kind_netlink)];
	const NetlinkSkEntry *ne = f->fe->nlsk;
	const struct sk_queue *q;

	if (!ne || ne->id != f->fe->id || !ne->opts) {
		pr_err("files.img: netlink socket %u has no or a mismatching netlink_sk_entry",
		       f->fe->id);
		return -EINVAL;
	}
	if (ne->n_groups > NETLINK_DIAG_GROUP_WORDS) {
		pr_err("files.img: netlink socket %u has %zu words of groups, more than the %u we know",
		       ne->id, ne->n_groups, NETLINK_DIAG_GROUP_WORDS);
		return -EINVAL;
	}
	if (ne->n_groups && !ne->portid) {
		pr_err("files.img: netlink socket %u is in multicast groups but has no port id",
		       ne->id);
		return -EINVAL;
	}
	if (!*state) {
		int ret = sk_queue_load(ri, (struct sk_queue_set **)state);

		if (ret)
			return ret;
	}
	q = sk_queue_find(*state, ne->id);
	if (q && q->nr && !ne->portid) {
		pr_err("sk-queues.img: netlink socket %u holds messages but has no port id to receive them again",
		       ne->id);
		return -EINVAL;
	}
	return 0;
}

static int set_flag(struct rst_child *c, int sk, const NetlinkSkEntry *ne, int name,
		    const char *what, bool on)
{
	int v = on;

	if (!on)
		return 0;	/* a new socket has them all off */
	if (setsockopt(sk, SOL_NETLINK, name, &v, sizeof(v)))
		return child_err(c, errno, "netlink socket %u of task %d: setsockopt(%s): %s",
				 ne->id, c->ri->pid, what, strerror(errno));
	return 0;
}

static int restore_nl_opts(struct rst_child *c, int sk, const NetlinkSkEntry *ne)
{
	const NlSkOptsEntry *o = ne->nl_opts;
	int ret;

	if (!o)
		return 0;
	ret = set_flag(c, sk, ne, NETLINK_PKTINFO, "NETLINK_PKTINFO", o->pktinfo);
	if (!ret)
		ret = set_flag(c, sk, ne, NETLINK_BROADCAST_ERROR, "NETLINK_BROADCAST_ERROR",
			       o->broadcast_error);
	if (!ret)
		ret = set_flag(c, sk, ne, NETLINK_NO_ENOBUFS, "NETLINK_NO_ENOBUFS", o->no_enobufs);
	if (!ret)
		ret = set_flag(c, sk, ne, NETLINK_LISTEN_ALL_NSID, "NETLINK_LISTEN_ALL_NSID",
			       o->listen_all_nsid);
	if (!ret)
		ret = set_flag(c, sk, ne, NETLINK_CAP_ACK, "NETLINK_CAP_ACK", o->cap_ack);
	if (!ret)
		ret = set_flag(c, sk, ne, NETLINK_EXT_ACK, "NETLINK_EXT_ACK",
			       o->has_ext_ack && o->ext_ack);
	if (!ret)
		ret = set_flag(c, sk, ne, NETLINK_GET_STRICT_CHK, "NETLINK_GET_STRICT_CHK",
			       o->has_get_strict_chk && o->get_strict_chk);
	return ret;
}

/* Bound to its port id with the first 32 groups; the others joined. */
static int bind_groups(struct rst_child *c, int sk, const NetlinkSkEntry *ne)
{
	struct sockaddr_nl addr = {
		.nl_family = AF_NETLINK,
		.nl_pid = ne->portid,
		.nl_groups = ne->n_groups ? ne->groups[0] : 0,
	};

	if (!ne->portid)
		return 0;
	if (bind(sk, (struct sockaddr *)&addr, sizeof(addr)))
		return child_err(c, errno, "netlink socket %u of task %d: bind to port %u%s: %s",
				 ne->id, c->ri->pid, ne->portid,
				 errno == EADDRINUSE ? " (the port id is taken)" : "",
				 strerror(errno));
	for (size_t w = 1; w < ne->n_groups; w++) {
		for (unsigned int b = 0; b < 32; b++) {
			int group = w * 32 + b + 1;

			if (!(ne->groups[w] & (1u << b)))
				continue;
			if (setsockopt(sk, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group,
				       sizeof(group)))
				return child_err(c, errno,
						 "netlink socket %u of task %d: joining group %d: %s",
						 ne->id, c->ri->pid, group, strerror(errno));
		}
	}
	return 0;
}

static int refill(struct rst_child *c, int sk, const NetlinkSkEntry *ne)
{
	const struct sk_queue *q = sk_queue_find(c->ri->kind_state[fd_kind_index(&fd_kind_netlink)],
						 ne->id);
	int helper, big = NL_FILL_RCVBUF / 2;

	if (!q || !q->nr)
		return 0;
	helper = helper_socket(ne->protocol);
	if (helper < 0)
		return child_err(c, -helper, "netlink socket %u of task %d: a helper socket: %s",
				 ne->id, c->ri->pid, strerror(-helper));
	/* room whatever the buffer was: the options set it afterwards */
	if (setsockopt(sk, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big))) {
		close(helper);
		return child_err(c, errno, "netlink socket %u of task %d: SO_RCVBUFFORCE: %s",
				 ne->id, c->ri->pid, strerror(errno));
	}
	for (size_t i = 0; i < q->nr; i++) {
		int err = send_to_port(helper, ne->portid, &q->v[i]);

		if (err) {
			close(helper);
			return child_err(c, -err,
					 "netlink socket %u of task %d: refilling message %zu of its queue (%u bytes): %s",
					 ne->id, c->ri->pid, i, q->v[i].len, strerror(-err));
		}
	}
	close(helper);
	return 0;
}

static int nl_connect_peer(struct rst_child *c, int sk, const NetlinkSkEntry *ne)
{
	struct sockaddr_nl addr = {
		.nl_family = AF_NETLINK,
		.nl_pid = ne->dst_portid,
		.nl_groups = ne->dst_group ? 1u << (ne->dst_group - 1) : 0,
	};

	if (ne->state != NETLINK_CONNECTED)
		return 0;
	if (ne->dst_group > 32)
		return child_err(c, EINVAL,
				 "netlink socket %u of task %d: connected to group %u, above 32",
				 ne->id, c->ri->pid, ne->dst_group);
	if (connect(sk, (struct sockaddr *)&addr, sizeof(addr)))
		return child_err(c, errno,
				 "netlink socket %u of task %d: connect to port %u group %u: %s",
				 ne->id, c->ri->pid, ne->dst_portid, ne->dst_group, strerror(errno));
	return 0;
}

static int nl_open(struct rst_child *c, const struct rst_fd *f)
{
	const NetlinkSkEntry *ne = f->fe->nlsk;
	int sk = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, ne->protocol), ret;

	if (sk < 0)
		return child_err(c, errno, "netlink socket %u of task %d: socket(protocol %u): %s",
				 ne->id, c->ri->pid, ne->protocol, strerror(errno));
	ret = bind_groups(c, sk, ne);
	if (!ret)
		ret = refill(c, sk, ne);
	if (!ret)
		ret = nl_connect_peer(c, sk, ne);
	if (!ret)
		ret = sk_opts_restore(c, sk, ne->opts, ne->id);
	if (!ret)
		ret = restore_nl_opts(c, sk, ne);
	if (!ret && fcntl(sk, F_SETFL, ne->flags & SK_SETFL_FLAGS))
		ret = child_err(c, errno, "netlink socket %u of task %d: F_SETFL %#o: %s", ne->id,
				c->ri->pid, ne->flags, strerror(errno));
	if (ret) {
		close(sk);
		return ret;
	}
	return sk;
}

const struct fd_kind_ops fd_kind_netlink = {
	.name = "netlink socket",
	.type = FD_TYPES__NETLINKSK,
	.stage = FD_STAGE_OPEN,
	.match = nl_match,
	.dump = nl_dump,
	.dump_free = nl_dump_free,
	.check = nl_check,
	.open = nl_open,
	.rst_free = sk_queue_set_free,
};
