/*
 * Unix sockets, dump side.  Each socket: what UNIX_DIAG says (type, state,
 * peer, shutdown, name, pending connections), the generic options and its
 * receive queue, read from our copy of it (pidfd_getfd).  A path name is
 * checked against the file system: when the path no longer leads to the
 * socket's inode the name is kept as deleted (re-made and unlinked at
 * restore); a relative name keeps the task's working directory.
 *
 * Once every task is seen (unix_dump_resolve), the backlogs with data
 * waiting in connections not yet accepted are checked (unix-backlog.c),
 * the files in flight of the queues become file objects (sk-scm.c), then
 * peers are tied: a client not yet accepted names the listener as its peer (the
 * kernel shows no inode for the waiting end), and a peer outside the dumped tree is
 * refused, naming the fd, unless --ext-unix-sk allows a datagram socket to
 * be reconnected to it by name (an entry of its own, USK_EXTERN).
 * That data is read (the connections accepted) only in unix_dump_accept,
 * once every other image is written, and what it carries resolved then.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "files/sk-opts.h"
#include "files/sk-scm.h"
#include "files/unix-sk.h"

const char *unix_type_name(unsigned int type)
{
	switch (type) {
	case SOCK_STREAM:	return "stream";
	case SOCK_DGRAM:	return "datagram";
	case SOCK_SEQPACKET:	return "seqpacket";
	default:		return "unknown-type";
	}
}

bool unix_match(const struct dump_ctx *ctx, const struct fd_probe *p)
{
	char proto[32];

	if (!sk_proto_name(p, proto, sizeof(proto)))
		return false;
	return !strncmp(proto, "UNIX", 4);	/* "UNIX", "UNIX-STREAM" */
}

/* A path name: still there (its permissions), or deleted. */
static int dump_path(const struct fd_probe *p, const struct unix_diag_info *u,
		     struct unix_dump *ud)
{
	char full[PATH_MAX + UNIX_DIAG_NAME_MAX + 2], cwd[PATH_MAX], link[64];
	/* a socket in flight: the directory of the task it goes to */
	struct dump_task *t = p->t->self && p->t->owner ? p->t->owner : p->t;
	struct stat st;
	ssize_t n;

	/* its name is inside the task's own root, which we do not see */
	snprintf(link, sizeof(link), "/proc/%d/root", t->pid);
	n = readlink(link, cwd, sizeof(cwd) - 1);
	if (n != 1 || cwd[0] != '/') {
		cwd[n > 0 ? n : 0] = '\0';
		pr_err("fd %d of task %d: a unix socket bound to %s in the task's own root %s "
		       "(chroot): not supported", p->fd, p->t->pid, ud->name, cwd);
		return -EOPNOTSUPP;
	}
	if (ud->name[0] != '/') {
		snprintf(link, sizeof(link), "/proc/%d/cwd", t->pid);
		n = readlink(link, cwd, sizeof(cwd) - 1);
		if (n < 0)
			return dump_task_error(t, -errno, "task %d: can't read %s: %m", t->pid,
					       link);
		cwd[n] = '\0';
		ud->name_dir = strdup(cwd);
		if (!ud->name_dir)
			return -ENOMEM;
		snprintf(full, sizeof(full), "%s/%s", cwd, ud->name);
	} else {
		snprintf(full, sizeof(full), "%s", ud->name);
	}
	ud->ue.name_dir = ud->name_dir;
	if (stat(full, &st) || !S_ISSOCK(st.st_mode) || !u->has_vfs || st.st_ino != u->vfs_ino) {
		ud->ue.has_deleted = true;
		ud->ue.deleted = true;
		pr_debug("task %d: fd %d: unix socket %u bound to %s, which is deleted", p->t->pid,
			 p->fd, u->ino, full);
		return 0;
	}
	file_perms_entry__init(&ud->perms);
	ud->perms.mode = st.st_mode & 07777;
	ud->perms.uid = st.st_uid;
	ud->perms.gid = st.st_gid;
	ud->ue.file_perms = &ud->perms;
	return 0;
}

