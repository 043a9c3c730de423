/*
 * File locks (filelocks.img) taken back by the task that held them, once
 * its descriptors are open: flock(2) on the descriptor for a flock lock,
 * F_SETLK for a POSIX one, F_OFD_SETLK for an OFD one, never waiting: a
 * lock someone else holds by now fails the restore, naming it.
 *
 * The images are read before any task exists: a lock without
 * --file-locks, or one naming a descriptor the task does not have, fails
 * the restore there.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "images/image.h"
#include "restore/restore.h"
#include "restore/child.h"
#include "restore/files.h"

#include "file-lock.pb-c.h"

#define FL_POSIX	1
#define FL_FLOCK	2
#define FL_OFD		4

static const char *lock_kind(uint32_t flag)
{
	return flag == FL_POSIX ? "POSIX" : flag == FL_FLOCK ? "flock" : "OFD";
}

static const char *lock_type(const FileLockEntry *e)
{
	if (e->flag == FL_FLOCK)
		return e->type == F_WRLCK ? "exclusive" : "shared";
	return e->type == F_WRLCK ? "write" : "read";
}

static bool task_has_fd(const struct rst_images *ri, int fd)
{
	for (size_t i = 0; i < ri->nr_fds; i++)
		if (ri->fds[i].fd == fd)
			return true;
	return false;
}

static int check_lock(const struct opts *o, const struct rst_images *ri, const FileLockEntry *e)
{
	if (e->flag != FL_POSIX && e->flag != FL_FLOCK && e->flag != FL_OFD) {
		pr_err("filelocks.img: a lock of task %d has the unknown kind %#x", e->pid, e->flag);
		return -EINVAL;
	}
	if (e->type != F_RDLCK && e->type != F_WRLCK) {
		pr_err("filelocks.img: a lock of task %d has the unknown type %u", e->pid, e->type);
		return -EINVAL;
	}
	if (!o->file_locks) {
		pr_err("task %d held a %s %s lock through fd %d: restore with --file-locks to take it back",
		       e->pid, lock_kind(e->flag), lock_type(e), e->fd);
		return -EOPNOTSUPP;
	}
	if (e->pid != ri->pid)
		return 0;
	if (e->start < 0 || e->len < 0) {
		pr_err("filelocks.img: a lock of task %d on fd %d starts at %lld for %lld bytes",
		       e->pid, e->fd, (long long)e->start, (long long)e->len);
		return -EINVAL;
	}
	if (!task_has_fd(ri, e->fd)) {
		pr_err("filelocks.img: a lock of task %d names fd %d, which the task does not have",
		       e->pid, e->fd);
		return -EINVAL;
	}
	return 0;
}

/* filelocks.img, every task's locks: read once for the tree (@tf). */
static int read_locks(int dirfd, struct rst_tree_files *tf)
{
	ProtobufCMessage *msg;
	struct cr_img *img;
	int ret;

	if (tf->locks_read)
		return 0;
	tf->locks_read = true;
	ret = img_open(dirfd, IMG_FILE_LOCKS, 0, O_RDONLY, &img);
	if (ret == -ENOENT)
		return 0;
	if (ret)
		return ret;
	while ((ret = img_read_entry(img, &file_lock_entry__descriptor, &msg)) > 0) {
		FileLockEntry **grown = realloc(tf->locks, (tf->nr_locks + 1) * sizeof(*grown));

		if (!grown) {
			protobuf_c_message_free_unpacked(msg, NULL);
			ret = -ENOMEM;
			break;
		}
		tf->locks = grown;
		tf->locks[tf->nr_locks++] = (FileLockEntry *)msg;
	}
	img_close(img);
	return ret;
}

/* The task's own locks, each checked; every other task's checked as far as
 * it can be without that task's images. */
int rst_file_locks_load(const struct opts *o, struct rst_images *ri)
{
	int ret = read_locks(ri->dirfd, ri->tf);

	for (size_t i = 0; !ret && i < ri->tf->nr_locks; i++) {
		FileLockEntry *e = ri->tf->locks[i], **grown;

		ret = check_lock(o, ri, e);
		if (ret || e->pid != ri->pid)
			continue;
		grown = realloc(ri->locks, (ri->nr_locks + 1) * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		ri->locks = grown;
		ri->locks[ri->nr_locks++] = e;
	}
	return ret;
}

void rst_file_locks_free(struct rst_tree_files *tf)
{
	for (size_t i = 0; i < tf->nr_locks; i++)
		protobuf_c_message_free_unpacked(&tf->locks[i]->base, NULL);
	free(tf->locks);
	tf->locks = NULL;
	tf->nr_locks = 0;
}

static int take_lock(const FileLockEntry *e)
{
	struct flock fl = {
		.l_type = e->type, .l_whence = SEEK_SET, .l_start = e->start, .l_len = e->len,
	};

	if (e->flag == FL_FLOCK)
		return flock(e->fd, (e->type == F_WRLCK ? LOCK_EX : LOCK_SH) | LOCK_NB);
	return fcntl(e->fd, e->flag == FL_OFD ? F_OFD_SETLK : F_SETLK, &fl);
}

/*
 * Closing any fd of a file drops the POSIX locks the process holds on it,
 * and the blob's close_range closes the copies of our files we keep above
 * the task's fds (stashed, or opened before the forks: restore/fds.c,
 * fd-share.c) after the locks are taken: those of @fd's file go first.
 */
static int drop_copies(struct rst_child *c, int fd)
{
	struct stat want, st;
	size_t n = 0;

	if (fstat(fd, &want))
		return child_err(c, errno, "fd %d of task %d: fstat: %s", fd, c->ri->pid,
				 strerror(errno));
	for (size_t i = 0; i < c->nr_open; i++) {
		int copy = c->open[i].fd;

		if (!task_has_fd(c->ri, copy) && !fstat(copy, &st) && st.st_dev == want.st_dev &&
		    st.st_ino == want.st_ino) {
			close(copy);
			continue;
		}
		c->open[n++] = c->open[i];
	}
	c->nr_open = n;
	return 0;
}

int child_file_locks(struct rst_child *c)
{
	for (size_t i = 0; i < c->ri->nr_locks; i++) {
		const FileLockEntry *e = c->ri->locks[i];
		int err = e->flag == FL_POSIX ? drop_copies(c, e->fd) : 0;

		if (err)
			return err;
		if (!take_lock(e))
			continue;
		err = errno;
		return child_err(c, err, "task %d: cannot take back its %s %s lock of fd %d (from byte %lld, %lld bytes, 0 to the end): %s%s",
				 c->ri->pid, lock_kind(e->flag), lock_type(e), e->fd,
				 (long long)e->start, (long long)e->len, strerror(err),
				 err == EAGAIN || err == EWOULDBLOCK || err == EACCES ?
				 " (another process holds a conflicting lock now)" : "");
	}
	return 0;
}
