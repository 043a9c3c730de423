/*
 * The restore side of an established or closing TCP connection
 * (tcp-stream.h): tcp-stream-<ino>.img read by the restore process, the
 * socket rebuilt in repair mode by the new task, and taken out of repair
 * mode by the restore process just before the tasks resume.
 *
 * In repair mode connect() sends nothing: it only makes the socket
 * ESTABLISHED with the sequence numbers set before.  Bytes sent with
 * TCP_REPAIR_QUEUE selected go straight into that queue: the receive
 * queue, and the part of the send queue the peer had seen (it may still
 * acknowledge it); the part never sent is sent out of repair mode, as new
 * data.  A connection still being opened (SYN_SENT) is the exception: its
 * connect() runs out of repair mode, so that a SYN goes out.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "files/tcp-stream.h"
#include "images/image.h"
#include "restore/restore.h"
#include "restore/child.h"

#define TCPF(s)		(1u << (s))
/* a FIN from the peer is in the receive queue */
#define RCVQ_FIN	(TCPF(TCP_CLOSE_WAIT) | TCPF(TCP_LAST_ACK) | TCPF(TCP_CLOSING))
/* our FIN: sent first (before the peer's) or second */
#define SNDQ_FIRST_FIN	(TCPF(TCP_FIN_WAIT1) | TCPF(TCP_FIN_WAIT2) | TCPF(TCP_CLOSING))
#define SNDQ_SECOND_FIN	(TCPF(TCP_LAST_ACK))
/* our FIN acknowledged by the peer */
#define SNDQ_FIN_ACKED	(TCPF(TCP_FIN_WAIT2))

static int read_raw(struct cr_img *img, uint8_t **buf, uint32_t len, const char *what)
{
	int fd = img_raw_fd(img);
	size_t done = 0;

	if (fd < 0)
		return fd;
	if (!len)
		return 0;
	*buf = malloc(len);
	if (!*buf)
		return -ENOMEM;
	while (done < len) {
		ssize_t n = read(fd, *buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			pr_err("%s: the %s queue is cut short: %zu of %u bytes", img_name(img), what,
			       done, len);
			return -EBADMSG;
		}
		done += n;
	}
	return 0;
}

int tcp_conn_load(int dirfd, const InetSkEntry *ie, struct tcp_conn_rst *r)
{
	ProtobufCMessage *msg = NULL;
	struct cr_img *img;
	int ret;

	memset(r, 0, sizeof(*r));
	r->id = ie->id;
	ret = img_open_existing(dirfd, IMG_TCP_STREAM, ie->ino, &img);
	if (ret)
		return ret;
	ret = img_read_entry(img, &tcp_stream_entry__descriptor, &msg);
	if (ret == 0) {
		pr_err("%s: empty: no tcp_stream_entry for socket %u", img_name(img), ie->ino);
		ret = -EBADMSG;
	}
	if (ret > 0) {
		r->tse = (TcpStreamEntry *)msg;
		ret = 0;
		if (ie->state == TCP_SYN_SENT && (r->tse->inq_len || r->tse->outq_len)) {
			pr_err("%s: a connection being opened (SYN_SENT) with %u bytes queued",
			       img_name(img), r->tse->inq_len + r->tse->outq_len);
			ret = -EBADMSG;
		} else if (r->tse->has_unsq_len && r->tse->unsq_len > r->tse->outq_len) {
			pr_err("%s: %u unsent bytes in a send queue of %u", img_name(img),
			       r->tse->unsq_len, r->tse->outq_len);
			ret = -EBADMSG;
		}
	}
	if (!ret)
		ret = read_raw(img, &r->inq, r->tse->inq_len, "receive");
	if (!ret)
		ret = read_raw(img, &r->outq, r->tse->outq_len, "send");
	img_close(img);
	if (ret)
		tcp_conn_rst_free(r);
	return ret;
}

void tcp_conn_rst_free(struct tcp_conn_rst *r)
{
	if (r->tse)
		tcp_stream_entry__free_unpacked(r->tse, NULL);
	free(r->inq);
	free(r->outq);
	memset(r, 0, sizeof(*r));
}

/* ---- in the new task ---- */

struct rst_ctx {
	struct rst_child *c;
	int sk;
	const InetSkEntry *ie;
};