int unix_dump(struct dump_ctx *ctx, const struct fd_probe *p, struct dump_file *f)
{
	struct unix_dump *ud = calloc(1, sizeof(*ud));
	struct unix_diag_info u;
	int sk, ret;

	if (!ud)
		return -ENOMEM;
	f->priv = ud;
	ud->pid = p->t->pid;
	ud->fd = p->fd;
	ud->t = p->t;
	unix_sk_entry__init(&ud->ue);
	ud->ue.opts = &ud->opts;
	sk_opts_entry__init(&ud->opts);
	ret = unix_diag_get(p->st.st_ino, &u);
	if (ret == -ENOENT)
		return dump_task_error(p->t, ret,
				       "fd %d of task %d: sock_diag knows no unix socket of inode %llu",
				       p->fd, p->t->pid, (unsigned long long)p->st.st_ino);
	if (ret)
		return ret;
	if (u.type != SOCK_STREAM && u.type != SOCK_DGRAM && u.type != SOCK_SEQPACKET) {
		pr_err("fd %d of task %d is a unix socket of type %u (inode %u): not supported",
		       p->fd, p->t->pid, u.type, u.ino);
		ret = -EOPNOTSUPP;
		goto out;
	}

	ud->ue.id = f->fe.id;
	ud->ue.ino = u.ino;
	ud->ue.type = u.type;
	ud->ue.state = u.state;
	ud->ue.flags = p->flags & ~O_CLOEXEC;
	ud->ue.peer = u.peer;
	ud->ue.fown = &f->fown;
	ud->ue.has_shutdown = true;
	ud->ue.shutdown = u.shutdown & SK_SHUTDOWN__BOTH;	/* RCV 1 = READ, SEND 2 = WRITE */
	memcpy(ud->name, u.name, u.namelen);
	ud->ue.name.data = (uint8_t *)ud->name;
	ud->ue.name.len = u.namelen;
	ud->wqueue = u.wqueue;
	if (u.state == TCP_LISTEN) {
		ud->ue.backlog = u.wqueue;	/* a listener's: its maximum backlog */
		ud->wqueue = 0;
		ud->icons = u.icons;
		ud->nr_icons = u.nr_icons;
		u.icons = NULL;
	}
	f->fe.usk = &ud->ue;
	if (u.namelen && u.name[0]) {
		ret = dump_path(p, &u, ud);
		if (ret)
			goto out;
	}

	sk = sk_grab_fd(p);
	if (sk < 0) {
		ret = sk;
		goto out;
	}
	ret = sk_opts_dump(p, sk, &ud->opts);
	if (!ret && u.state != TCP_LISTEN && (u.type == SOCK_DGRAM || u.state == TCP_ESTABLISHED))
		ret = sk_queue_dump(p, sk, u.type, u.shutdown & 1, f->fe.id, &ud->q);
	close(sk);
	if (!ret)
		ret = dump_fown(p->t, p->fd, &f->fown);
	if (!ret)
		pr_debug("task %d: fd %d: unix %s socket %u, state %u, peer %u, shutdown %u, name %s%.*s, %zu packets queued",
			 p->t->pid, p->fd, unix_type_name(u.type), u.ino, u.state, u.peer,
			 u.shutdown, u.namelen && !u.name[0] ? "@" : "",
			 u.namelen && !u.name[0] ? (int)u.namelen - 1 : (int)u.namelen,
			 u.namelen && !u.name[0] ? u.name + 1 : u.name, ud->q.nr);
out:
	unix_diag_info_free(&u);
	return ret;
}

static struct unix_dump *find_by_ino(struct dump_ctx *ctx, uint32_t ino)
{
	for (size_t i = 0; i < ctx->files.nr; i++) {
		struct dump_file *f = ctx->files.v[i];

		if (f->ops == &fd_kind_unix && f->priv && ((struct unix_dump *)f->priv)->ue.ino == ino)
			return f->priv;
	}
	return NULL;
}

