/*
 * Socket receive queues.  At dump we read the queue of our own copy of the
 * task's socket (pidfd_getfd: the same socket) with MSG_PEEK from a peek
 * offset that we set to 0: every peek then moves the offset past what it
 * returned, so successive peeks walk the queue one datagram or record at
 * a time (a stream's bytes come as they are), and nothing is consumed.
 * The task's own offset (SO_PEEK_OFF, -1 when off) is put back.  A peek
 * of a message that carries file descriptors (SCM_RIGHTS) gives us copies
 * of them: the packet keeps them until sk-scm.c has made them file objects
 * (a backlog's connection: after each message, q->got_files), and then
 * only the copy of a file new to the dump (a stream peek stops after the bytes that carry descriptors, so they
 * stay with the bytes they came with).
 *
 * At restore the socket's peer sends every packet again, in order, so
 * datagram and record boundaries are what they were, with the files in
 * flight opened in the task and passed again.
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
#include "restore/child.h"

#include "sk-packet.pb-c.h"

#define SK_STREAM_CHUNK (256u << 10)
#define SK_QUEUE_MAX_PACKETS (1u << 20)	/* a runaway peek loop stops here */

/* Files in flight of one peek: our copies of them. */
struct scm_fds {
	int *fds;
	uint32_t nr;
};

static void scm_fds_close(struct scm_fds *s)
{
	for (uint32_t i = 0; i < s->nr; i++)
		close(s->fds[i]);
	free(s->fds);
	s->fds = NULL;
	s->nr = 0;
}

/* Takes @scm's descriptors (if any), even on failure. */
static int add_packet(struct sk_queue *q, uint8_t *data, uint32_t len, struct scm_fds *scm)
{
	struct sk_packet *grown = realloc(q->v, (q->nr + 1) * sizeof(*grown));

	if (!grown) {
		if (scm)
			scm_fds_close(scm);
		return -ENOMEM;
	}
	q->v = grown;
	memset(&q->v[q->nr], 0, sizeof(q->v[0]));
	q->v[q->nr].data = data;
	q->v[q->nr].len = len;
	if (scm) {
		q->v[q->nr].scm_fds = scm->fds;
		q->v[q->nr].nr_scm = scm->nr;
		scm->fds = NULL;
		scm->nr = 0;
	}
	q->nr++;
	return 0;
}

/* After a packet was added: its files in flight resolved now, if asked. */
static int got_packet(struct sk_queue *q)
{
	if (q->got_files && q->v[q->nr - 1].nr_scm)
		return q->got_files(q->got_files_arg);
	return 0;
}

int sk_queue_add(struct sk_queue *q, uint8_t *data, uint32_t len)
{
	return add_packet(q, data, len, NULL);
}

/* The descriptors a peek received, into @keep (or closed when NULL). */
static int collect_cmsgs(const struct fd_probe *p, struct msghdr *mh, struct scm_fds *keep)
{
	struct scm_fds got = { NULL, 0 };
	int ret = 0;

	for (struct cmsghdr *ch = CMSG_FIRSTHDR(mh); ch; ch = CMSG_NXTHDR(mh, ch)) {
		size_t n = (ch->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *grown;

		if (ch->cmsg_level != SOL_SOCKET || ch->cmsg_type != SCM_RIGHTS)
			continue;
		grown = realloc(got.fds, (got.nr + n) * sizeof(int));
		if (!grown) {
			for (size_t i = 0; i < n; i++)
				close(((int *)CMSG_DATA(ch))[i]);
			ret = -ENOMEM;
			continue;
		}
		got.fds = grown;
		memcpy(got.fds + got.nr, CMSG_DATA(ch), n * sizeof(int));
		got.nr += n;
	}
	if (!ret && (mh->msg_flags & MSG_CTRUNC)) {
		pr_err("fd %d of task %d: a message of its queue carries more than we can read in one control message",
		       p->fd, p->t->pid);
		ret = -E2BIG;
	}
	if (ret || !keep) {
		scm_fds_close(&got);
		return ret;
	}
	*keep = got;
	return 0;
}

/* One peek into @buf (@len bytes); -EAGAIN when the queue is walked.  The
 * files in flight it meets go to @scm, or are closed when it is NULL. */
static ssize_t peek(const struct fd_probe *p, int sk, void *buf, size_t len, int flags,
		    struct scm_fds *scm)
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
	ret = collect_cmsgs(p, &mh, scm);
	return ret ? ret : n;
}

