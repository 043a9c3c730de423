/*
 * Files shared between the processes of a tree: one open file description
 * held by several processes (inherited across fork), or objects made
 * together (both ends of a pipe, a socketpair) whose parts are held by
 * different processes.  Each must be created once, by one process, and
 * handed to the others, as CRIU does with its "master" fd and per-task
 * transport sockets.
 *
 * Groups.  A file's group is its kind's share_key() (files/fd-kind.h: the
 * pipe inode for a pipe end, the pair for a socketpair end), or the file
 * alone.  The owner of a group is the first process of the tree (pstree
 * order: parents first) that holds any file of it.  A group held by one
 * process only is that process's business, as before.  For the others
 * (rst_share_plan(), in the restore process before any task exists) each
 * file of the group that a process other than the owner holds gets an
 * entry: its id, its owner, those holders.
 *
 * Transport.  Every process that receives files gets a datagram socket of
 * its own, created and autobound here (an abstract name the kernel picks,
 * so no name of ours can clash); every task inherits all of them (it is a
 * fork of us) and keeps its own (child_share_prepare()).  The owner
 * sends each file (an id and the fd, SCM_RIGHTS) to each holder's name from
 * a socket of its own.  Sends never block: a full queue is answered by
 * draining our own queue (what comes is stashed) and trying again, so two
 * tasks sending to each other cannot deadlock.
 *
 * By fork.  A file whose kind can be opened anywhere alike (a regular file:
 * fd_kind_ops.by_fork) is opened by its owner before it forks any child, at
 * a number above every fd of every process (rst_share.early_base); each
 * holder below the owner inherits it there, takes it as its own before it
 * closes what it inherited (child_share_adopt()), and is sent nothing.
 * Holders elsewhere in the tree get it over the sockets as before.
 *
 * In a task, per fd stage (restore/fds.c): first what the task owns (its
 * own fds, then the files of its groups only others hold), then it sends
 * what others hold, then it takes what others own, waiting for each.  No
 * task waits within a stage for anything but files owned by others, which
 * their owners create without waiting: no cycle.  An owner comes before
 * every process that waits for it in pstree order, the order in which the
 * restore process waits for the tasks: if an owner fails, its own line is
 * the one printed, and the tree killed, before any waiter times out.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "common/mono-time.h"
#include "restore/restore.h"
#include "restore/child.h"
#include "restore/files.h"
#include "restore/tree.h"

#define SHARE_WAIT_MS	60000	/* for a file from its owner */

/* On the wire: which file comes with the fd. */
struct share_msg {
	uint32_t id;
	int32_t from;			/* the owner's pid, for messages */
};

/* ------------------------------------------------------------ in the task */

