/*
 * Socket receive queues.  At dump we read the queue of our own copy of the
 * task's socket (pidfd_getfd: the same socket) with MSG_PEEK from a peek
 * offset that we set to 0: every peek then moves the offset past what it
 * returned, so successive peeks walk the queue one datagram or record at
 * a time (a stream's bytes come as they are), and nothing is consumed.
 * The task's own offset (SO_PEEK_OFF, -1 when off) is put back.  File
 * descriptors in flight (SCM_RIGHTS) are not supported yet: the peek that
 * meets them says so and closes the copies it received.
 *
 * At restore the socket's peer sends every packet again, in order, so
 * datagram and record boundaries are what they were.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "files/sk-queue.h"
#include "restore/restore.h"

#include "sk-packet.pb-c.h"

#define SK_STREAM_CHUNK (256u << 10)
#define SK_QUEUE_MAX_PACKETS (1u << 20)	/* a runaway peek loop stops here */

static int add_packet(struct sk_queue *q, uint8_t *data, uint32_t len)
{
	struct sk_packet *grown = realloc(q->v, (q->nr + 1) * sizeof(*grown));

	if (!grown)
		return -ENOMEM;
	q->v = grown;
	q->v[q->nr].data = data;
	q->v[q->nr].len = len;
	q->nr++;
	return 0;
}

