/*
 * The new task's descriptors, cwd, root and umask (runs in the new task).
 *
 * The fds the restore itself still needs (the error pipe, the exe for
 * PR_SET_MM_MAP, our terminal for --shell-job, the log and the stderr
 * the log writes to) move to numbers above every
 * fd of the task (helper_base and up); the blob closes them all with one
 * close_range().  Everything else we inherited is closed, then the task's
 * fds are opened stage by stage (enum fd_stage): each file object once, by
 * its kind's open(), and dup'ed for every other fd of the same object.  A
 * kind that makes more than one object at once (both ends of a pipe)
 * stashes the others above helper_base until their fd comes.  Between
 * the opening stage and the one after, each kind with a connect step
 * (a socket that connects to its peer by name) takes it, once per file.
 *
 * A file shared with other processes of the tree (fd-share.c) is made by
 * its owner only, once, and handed to the others: in each stage a task
 * first makes what it owns, sends it, then takes what others made.  Only
 * the owner runs a file's connect step.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "restore/restore.h"
#include "restore/child.h"
#include "restore/files.h"

/* @fd above helper_base; the old number closed unless @keep (a number
 * another sharer of our table still uses: the owner closes it, fdt.c). */
int child_fds_move_high(struct rst_child *c, int *fd, bool keep)
{
	int nfd;

	if (*fd < 0 || *fd >= c->helper_base)
		return 0;
	nfd = fcntl(*fd, F_DUPFD_CLOEXEC, c->helper_base);
	if (nfd < 0)
		return child_err(c, errno, "task %d: cannot move a descriptor above %d: %s",
				 c->ri->pid, c->helper_base, strerror(errno));
	if (!keep)
		close(*fd);
	*fd = nfd;
	return 0;
}

static int move_high(struct rst_child *c, int *fd)
{
	return child_fds_move_high(c, fd, false);
}

static int int_cmp(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* Close every fd but the helpers and the files we keep already (in a
 * shared table: below the other sharers' windows, which start at our
 * helper_end). */
static int close_others(struct rst_child *c)
{
	const int helpers[] = { c->err_fd, c->exe_fd, c->tty_fd, c->share_rx, c->share_tx,
				c->fs_lock, c->ev_w, c->uffd_tx };
	const int nr_helpers = sizeof(helpers) / sizeof(helpers[0]);
	unsigned int next = 0, last = c->helper_end ? (unsigned int)c->helper_end - 1 : ~0u;
	int *keep = malloc((nr_helpers + 2 + c->nr_open) * sizeof(*keep)), nr = 0, err = 0;

	if (!keep)
		return child_err(c, ENOMEM, "task %d: out of memory", c->ri->pid);
	for (int i = 0; i < nr_helpers; i++)
		keep[nr++] = helpers[i];
	log_fds(&keep[nr], &keep[nr + 1]);	/* above helper_base: log_move_above() */
	nr += 2;
	for (size_t i = 0; i < c->nr_open; i++)
		keep[nr++] = c->open[i].fd;
	qsort(keep, nr, sizeof(int), int_cmp);
	for (int i = 0; i < nr && !err; i++) {
		if (keep[i] < 0 || (unsigned int)keep[i] < next)
			continue;
		if ((unsigned int)keep[i] > next && close_range(next, keep[i] - 1, 0))
			err = errno;
		next = keep[i] + 1;
	}
	free(keep);
	if (!err && (next > last || !close_range(next, last, 0)))
		return 0;
	return child_err(c, err ?: errno, "task %d: close_range: %s", c->ri->pid,
			 strerror(err ?: errno));
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

/* RLIMIT_NOFILE at least @room (fd numbers below it can be made). */
int child_fds_room(struct rst_child *c, unsigned long room)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= room)
		return 0;
	rl.rlim_cur = room;
	if (rl.rlim_max < rl.rlim_cur)
		rl.rlim_max = rl.rlim_cur;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		return child_err(c, errno, "task %d: cannot raise RLIMIT_NOFILE to %lu: %s",
				 c->ri->pid, room, strerror(errno));
	return 0;
}

