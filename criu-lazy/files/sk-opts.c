/*
 * Generic socket options.  Buffer sizes: getsockopt() gives what the
 * kernel keeps, which is twice what setsockopt() was given, so the restore
 * sets half (with the *FORCE variants, above the sysctl limits), then puts
 * the user locks (SO_BUF_LOCK) back as they were: a socket whose sizes were
 * never set keeps following the defaults.
 */
#include <errno.h>
#include <string.h>
#include <stdlib.h>
#include <net/if.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "files/sk-opts.h"
#include "files/sk-queue.h"
#include "restore/restore.h"
#include "restore/child.h"

#ifndef SO_BUF_LOCK
#define SO_BUF_LOCK 72
#endif

int sk_grab_fd(const struct fd_probe *p)
{
	int pidfd = syscall(SYS_pidfd_open, p->t->pid, 0), fd;

	if (pidfd < 0)
		return dump_task_error(p->t, -errno, "task %d: pidfd_open: %m", p->t->pid);
	fd = syscall(SYS_pidfd_getfd, pidfd, p->fd, 0);
	if (fd < 0)
		fd = dump_task_error(p->t, -errno, "fd %d of task %d: pidfd_getfd: %m", p->fd,
				     p->t->pid);
	close(pidfd);
	return fd;
}

bool sk_proto_name(const struct fd_probe *p, char *buf, size_t size)
{
	unsigned long long ino;
	char path[64];
	ssize_t n;

	if (sscanf(p->link, "socket:[%llu]", &ino) != 1)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", p->t->pid, p->fd);
	n = getxattr(path, "system.sockprotoname", buf, size - 1);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return true;
}

int sk_dump_end(const struct fd_probe *p, struct dump_file *f, int sk, int ret)
{
	if (sk >= 0)
		close(sk);
	return ret ? ret : dump_fown(p->t, p->fd, &f->fown);
}

void sk_dump_parts_free(struct sk_queue *q, SkOptsEntry *opts)
{
	sk_queue_free(q);
	sk_opts_dump_free(opts);
}

static int get_int(const struct fd_probe *p, int sk, int level, int name, const char *what,
		   int *val)
{
	socklen_t len = sizeof(*val);

	if (getsockopt(sk, level, name, val, &len)) {
		pr_perror("fd %d of task %d: getsockopt(%s)", p->fd, p->t->pid, what);
		return -errno;
	}
	return 0;
}

static int get_tmo(const struct fd_probe *p, int sk, int name, const char *what,
		   uint64_t *sec, uint64_t *usec)
{
	struct timeval tv;
	socklen_t len = sizeof(tv);

	if (getsockopt(sk, SOL_SOCKET, name, &tv, &len)) {
		pr_perror("fd %d of task %d: getsockopt(%s)", p->fd, p->t->pid, what);
		return -errno;
	}
	*sec = tv.tv_sec;
	*usec = tv.tv_usec;
	return 0;
}