static int walk_stream(const struct fd_probe *p, int sk, struct sk_queue *q)
{
	for (;;) {
		uint8_t *buf = malloc(SK_STREAM_CHUNK), *fit;
		struct scm_fds scm = { NULL, 0 };
		ssize_t n;
		int ret;

		if (!buf)
			return -ENOMEM;
		n = peek(p, sk, buf, SK_STREAM_CHUNK, 0, &scm);
		if (n <= 0) {
			free(buf);
			scm_fds_close(&scm);
			return n == -EAGAIN || n == 0 ? 0 : n;	/* 0: EOF after the data */
		}
		fit = realloc(buf, n);
		if (add_packet(q, fit ? fit : buf, n, &scm)) {
			free(fit ? fit : buf);
			return -ENOMEM;
		}
		ret = got_packet(q);
		if (ret)
			return ret;
	}
}

/* A zero-length read is a datagram of no bytes, or EOF once reading is
 * shut down (then no empty datagram can be told apart: none is kept). */
static int walk_dgram(const struct fd_probe *p, int sk, bool rcv_shut, struct sk_queue *q)
{
	while (q->nr < SK_QUEUE_MAX_PACKETS) {
		ssize_t len = peek(p, sk, NULL, 0, MSG_TRUNC, NULL), n;	/* its size, offset kept */
		struct scm_fds scm = { NULL, 0 };
		uint8_t *buf;

		if (len == -EAGAIN || (len == 0 && rcv_shut))
			return 0;
		if (len < 0)
			return len;
		buf = malloc(len ? len : 1);
		if (!buf)
			return -ENOMEM;
		n = peek(p, sk, buf, len, 0, &scm);
		if (n != len) {
			free(buf);
			scm_fds_close(&scm);
			if (n >= 0 || n == -EAGAIN) {
				pr_err("fd %d of task %d: its queue changed while it was read",
				       p->fd, p->t->pid);
				return -EIO;
			}
			return n;
		}
		if (add_packet(q, buf, len, &scm)) {
			free(buf);
			return -ENOMEM;
		}
		n = got_packet(q);
		if (n)
			return n;
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
		n = peek(p, sk, buf, SK_UDP_MAX, MSG_TRUNC, NULL);
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
		if (add_packet(q, fit ? fit : buf, n, NULL)) {
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
	for (size_t i = 0; i < q->nr; i++) {
		struct sk_packet *pk = &q->v[i];

		for (uint32_t j = 0; pk->scm_fds && j < pk->nr_scm; j++)
			if (pk->scm_fds[j] >= 0)
				close(pk->scm_fds[j]);
		free(pk->scm_fds);
		free(pk->scm_ids);
		free(pk->data);
	}
	free(q->v);
	q->v = NULL;
	q->nr = 0;
}

/* The sk_packet_entry of @q's packet @i (@scm: room for its rights). */
static void packet_entry(const struct sk_queue *q, size_t i, SkPacketEntry *pe, ScmEntry *scm,
			 ScmEntry **scms)
{
	sk_packet_entry__init(pe);
	pe->id_for = q->id_for;
	pe->length = q->v[i].len;
	if (q->v[i].nr_scm) {
		scm_entry__init(scm);
		scm->type = SCM_RIGHTS;
		scm->n_rights = q->v[i].nr_scm;
		scm->rights = q->v[i].scm_ids;
		scms[0] = scm;
		pe->n_scm = 1;
		pe->scm = scms;
	}
}

static int queue_write(struct cr_img *img, const struct sk_queue *q)
{
	int ret = 0;

	for (size_t i = 0; i < q->nr && !ret; i++) {
		SkPacketEntry pe;
		ScmEntry scm, *scms[1];

		packet_entry(q, i, &pe, &scm, scms);
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

/* The queue of @f, when it is a socket's and not empty. */
static const struct sk_queue *queue_of(const struct dump_file *f)
{
	const struct sk_queue *q = f->priv;

	if (f->fe.type != FD_TYPES__UNIXSK && f->fe.type != FD_TYPES__INETSK &&
	    f->fe.type != FD_TYPES__NETLINKSK)
		return NULL;
	return q && q->nr ? q : NULL;
}

uint64_t sk_queues_size(const struct dump_ctx *ctx)
{
	uint64_t size = 0;

	for (size_t i = 0; i < ctx->files.nr; i++) {
		const struct sk_queue *q = queue_of(ctx->files.v[i]);

		for (size_t j = 0; q && j < q->nr; j++) {
			SkPacketEntry pe;
			ScmEntry scm, *scms[1];

			packet_entry(q, j, &pe, &scm, scms);
			size += sizeof(uint32_t) + protobuf_c_message_get_packed_size(&pe.base) +
				pe.length;
		}
	}
	return size;
}

int sk_queues_write(struct dump_ctx *ctx)
{
	struct cr_img *img = ctx->sk_queues_img;	/* opened by a reservation */
	int ret = 0;

	ctx->sk_queues_img = NULL;
	for (size_t i = 0; i < ctx->files.nr && !ret; i++) {
		const struct sk_queue *q = queue_of(ctx->files.v[i]);

		if (!q)
			continue;
		if (!img) {
			ret = dump_img_open(ctx, IMG_SK_QUEUES, 0, &img);
			if (ret)
				return ret;
		}
		ret = queue_write(img, q);
	}
	return img_close_keep(img, ret);
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

/* The files in flight of a packet: every SCM_RIGHTS entry's ids, in order. */
static int load_scm(struct cr_img *img, const SkPacketEntry *pe, struct sk_packet *pk)
{
	for (size_t i = 0; i < pe->n_scm; i++) {
		const ScmEntry *e = pe->scm[i];
		uint32_t *grown;

		if (e->type != SCM_RIGHTS) {
			pr_err("%s: a packet for socket %u carries a control message of type %u: only SCM_RIGHTS is supported",
			       img_name(img), pe->id_for, e->type);
			return -EOPNOTSUPP;
		}
		if (pk->nr_scm + e->n_rights > SK_SCM_MAX) {
			pr_err("%s: a packet for socket %u carries more than %u files in flight",
			       img_name(img), pe->id_for, SK_SCM_MAX);
			return -EBADMSG;
		}
		grown = realloc(pk->scm_ids, (pk->nr_scm + e->n_rights + 1) * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		pk->scm_ids = grown;
		if (e->n_rights)	/* none: e->rights is NULL */
			memcpy(pk->scm_ids + pk->nr_scm, e->rights, e->n_rights * sizeof(*grown));
		pk->nr_scm += e->n_rights;
	}
	return 0;
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
	if (add_packet(q, buf, pe->length, NULL)) {
		free(buf);
		return -ENOMEM;
	}
	return load_scm(img, pe, &q->v[q->nr - 1]);
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

/*
 * The packet's files in flight as a control message: each file object
 * opened in this task (or found open already), kept there until the
 * task's own fd of it comes or the blob closes what is left over.
 */
static int scm_control(struct rst_child *c, const struct sk_packet *pk, struct msghdr *mh,
		       char *cbuf)
{
	int *fds = (int *)CMSG_DATA((struct cmsghdr *)cbuf);
	struct cmsghdr *ch = (struct cmsghdr *)cbuf;

	for (uint32_t i = 0; i < pk->nr_scm; i++) {
		fds[i] = child_file_get(c, pk->scm_ids[i]);
		if (fds[i] < 0)
			return fds[i];
	}
	ch->cmsg_level = SOL_SOCKET;
	ch->cmsg_type = SCM_RIGHTS;
	ch->cmsg_len = CMSG_LEN(pk->nr_scm * sizeof(int));
	mh->msg_control = cbuf;
	mh->msg_controllen = CMSG_SPACE(pk->nr_scm * sizeof(int));
	return 0;
}

int sk_queue_fill(struct rst_child *c, int sk, const struct sk_queue *q)
{
	union {
		char buf[CMSG_SPACE(SK_SCM_MAX * sizeof(int))];
		struct cmsghdr align;
	} cbuf;

	for (size_t i = 0; q && i < q->nr; i++) {
		const struct sk_packet *pk = &q->v[i];
		uint32_t done = 0;
		struct msghdr mh = { 0 };

		if (pk->nr_scm) {
			int ret;

			memset(&cbuf, 0, sizeof(cbuf));
			ret = scm_control(c, pk, &mh, cbuf.buf);
			if (ret)
				return ret;
		}
		do {
			struct iovec iov = { pk->data + done, pk->len - done };
			ssize_t n;

			mh.msg_iov = &iov;
			mh.msg_iovlen = 1;
			n = sendmsg(sk, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return child_err(c, errno,
						 "socket %u of task %d: refilling packet %zu of its queue (%u bytes): %s",
						 q->id_for, c->ri->pid, i, pk->len, strerror(errno));
			done += n;
			mh.msg_control = NULL;	/* the files went with the first bytes */
			mh.msg_controllen = 0;
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