/* --ext-unix-sk: an entry for the outside peer, by which to reconnect. */
static int add_external(struct dump_ctx *ctx, struct unix_dump *s)
{
	struct unix_diag_info u;
	struct dump_file *f;
	struct unix_dump *ud;
	struct stat st = { 0 };
	int ret;

	ret = unix_diag_get(s->ue.peer, &u);
	if (ret == 0 && !u.namelen)
		ret = -ENOENT;
	if (ret) {
		if (ret == -ENOENT)
			pr_err("fd %d of task %d is a unix datagram socket connected to a socket outside the dumped tree (inode %u) that has no name to reconnect to",
			       s->fd, s->pid, s->ue.peer);
		unix_diag_info_free(&u);
		return ret == -ENOENT ? -EOPNOTSUPP : ret;
	}
	ud = calloc(1, sizeof(*ud));
	f = ud ? dump_file_add(ctx, &fd_kind_unix, &st) : NULL;
	if (!f) {
		free(ud);
		unix_diag_info_free(&u);
		return -ENOMEM;
	}
	f->priv = ud;
	unix_sk_entry__init(&ud->ue);
	sk_opts_entry__init(&ud->opts);
	ud->ue.opts = &ud->opts;
	ud->ue.fown = &f->fown;
	ud->ue.id = f->fe.id;
	ud->ue.ino = u.ino;
	ud->ue.type = u.type;
	ud->ue.state = u.state;
	ud->ue.uflags = USK_EXTERN;
	memcpy(ud->name, u.name, u.namelen);
	ud->ue.name.data = (uint8_t *)ud->name;
	ud->ue.name.len = u.namelen;
	f->fe.usk = &ud->ue;
	ud->fd = -1;
	unix_diag_info_free(&u);
	pr_info("unix socket %u: its peer %u is outside the tree (--ext-unix-sk): file %u",
		s->ue.ino, s->ue.peer, ud->ue.id);
	return 0;
}

/* The peers of the unix sockets from @from on: in the tree, or refused. */
static int check_peers(struct dump_ctx *ctx, size_t from)
{
	int ret = 0;

	for (size_t i = from; i < ctx->files.nr && !ret; i++) {
		struct dump_file *f = ctx->files.v[i];
		struct unix_dump *ud = f->priv;

		if (f->ops != &fd_kind_unix)
			continue;
		/* no peer inode, yet connected and not shut down by a closing
		 * peer: waiting on a listener that is not ours */
		if (!ud->ue.peer && ud->ue.type != SOCK_DGRAM && ud->ue.state == TCP_ESTABLISHED &&
		    ud->ue.shutdown != SK_SHUTDOWN__BOTH) {
			pr_err("fd %d of task %d is a unix %s socket connected to a listener outside the dumped tree that has not accepted it yet (socket inode %u)",
			       ud->fd, ud->pid, unix_type_name(ud->ue.type), ud->ue.ino);
			return -EOPNOTSUPP;
		}
		if (!ud->ue.peer || find_by_ino(ctx, ud->ue.peer))
			continue;
		if (ud->ue.type != SOCK_DGRAM) {
			pr_err("fd %d of task %d is a unix %s socket connected to a peer outside the dumped tree (socket inode %u, peer inode %u): a %s connection cannot be made again with a peer left out, even with --ext-unix-sk",
			       ud->fd, ud->pid, unix_type_name(ud->ue.type), ud->ue.ino, ud->ue.peer,
			       unix_type_name(ud->ue.type));
			return -EOPNOTSUPP;
		}
		if (!ctx->o->ext_unix_sk) {
			pr_err("fd %d of task %d is a unix datagram socket connected to a peer outside the dumped tree (socket inode %u, peer inode %u): use --ext-unix-sk to reconnect it at restore",
			       ud->fd, ud->pid, ud->ue.ino, ud->ue.peer);
			return -EOPNOTSUPP;
		}
		ret = add_external(ctx, ud);
	}
	return ret;
}

int unix_dump_resolve(struct dump_ctx *ctx)
{
	/* the refusals of the backlogs first, then files in flight: a socket
	 * among them may be another's peer, or a client of a backlog */
	int ret = unix_backlog_plan(ctx);

	if (!ret)
		ret = sk_scm_resolve(ctx);
	for (size_t i = 0; i < ctx->files.nr && !ret; i++) {
		struct dump_file *f = ctx->files.v[i];
		struct unix_dump *ud = f->priv;

		if (f->ops == &fd_kind_unix && ud->ue.state == TCP_LISTEN)
			ret = unix_backlog_resolve(ctx, ud);
	}
	return ret ? ret : check_peers(ctx, 0);
}

/* The point of no return: the data waiting on listeners, read by accepting
 * their connections, and the files in flight it carries (new file objects,
 * checked like the others: a refusal now loses the connections). */
int unix_dump_accept(struct dump_ctx *ctx)
{
	size_t from = ctx->files.nr;
	int ret = unix_backlog_drain(ctx);	/* each connection's files in flight too */

	return ret ? ret : check_peers(ctx, from);
}

void unix_dump_free(struct dump_file *f)
{
	struct unix_dump *ud = f->priv;

	if (!ud)
		return;
	sk_queue_free(&ud->q);
	sk_opts_dump_free(&ud->opts);
	free(ud->name_dir);
	free(ud->icons);
	free(ud->closed);
	free(ud);
}
