/*
 * The dump side of an established or closing TCP connection (tcp-stream.h):
 * lock, repair mode, and what the kernel says about the stream.
 *
 * Sequence numbers, as the kernel counts them:
 *
 *   send:    snd_una ... snd_nxt ... write_seq     outq_len = write_seq - snd_una
 *   receive: copied_seq ... rcv_nxt                inq_len  = rcv_nxt - copied_seq
 *
 * TCP_QUEUE_SEQ gives write_seq (outq_seq) and rcv_nxt (inq_seq); the
 * restore sets each queue's start (seq - len) and sends the bytes again.
 * A FIN counts one in the sequence space but is no data: it is taken out
 * of the lengths here and put back at restore.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/sockios.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "files/tcp-stream.h"

#define TCPF(s)		(1u << (s))
/* states whose send queue ends with our FIN */
#define SNDQ_FIN	(TCPF(TCP_FIN_WAIT1) | TCPF(TCP_FIN_WAIT2) | TCPF(TCP_CLOSING) | \
			 TCPF(TCP_LAST_ACK))

bool tcp_conn_state_ok(unsigned int state)
{
	return state < 32 && (TCPF(state) & (TCPF(TCP_ESTABLISHED) | TCPF(TCP_SYN_SENT) |
					     TCPF(TCP_CLOSE_WAIT) | SNDQ_FIN));
}

const char *tcp_state_name(unsigned int state)
{
	static const char *const names[] = {
		[TCP_ESTABLISHED] = "ESTABLISHED", [TCP_SYN_SENT] = "SYN_SENT",
		[TCP_SYN_RECV] = "SYN_RECV", [TCP_FIN_WAIT1] = "FIN_WAIT1",
		[TCP_FIN_WAIT2] = "FIN_WAIT2", [TCP_TIME_WAIT] = "TIME_WAIT",
		[TCP_CLOSE] = "CLOSE", [TCP_CLOSE_WAIT] = "CLOSE_WAIT",
		[TCP_LAST_ACK] = "LAST_ACK", [TCP_LISTEN] = "LISTEN", [TCP_CLOSING] = "CLOSING",
	};

	return state < sizeof(names) / sizeof(names[0]) && names[state] ? names[state] : "?";
}

static int opt_get(const struct fd_probe *p, int sk, int level, int name, const char *what,
		   void *v, socklen_t size)
{
	socklen_t len = size;

	if (getsockopt(sk, level, name, v, &len)) {
		pr_perror("fd %d of task %d: getsockopt(%s)", p->fd, p->t->pid, what);
		return -errno;
	}
	return 0;
}

static int opt_set_int(const struct fd_probe *p, int sk, int level, int name, const char *what,
		       int v)
{
	if (setsockopt(sk, level, name, &v, sizeof(v))) {
		pr_perror("fd %d of task %d: setsockopt(%s)", p->fd, p->t->pid, what);
		return -errno;
	}
	return 0;
}

static int ioctl_int(const struct fd_probe *p, int sk, unsigned long req, const char *what,
		     int *v)
{
	if (ioctl(sk, req, v)) {
		pr_perror("fd %d of task %d: ioctl(%s)", p->fd, p->t->pid, what);
		return -errno;
	}
	return 0;
}

/* One queue: its sequence number and (MSG_PEEK in repair mode) its bytes. */
static int read_queue(const struct fd_probe *p, int sk, int queue, uint32_t *seq, uint32_t len,
		      uint8_t **buf)
{
	const char *what = queue == TCP_RECV_QUEUE ? "receive" : "send";
	ssize_t n;
	int ret;

	ret = opt_set_int(p, sk, SOL_TCP, TCP_REPAIR_QUEUE, "TCP_REPAIR_QUEUE", queue);
	if (!ret)
		ret = opt_get(p, sk, SOL_TCP, TCP_QUEUE_SEQ, "TCP_QUEUE_SEQ", seq, sizeof(*seq));
	if (ret || !len)
		return ret;
	*buf = malloc(len + 1);
	if (!*buf)
		return -ENOMEM;
	/* one byte more than the kernel said: there must be exactly len */
	n = recv(sk, *buf, len + 1, MSG_PEEK | MSG_DONTWAIT);
	if (n != (ssize_t)len) {
		pr_err("fd %d of task %d: the %s queue holds %zd bytes, the kernel said %u%s%s",
		       p->fd, p->t->pid, what, n, len, n < 0 ? ": " : "",
		       n < 0 ? strerror(errno) : "");
		return n < 0 ? -errno : -EIO;
	}
	return 0;
}

