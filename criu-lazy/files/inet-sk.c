/*
 * Inet sockets (FD_TYPES__INETSK): TCP and UDP over IPv4 and IPv6, one
 * inet_sk_entry per socket (file_entry.isk).  The dump reads our copy of
 * the socket (pidfd_getfd): family, protocol, its address and its peer's,
 * IPV6_V6ONLY, IP_FREEBIND and the generic options (sk-opts.c); INET_DIAG
 * gives the state, a listener's backlog and the connections waiting on it,
 * and the shutdown state.  A UDP socket's queued datagrams go to
 * sk-queues.img as a unix socket's do.
 *
 * Supported: TCP sockets not connected (bound or not) and listening ones;
 * UDP sockets bound, connected, with queued datagrams; with
 * --tcp-established, TCP connections established or closing, or still
 * being opened (SYN_SENT) (tcp-stream.c, inet-tcp.c).  Refused, naming the
 * fd: a connection without the flag, a listener with connections not yet
 * accepted unless --skip-in-flight (as CRIU: they are dropped, and their
 * clients see a reset when they next send).
 *
 * Restore: socket(2), the options (SO_REUSEADDR before the bind), bound to
 * its address and port (a port taken fails with that one line), listening
 * with its backlog; a UDP socket gets its datagrams again from a helper
 * socket (their source address is the helper's) before it connects to its
 * peer, as a connected socket only hears its peer.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "files/inet-diag.h"
#include "files/inet-sk.h"
#include "files/sk-opts.h"
#include "files/sk-queue.h"
#include "restore/restore.h"
#include "restore/child.h"

#include "sk-inet.pb-c.h"

#define SK_SETFL_FLAGS (O_NONBLOCK | O_ASYNC)

static bool inet_match(const struct dump_ctx *ctx, const struct fd_probe *p)
{
	char proto[32];

	if (!sk_proto_name(p, proto, sizeof(proto)))
		return false;
	return !strcmp(proto, "TCP") || !strcmp(proto, "TCPv6") || !strcmp(proto, "UDP") ||
	       !strcmp(proto, "UDPv6");
}

/* "IPv4 TCP", for messages */
static const char *kind_name(unsigned int family, unsigned int proto)
{
	if (family == AF_INET)
		return proto == IPPROTO_TCP ? "IPv4 TCP" : "IPv4 UDP";
	return proto == IPPROTO_TCP ? "IPv6 TCP" : "IPv6 UDP";
}

/* "127.0.0.1:80", "[::1]:80" */
static const char *addr_str(unsigned int family, const uint32_t *w, size_t n, uint32_t port,
			    char *buf, size_t size)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (n == (family == AF_INET ? 1u : 4u))
		inet_ntop(family, w, a, sizeof(a));
	snprintf(buf, size, family == AF_INET ? "%s:%u" : "[%s]:%u", a, port);
	return buf;
}

/* An address in inet_sk_entry's words; false if the kernel gave none. */
static bool take_addr(const struct sockaddr_storage *ss, socklen_t len, uint32_t *w,
		      size_t *n, uint32_t *port)
{
	if (ss->ss_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const void *)ss;

		memcpy(w, &in->sin_addr, 4);
		*n = 1;
		*port = ntohs(in->sin_port);
		return true;
	}
	if (ss->ss_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		memcpy(w, &in6->sin6_addr, 16);
		*n = 4;
		*port = ntohs(in6->sin6_port);
		return true;
	}
	return false;
}

static int get_int(int sk, int level, int name, int *v)
{
	socklen_t len = sizeof(*v);

	return getsockopt(sk, level, name, v, &len) ? -errno : 0;
}

/* A socket with no local port is in no hash table: TCP says it is closed. */
static bool unhashed(int sk, int proto)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct tcp_info ti;
	uint32_t w[4];
	size_t n;
	uint32_t port = 0;

	if (getsockname(sk, (struct sockaddr *)&ss, &len) ||
	    !take_addr(&ss, len, w, &n, &port) || port)
		return false;
	if (proto != IPPROTO_TCP)
		return true;
	len = sizeof(ti);
	return !getsockopt(sk, IPPROTO_TCP, TCP_INFO, &ti, &len) && ti.tcpi_state == TCP_CLOSE;
}