static int fail(const struct rst_ctx *x, const char *what)
{
	int err = errno;

	return child_err(x->c, err, "TCP connection %u of task %d: %s: %s", x->ie->id,
			 x->c->ri->pid, what, strerror(err));
}

static int set_opt(const struct rst_ctx *x, int level, int name, const void *v, socklen_t len,
		   const char *what)
{
	return setsockopt(x->sk, level, name, v, len) ? fail(x, what) : 0;
}

static int set_int(const struct rst_ctx *x, int level, int name, int v, const char *what)
{
	return set_opt(x, level, name, &v, sizeof(v), what);
}

static int queue_seq(const struct rst_ctx *x, int queue, uint32_t seq)
{
	int ret = set_int(x, SOL_TCP, TCP_REPAIR_QUEUE, queue, "TCP_REPAIR_QUEUE");

	return ret ? ret : set_opt(x, SOL_TCP, TCP_QUEUE_SEQ, &seq, sizeof(seq), "TCP_QUEUE_SEQ");
}

/* In repair mode the kernel makes one linear buffer per send(): a large one
 * may fail with ENOMEM, so the chunk halves down to 1 KiB. */
static int send_all(const struct rst_ctx *x, const uint8_t *buf, size_t len, const char *what)
{
	size_t chunk = len;

	while (len) {
		ssize_t n = send(x->sk, buf, len < chunk ? len : chunk, 0);

		if (n <= 0 && chunk > 1024) {
			chunk /= 2;
			continue;
		}
		if (n <= 0)
			return fail(x, what);
		buf += n;
		len -= n;
	}
	return 0;
}

static socklen_t sockaddr_of(const InetSkEntry *ie, const uint32_t *w, uint32_t port,
			     struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (ie->family == AF_INET) {
		struct sockaddr_in *in = (void *)ss;

		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		memcpy(&in->sin_addr, w, 4);
		return sizeof(*in);
	}
	struct sockaddr_in6 *in6 = (void *)ss;

	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(port);
	memcpy(&in6->sin6_addr, w, 16);
	return sizeof(*in6);
}

static int repair_options(const struct rst_ctx *x, const TcpStreamEntry *tse)
{
	struct tcp_repair_opt opts[4];
	int n = 0;

	if (tse->opt_mask & TCPI_OPT_SACK)
		opts[n++] = (struct tcp_repair_opt){ TCPOPT_SACK_PERMITTED, 0 };
	if (tse->opt_mask & TCPI_OPT_WSCALE)
		opts[n++] = (struct tcp_repair_opt){ TCPOPT_WINDOW,
						     tse->snd_wscale + (tse->rcv_wscale << 16) };
	if (tse->opt_mask & TCPI_OPT_TIMESTAMPS)
		opts[n++] = (struct tcp_repair_opt){ TCPOPT_TIMESTAMP, 0 };
	opts[n++] = (struct tcp_repair_opt){ TCPOPT_MAXSEG, tse->mss_clamp };
	if (set_opt(x, SOL_TCP, TCP_REPAIR_OPTIONS, opts, n * sizeof(opts[0]),
		    "TCP_REPAIR_OPTIONS"))
		return -EIO;
	if (tse->has_timestamp)
		return set_opt(x, SOL_TCP, TCP_TIMESTAMP, &tse->timestamp, sizeof(tse->timestamp),
			       "TCP_TIMESTAMP");
	return 0;
}

static int queues(const struct rst_ctx *x, const struct tcp_conn_rst *r)
{
	const TcpStreamEntry *tse = r->tse;
	uint32_t unsent = tse->has_unsq_len ? tse->unsq_len : 0;
	uint32_t sent = tse->outq_len - unsent;
	int ret = 0;

	if (tse->inq_len) {
		ret = set_int(x, SOL_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE, "TCP_REPAIR_QUEUE");
		if (!ret)
			ret = send_all(x, r->inq, tse->inq_len, "filling the receive queue");
	}
	if (!ret && sent) {
		ret = set_int(x, SOL_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, "TCP_REPAIR_QUEUE");
		if (!ret)
			ret = send_all(x, r->outq, sent, "filling the send queue");
	}
	if (!ret && unsent) {
		/* never seen by the peer: plain new data (the lock holds it) */
		ret = set_int(x, SOL_TCP, TCP_REPAIR, 0, "TCP_REPAIR off");
		if (!ret)
			ret = send_all(x, r->outq + sent, unsent, "sending the unsent data");
		if (!ret)
			ret = set_int(x, SOL_TCP, TCP_REPAIR, 1, "TCP_REPAIR");
	}
	return ret;
}