const struct rst_share_file *child_share_find(const struct rst_child *c, uint32_t id)
{
	const struct rst_share *s = c->share;
	size_t lo = 0, hi = s ? s->nr : 0;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (s->files[mid].id == id)
			return &s->files[mid];
		if (s->files[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

bool child_file_mine(const struct rst_child *c, uint32_t id)
{
	const struct rst_share_file *sf = child_share_find(c, id);

	return !sf || sf->owner == c->self;
}

static bool holds(const struct rst_share_file *sf, int proc)
{
	for (size_t h = 0; h < sf->nr_holders; h++)
		if (sf->holders[h] == proc)
			return true;
	return false;
}

bool rst_share_by_fork(const struct rst_share_file *sf, size_t h)
{
	return sf->by_fork && sf->by_fork[h];
}

/* Does a holder of @sf take it by fork (its owner opens it before forking)? */
static bool any_by_fork(const struct rst_share_file *sf)
{
	for (size_t h = 0; h < sf->nr_holders; h++)
		if (rst_share_by_fork(sf, h))
			return true;
	return false;
}

/* Does process @proc send file @sf over the sockets, or take it so? */
static bool by_socket(const struct rst_share_file *sf, int proc)
{
	for (size_t h = 0; h < sf->nr_holders; h++)
		if (!rst_share_by_fork(sf, h) && (sf->owner == proc || sf->holders[h] == proc))
			return true;
	return false;
}

/* How many files process @proc creates for others or takes from them. */
size_t rst_share_count(const struct rst_share *s, int proc)
{
	size_t n = 0;

	for (size_t i = 0; s && i < s->nr; i++)
		n += s->files[i].owner == proc || holds(&s->files[i], proc);
	return n;
}

size_t child_share_count(const struct rst_child *c)
{
	return rst_share_count(c->share, c->self);
}

/* Our own receiving socket and a sending one, both among the helpers. */
int child_share_prepare(struct rst_child *c)
{
	bool any = false;

	for (size_t i = 0; c->share && i < c->share->nr && !any; i++)
		any = by_socket(&c->share->files[i], c->self);
	if (!any)
		return 0;
	if (c->share->sk[c->self] >= 0) {
		c->share_rx = fcntl(c->share->sk[c->self], F_DUPFD_CLOEXEC, c->helper_base);
		if (c->share_rx < 0)
			return child_err(c, errno, "task %d: cannot keep its file socket: %s",
					 c->ri->pid, strerror(errno));
	}
	c->share_tx = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->share_tx >= 0 && c->share_tx < c->helper_base) {
		int high = fcntl(c->share_tx, F_DUPFD_CLOEXEC, c->helper_base);

		close(c->share_tx);
		c->share_tx = high;
	}
	if (c->share_tx < 0)
		return child_err(c, errno, "task %d: a socket to pass files: %s", c->ri->pid,
				 strerror(errno));
	return 0;
}

/* Take every file queued for us now (stashed until its fd comes). */
static int drain(struct rst_child *c)
{
	for (;;) {
		char cbuf[CMSG_SPACE(sizeof(int))];
		struct share_msg m;
		struct iovec iov = { &m, sizeof(m) };
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
		};
		const struct rst_share_file *sf;
		struct cmsghdr *cm;
		ssize_t n;
		int fd, ret;

		if (c->share_rx < 0)
			return 0;
		n = recvmsg(c->share_rx, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return child_err(c, errno, "task %d: receiving a shared file: %s",
					 c->ri->pid, strerror(errno));
		cm = CMSG_FIRSTHDR(&mh);
		if (n != sizeof(m) || !cm || cm->cmsg_type != SCM_RIGHTS ||
		    cm->cmsg_len != CMSG_LEN(sizeof(int)) || (mh.msg_flags & MSG_CTRUNC))
			return child_err(c, EPROTO, "task %d: a malformed message on its file socket",
					 c->ri->pid);
		memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
		sf = child_share_find(c, m.id);
		if (!sf || !holds(sf, c->self) || child_file_lookup(c, m.id) >= 0) {
			close(fd);
			return child_err(c, EPROTO, "task %d: got file %u from task %d, which it "
					 "does not wait for", c->ri->pid, m.id, m.from);
		}
		ret = child_file_stash(c, m.id, fd);
		if (ret)
			return ret;
	}
}

/* "fd N", or "in flight" for a file no fd of the holder's has */
static const char *fd_where(const struct rst_fd *f, char buf[32])
{
	if (f->fd < 0)
		return "in flight";
	snprintf(buf, 32, "fd %d", f->fd);
	return buf;
}

static int send_one(struct rst_child *c, const struct rst_share_file *sf, int fd, int to)
{
	char where[32];
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct share_msg m = { .id = sf->id, .from = c->ri->pid };
	struct iovec iov = { &m, sizeof(m) };
	struct msghdr mh = {
		.msg_name = (void *)&c->share->addr[to], .msg_namelen = c->share->addr_len[to],
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	int64_t deadline = mono_ms() + SHARE_WAIT_MS;

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(fd));
	for (;;) {
		int ret;

		if (sendmsg(c->share_tx, &mh, MSG_NOSIGNAL) == sizeof(m))
			return 0;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			break;
		/* its queue is full: it may be waiting to send to us */
		ret = drain(c);
		if (ret)
			return ret;
		if (mono_ms() > deadline) {
			errno = ETIMEDOUT;
			break;
		}
		poll(NULL, 0, 1);
	}
	return child_err(c, errno, "task %d: cannot pass %s %u (%s) to task %d: %s",
			 c->ri->pid, sf->fd.ops->name, sf->id, fd_where(&sf->fd, where),
			 c->share->pids[to], strerror(errno));
}

/* File @sf made by its kind here, with one holder's fd for its messages. */
static int open_one(struct rst_child *c, const struct rst_share_file *sf)
{
	struct rst_fd f = sf->fd;

	f.fe = rst_file_find(c->ri, sf->id);
	if (!f.fe)
		return child_err(c, EINVAL, "task %d: file %u is not in files.img", c->ri->pid,
				 sf->id);
	return f.ops->open(c, &f);
}

/*
 * The files of stage @stage of our groups that only others hold: made here
 * too (by the kind, with one holder's fd for its messages), kept above the
 * task's fds until they are sent.
 */
int child_share_open_rest(struct rst_child *c, enum fd_stage stage)
{
	for (size_t i = 0; c->share && i < c->share->nr; i++) {
		const struct rst_share_file *sf = &c->share->files[i];
		int fd, ret;

		if (sf->owner != c->self || sf->fd.ops->stage != stage ||
		    child_file_lookup(c, sf->id) >= 0)
			continue;
		fd = open_one(c, sf);
		if (fd < 0)
			return fd;
		ret = child_file_stash(c, sf->id, fd);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * In the owner, before its first fork: the files its children and their
 * own take by fork, opened now, above every fd of every process.
 */
int child_share_open_early(struct rst_child *c)
{
	const struct rst_share *s = c->share;
	bool room = false;
	int ret;

	for (size_t i = 0; s && i < s->nr; i++) {
		struct rst_share_file *sf = &s->files[i];
		int fd, high;

		if (sf->owner != c->self || !any_by_fork(sf))
			continue;
		/* once: room for every early file there can be */
		ret = room ? 0 : child_fds_room(c, s->early_base + s->nr + 1);
		if (ret)
			return ret;
		room = true;
		fd = open_one(c, sf);
		if (fd < 0)
			return fd;
		high = fcntl(fd, F_DUPFD_CLOEXEC, s->early_base);
		ret = errno;
		close(fd);
		if (high < 0)
			return child_err(c, ret, "task %d: cannot keep file %u above fd %d: %s",
					 c->ri->pid, sf->id, s->early_base, strerror(ret));
		sf->early_fd = high;
	}
	return 0;
}

/*
 * Before we close what we inherited: the files our owner opened before it
 * forked us (or we, the owner, before our forks) are ours to keep.  Another
 * process's early file we hold nothing of goes with the rest.
 */
int child_share_adopt(struct rst_child *c)
{
	for (size_t i = 0; c->share && i < c->share->nr; i++) {
		const struct rst_share_file *sf = &c->share->files[i];
		bool forked = false;
		int ret;

		for (size_t h = 0; h < sf->nr_holders && !forked; h++)
			forked = sf->holders[h] == c->self && rst_share_by_fork(sf, h);
		/* (never: the owner opens it before it forks) */
		if (forked && sf->early_fd < 0)
			return child_err(c, EINVAL, "task %d: %s %u did not come with the fork "
					 "from task %d", c->ri->pid, sf->fd.ops->name, sf->id,
					 c->share->pids[sf->owner]);
		if (sf->early_fd < 0 || (!forked && sf->owner != c->self))
			continue;
		ret = child_file_keep(c, sf->id, sf->early_fd);
		if (ret)
			return ret;
	}
	return 0;
}

/* Every file of stage @stage we own to each other process that holds it. */
int child_share_send(struct rst_child *c, enum fd_stage stage)
{
	for (size_t i = 0; c->share && i < c->share->nr; i++) {
		const struct rst_share_file *sf = &c->share->files[i];
		int fd = child_file_lookup(c, sf->id);

		if (sf->owner != c->self || sf->fd.ops->stage != stage)
			continue;
		if (fd < 0)
			return child_err(c, EINVAL, "task %d: %s %u to pass on was not made",
					 c->ri->pid, sf->fd.ops->name, sf->id);
		for (size_t h = 0; h < sf->nr_holders; h++) {
			int ret = rst_share_by_fork(sf, h) ? 0 : send_one(c, sf, fd, sf->holders[h]);

			if (ret)
				return ret;
		}
	}
	return 0;
}

/* The fd of file @id that its owner sends us, once it is here. */
int child_share_wait(struct rst_child *c, const struct rst_fd *f)
{
	const struct rst_share_file *sf = child_share_find(c, f->fe->id);
	int64_t deadline = mono_ms() + SHARE_WAIT_MS;
	char where[32];

	for (;;) {
		struct pollfd pfd = { .fd = c->share_rx, .events = POLLIN };
		int fd = child_file_lookup(c, f->fe->id), ret;

		if (fd >= 0)
			return fd;
		if (mono_ms() > deadline)
			return child_err(c, ETIMEDOUT, "task %d: %s %u (%s) did not come from "
					 "task %d within %d s", c->ri->pid, f->ops->name,
					 f->fe->id, fd_where(f, where),
					 sf ? c->share->pids[sf->owner] : 0, SHARE_WAIT_MS / 1000);
		if (poll(&pfd, 1, 100) < 0 && errno != EINTR)
			return child_err(c, errno, "task %d: poll: %s", c->ri->pid,
					 strerror(errno));
		ret = drain(c);
		if (ret)
			return ret;
	}
}
