/*
 * The new task's descriptors, cwd, root and umask (runs in the new task).
 *
 * The fds the restore itself still needs (the error pipe, the exe for
 * PR_SET_MM_MAP, our terminal for --shell-job, the lazy-pages socket) move to numbers above every
 * fd of the task (helper_base and up); the blob closes them all with one
 * close_range().  Everything else we inherited is closed, then each fd of
 * the task is reopened by path, positioned, and put at its number.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "restore/restore.h"

#define HELPER_BASE_MIN 64

/* Status flags open() can take back (the dump records f_flags). */
#define REOPEN_FLAGS (O_ACCMODE | O_APPEND | O_NONBLOCK | O_DSYNC | O_SYNC | O_DIRECT | \
		      O_LARGEFILE | O_NOATIME | O_DIRECTORY | O_NOFOLLOW | O_PATH)

static int move_high(struct rst_child *c, int *fd)
{
	int nfd;

	if (*fd < 0 || *fd >= c->helper_base)
		return 0;
	nfd = fcntl(*fd, F_DUPFD_CLOEXEC, c->helper_base);
	if (nfd < 0)
		return child_err(c, errno, "task %d: cannot move a descriptor above %d: %s",
				 c->ri->pid, c->helper_base, strerror(errno));
	close(*fd);
	*fd = nfd;
	return 0;
}

static int int_cmp(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* Close every fd but the helpers. */
static int close_others(struct rst_child *c)
{
	int keep[4] = { c->err_fd, c->exe_fd, c->tty_fd, c->lazy_sock }, nr = 0;
	unsigned int next = 0;

	for (int i = 0; i < 4; i++)
		if (keep[i] >= 0)
			keep[nr++] = keep[i];
	qsort(keep, nr, sizeof(int), int_cmp);
	for (int i = 0; i < nr; i++) {
		if ((unsigned int)keep[i] > next && close_range(next, keep[i] - 1, 0))
			goto err;
		next = keep[i] + 1;
	}
	if (!close_range(next, ~0u, 0))
		return 0;
err:
	return child_err(c, errno, "task %d: close_range: %s", c->ri->pid, strerror(errno));
}

/* Our terminal for --shell-job: the first of our stdin/out/err that is one. */
static int find_our_tty(struct rst_child *c)
{
	for (int fd = 0; fd < 3; fd++) {
		if (isatty(fd)) {
			c->tty_fd = fcntl(fd, F_DUPFD_CLOEXEC, c->helper_base);
			if (c->tty_fd < 0)
				return child_err(c, errno, "task %d: dup our terminal: %s",
						 c->ri->pid, strerror(errno));
			return 0;
		}
	}
	return child_err(c, ENOTTY,
			 "task %d had a terminal open, but criu-lazy has none on its stdin, stdout or stderr to give it (--shell-job)",
			 c->ri->pid);
}

int child_fds_prepare(struct rst_child *c)
{
	const struct rst_images *ri = c->ri;
	int max_fd = -1;
	struct rlimit rl;
	bool need_tty = false;

	for (size_t i = 0; i < ri->nr_fds; i++) {
		if (ri->fds[i].fd > max_fd)
			max_fd = ri->fds[i].fd;
		need_tty |= ri->fds[i].tty;
	}
	c->helper_base = max_fd + 1 > HELPER_BASE_MIN ? max_fd + 1 : HELPER_BASE_MIN;

	/* room for the task's fds and our helpers above them (the parent
	 * puts the dumped RLIMIT_NOFILE back afterwards) */
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < (rlim_t)c->helper_base + 16) {
		rl.rlim_cur = c->helper_base + 16;
		if (rl.rlim_max < rl.rlim_cur)
			rl.rlim_max = rl.rlim_cur;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			return child_err(c, errno, "task %d: cannot raise RLIMIT_NOFILE to %d: %s",
					 ri->pid, c->helper_base + 16, strerror(errno));
	}

	c->exe_fd = open(ri->exe->name, O_RDONLY | O_CLOEXEC);
	if (c->exe_fd < 0)
		return child_err(c, errno, "%s: %s (exe of task %d)", ri->exe->name,
				 strerror(errno), ri->pid);
	if (move_high(c, &c->err_fd) || move_high(c, &c->exe_fd) || move_high(c, &c->lazy_sock))
		return -EBADF;
	if (need_tty && find_our_tty(c))
		return -ENOTTY;
	return close_others(c);
}