static int window(const struct rst_ctx *x, const TcpStreamEntry *tse, bool rcv_fin)
{
	struct tcp_repair_window w = {
		.snd_wl1 = tse->snd_wl1, .snd_wnd = tse->snd_wnd, .max_window = tse->max_window,
		.rcv_wnd = tse->rcv_wnd, .rcv_wup = tse->rcv_wup,
	};

	if (!tse->has_snd_wnd)
		return 0;	/* an image without it: the kernel's defaults */
	if (rcv_fin) {		/* the FIN comes after, and moves them */
		w.rcv_wup--;
		w.rcv_wnd++;
	}
	return set_opt(x, SOL_TCP, TCP_REPAIR_WINDOW, &w, sizeof(w), "TCP_REPAIR_WINDOW");
}

/* shutdown(SHUT_WR) puts our FIN in the send queue: as sent when the peer
 * acknowledged it, else to be sent. */
static int our_fin(const struct rst_ctx *x, bool acked)
{
	int ret = 0;

	if (acked)
		ret = set_int(x, SOL_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, "TCP_REPAIR_QUEUE");
	if (!ret && shutdown(x->sk, SHUT_WR))
		ret = fail(x, "shutdown(SHUT_WR) for our FIN");
	if (!ret && acked)
		ret = set_int(x, SOL_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE, "TCP_REPAIR_QUEUE");
	return ret;
}

static int peer_segment(const struct rst_ctx *x, uint32_t seq, uint32_t ack, uint32_t win,
			bool fin)
{
	char why[160];
	int ret = tcp_fin_inject(x->ie, seq, ack, win > 0xffff ? 0xffff : win, fin, why,
				 sizeof(why));

	if (ret)
		return child_err(x->c, -ret, "TCP connection %u of task %d: the peer's %s: %s",
				 x->ie->id, x->c->ri->pid, fin ? "FIN" : "ACK of our FIN", why);
	return 0;
}

/*
 * A connection being opened (SYN_SENT), as CRIU does it: the send queue
 * starts at the SYN's sequence number (outq_seq is the one after it), then
 * connect() out of repair mode sends a real SYN with that number (the
 * kernel keeps a write_seq set before), non-blocking; the handshake, not
 * TCP_REPAIR_OPTIONS, agrees on the options.  Back in repair mode until
 * the last stage, like every connection.
 */
static int syn_sent(const struct rst_ctx *x, const TcpStreamEntry *tse)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fl, ret;

	ret = queue_seq(x, TCP_RECV_QUEUE, tse->inq_seq);
	if (!ret)
		ret = queue_seq(x, TCP_SEND_QUEUE, tse->outq_seq - 1);
	if (ret)
		return ret;
	len = sockaddr_of(x->ie, x->ie->src_addr, x->ie->src_port, &ss);
	if (bind(x->sk, (struct sockaddr *)&ss, len))
		return fail(x, "bind to its address");
	fl = fcntl(x->sk, F_GETFL);
	if (fl < 0 || fcntl(x->sk, F_SETFL, fl | O_NONBLOCK))
		return fail(x, "O_NONBLOCK for its connect");
	if (set_int(x, SOL_TCP, TCP_REPAIR, 0, "TCP_REPAIR off"))
		return -EIO;
	len = sockaddr_of(x->ie, x->ie->dst_addr, x->ie->dst_port, &ss);
	if (connect(x->sk, (struct sockaddr *)&ss, len) && errno != EINPROGRESS)
		return fail(x, "connect (sending its SYN again) to its peer");
	if (set_int(x, SOL_TCP, TCP_REPAIR, 1, "TCP_REPAIR"))
		return -EIO;
	if (tse->has_timestamp)
		return set_opt(x, SOL_TCP, TCP_TIMESTAMP, &tse->timestamp, sizeof(tse->timestamp),
			       "TCP_TIMESTAMP");
	return 0;
}