int sk_opts_dump(const struct fd_probe *p, int sk, SkOptsEntry *e)
{
	struct linger lg;
	socklen_t len;
	char dev[IFNAMSIZ + 1] = "";
	int v, ret;

	sk_opts_entry__init(e);
	/* an option the socket's family does not have (SO_PASSCRED on TCP) is
	 * left out */
#define GET(name, field, has)							\
	do {									\
		socklen_t l_ = sizeof(v);					\
		if (getsockopt(sk, SOL_SOCKET, name, &v, &l_)) {		\
			if (errno == EOPNOTSUPP || errno == ENOPROTOOPT)	\
				break;						\
			pr_perror("fd %d of task %d: getsockopt(" #name ")",	\
				  p->fd, p->t->pid);				\
			return -errno;						\
		}								\
		e->field = v;							\
		e->has = true;							\
	} while (0)
	ret = get_int(p, sk, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF", &v);
	if (ret)
		return ret;
	e->so_sndbuf = v;
	ret = get_int(p, sk, SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF", &v);
	if (ret)
		return ret;
	e->so_rcvbuf = v;
	ret = get_tmo(p, sk, SO_SNDTIMEO, "SO_SNDTIMEO", &e->so_snd_tmo_sec, &e->so_snd_tmo_usec);
	if (!ret)
		ret = get_tmo(p, sk, SO_RCVTIMEO, "SO_RCVTIMEO", &e->so_rcv_tmo_sec,
			      &e->so_rcv_tmo_usec);
	if (ret)
		return ret;
	GET(SO_REUSEADDR, reuseaddr, has_reuseaddr);
	GET(SO_PRIORITY, so_priority, has_so_priority);
	GET(SO_RCVLOWAT, so_rcvlowat, has_so_rcvlowat);
	GET(SO_MARK, so_mark, has_so_mark);
	GET(SO_PASSCRED, so_passcred, has_so_passcred);
	GET(SO_PASSSEC, so_passsec, has_so_passsec);
	GET(SO_DONTROUTE, so_dontroute, has_so_dontroute);
	GET(SO_NO_CHECK, so_no_check, has_so_no_check);
	GET(SO_REUSEPORT, so_reuseport, has_so_reuseport);
	GET(SO_BROADCAST, so_broadcast, has_so_broadcast);
	GET(SO_KEEPALIVE, so_keepalive, has_so_keepalive);
	GET(SO_OOBINLINE, so_oobinline, has_so_oobinline);
	GET(SO_BUF_LOCK, so_buf_lock, has_so_buf_lock);
#undef GET
	len = sizeof(lg);
	if (getsockopt(sk, SOL_SOCKET, SO_LINGER, &lg, &len)) {
		pr_perror("fd %d of task %d: getsockopt(SO_LINGER)", p->fd, p->t->pid);
		return -errno;
	}
	if (lg.l_onoff) {
		e->has_so_linger = true;
		e->so_linger = lg.l_linger;
	}
	/* families without peek offsets say EOPNOTSUPP */
	len = sizeof(v);
	if (getsockopt(sk, SOL_SOCKET, SO_PEEK_OFF, &v, &len) == 0 && v >= 0) {
		e->has_cl_peek_off = true;
		e->cl_peek_off = v;
	}
	len = sizeof(dev) - 1;
	if (getsockopt(sk, SOL_SOCKET, SO_BINDTODEVICE, dev, &len) == 0 && len > 0 && dev[0]) {
		dev[len] = '\0';
		e->so_bound_dev = strdup(dev);
		if (!e->so_bound_dev)
			return -ENOMEM;
	}
	/* SO_GET_FILTER with no room: the number of instructions */
	len = 0;
	if (getsockopt(sk, SOL_SOCKET, SO_GET_FILTER, NULL, &len) == 0 && len > 0) {
		pr_err("fd %d of task %d is a socket with a BPF filter (%u instructions): socket filters are not supported yet",
		       p->fd, p->t->pid, (unsigned int)len);
		return -EOPNOTSUPP;
	}
	return 0;
}

void sk_opts_dump_free(SkOptsEntry *e)
{
	free(e->so_bound_dev);
	e->so_bound_dev = NULL;
}

static int set(struct rst_child *c, int sk, uint32_t id, int name, const char *what,
	       const void *val, socklen_t len)
{
	if (setsockopt(sk, SOL_SOCKET, name, val, len))
		return child_err(c, errno, "socket %u of task %d: setsockopt(%s): %s", id,
				 c->ri->pid, what, strerror(errno));
	return 0;
}

static int set_int(struct rst_child *c, int sk, uint32_t id, int name, const char *what, int v)
{
	return set(c, sk, id, name, what, &v, sizeof(v));
}

int sk_opts_restore(struct rst_child *c, int sk, const SkOptsEntry *e, uint32_t id)
{
	struct timeval snd = { e->so_snd_tmo_sec, e->so_snd_tmo_usec };
	struct timeval rcv = { e->so_rcv_tmo_sec, e->so_rcv_tmo_usec };
	int ret;

	ret = set_int(c, sk, id, SO_SNDBUFFORCE, "SO_SNDBUFFORCE", e->so_sndbuf / 2);
	if (!ret)
		ret = set_int(c, sk, id, SO_RCVBUFFORCE, "SO_RCVBUFFORCE", e->so_rcvbuf / 2);
	if (!ret)
		ret = set_int(c, sk, id, SO_BUF_LOCK, "SO_BUF_LOCK",
			      e->has_so_buf_lock ? e->so_buf_lock : 3);
	if (!ret)
		ret = set(c, sk, id, SO_SNDTIMEO, "SO_SNDTIMEO", &snd, sizeof(snd));
	if (!ret)
		ret = set(c, sk, id, SO_RCVTIMEO, "SO_RCVTIMEO", &rcv, sizeof(rcv));
#define SET(name, field, has)							\
	if (!ret && e->has)							\
		ret = set_int(c, sk, id, name, #name, e->field)
	SET(SO_REUSEADDR, reuseaddr, has_reuseaddr);
	SET(SO_PRIORITY, so_priority, has_so_priority);
	SET(SO_RCVLOWAT, so_rcvlowat, has_so_rcvlowat);
	if (e->has_so_mark && e->so_mark)
		SET(SO_MARK, so_mark, has_so_mark);
	SET(SO_PASSCRED, so_passcred, has_so_passcred);
	SET(SO_PASSSEC, so_passsec, has_so_passsec);
	if (e->has_so_dontroute && e->so_dontroute)
		SET(SO_DONTROUTE, so_dontroute, has_so_dontroute);
	if (e->has_so_no_check && e->so_no_check)
		SET(SO_NO_CHECK, so_no_check, has_so_no_check);
	if (e->has_so_reuseport && e->so_reuseport)
		SET(SO_REUSEPORT, so_reuseport, has_so_reuseport);
	if (e->has_so_broadcast && e->so_broadcast)
		SET(SO_BROADCAST, so_broadcast, has_so_broadcast);
	if (e->has_so_keepalive && e->so_keepalive)
		SET(SO_KEEPALIVE, so_keepalive, has_so_keepalive);
	if (e->has_so_oobinline && e->so_oobinline)
		SET(SO_OOBINLINE, so_oobinline, has_so_oobinline);
#undef SET
	if (!ret && e->has_so_linger) {
		struct linger lg = { 1, e->so_linger };

		ret = set(c, sk, id, SO_LINGER, "SO_LINGER", &lg, sizeof(lg));
	}
	if (!ret && e->so_bound_dev)
		ret = set(c, sk, id, SO_BINDTODEVICE, "SO_BINDTODEVICE", e->so_bound_dev,
			  strlen(e->so_bound_dev));
	return ret;
}

int sk_opts_peek_off(struct rst_child *c, int sk, const SkOptsEntry *e, uint32_t id)
{
	if (!e->has_cl_peek_off)
		return 0;
	return set_int(c, sk, id, SO_PEEK_OFF, "SO_PEEK_OFF", e->cl_peek_off);
}