static int restore_reg(struct rst_child *c, const struct rst_fd *f)
{
	const RegFileEntry *reg = f->reg;
	int fd, flags = (reg->flags & REOPEN_FLAGS) | O_NOCTTY;

	fd = open(reg->name, flags);
	if (fd < 0)
		return child_err(c, errno, "%s: %s (fd %d of task %d)", reg->name,
				 strerror(errno), f->fd, c->ri->pid);
	if (reg->pos && lseek(fd, reg->pos, SEEK_SET) < 0) {
		int err = errno;

		close(fd);
		return child_err(c, err, "%s: cannot seek to %llu: %s (fd %d of task %d)",
				 reg->name, (unsigned long long)reg->pos, strerror(err), f->fd,
				 c->ri->pid);
	}
	if (fd != f->fd) {
		if (dup3(fd, f->fd, f->cloexec ? O_CLOEXEC : 0) < 0) {
			int err = errno;

			close(fd);
			return child_err(c, err, "%s: cannot make it fd %d of task %d: %s",
					 reg->name, f->fd, c->ri->pid, strerror(err));
		}
		close(fd);
	} else if (f->cloexec) {
		fcntl(fd, F_SETFD, FD_CLOEXEC);
	}
	return 0;
}

/* An earlier fd of the same open file (a dup): they share one open file
 * description, so its offset and status flags. */
static const struct rst_fd *find_dup(const struct rst_child *c, size_t i)
{
	const struct rst_fd *f = &c->ri->fds[i];

	for (size_t k = 0; k < i && f->reg; k++)
		if (c->ri->fds[k].reg == f->reg)
			return &c->ri->fds[k];
	return NULL;
}

int child_fds_restore(struct rst_child *c)
{
	for (size_t i = 0; i < c->ri->nr_fds; i++) {
		const struct rst_fd *f = &c->ri->fds[i];
		const struct rst_fd *orig = find_dup(c, i);

		if (orig) {
			if (dup3(orig->fd, f->fd, f->cloexec ? O_CLOEXEC : 0) < 0)
				return child_err(c, errno, "%s: cannot dup fd %d to fd %d of task %d: %s",
						 f->reg->name, orig->fd, f->fd, c->ri->pid,
						 strerror(errno));
			continue;
		}

		if (f->tty) {
			if (dup3(c->tty_fd, f->fd, f->cloexec ? O_CLOEXEC : 0) < 0)
				return child_err(c, errno, "our terminal as fd %d of task %d: %s",
						 f->fd, c->ri->pid, strerror(errno));
			continue;
		}
		if (restore_reg(c, f))
			return -EIO;
	}
	return 0;
}

int child_fs_restore(struct rst_child *c)
{
	const struct rst_images *ri = c->ri;
	const char *cwd = ri->cwd->name, *root = ri->root->name;

	if (strcmp(root, "/")) {
		int cwd_fd = open(cwd, O_PATH | O_DIRECTORY | O_CLOEXEC);

		if (cwd_fd < 0)
			return child_err(c, errno, "%s: %s (cwd of task %d)", cwd, strerror(errno),
					 ri->pid);
		if (chroot(root) || fchdir(cwd_fd)) {
			int err = errno;

			close(cwd_fd);
			return child_err(c, err, "%s: cannot make it the root of task %d: %s",
					 root, ri->pid, strerror(err));
		}
		close(cwd_fd);
	} else if (chdir(cwd)) {
		return child_err(c, errno, "%s: %s (cwd of task %d)", cwd, strerror(errno),
				 ri->pid);
	}
	if (ri->fs->has_umask)
		umask(ri->fs->umask);
	return 0;
}