int tcp_conn_restore(struct rst_child *c, int sk, const InetSkEntry *ie,
		     const struct tcp_conn_rst *r)
{
	const struct rst_ctx x = { c, sk, ie };
	const TcpStreamEntry *tse = r->tse;
	unsigned int st = TCPF(ie->state);
	uint32_t inq_seq = tse->inq_seq, outq_seq = tse->outq_seq;
	struct sockaddr_storage ss;
	socklen_t len;
	int ret;

	if (set_int(&x, SOL_TCP, TCP_REPAIR, 1, "TCP_REPAIR"))
		return -EIO;
	if (ie->state == TCP_SYN_SENT) {
		ret = syn_sent(&x, tse);
		if (ret)
			return ret;
		goto opts;
	}
	if (st & RCVQ_FIN)
		inq_seq--;	/* the FIN comes back by itself below */
	if (st & (SNDQ_FIRST_FIN | SNDQ_SECOND_FIN))
		outq_seq--;
	ret = queue_seq(&x, TCP_RECV_QUEUE, inq_seq - tse->inq_len);
	if (!ret)
		ret = queue_seq(&x, TCP_SEND_QUEUE, outq_seq - tse->outq_len);
	if (ret)
		return ret;
	len = sockaddr_of(ie, ie->src_addr, ie->src_port, &ss);
	if (bind(sk, (struct sockaddr *)&ss, len))
		return fail(&x, "bind to its address");
	len = sockaddr_of(ie, ie->dst_addr, ie->dst_port, &ss);
	if (connect(sk, (struct sockaddr *)&ss, len))
		return fail(&x, "connect (in repair mode) to its peer");
	ret = repair_options(&x, tse);
	if (!ret)
		ret = queues(&x, r);
	if (!ret)
		ret = window(&x, tse, st & RCVQ_FIN);
	if (!ret && (st & SNDQ_FIRST_FIN))
		ret = our_fin(&x, st & SNDQ_FIN_ACKED);
	if (!ret && (st & RCVQ_FIN))
		ret = peer_segment(&x, inq_seq, outq_seq - tse->outq_len, tse->rcv_wnd, true);
	if (!ret && (st & SNDQ_SECOND_FIN))
		ret = our_fin(&x, false);
	if (!ret && (st & SNDQ_FIN_ACKED))
		ret = peer_segment(&x, inq_seq, outq_seq + 1 - tse->outq_len, tse->rcv_wnd, false);
	if (ret)
		return ret;
opts:
	if (ie->tcp_opts) {
		const TcpOptsEntry *o = ie->tcp_opts;

		if (o->has_nodelay && o->nodelay)
			ret = set_int(&x, SOL_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
		if (!ret && o->has_cork && o->cork)
			ret = set_int(&x, SOL_TCP, TCP_CORK, 1, "TCP_CORK");
		if (!ret && o->has_keepcnt)
			ret = set_int(&x, SOL_TCP, TCP_KEEPCNT, o->keepcnt, "TCP_KEEPCNT");
		if (!ret && o->has_keepidle)
			ret = set_int(&x, SOL_TCP, TCP_KEEPIDLE, o->keepidle, "TCP_KEEPIDLE");
		if (!ret && o->has_keepintvl)
			ret = set_int(&x, SOL_TCP, TCP_KEEPINTVL, o->keepintvl, "TCP_KEEPINTVL");
	} else {
		if (tse->has_nodelay && tse->nodelay)
			ret = set_int(&x, SOL_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
		if (!ret && tse->has_cork && tse->cork)
			ret = set_int(&x, SOL_TCP, TCP_CORK, 1, "TCP_CORK");
	}
	return ret;
}

/* ---- in the restore process, before the tasks resume ---- */

int tcp_conn_repair_off(int sk, const InetSkEntry *ie, int pid)
{
	int off = 0, reuse = ie->opts->has_reuseaddr && ie->opts->reuseaddr;

	if (setsockopt(sk, SOL_TCP, TCP_REPAIR, &off, sizeof(off)) ||
	    setsockopt(sk, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof(reuse))) {
		pr_perror("TCP connection %u of task %d: cannot leave repair mode", ie->id, pid);
		return -errno;
	}
	return 0;
}