static int refuse(const struct fd_probe *p, const InetSkEntry *ie, const char *what)
{
	char src[80], dst[80];

	pr_err("fd %d of task %d is an %s socket (%s -> %s, state %u): %s", p->fd, p->t->pid,
	       kind_name(ie->family, ie->proto),
	       addr_str(ie->family, ie->src_addr, ie->n_src_addr, ie->src_port, src, sizeof(src)),
	       addr_str(ie->family, ie->dst_addr, ie->n_dst_addr, ie->dst_port, dst, sizeof(dst)),
	       ie->state, what);
	return -EOPNOTSUPP;
}

static int inet_dump(struct dump_ctx *ctx, const struct fd_probe *p, struct dump_file *f)
{
	struct inet_dump *id = calloc(1, sizeof(*id));
	struct sockaddr_storage ss;
	struct inet_diag_info d;
	int sk, v, family, proto, type, ret;
	socklen_t len;

	if (!id)
		return -ENOMEM;
	f->priv = id;
	inet_sk_entry__init(&id->ie);
	sk_opts_entry__init(&id->opts);
	id->ie.opts = &id->opts;
	id->ie.fown = &f->fown;
	id->ie.src_addr = id->src;
	id->ie.dst_addr = id->dst;
	f->fe.isk = &id->ie;
	sk = sk_grab_fd(p);
	if (sk < 0)
		return sk;
	if (get_int(sk, SOL_SOCKET, SO_DOMAIN, &family) ||
	    get_int(sk, SOL_SOCKET, SO_PROTOCOL, &proto) ||
	    get_int(sk, SOL_SOCKET, SO_TYPE, &type)) {
		ret = -errno;
		pr_perror("fd %d of task %d: the socket's family and protocol", p->fd, p->t->pid);
		goto out;
	}
	ret = inet_diag_get(family, proto, p->st.st_ino, &d);
	if (ret == -ENOENT && unhashed(sk, proto)) {
		/* never bound nor connected: in no table sock_diag walks */
		d.state = TCP_CLOSE;
		ret = 0;
	} else if (ret == -ENOENT) {
		pr_err("fd %d of task %d: sock_diag knows no %s socket of inode %llu", p->fd,
		       p->t->pid, kind_name(family, proto), (unsigned long long)p->st.st_ino);
	}
	if (ret)
		goto out;

	id->ie.id = f->fe.id;
	id->ie.ino = p->st.st_ino;
	id->ie.family = family;
	id->ie.type = type;
	id->ie.proto = proto;
	id->ie.state = d.state;
	id->ie.flags = p->flags & ~O_CLOEXEC;
	id->ie.has_shutdown = true;
	id->ie.shutdown = d.shutdown & SK_SHUTDOWN__BOTH;
	len = sizeof(ss);
	if (!getsockname(sk, (struct sockaddr *)&ss, &len))
		take_addr(&ss, len, id->src, &id->ie.n_src_addr, &id->ie.src_port);
	len = sizeof(ss);
	if (!getpeername(sk, (struct sockaddr *)&ss, &len)) {
		take_addr(&ss, len, id->dst, &id->ie.n_dst_addr, &id->ie.dst_port);
	} else if (proto == IPPROTO_TCP && d.state == TCP_SYN_SENT) {
		/* not connected yet for getpeername(): INET_DIAG knows where to */
		id->ie.n_dst_addr = family == AF_INET ? 1 : 4;
		memcpy(id->dst, d.dst, id->ie.n_dst_addr * 4);
		id->ie.dst_port = d.dport;
	}
	if (family == AF_INET6 && !get_int(sk, IPPROTO_IPV6, IPV6_V6ONLY, &v)) {
		id->ie.has_v6only = true;
		id->ie.v6only = v;
	}
	if (!get_int(sk, IPPROTO_IP, IP_FREEBIND, &v) && v) {
		ip_opts_entry__init(&id->ipo);
		id->ipo.has_freebind = true;
		id->ipo.freebind = true;
		id->ie.ip_opts = &id->ipo;
	}

	if (proto == IPPROTO_TCP && d.state != TCP_LISTEN && d.state != TCP_CLOSE) {
		if (!tcp_conn_state_ok(d.state)) {
			ret = refuse(p, &id->ie, "a TCP connection in this state cannot be dumped");
			goto out;
		}
		if (!ctx->o->tcp_established) {
			ret = refuse(p, &id->ie, "a TCP connection: dump it with --tcp-established");
			goto out;
		}
	}
	if (d.state == TCP_LISTEN) {
		if (d.rqueue && !ctx->o->skip_in_flight) {
			ret = refuse(p, &id->ie, "a listener with connections not yet accepted "
				     "(--skip-in-flight drops them, as CRIU)");
			goto out;
		}
		if (d.rqueue)
			pr_info("fd %d of task %d: %u connections not yet accepted are dropped "
				"(--skip-in-flight)", p->fd, p->t->pid, d.rqueue);
		id->ie.backlog = d.wqueue;
	}
	ret = sk_opts_dump(p, sk, &id->opts);
	if (!ret && proto == IPPROTO_TCP && d.state != TCP_LISTEN && d.state != TCP_CLOSE) {
		/* the generic options first: repair mode changes SO_REUSEADDR */
		id->has_tcp = true;
		ret = tcp_conn_dump(&ctx->netlock, p, sk, &id->ie, &id->tcp);
	}
	if (!ret && proto == IPPROTO_UDP)
		ret = sk_queue_dump(p, sk, SK_QUEUE_UDP, d.shutdown & 1, f->fe.id, &id->q);
	if (!ret)
		pr_debug("task %d: fd %d: %s socket %u, state %u, port %u -> %u, %zu datagrams queued",
			 p->t->pid, p->fd, kind_name(family, proto), id->ie.ino, d.state,
			 id->ie.src_port, id->ie.dst_port, id->q.nr);
out:
	return sk_dump_end(p, f, sk, ret);
}