/* Refuse fds in flight; close the copies the peek gave us. */
static int check_cmsgs(const struct fd_probe *p, struct msghdr *mh)
{
	int rights = 0;

	for (struct cmsghdr *ch = CMSG_FIRSTHDR(mh); ch; ch = CMSG_NXTHDR(mh, ch)) {
		if (ch->cmsg_level != SOL_SOCKET || ch->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < (ch->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
			close(((int *)CMSG_DATA(ch))[i]);
			rights++;
		}
	}
	if (rights) {
		pr_err("fd %d of task %d is a unix socket with file descriptors in flight (SCM_RIGHTS) in its queue: not supported yet",
		       p->fd, p->t->pid);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* One peek into @buf (@len bytes); -EAGAIN when the queue is walked. */
static ssize_t peek(const struct fd_probe *p, int sk, void *buf, size_t len, int flags)
{
	char cbuf[CMSG_SPACE(253 * sizeof(int)) + CMSG_SPACE(64)];
	struct iovec iov = { buf, len };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	ssize_t n = recvmsg(sk, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC | flags);
	int ret;

	if (n < 0) {
		if (errno == EAGAIN)
			return -EAGAIN;
		pr_perror("fd %d of task %d: reading its queue", p->fd, p->t->pid);
		return -errno;
	}
	ret = check_cmsgs(p, &mh);
	return ret ? ret : n;
}

static int walk_stream(const struct fd_probe *p, int sk, struct sk_queue *q)
{
	for (;;) {
		uint8_t *buf = malloc(SK_STREAM_CHUNK), *fit;
		ssize_t n;

		if (!buf)
			return -ENOMEM;
		n = peek(p, sk, buf, SK_STREAM_CHUNK, 0);
		if (n <= 0) {
			free(buf);
			return n == -EAGAIN || n == 0 ? 0 : n;	/* 0: EOF after the data */
		}
		fit = realloc(buf, n);
		if (add_packet(q, fit ? fit : buf, n)) {
			free(fit ? fit : buf);
			return -ENOMEM;
		}
	}
}

/* A zero-length read is a datagram of no bytes, or EOF once reading is
 * shut down (then no empty datagram can be told apart: none is kept). */
static int walk_dgram(const struct fd_probe *p, int sk, bool rcv_shut, struct sk_queue *q)
{
	while (q->nr < SK_QUEUE_MAX_PACKETS) {
		ssize_t len = peek(p, sk, NULL, 0, MSG_TRUNC), n;	/* its size, offset kept */
		uint8_t *buf;

		if (len == -EAGAIN || (len == 0 && rcv_shut))
			return 0;
		if (len < 0)
			return len;
		buf = malloc(len ? len : 1);
		if (!buf)
			return -ENOMEM;
		n = peek(p, sk, buf, len, 0);
		if (n != len) {
			free(buf);
			if (n >= 0 || n == -EAGAIN) {
				pr_err("fd %d of task %d: its queue changed while it was read",
				       p->fd, p->t->pid);
				return -EIO;
			}
			return n;
		}
		if (add_packet(q, buf, len)) {
			free(buf);
			return -ENOMEM;
		}
	}
	pr_err("fd %d of task %d: more than %u packets in its queue", p->fd, p->t->pid,
	       SK_QUEUE_MAX_PACKETS);
	return -E2BIG;
}

/*
 * UDP moves the peek offset past the whole datagram even when it copies
 * less (a size probe would skip it): one peek per datagram into a buffer
 * the largest one fits in.
 */
#define SK_UDP_MAX 65536u

static int walk_udp(const struct fd_probe *p, int sk, struct sk_queue *q)
{
	while (q->nr < SK_QUEUE_MAX_PACKETS) {
		uint8_t *buf = malloc(SK_UDP_MAX), *fit;
		ssize_t n;

		if (!buf)
			return -ENOMEM;
		n = peek(p, sk, buf, SK_UDP_MAX, MSG_TRUNC);
		if (n < 0) {
			free(buf);
			return n == -EAGAIN ? 0 : n;
		}
		if ((size_t)n > SK_UDP_MAX) {
			free(buf);
			pr_err("fd %d of task %d: a datagram of %zd bytes in its queue", p->fd,
			       p->t->pid, n);
			return -E2BIG;
		}
		fit = realloc(buf, n ? n : 1);
		if (add_packet(q, fit ? fit : buf, n)) {
			free(fit ? fit : buf);
			return -ENOMEM;
		}
	}
	pr_err("fd %d of task %d: more than %u packets in its queue", p->fd, p->t->pid,
	       SK_QUEUE_MAX_PACKETS);
	return -E2BIG;
}

int sk_queue_dump(const struct fd_probe *p, int sk, int type, bool rcv_shut, uint32_t id,
		  struct sk_queue *q)
{
	int orig = -1, zero = 0, ret;
	socklen_t len = sizeof(orig);

	q->id_for = id;
	if (getsockopt(sk, SOL_SOCKET, SO_PEEK_OFF, &orig, &len) ||
	    setsockopt(sk, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero))) {
		pr_perror("fd %d of task %d: SO_PEEK_OFF", p->fd, p->t->pid);
		return -errno;
	}
	if (type == SOCK_STREAM)
		ret = walk_stream(p, sk, q);
	else if (type == SK_QUEUE_UDP)
		ret = walk_udp(p, sk, q);
	else
		ret = walk_dgram(p, sk, rcv_shut, q);
	if (setsockopt(sk, SOL_SOCKET, SO_PEEK_OFF, &orig, sizeof(orig)) && !ret) {
		pr_perror("fd %d of task %d: putting SO_PEEK_OFF %d back", p->fd, p->t->pid, orig);
		ret = -errno;
	}
	return ret;
}

void sk_queue_free(struct sk_queue *q)
{
	for (size_t i = 0; i < q->nr; i++)
		free(q->v[i].data);
	free(q->v);
	q->v = NULL;
	q->nr = 0;
}

static int queue_write(struct cr_img *img, const struct sk_queue *q)
{
	int ret = 0;

	for (size_t i = 0; i < q->nr && !ret; i++) {
		SkPacketEntry pe = SK_PACKET_ENTRY__INIT;

		pe.id_for = q->id_for;
		pe.length = q->v[i].len;
		ret = img_write_entry(img, &pe.base);
		if (!ret && pe.length) {
			ret = img_write_raw(img, q->v[i].data, pe.length);
			if (ret)
				pr_err("%s: can't write a packet of socket %u: %s", img_name(img),
				       q->id_for, strerror(-ret));
		}
	}
	return ret;
}

int sk_queues_write(struct dump_ctx *ctx)
{
	struct cr_img *img = NULL;
	int ret = 0;

	for (size_t i = 0; i < ctx->files.nr && !ret; i++) {
		struct dump_file *f = ctx->files.v[i];
		const struct sk_queue *q = f->priv;

		if ((f->fe.type != FD_TYPES__UNIXSK && f->fe.type != FD_TYPES__INETSK) || !q ||
		    !q->nr)
			continue;
		if (!img) {
			ret = dump_img_open(ctx, IMG_SK_QUEUES, 0, &img);
			if (ret)
				return ret;
		}
		ret = queue_write(img, q);
	}
	if (!img)
		return ret;
	if (ret) {
		img_close(img);
		return ret;
	}
	return img_close(img);
}

/* ---- restore ---- */

static struct sk_queue *queue_get(struct sk_queue_set *s, uint32_t id_for)
{
	struct sk_queue *grown;

	for (size_t i = 0; i < s->nr; i++)
		if (s->v[i].id_for == id_for)
			return &s->v[i];
	grown = realloc(s->v, (s->nr + 1) * sizeof(*grown));
	if (!grown)
		return NULL;
	s->v = grown;
	memset(&s->v[s->nr], 0, sizeof(s->v[0]));
	s->v[s->nr].id_for = id_for;
	return &s->v[s->nr++];
}

static int load_one(struct cr_img *img, ProtobufCMessage *msg, void *arg)
{
	const SkPacketEntry *pe = (const SkPacketEntry *)msg;
	struct sk_queue_set *s = arg;
	struct sk_queue *q = queue_get(s, pe->id_for);
	uint8_t *buf;
	ssize_t n = 0;
	int fd = img_raw_fd(img);

	if (!q)
		return -ENOMEM;
	if (pe->n_scm) {
		pr_err("%s: a packet for socket %u carries file descriptors (SCM_RIGHTS): not supported yet",
		       img_name(img), pe->id_for);
		return -EOPNOTSUPP;
	}
	buf = malloc(pe->length ? pe->length : 1);
	if (!buf)
		return -ENOMEM;
	for (uint32_t done = 0; done < pe->length; done += n) {
		n = read(fd, buf + done, pe->length - done);
		if (n <= 0) {
			free(buf);
			pr_err("%s: a packet of socket %u is cut short (%u of %u bytes)",
			       img_name(img), pe->id_for, done, pe->length);
			return -EBADMSG;
		}
	}
	if (add_packet(q, buf, pe->length)) {
		free(buf);
		return -ENOMEM;
	}
	return 0;
}

int sk_queue_load(struct rst_images *ri, struct sk_queue_set **out)
{
	struct sk_queue_set *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	*out = s;
	return img_for_each_entry(ri->dirfd, IMG_SK_QUEUES, 0, &sk_packet_entry__descriptor,
				  load_one, s);
}

const struct sk_queue *sk_queue_find(const struct sk_queue_set *s, uint32_t id_for)
{
	for (size_t i = 0; s && i < s->nr; i++)
		if (s->v[i].id_for == id_for)
			return &s->v[i];
	return NULL;
}

int sk_queue_fill(struct rst_child *c, int sk, const struct sk_queue *q)
{
	for (size_t i = 0; q && i < q->nr; i++) {
		const struct sk_packet *pk = &q->v[i];
		uint32_t done = 0;

		do {
			ssize_t n = send(sk, pk->data + done, pk->len - done,
					 MSG_DONTWAIT | MSG_NOSIGNAL);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return child_err(c, errno,
						 "socket %u of task %d: refilling packet %zu of its queue (%u bytes): %s",
						 q->id_for, c->ri->pid, i, pk->len, strerror(errno));
			done += n;
		} while (done < pk->len);
	}
	return 0;
}

void sk_queue_set_free(void *set)
{
	struct sk_queue_set *s = set;

	for (size_t i = 0; i < s->nr; i++)
		sk_queue_free(&s->v[i]);
	free(s->v);
	free(s);
}