/* MSS, window scales, SACK, timestamps: what TCP_REPAIR_OPTIONS sets again. */
static int read_options(const struct fd_probe *p, int sk, const struct tcp_info *ti,
			TcpStreamEntry *tse)
{
	int v, ret;

	ret = opt_get(p, sk, SOL_TCP, TCP_MAXSEG, "TCP_MAXSEG", &v, sizeof(v));
	if (ret)
		return ret;
	tse->mss_clamp = v;
	tse->opt_mask = ti->tcpi_options;
	if (ti->tcpi_options & TCPI_OPT_WSCALE) {
		tse->snd_wscale = ti->tcpi_snd_wscale;
		tse->has_rcv_wscale = true;
		tse->rcv_wscale = ti->tcpi_rcv_wscale;
	}
	if (ti->tcpi_options & TCPI_OPT_TIMESTAMPS) {
		ret = opt_get(p, sk, SOL_TCP, TCP_TIMESTAMP, "TCP_TIMESTAMP", &v, sizeof(v));
		if (ret)
			return ret;
		tse->has_timestamp = true;
		tse->timestamp = v;
	}
	return 0;
}

static int read_window(const struct fd_probe *p, int sk, TcpStreamEntry *tse)
{
	struct tcp_repair_window w;
	int ret = opt_get(p, sk, SOL_TCP, TCP_REPAIR_WINDOW, "TCP_REPAIR_WINDOW", &w, sizeof(w));

	if (ret)
		return ret;
	tse->has_snd_wl1 = tse->has_snd_wnd = tse->has_max_window = true;
	tse->has_rcv_wnd = tse->has_rcv_wup = true;
	tse->snd_wl1 = w.snd_wl1;
	tse->snd_wnd = w.snd_wnd;
	tse->max_window = w.max_window;
	tse->rcv_wnd = w.rcv_wnd;
	tse->rcv_wup = w.rcv_wup;
	return 0;
}

/* TCP_NODELAY, TCP_CORK, keepalive timing: tcp_opts_entry (and the two
 * old fields of tcp_stream_entry, as CRIU still writes them). */
