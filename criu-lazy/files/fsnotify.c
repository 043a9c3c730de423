/*
 * File handles of inotify watches and fanotify inode marks (fsnotify.h).
 *
 * A handle is only meaningful with a mount of the filesystem it came
 * from: the mounts of /proc/self/mountinfo with the mark's device are
 * tried, those showing the filesystem's root first (a bind mount of a
 * subdirectory may not reach the inode).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "files/fsnotify.h"
#include "files/sk-opts.h"
#include "restore/restore.h"
#include "restore/child.h"
#include "restore/files.h"

#define FH_WORDS FH_ENTRY_SIZES__min_entries
#define FH_MAX_BYTES (FH_WORDS * 8)

int fsn_parse_handle(const char *text, FhEntry *fh, uint64_t *words)
{
	unsigned int bytes, type;
	const char *hex;
	uint8_t *b = (uint8_t *)words;

	fh_entry__init(fh);
	memset(words, 0, FH_MAX_BYTES);
	if (sscanf(text, "fhandle-bytes:%x fhandle-type:%x", &bytes, &type) != 2 ||
	    bytes > FH_MAX_BYTES || !(hex = strstr(text, "f_handle:")))
		return -EINVAL;
	hex += strlen("f_handle:");
	for (unsigned int i = 0; i < bytes; i++) {
		unsigned int v;

		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -EINVAL;
		b[i] = v;
	}
	fh->bytes = bytes;
	fh->type = type;
	fh->handle = words;
	fh->n_handle = FH_WORDS;
	return 0;
}

/* open_by_handle_at through a mount of @s_dev; -errno if none opens it */
static int open_handle(uint32_t s_dev, const FhEntry *fh)
{
	struct { struct file_handle h; unsigned char b[FH_MAX_BYTES]; } fhb;
	char line[4096], root[PATH_MAX], mnt[PATH_MAX];
	int err = -ENODEV;
	FILE *f;

	if (fh->bytes > FH_MAX_BYTES || fh->n_handle * 8 < fh->bytes)
		return -EINVAL;
	fhb.h.handle_bytes = fh->bytes;
	fhb.h.handle_type = fh->type;
	if (fh->bytes)	/* an empty handle: fh->handle may be NULL */
		memcpy(fhb.h.f_handle, fh->handle, fh->bytes);

	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	/* pass 0: mounts of the filesystem's root, pass 1: the others */
	for (int pass = 0; pass < 2 && err < 0; pass++) {
		rewind(f);
		while (fgets(line, sizeof(line), f)) {
			unsigned int maj, min;
			int mfd, fd;

			if (sscanf(line, "%*d %*d %u:%u %4095s %4095s", &maj, &min, root, mnt) != 4 ||
			    maj != FSN_KDEV_MAJOR(s_dev) || min != FSN_KDEV_MINOR(s_dev) ||
			    (strcmp(root, "/") != 0) != pass)
				continue;
			mfd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (mfd < 0)
				continue;
			fd = open_by_handle_at(mfd, &fhb.h, O_PATH | O_CLOEXEC);
			err = fd < 0 ? -errno : fd;
			close(mfd);
			if (fd >= 0)
				break;
		}
	}
	fclose(f);
	return err;
}