int child_fds_prepare(struct rst_child *c)
{
	const struct rst_images *ri = c->ri;
	int max_fd = rst_fd_top(ri);
	bool need_tty = false;
	rlim_t room;
	int ret;

	for (size_t i = 0; i < ri->nr_fds; i++)
		need_tty |= ri->fds[i].ops->needs_our_tty;
	if (!c->helper_end)	/* else our window in a shared table (fdt.c) */
		c->helper_base = max_fd + 1 > RST_HELPER_BASE_MIN ? max_fd + 1 : RST_HELPER_BASE_MIN;

	/* room for the task's fds, our helpers and stashed objects above
	 * them (the parent puts the dumped RLIMIT_NOFILE back afterwards) */
	room = (rlim_t)c->helper_base + 16 + ri->nr_fds + child_share_count(c);
	if (room < (rlim_t)c->helper_end)
		room = c->helper_end;
	ret = child_fds_room(c, room);
	if (ret)
		return ret;

	c->exe_fd = open(ri->exe->name, O_RDONLY | O_CLOEXEC);
	if (c->exe_fd < 0)
		return child_err(c, errno, "%s: %s (exe of task %d)", ri->exe->name,
				 strerror(errno), ri->pid);
	if (move_high(c, &c->err_fd) || move_high(c, &c->exe_fd) || move_high(c, &c->ev_w) ||
	    move_high(c, &c->uffd_tx))
		return -EBADF;
	ret = log_move_above(c->helper_base, false);
	if (ret)
		return child_err(c, ret, "task %d: cannot move the log above fd %d: %s", ri->pid,
				 c->helper_base, strerror(-ret));
	if (need_tty && find_our_tty(c))
		return -ENOTTY;
	if (child_share_prepare(c))
		return -EIO;
	if (child_fs_lock_open(c))
		return -EIO;
	if (child_share_adopt(c))
		return -EIO;
	return close_others(c);
}

/* Sharing our cwd: an open file of our own, whose flock() excludes the
 * other sharers' (child_cwd_lock()). */