static int read_tcp_opts(const struct fd_probe *p, int sk, struct tcp_conn_dump *td)
{
	int v, ret;

	tcp_opts_entry__init(&td->opts);
	ret = opt_get(p, sk, SOL_TCP, TCP_NODELAY, "TCP_NODELAY", &v, sizeof(v));
	if (ret)
		return ret;
	td->opts.has_nodelay = td->tse.has_nodelay = v != 0;
	td->opts.nodelay = td->tse.nodelay = v != 0;
	ret = opt_get(p, sk, SOL_TCP, TCP_CORK, "TCP_CORK", &v, sizeof(v));
	if (ret)
		return ret;
	td->opts.has_cork = td->tse.has_cork = v != 0;
	td->opts.cork = td->tse.cork = v != 0;
	ret = opt_get(p, sk, SOL_TCP, TCP_KEEPCNT, "TCP_KEEPCNT", &v, sizeof(v));
	td->opts.has_keepcnt = true;
	td->opts.keepcnt = v;
	if (!ret)
		ret = opt_get(p, sk, SOL_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE", &v, sizeof(v));
	td->opts.has_keepidle = true;
	td->opts.keepidle = v;
	if (!ret)
		ret = opt_get(p, sk, SOL_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL", &v, sizeof(v));
	td->opts.has_keepintvl = true;
	td->opts.keepintvl = v;
	return ret;
}

/*
 * A connection being opened (SYN_SENT) carries nothing but its SYN, unless
 * TCP Fast Open put data with it (sendto(MSG_FASTOPEN), or a connect()
 * deferred by TCP_FASTOPEN_CONNECT): that is refused.  In SYN_SENT the
 * kernel says 0 for every queue length; the send queue, peeked in repair
 * mode, says what it holds.
 */
static int syn_sent_plain(const struct fd_probe *p, int sk)
{
	int v = 0, ret;
	char c;
	ssize_t n;

	ret = opt_get(p, sk, SOL_TCP, TCP_FASTOPEN_CONNECT, "TCP_FASTOPEN_CONNECT", &v,
		      sizeof(v));
	if (ret)
		return ret;
	ret = opt_set_int(p, sk, SOL_TCP, TCP_REPAIR_QUEUE, "TCP_REPAIR_QUEUE", TCP_SEND_QUEUE);
	if (ret)
		return ret;
	n = recv(sk, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && errno != EAGAIN) {
		pr_perror("fd %d of task %d: peeking the send queue", p->fd, p->t->pid);
		return -errno;
	}
	if (v || n > 0) {
		pr_err("fd %d of task %d is a TCP connection being opened (SYN_SENT) with TCP Fast Open %s: not supported",
		       p->fd, p->t->pid, n > 0 ? "data in its send queue" : "(TCP_FASTOPEN_CONNECT)");
		return -EOPNOTSUPP;
	}
	return 0;
}

static int read_stream(const struct fd_probe *p, int sk, struct tcp_conn_dump *td)
{
	TcpStreamEntry *tse = &td->tse;
	struct tcp_info ti;
	int inq, outq, unsq, peek_off, ret;

	ret = opt_get(p, sk, SOL_TCP, TCP_INFO, "TCP_INFO", &ti, sizeof(ti));
	if (ret)
		return ret;
	if (!tcp_conn_state_ok(ti.tcpi_state)) {
		pr_err("fd %d of task %d: the TCP connection went to state %s while dumped",
		       p->fd, p->t->pid, tcp_state_name(ti.tcpi_state));
		return -EAGAIN;
	}
	ret = ioctl_int(p, sk, SIOCOUTQ, "SIOCOUTQ", &outq);
	if (!ret)
		ret = ioctl_int(p, sk, SIOCOUTQNSD, "SIOCOUTQNSD", &unsq);
	if (!ret)
		ret = ioctl_int(p, sk, SIOCINQ, "SIOCINQ", &inq);
	if (ret)
		return ret;
	/* our FIN is in the send queue, but is no data */
	if (TCPF(ti.tcpi_state) & SNDQ_FIN) {
		outq = outq ? outq - 1 : 0;
		unsq = unsq ? unsq - 1 : 0;
	}
	tse->inq_len = inq;
	tse->outq_len = outq;
	tse->has_unsq_len = true;
	tse->unsq_len = unsq;

	/* MSG_PEEK starts at SO_PEEK_OFF if the task set one */
	ret = opt_get(p, sk, SOL_SOCKET, SO_PEEK_OFF, "SO_PEEK_OFF", &peek_off, sizeof(peek_off));
	if (!ret && peek_off > 0)
		ret = opt_set_int(p, sk, SOL_SOCKET, SO_PEEK_OFF, "SO_PEEK_OFF", 0);
	if (!ret)
		ret = read_queue(p, sk, TCP_RECV_QUEUE, &tse->inq_seq, tse->inq_len, &td->inq);
	if (!ret && peek_off > 0)
		ret = opt_set_int(p, sk, SOL_SOCKET, SO_PEEK_OFF, "SO_PEEK_OFF", peek_off);
	if (!ret)
		ret = read_queue(p, sk, TCP_SEND_QUEUE, &tse->outq_seq, tse->outq_len, &td->outq);
	if (!ret && ti.tcpi_state == TCP_SYN_SENT)
		ret = syn_sent_plain(p, sk);
	if (!ret)
		ret = opt_set_int(p, sk, SOL_TCP, TCP_REPAIR_QUEUE, "TCP_REPAIR_QUEUE",
				  TCP_NO_QUEUE);
	if (!ret)
		ret = read_options(p, sk, &ti, tse);
	if (!ret)
		ret = read_window(p, sk, tse);
	if (!ret)
		ret = read_tcp_opts(p, sk, td);
	return ret;
}

int tcp_conn_dump(struct net_lock *nl, const struct fd_probe *p, int sk, InetSkEntry *ie,
		  struct tcp_conn_dump *td)
{
	int v, ret;

	tcp_stream_entry__init(&td->tse);
	td->fd = -1;
	td->ino = ie->ino;
	td->conn = (struct net_conn){ ie->family, ie->src_addr, ie->dst_addr, ie->src_port,
				      ie->dst_port };
	ret = opt_get(p, sk, SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR", &v, sizeof(v));
	if (ret)
		return ret;
	td->reuseaddr = v;
	/* kept until the end: a socket in repair mode closes silently */
	td->fd = dup(sk);
	if (td->fd < 0) {
		pr_perror("fd %d of task %d: dup", p->fd, p->t->pid);
		return -errno;
	}
	ret = net_lock_conn(nl, &td->conn);
	if (ret)
		return ret;
	td->locked = true;
	ret = opt_set_int(p, sk, SOL_TCP, TCP_REPAIR, "TCP_REPAIR", 1);
	if (ret)
		return ret;
	td->repair = true;
	ret = read_stream(p, sk, td);
	if (ret)
		return ret;
	ie->tcp_opts = &td->opts;
	pr_debug("task %d: fd %d: TCP %s, in %u bytes (seq %u), out %u bytes (%u unsent, seq %u), "
		 "mss %u, options %#x, wscale %u/%u", p->t->pid, p->fd,
		 tcp_state_name(ie->state), td->tse.inq_len, td->tse.inq_seq, td->tse.outq_len,
		 td->tse.unsq_len, td->tse.outq_seq, td->tse.mss_clamp, td->tse.opt_mask,
		 td->tse.snd_wscale, td->tse.rcv_wscale);
	return 0;
}

int tcp_conn_write(struct dump_ctx *ctx, struct tcp_conn_dump *td)
{
	struct cr_img *img;
	int ret, ret2;

	ret = dump_img_open(ctx, IMG_TCP_STREAM, td->ino, &img);
	if (ret)
		return ret;
	ret = img_write_entry(img, &td->tse.base);
	if (!ret && td->tse.inq_len)
		ret = img_write_raw(img, td->inq, td->tse.inq_len);
	if (!ret && td->tse.outq_len)
		ret = img_write_raw(img, td->outq, td->tse.outq_len);
	if (ret)
		pr_err("%s: cannot write the queues of socket %u: %s", img_name(img), td->ino,
		       strerror(-ret));
	ret2 = img_close(img);
	return ret ? ret : ret2;
}

int tcp_conn_release(struct net_lock *nl, struct tcp_conn_dump *td, bool resume)
{
	int off = 0, ret = 0;

	if (td->fd < 0)
		return 0;
	if (resume && td->repair) {
		if (setsockopt(td->fd, SOL_TCP, TCP_REPAIR, &off, sizeof(off)) ||
		    setsockopt(td->fd, SOL_SOCKET, SO_REUSEADDR, &td->reuseaddr,
			       sizeof(td->reuseaddr))) {
			ret = -errno;
			pr_perror("socket %u: cannot leave TCP repair mode", td->ino);
		}
		td->repair = false;
	}
	if (resume && td->locked) {
		int r = net_unlock_conn(nl, &td->conn, false);

		ret = ret ? ret : r;
		td->locked = false;
	}
	close(td->fd);
	td->fd = -1;
	return ret;
}

void tcp_conn_dump_free(struct tcp_conn_dump *td)
{
	if (td->fd >= 0)
		close(td->fd);
	td->fd = -1;
	free(td->inq);
	free(td->outq);
	td->inq = td->outq = NULL;
}
