/*
 * Unix sockets at restore: binding a socket to its name and connecting one
 * to another's name, as unix-sk.c needs them.  A path name relative to the
 * directory it was bound in is used from that directory (under the cwd
 * lock: the task may share its cwd); a stale socket file at the path is
 * removed first, a deleted name unlinked again afterwards.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "files/unix-sk.h"
#include "restore/restore.h"
#include "restore/child.h"

static socklen_t make_addr(const UnixSkEntry *ue, struct sockaddr_un *sun)
{
	size_t len = ue->name.len < sizeof(sun->sun_path) ? ue->name.len : sizeof(sun->sun_path);

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, ue->name.data, len);
	return offsetof(struct sockaddr_un, sun_path) + len;
}

/* "@abstract" or the path, for messages */
const char *unix_name_str(const UnixSkEntry *ue, char *buf, size_t size)
{
	if (!ue->name.len)
		return "(unnamed)";
	if (ue->name.data[0])
		snprintf(buf, size, "%.*s", (int)ue->name.len, (const char *)ue->name.data);
	else
		snprintf(buf, size, "@%.*s", (int)ue->name.len - 1, (const char *)ue->name.data + 1);
	return buf;
}

static int bind_path(struct rst_child *c, int sk, const UnixSkEntry *ue)
{
	struct sockaddr_un sun;
	socklen_t len = make_addr(ue, &sun);
	char what[128];
	struct stat st;

	unix_name_str(ue, what, sizeof(what));
	if (!lstat(sun.sun_path, &st)) {
		/* what the dumped socket left, unless the name was deleted:
		 * then the path is someone else's now */
		if (!S_ISSOCK(st.st_mode) || (ue->has_deleted && ue->deleted))
			return child_err(c, EEXIST,
					 "unix socket %u of task %d: cannot bind it to %s again: %s is there",
					 ue->id, c->ri->pid, what,
					 S_ISSOCK(st.st_mode) ? "another socket" : "a file that is no socket");
		if (unlink(sun.sun_path))
			return child_err(c, errno, "unix socket %u of task %d: unlink %s: %s",
					 ue->id, c->ri->pid, what, strerror(errno));
	}
	if (bind(sk, (struct sockaddr *)&sun, len))
		return child_err(c, errno, "unix socket %u of task %d: bind %s: %s", ue->id,
				 c->ri->pid, what, strerror(errno));
	if (ue->file_perms &&
	    (chmod(sun.sun_path, ue->file_perms->mode) ||
	     lchown(sun.sun_path, ue->file_perms->uid, ue->file_perms->gid)))
		return child_err(c, errno, "unix socket %u of task %d: permissions of %s: %s",
				 ue->id, c->ri->pid, what, strerror(errno));
	if (ue->has_deleted && ue->deleted && unlink(sun.sun_path))
		return child_err(c, errno, "unix socket %u of task %d: unlink %s: %s", ue->id,
				 c->ri->pid, what, strerror(errno));
	return 0;
}

static int connect_path(struct rst_child *c, int sk, const UnixSkEntry *to)
{
	struct sockaddr_un sun;
	socklen_t len = make_addr(to, &sun);
	char what[128];

	if (connect(sk, (struct sockaddr *)&sun, len))
		return child_err(c, errno, "task %d: connecting a unix socket to %s (socket %u): %s",
				 c->ri->pid, unix_name_str(to, what, sizeof(what)), to->id,
				 strerror(errno));
	return 0;
}

/* @op on @ue's name: a relative path from the directory it was bound in. */
static int in_name_dir(struct rst_child *c, int sk, const UnixSkEntry *ue,
		       int (*op)(struct rst_child *c, int sk, const UnixSkEntry *ue))
{
	int cwd, ret;

	if (!ue->name.data[0] || !ue->name_dir || ue->name.data[0] == '/')
		return op(c, sk, ue);
	ret = child_cwd_lock(c);	/* another process may share our cwd */
	if (ret)
		return ret;
	cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cwd < 0 || chdir(ue->name_dir)) {
		ret = child_err(c, errno, "unix socket %u of task %d: its directory %s: %s", ue->id,
				c->ri->pid, ue->name_dir, strerror(errno));
		if (cwd >= 0)
			close(cwd);
		child_cwd_unlock(c);
		return ret;
	}
	ret = op(c, sk, ue);
	if (fchdir(cwd) && !ret)
		ret = child_err(c, errno, "task %d: back to its directory: %s", c->ri->pid,
				strerror(errno));
	close(cwd);
	child_cwd_unlock(c);
	return ret;
}

/* connect(2) @sk to @to's name */
int unix_connect_name(struct rst_child *c, int sk, const UnixSkEntry *to)
{
	return in_name_dir(c, sk, to, connect_path);
}

/* Bind @sk to @ue's name; a relative path from its directory. */
int unix_bind_name(struct rst_child *c, int sk, const UnixSkEntry *ue)
{
	struct sockaddr_un sun;
	socklen_t len;
	char what[128];

	if (!ue->name.len)
		return 0;
	if (!ue->name.data[0]) {
		len = make_addr(ue, &sun);
		if (bind(sk, (struct sockaddr *)&sun, len))
			return child_err(c, errno, "unix socket %u of task %d: bind %s: %s", ue->id,
					 c->ri->pid, unix_name_str(ue, what, sizeof(what)),
					 strerror(errno));
		return 0;
	}
	return in_name_dir(c, sk, ue, bind_path);
}
