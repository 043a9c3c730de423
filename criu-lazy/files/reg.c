/*
 * Regular files in CRIU's sense (FD_TYPES__REG): a regular file, a
 * directory, or one of the memory character devices (/dev/null, /dev/zero,
 * /dev/full, /dev/random, /dev/urandom), reopened by path at restore with
 * the dumped status flags and offset.  The file must still be there with
 * the size it had at the dump.  A deleted one is carried in the images as
 * a ghost (dump/ghost.c), recreated at restore before any task exists
 * (restore/ghost.c), so the path is there again while the tasks open it;
 * one whose name is gone while other links keep it is linked again with
 * --link-remap (dump/link-remap.c) and reached through that link.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "restore/restore.h"
#include "restore/child.h"
#include "restore/files.h"

/* Status flags open() can take back (the dump records f_flags). */
#define REOPEN_FLAGS (O_ACCMODE | O_APPEND | O_NONBLOCK | O_DSYNC | O_SYNC | O_DIRECT | \
		      O_LARGEFILE | O_NOATIME | O_DIRECTORY | O_NOFOLLOW | O_PATH)

static bool is_mem_chardev(const struct stat *st)
{
	unsigned int min = minor(st->st_rdev);

	return S_ISCHR(st->st_mode) && major(st->st_rdev) == 1 &&
	       (min == 3 || min == 5 || min == 7 || min == 8 || min == 9);
}

/*
 * Is mount @mnt_id one of the task's?  A file without links on a mount no
 * namespace shows (the kernel's own shmem of /dev/zero mappings and SysV
 * segments, secretmem) is a kernel object, not a deleted file to recreate.
 * The task's own mountinfo shows only what is below its root, which a
 * chroot narrows: ours, when the namespace is ours.
 */
static bool mount_visible(pid_t pid, int mnt_id)
{
	char path[64], line[64];
	struct stat ns, our_ns;
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/ns/mnt", pid);
	if (!stat(path, &ns) && !stat("/proc/self/ns/mnt", &our_ns) && ns.st_ino == our_ns.st_ino &&
	    ns.st_dev == our_ns.st_dev)
		snprintf(path, sizeof(path), "/proc/self/mountinfo");
	else
		snprintf(path, sizeof(path), "/proc/%d/mountinfo", pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		int id;

		/* a line starts with its mount id */
		if (sscanf(line, "%d ", &id) == 1 && id == mnt_id)
			found = true;
		while (!strchr(line, '\n') && fgets(line, sizeof(line), f))
			;	/* the rest of a long line */
	}
	fclose(f);
	return found;
}

static bool reg_match(const struct dump_ctx *ctx, const struct fd_probe *p)
{
	const struct stat *st = &p->st;

	if (p->link[0] != '/' || (p->flags & O_PATH))
		return false;
	if (S_ISREG(st->st_mode) && st->st_nlink == 0)	/* a ghost, unless the kernel's */
		return p->mnt_id < 0 || mount_visible(p->t->pid, p->mnt_id);
	return S_ISREG(st->st_mode) || S_ISDIR(st->st_mode) || is_mem_chardev(st);
}

static int reg_dump(struct dump_ctx *ctx, const struct fd_probe *p, struct dump_file *f)
{
	char path[64], what[64];
	int ret;

	if (p->st.st_nlink == 0) {
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", p->t->pid, p->fd);
		snprintf(what, sizeof(what), "fd %d of task %d", p->fd, p->t->pid);
		ret = dump_ghost(ctx, f, path, &p->st, what);
		if (ret)
			return ret;
	} else if (dump_name_gone(p->link, &p->st)) {
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", p->t->pid, p->fd);
		snprintf(what, sizeof(what), "fd %d of task %d", p->fd, p->t->pid);
		ret = dump_link_remap(ctx, f, path, &p->st, what);
		if (ret)
			return ret;
	}
	f->reg.flags = p->flags & ~O_CLOEXEC;
	f->reg.pos = p->pos;
	if (p->mnt_id >= 0) {
		f->reg.has_mnt_id = true;
		f->reg.mnt_id = p->mnt_id;
	}
	return dump_fown(p->t, p->fd, &f->fown);
}

/* A REG file_entry that is not a terminal (tty.c takes those). */
static bool reg_rst_match(const struct rst_images *ri, const FileEntry *fe)
{
	return fe->reg != NULL;
}

static int reg_check(const struct opts *o, struct rst_images *ri, struct rst_fd *f)
{
	const RegFileEntry *reg = f->fe->reg;
	char what[64];
	struct stat st;
	int ret;

	snprintf(what, sizeof(what), "fd %d", f->fd);
	ret = rst_check_path(ri, reg, what, &st);
	return ret ? ret : rst_check_unchanged(ri, reg, &st, what);
}

static int reg_open(struct rst_child *c, const struct rst_fd *f)
{
	const RegFileEntry *reg = f->fe->reg;
	int fd, err;

	fd = open(reg->name, (reg->flags & REOPEN_FLAGS) | O_NOCTTY);
	if (fd < 0)
		return child_err(c, errno, "%s: %s (fd %d of task %d)", reg->name,
				 strerror(errno), f->fd, c->ri->pid);
	if (reg->pos && lseek(fd, reg->pos, SEEK_SET) < 0) {
		err = errno;
		close(fd);
		return child_err(c, err, "%s: cannot seek to %llu: %s (fd %d of task %d)",
				 reg->name, (unsigned long long)reg->pos, strerror(err), f->fd,
				 c->ri->pid);
	}
	return fd;
}

const struct fd_kind_ops fd_kind_reg = {
	.name = "regular file",
	.type = FD_TYPES__REG,
	.stage = FD_STAGE_OPEN,
	.match = reg_match,
	.dump = reg_dump,
	.dump_write = dump_remaps_write,
	.dump_release = dump_remap_release,
	.dump_free = dump_remap_free,
	.rst_match = reg_rst_match,
	.check = reg_check,
	.open = reg_open,
	.by_fork = true,	/* a path, flags and offset: the same anywhere */
};