int child_fs_lock_open(struct rst_child *c)
{
	char path[32];

	if (!c->fs_shared || c->share->fs_lock_src < 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", c->share->fs_lock_src);
	c->fs_lock = open(path, O_RDONLY | O_CLOEXEC);
	if (c->fs_lock < 0 || move_high(c, &c->fs_lock))
		return child_err(c, errno, "task %d: cannot open the cwd lock: %s", c->ri->pid,
				 strerror(errno));
	return 0;
}

/* Where the file object @id is open in this task already, or -1. */
int child_file_lookup(const struct rst_child *c, uint32_t id)
{
	for (size_t i = 0; i < c->nr_open; i++)
		if (c->open[i].id == id)
			return c->open[i].fd;
	return -1;
}

static int remember(struct rst_child *c, uint32_t id, int fd)
{
	struct rst_open_file *grown = realloc(c->open, (c->nr_open + 1) * sizeof(*grown));

	if (!grown)
		return child_err(c, ENOMEM, "task %d: out of memory", c->ri->pid);
	c->open = grown;
	c->open[c->nr_open].id = id;
	c->open[c->nr_open++].fd = fd;
	return 0;
}

/* Keep @fd, already above every fd of the task, as file object @id. */
int child_file_keep(struct rst_child *c, uint32_t id, int fd)
{
	return remember(c, id, fd);
}

/*
 * Keep @fd as file object @id until one of the task's fds wants it: moved
 * above helper_base (so no fd of the task lands on it), close-on-exec (the
 * blob's close_range closes it with the helpers).  Takes @fd.
 */
int child_file_stash(struct rst_child *c, uint32_t id, int fd)
{
	int high = fcntl(fd, F_DUPFD_CLOEXEC, c->helper_base);
	int err = errno;

	close(fd);
	if (high < 0)
		return child_err(c, err, "task %d: cannot keep file %u above fd %d: %s",
				 c->ri->pid, id, c->helper_base, strerror(err));
	return remember(c, id, high);
}

/*
 * The file object @id open in this task, opened now (and stashed) if no
 * fd of the task has it yet: a file in flight in a socket's queue, which
 * the task may hold itself too, or not at all (then the blob closes it).
 * One that another process makes (it holds the file too, or it is in
 * flight there too: fd-share-plan.c) comes from that process.
 */
int child_file_get(struct rst_child *c, uint32_t id)
{
	struct rst_fd f = { .fd = -1, .cloexec = true };
	int fd = child_file_lookup(c, id), ret;

	if (fd >= 0)
		return fd;
	f.fe = rst_file_find(c->ri, id);
	f.ops = f.fe ? fd_kind_for_restore(c->ri, f.fe) : NULL;
	if (!f.ops)	/* never: files-check.c saw every file in flight */
		return child_err(c, EINVAL, "task %d: file %u in flight cannot be opened",
				 c->ri->pid, id);
	if (!child_file_mine(c, id))
		return child_share_wait(c, &f);
	fd = f.ops->open(c, &f);
	if (fd < 0)
		return fd;
	ret = child_file_stash(c, id, fd);
	return ret ? ret : child_file_lookup(c, id);
}

/* Put @src at f->fd; a fresh @src (not yet another fd's) is closed. */
static int place(struct rst_child *c, const struct rst_fd *f, int src, bool fresh)
{
	if (src == f->fd) {
		if (f->cloexec ? fcntl(src, F_SETFD, FD_CLOEXEC) : fcntl(src, F_SETFD, 0))
			return child_err(c, errno, "fd %d of task %d: F_SETFD: %s", f->fd,
					 c->ri->pid, strerror(errno));
		return 0;
	}
	if (dup3(src, f->fd, f->cloexec ? O_CLOEXEC : 0) < 0) {
		int err = errno;

		if (fresh)
			close(src);
		return child_err(c, err, "%s %u: cannot make it fd %d of task %d: %s",
				 f->ops->name, f->fe->id, f->fd, c->ri->pid, strerror(err));
	}
	if (fresh)
		close(src);
	return 0;
}

static int restore_one(struct rst_child *c, const struct rst_fd *f)
{
	int src = child_file_lookup(c, f->fe->id);
	bool fresh = src < 0;
	int ret;

	if (fresh && !child_file_mine(c, f->fe->id)) {
		src = child_share_wait(c, f);	/* stashed when it came */
		if (src < 0)
			return src;
		fresh = false;
	}
	if (fresh) {
		src = f->ops->open(c, f);
		if (src < 0)
			return src;
	}
	ret = place(c, f, src, fresh);
	if (!ret && fresh)
		ret = remember(c, f->fe->id, f->fd);
	return ret;
}

/*
 * FD_STAGE_CONNECT: each file's connect step once, at its first fd, by the
 * task that made it; then those of the files we made for others only.
 */
static int connect_all(struct rst_child *c)
{
	for (size_t i = 0; i < c->ri->nr_fds; i++) {
		const struct rst_fd *f = &c->ri->fds[i];
		bool first = true;
		int ret;

		if (!f->ops->connect || !child_file_mine(c, f->fe->id))
			continue;
		for (size_t j = 0; j < i && first; j++)
			first = c->ri->fds[j].fe->id != f->fe->id;
		if (!first)
			continue;
		ret = f->ops->connect(c, f, f->fd);
		if (ret)
			return ret;
	}
	for (size_t i = 0; c->share && i < c->share->nr; i++) {
		const struct rst_share_file *sf = &c->share->files[i];
		struct rst_fd f = sf->fd;
		bool held = false;
		int ret;

		if (sf->owner != c->self || !f.ops->connect)
			continue;
		for (size_t j = 0; j < c->ri->nr_fds && !held; j++)
			held = c->ri->fds[j].fe->id == sf->id;
		if (held)
			continue;	/* done above */
		f.fe = rst_file_find(c->ri, sf->id);
		ret = f.ops->connect(c, &f, child_file_lookup(c, sf->id));
		if (ret)
			return ret;
	}
	return 0;
}

/* The fds of @stage whose files we make (@mine) or take from others. */
static int restore_stage(struct rst_child *c, enum fd_stage stage, bool mine)
{
	for (size_t i = 0; i < c->ri->nr_fds; i++) {
		const struct rst_fd *f = &c->ri->fds[i];
		int ret;

		if (f->ops->stage != stage || child_file_mine(c, f->fe->id) != mine)
			continue;
		ret = restore_one(c, f);
		if (ret)
			return ret;
	}
	return 0;
}

int child_fds_restore(struct rst_child *c)
{
	for (int stage = 0; stage < FD_STAGE_NR; stage++) {
		int ret = 0;

		if (stage == FD_STAGE_CONNECT)
			ret = connect_all(c);
		if (!ret)
			ret = restore_stage(c, stage, true);
		if (!ret)
			ret = child_share_open_rest(c, stage);
		if (!ret)
			ret = child_share_send(c, stage);
		if (!ret)
			ret = restore_stage(c, stage, false);
		if (ret)
			return ret;
	}
	return 0;
}

static int fs_restore(struct rst_child *c);

/*
 * Processes that share their cwd (CLONE_FS) change it one at a time: one
 * that steps into a directory for a while (a unix socket bound by a
 * relative name) must not see another move it meanwhile.
 */
int child_cwd_lock(struct rst_child *c)
{
	while (c->fs_lock >= 0 && flock(c->fs_lock, LOCK_EX)) {
		if (errno != EINTR)
			return child_err(c, errno, "task %d: flock of the cwd lock: %s",
					 c->ri->pid, strerror(errno));
	}
	return 0;
}

void child_cwd_unlock(struct rst_child *c)
{
	if (c->fs_lock >= 0)
		flock(c->fs_lock, LOCK_UN);
}

int child_fs_restore(struct rst_child *c)
{
	int ret = child_cwd_lock(c);

	if (!ret)
		ret = fs_restore(c);
	child_cwd_unlock(c);
	return ret;
}

/* cwd, root and umask: the same values from every process that shares them */
static int fs_restore(struct rst_child *c)
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