int fsn_dump_handle(const struct fd_probe *p, const char *what, uint32_t s_dev, uint64_t ino,
		    FhEntry *fh, struct fsn_deleted *del)
{
	char link[64], path[PATH_MAX];
	struct stat st, named;
	ssize_t n;
	int fd;

	fd = open_handle(s_dev, fh);
	if (fd < 0) {
		pr_err("fd %d of task %d: %s (inode %llu on %u:%u) does not open by its file handle: %s",
		       p->fd, p->t->pid, what, (unsigned long long)ino, FSN_KDEV_MAJOR(s_dev),
		       FSN_KDEV_MINOR(s_dev), strerror(-fd));
		return fd;
	}
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (fstat(fd, &st) || n < 0) {
		pr_perror("fd %d of task %d: %s: stat of its inode", p->fd, p->t->pid, what);
		close(fd);
		return -EIO;
	}
	close(fd);
	path[n] = '\0';
	if (st.st_nlink == 0) {
		size_t len = strlen(path), sfx = strlen(" (deleted)");

		if (len > sfx && !strcmp(path + len - sfx, " (deleted)"))
			path[len - sfx] = '\0';
		*del = (struct fsn_deleted){ .dev = st.st_dev, .ino = st.st_ino, .fd = p->fd,
					     .pid = p->t->pid };
		snprintf(del->what, sizeof(del->what), "%s", what);
		snprintf(del->path, sizeof(del->path), "%s", path);
		fh->path = strdup(path);
		return fh->path ? 0 : -ENOMEM;
	}
	/* a name that still leads to the inode: the fallback of the restore */
	if (path[0] == '/' && !stat(path, &named) && named.st_ino == st.st_ino &&
	    named.st_dev == st.st_dev) {
		fh->path = strdup(path);
		if (!fh->path)
			return -ENOMEM;
	}
	pr_debug("task %d: fd %d: %s: inode %llu %s", p->t->pid, p->fd, what,
		 (unsigned long long)ino, fh->path ? fh->path : "(no name)");
	return 0;
}

int fsn_check_deleted(struct dump_ctx *ctx, const struct fsn_deleted *del)
{
	if (!del->ino)
		return 0;
	for (size_t i = 0; i < ctx->files.nr; i++) {
		const struct dump_file *f = ctx->files.v[i];

		if (f->fe.reg && f->dev == del->dev && f->ino == del->ino)
			return 0;	/* a ghost file: the mark goes on it */
	}
	pr_err("fd %d of task %d: %s is on a deleted file (%s, inode %llu) that no process of the tree holds open: nothing would find that file again at restore",
	       del->fd, del->pid, del->what, del->path, (unsigned long long)del->ino);
	return -EOPNOTSUPP;
}

/* The ghost file (made again for the restore) once named @name, or NULL. */
static const char *ghost_of(const struct rst_child *c, const char *name)
{
	for (size_t i = 0; i < c->ri->nr_files; i++) {
		const FileEntry *fe = c->ri->files[i];
		const char *path;

		if (fe->type == FD_TYPES__REG && fe->reg && !strcmp(fe->reg->name, name) &&
		    (path = rst_ghost_path(c->ri->ghosts, fe->id)))
			return path;
	}
	return NULL;
}

int fsn_open_mark(struct rst_child *c, const char *what, uint32_t s_dev, uint64_t ino,
		  const FhEntry *fh)
{
	const char *ghost = fh->path ? ghost_of(c, fh->path) : NULL;
	int fd, err;

	/* a deleted file: its ghost, never the handle (on one host the
	 * dumped task may still hold the old inode) */
	if (ghost) {
		fd = open(ghost, O_PATH | O_CLOEXEC);
		if (fd >= 0)
			return fd;
		return child_err(c, errno, "%s: the deleted file %s made again as %s: %s", what,
				 fh->path, ghost, strerror(errno));
	}
	fd = open_handle(s_dev, fh);
	err = -fd;
	if (fd >= 0)
		return fd;
	if (fh->path) {
		fd = open(fh->path, O_PATH | O_CLOEXEC);
		if (fd >= 0)
			return fd;
		err = errno;
	}
	return child_err(c, err, "%s: inode %llu on %u:%u opens neither by its file handle nor by a name (%s): %s",
			 what, (unsigned long long)ino, FSN_KDEV_MAJOR(s_dev), FSN_KDEV_MINOR(s_dev),
			 fh->path ? fh->path : "none was found at dump", strerror(err));
}

void fsn_warn_queued(const struct fd_probe *p, const char *kind)
{
	int fd = sk_grab_fd(p), n = 0;

	if (fd < 0)
		return;
	if (!ioctl(fd, FIONREAD, &n) && n > 0)
		pr_warn("fd %d of task %d: %d bytes of %s events still queued are dropped (as CRIU does)",
			p->fd, p->t->pid, n, kind);
	close(fd);
}