static void inet_dump_free(struct dump_file *f)
{
	struct inet_dump *id = f->priv;

	if (!id)
		return;
	sk_dump_parts_free(&id->q, &id->opts);
	if (id->has_tcp)
		tcp_conn_dump_free(&id->tcp);
	free(id);
}

static int inet_dump_release(struct dump_ctx *ctx, struct dump_file *f, bool resume)
{
	struct inet_dump *id = f->priv;

	return id && id->has_tcp ? tcp_conn_release(&ctx->netlock, &id->tcp, resume) : 0;
}

/* ---- restore ---- */

static socklen_t make_addr(const InetSkEntry *ie, const uint32_t *w, size_t n, uint32_t port,
			   bool loopback_if_any, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (ie->family == AF_INET) {
		struct sockaddr_in *in = (void *)ss;

		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		if (n == 1)
			memcpy(&in->sin_addr, w, 4);
		if (loopback_if_any && in->sin_addr.s_addr == htonl(INADDR_ANY))
			in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (void *)ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		if (n == 4)
			memcpy(&in6->sin6_addr, w, 16);
		if (loopback_if_any && IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
			in6->sin6_addr = in6addr_loopback;
		return sizeof(*in6);
	}
}

static struct inet_rst_state *rst_state(const struct rst_images *ri)
{
	return ri->kind_state[fd_kind_index(&fd_kind_inet)];
}

static struct sk_queue_set *queues(const struct rst_images *ri)
{
	return rst_state(ri) ? rst_state(ri)->queues : NULL;
}

static int inet_check(const struct opts *o, struct rst_images *ri, struct rst_fd *f)
{
	void **state = &ri->kind_state[fd_kind_index(&fd_kind_inet)];
	const InetSkEntry *ie = f->fe->isk;
	size_t words;

	if (!ie || ie->id != f->fe->id || !ie->opts) {
		pr_err("files.img: inet socket %u has no or a mismatching inet_sk_entry", f->fe->id);
		return -EINVAL;
	}
	words = ie->family == AF_INET ? 1 : 4;
	if ((ie->family != AF_INET && ie->family != AF_INET6) ||
	    !((ie->type == SOCK_STREAM && ie->proto == IPPROTO_TCP) ||
	      (ie->type == SOCK_DGRAM && ie->proto == IPPROTO_UDP)) ||
	    (ie->n_src_addr && ie->n_src_addr != words) ||
	    (ie->n_dst_addr && ie->n_dst_addr != words)) {
		pr_err("files.img: inet socket %u: family %u, type %u, protocol %u, %zu/%zu address words: not a TCP or UDP socket we know",
		       ie->id, ie->family, ie->type, ie->proto, ie->n_src_addr, ie->n_dst_addr);
		return -EINVAL;
	}
	if (!*state) {
		struct inet_rst_state *st = calloc(1, sizeof(*st));
		int ret;

		if (!st)
			return -ENOMEM;
		*state = st;
		ret = sk_queue_load(ri, &st->queues);
		if (ret)
			return ret;
	}
	if (inet_is_tcp_conn(ie))
		return inet_tcp_check(o, ri, *state, ie);
	if (ie->proto == IPPROTO_TCP && ie->state != TCP_LISTEN && ie->state != TCP_CLOSE) {
		pr_err("files.img: inet socket %u: TCP state %s (%u) without a peer",
		       ie->id, tcp_state_name(ie->state), ie->state);
		return -EINVAL;
	}
	return 0;
}

static int set_int(struct rst_child *c, int sk, const InetSkEntry *ie, int level, int name,
		   const char *what, int v)
{
	if (setsockopt(sk, level, name, &v, sizeof(v)))
		return child_err(c, errno, "inet socket %u of task %d: setsockopt(%s): %s", ie->id,
				 c->ri->pid, what, strerror(errno));
	return 0;
}

/* What every inet socket gets first: IPV6_V6ONLY, IP_FREEBIND, the generic options. */
static int set_common_opts(struct rst_child *c, int sk, const InetSkEntry *ie)
{
	int ret = 0;

	if (ie->family == AF_INET6 && ie->has_v6only)
		ret = set_int(c, sk, ie, IPPROTO_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY", ie->v6only);
	if (!ret && ie->ip_opts && ie->ip_opts->has_freebind && ie->ip_opts->freebind)
		ret = set_int(c, sk, ie, IPPROTO_IP, IP_FREEBIND, "IP_FREEBIND", 1);
	if (!ret)
		ret = sk_opts_restore(c, sk, ie->opts, ie->id);
	return ret;
}

/* The datagrams of its queue, from a helper, to its own address. */
static int refill(struct rst_child *c, int sk, const InetSkEntry *ie)
{
	const struct sk_queue *q = sk_queue_find(queues(c->ri), ie->id);
	struct sockaddr_storage ss;
	socklen_t len;
	int helper, ret;

	if (!q || !q->nr)
		return 0;
	len = sizeof(ss);
	if (getsockname(sk, (struct sockaddr *)&ss, &len))
		return child_err(c, errno, "inet socket %u of task %d: getsockname: %s", ie->id,
				 c->ri->pid, strerror(errno));
	if (ss.ss_family == AF_INET && ((struct sockaddr_in *)&ss)->sin_addr.s_addr == 0)
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (ss.ss_family == AF_INET6 &&
	    IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&ss)->sin6_addr))
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	helper = socket(ie->family, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
	if (helper < 0)
		return child_err(c, errno, "inet socket %u of task %d: a helper socket: %s", ie->id,
				 c->ri->pid, strerror(errno));
	/* the network lock of a tree's own netns lets the marked through */
	if (setsockopt(helper, SOL_SOCKET, SO_MARK, &(int){ NET_LOCK_MARK }, sizeof(int)))
		pr_debug("inet socket %u: SO_MARK on the helper: %m", ie->id);
	if (connect(helper, (struct sockaddr *)&ss, len))
		ret = child_err(c, errno, "inet socket %u of task %d: a helper cannot reach it: %s",
				ie->id, c->ri->pid, strerror(errno));
	else
		ret = sk_queue_fill(c, helper, q);
	close(helper);
	return ret;
}

static int inet_setup(struct rst_child *c, int sk, const InetSkEntry *ie)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char what[80];
	int ret;
	bool bound = ie->src_port || (ie->n_src_addr && (ie->src_addr[0] || (ie->n_src_addr == 4 &&
		     (ie->src_addr[1] || ie->src_addr[2] || ie->src_addr[3]))));

	ret = set_common_opts(c, sk, ie);
	/* a restored connection (in repair mode) may hold the port already,
	 * as an accepted connection holds its listener's: SO_REUSEADDR lets
	 * the bind and listen share it, then goes back as it was */
	if (!ret && bound && ie->proto == IPPROTO_TCP)
		ret = set_int(c, sk, ie, SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR", 1);
	if (ret)
		return ret;
	if (bound) {
		len = make_addr(ie, ie->src_addr, ie->n_src_addr, ie->src_port, false, &ss);
		if (bind(sk, (struct sockaddr *)&ss, len))
			return child_err(c, errno, "inet socket %u of task %d: bind %s: %s%s", ie->id,
					 c->ri->pid,
					 addr_str(ie->family, ie->src_addr, ie->n_src_addr,
						  ie->src_port, what, sizeof(what)),
					 strerror(errno),
					 errno == EADDRINUSE ? " (the port is taken)" : "");
	}
	if (ie->state == TCP_LISTEN && listen(sk, ie->backlog))
		return child_err(c, errno, "inet socket %u of task %d: listen: %s", ie->id,
				 c->ri->pid, strerror(errno));
	if (bound && ie->proto == IPPROTO_TCP) {
		ret = set_int(c, sk, ie, SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR",
			      ie->opts->has_reuseaddr && ie->opts->reuseaddr);
		if (ret)
			return ret;
	}
	if (ie->proto == IPPROTO_UDP) {
		ret = refill(c, sk, ie);
		if (ret)
			return ret;
		if (ie->dst_port) {
			len = make_addr(ie, ie->dst_addr, ie->n_dst_addr, ie->dst_port, false, &ss);
			if (connect(sk, (struct sockaddr *)&ss, len))
				return child_err(c, errno, "inet socket %u of task %d: connect to %s: %s",
						 ie->id, c->ri->pid,
						 addr_str(ie->family, ie->dst_addr, ie->n_dst_addr,
							  ie->dst_port, what, sizeof(what)),
						 strerror(errno));
		}
		if (ie->has_shutdown && ie->shutdown)
			shutdown(sk, ie->shutdown == SK_SHUTDOWN__BOTH ? SHUT_RDWR :
				 ie->shutdown == SK_SHUTDOWN__READ ? SHUT_RD : SHUT_WR);
	}
	ret = sk_opts_peek_off(c, sk, ie->opts, ie->id);
	if (ret)
		return ret;
	if (fcntl(sk, F_SETFL, ie->flags & SK_SETFL_FLAGS))
		return child_err(c, errno, "inet socket %u of task %d: F_SETFL %#o: %s", ie->id,
				 c->ri->pid, ie->flags, strerror(errno));
	return 0;
}

/* A TCP connection: the generic options, then the stream in repair mode. */
static int inet_setup_conn(struct rst_child *c, int sk, const InetSkEntry *ie)
{
	const struct tcp_conn_rst *r = inet_tcp_find(rst_state(c->ri), ie->id);
	int ret;

	if (!r)
		return child_err(c, ENOENT, "TCP connection %u of task %d: its stream was not loaded",
				 ie->id, c->ri->pid);
	ret = set_common_opts(c, sk, ie);
	if (!ret)
		ret = tcp_conn_restore(c, sk, ie, r);
	if (!ret)
		ret = sk_opts_peek_off(c, sk, ie->opts, ie->id);
	if (!ret && fcntl(sk, F_SETFL, ie->flags & SK_SETFL_FLAGS))
		ret = child_err(c, errno, "inet socket %u of task %d: F_SETFL %#o: %s", ie->id,
				c->ri->pid, ie->flags, strerror(errno));
	return ret;
}

static int inet_open(struct rst_child *c, const struct rst_fd *f)
{
	const InetSkEntry *ie = f->fe->isk;
	int sk = socket(ie->family, ie->type | SOCK_CLOEXEC, ie->proto), ret;

	if (sk < 0)
		return child_err(c, errno, "inet socket %u of task %d: socket: %s", ie->id,
				 c->ri->pid, strerror(errno));
	ret = inet_is_tcp_conn(ie) ? inet_setup_conn(c, sk, ie) : inet_setup(c, sk, ie);
	if (ret) {
		close(sk);
		return ret;
	}
	return sk;
}

const struct fd_kind_ops fd_kind_inet = {
	.name = "inet socket",
	.type = FD_TYPES__INETSK,
	.stage = FD_STAGE_OPEN,
	.match = inet_match,
	.dump = inet_dump,
	.dump_free = inet_dump_free,
	.check = inet_check,
	.open = inet_open,
	.dump_write = inet_tcp_dump_write,
	.dump_release = inet_dump_release,
	.rst_finish = inet_tcp_finish,
	.rst_free = inet_rst_state_free,
};
