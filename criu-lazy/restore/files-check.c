/*
 * files.img, fdinfo-<files_id>.img and every path the restore reopens (open
 * descriptors, mapped files, the exe, cwd, root), checked before any task
 * exists: a file that is gone fails the restore here with the path and
 * what refers to it; one that changed since the dump, by rst_check_unchanged()
 * (file-unchanged.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "images/image.h"
#include "images/vma-status.h"
#include "restore/restore.h"
#include "restore/files.h"

const FileEntry *rst_file_find(const struct rst_images *ri, uint32_t id)
{
	for (size_t i = 0; i < ri->nr_files; i++)
		if (ri->files[i]->id == id)
			return ri->files[i];
	return NULL;
}

/* A deleted file made again (ghost.c) is opened where it is now. */
static int use_ghost(const struct rst_ghosts *ghosts, FileEntry *fe)
{
	const char *path = fe->type == FD_TYPES__REG ? rst_ghost_path(ghosts, fe->id) : NULL;
	char *copy;

	if (!path || !strcmp(path, fe->reg->name))
		return 0;
	copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	free(fe->reg->name);	/* protobuf-c's default allocator */
	fe->reg->name = copy;
	return 0;
}

/* files.img: read once for the tree (ri->tf), every process's files */
static int read_files(const struct rst_images *ri, struct rst_tree_files *tf)
{
	struct cr_img *img;
	ProtobufCMessage *msg;
	int ret;

	if (tf->files_read)
		return 0;
	tf->files_read = true;
	ret = img_open(ri->dirfd, IMG_FILES, 0, O_RDONLY, &img);
	if (ret == -ENOENT)
		return 0;	/* no file at all */
	if (ret)
		return ret;
	while ((ret = img_read_entry(img, &file_entry__descriptor, &msg)) > 0) {
		FileEntry *fe = (FileEntry *)msg;
		FileEntry **grown;

		if (fe->type == FD_TYPES__REG && (!fe->reg || fe->reg->id != fe->id)) {
			pr_err("files.img: regular file %u has no or a mismatching reg entry", fe->id);
			protobuf_c_message_free_unpacked(msg, NULL);
			ret = -EINVAL;
			break;
		}
		ret = use_ghost(ri->ghosts, fe);
		if (ret) {
			protobuf_c_message_free_unpacked(msg, NULL);
			break;
		}
		grown = realloc(tf->files, (tf->nr_files + 1) * sizeof(*grown));
		if (!grown) {
			protobuf_c_message_free_unpacked(msg, NULL);
			ret = -ENOMEM;
			break;
		}
		tf->files = grown;
		tf->files[tf->nr_files++] = fe;
	}
	img_close(img);
	return ret;
}

void rst_tree_files_free(struct rst_tree_files *tf)
{
	for (size_t i = 0; i < tf->nr_files; i++)
		protobuf_c_message_free_unpacked(&tf->files[i]->base, NULL);
	free(tf->files);
	rst_file_locks_free(tf);
	rst_file_checks_free(tf);
	memset(tf, 0, sizeof(*tf));
}

/* The regular file @id: files.img must have it. */
static const RegFileEntry *reg_file(const struct rst_images *ri, uint32_t id, const char *what)
{
	const FileEntry *fe = rst_file_find(ri, id);

	if (!fe) {
		pr_err("files.img: file %u (%s of task %d) is missing", id, what, ri->pid);
		return NULL;
	}
	if (fe->type != FD_TYPES__REG) {
		pr_err("files.img: file %u (%s of task %d) is %s, not a regular file", id, what,
		       ri->pid, fd_type_name(fe->type));
		return NULL;
	}
	return fe->reg;
}

/* Does @path still exist as something we can reopen for @what? */
int rst_check_path(const struct rst_images *ri, const RegFileEntry *reg, const char *what,
		   struct stat *st)
{
	const char *name = reg->name;
	size_t len = strlen(name);
	int ret;

	if (len > 10 && !strcmp(name + len - 10, " (deleted)")) {
		pr_err("%s: the file was deleted before the dump (%s of task %d): not supported",
		       name, what, ri->pid);
		return -EOPNOTSUPP;
	}
	if (name[0] != '/') {
		pr_err("%s: not an absolute path (%s of task %d)", name, what, ri->pid);
		return -EINVAL;
	}
	ret = rst_path_stat(ri->tf, reg, st);
	if (ret)
		pr_err("%s: %s (%s of task %d)", name, strerror(-ret), what, ri->pid);
	return ret;
}

static int load_fd(const struct opts *o, struct rst_images *ri, const FdinfoEntry *fdi,
		   struct rst_fd *fd)
{
	const FileEntry *fe = rst_file_find(ri, fdi->id);

	memset(fd, 0, sizeof(*fd));
	fd->fd = fdi->fd;
	fd->cloexec = fdi->flags & FD_CLOEXEC;
	if (!fe) {
		pr_err("files.img: file %u (fd %u of task %d) is missing", fdi->id, fdi->fd,
		       ri->pid);
		return -EINVAL;
	}
	if (fdi->type != fe->type) {
		pr_err("fdinfo-%u.img: fd %u of task %d is %s, but its file %u is %s",
		       ri->ids->files_id, fdi->fd, ri->pid, fd_type_name(fdi->type), fe->id,
		       fd_type_name(fe->type));
		return -EINVAL;
	}
	fd->fe = fe;
	fd->ops = fd_kind_for_restore(ri, fe);
	if (!fd->ops) {
		pr_err("fd %u of task %d is %s: not supported yet", fdi->fd, ri->pid,
		       fd_type_name(fe->type));
		return -EOPNOTSUPP;
	}
	return 0;
}

static int fd_cmp(const void *a, const void *b)
{
	const struct rst_fd *x = a, *y = b;

	return x->fd - y->fd;
}

int rst_fds_load(const struct opts *o, struct rst_images *ri)
{
	struct cr_img *img;
	ProtobufCMessage *msg;
	char name[IMG_NAME_MAX];
	int ret;

	ret = read_files(ri, ri->tf);
	ri->files = ri->tf->files;
	ri->nr_files = ri->tf->nr_files;
	if (ret || ri->fdt_owner)	/* its fds are its owner's */
		return ret;

	img_format_name(IMG_FDINFO, ri->ids->files_id, name, sizeof(name));
	ret = img_open(ri->dirfd, IMG_FDINFO, ri->ids->files_id, O_RDONLY, &img);
	if (ret == -ENOENT)
		return 0;	/* a task without descriptors */
	if (ret)
		return ret;
	while ((ret = img_read_entry(img, &fdinfo_entry__descriptor, &msg)) > 0) {
		FdinfoEntry *fdi = (FdinfoEntry *)msg;
		struct rst_fd *grown;

		grown = realloc(ri->fds, (ri->nr_fds + 1) * sizeof(*grown));
		if (!grown) {
			ret = -ENOMEM;
		} else {
			ri->fds = grown;
			ret = load_fd(o, ri, fdi, &ri->fds[ri->nr_fds]);
			if (!ret)
				ri->nr_fds++;
		}
		protobuf_c_message_free_unpacked(msg, NULL);
		if (ret)
			break;
	}
	img_close(img);
	if (ret)
		return ret;

	if (ri->nr_fds)	/* no fd at all: ri->fds is NULL */
		qsort(ri->fds, ri->nr_fds, sizeof(*ri->fds), fd_cmp);
	for (size_t i = 1; i < ri->nr_fds; i++) {
		if (ri->fds[i].fd == ri->fds[i - 1].fd) {
			pr_err("%s: fd %d of task %d appears twice", name, ri->fds[i].fd, ri->pid);
			return -EINVAL;
		}
	}
	/* every fd known first: an epoll's check looks for the fds it watches */
	for (size_t i = 0; i < ri->nr_fds && !ret; i++)
		ret = ri->fds[i].ops->check(o, ri, &ri->fds[i]);
	return ret;
}

/* cwd, root, exe and the files behind mappings. */
int rst_fs_check(struct rst_images *ri)
{
	struct stat st;
	int ret;

	ri->cwd = reg_file(ri, ri->fs->cwd_id, "cwd");
	ri->root = reg_file(ri, ri->fs->root_id, "root");
	ri->exe = reg_file(ri, ri->mm->exe_file_id, "exe");
	if (!ri->cwd || !ri->root || !ri->exe)
		return -EINVAL;

	ret = rst_check_path(ri, ri->cwd, "cwd", &st);
	if (!ret && !S_ISDIR(st.st_mode)) {
		pr_err("%s: not a directory (cwd of task %d)", ri->cwd->name, ri->pid);
		ret = -ENOTDIR;
	}
	if (!ret)
		ret = rst_check_path(ri, ri->root, "root", &st);
	if (!ret && !S_ISDIR(st.st_mode)) {
		pr_err("%s: not a directory (root of task %d)", ri->root->name, ri->pid);
		ret = -ENOTDIR;
	}
	if (!ret)
		ret = rst_check_path(ri, ri->exe, "exe", &st);
	if (!ret)
		ret = rst_check_unchanged(ri, ri->exe, &st, "exe");
	if (ret)
		return ret;

	for (size_t i = 0; i < ri->mm->n_vmas; i++) {
		const VmaEntry *v = ri->mm->vmas[i];
		const RegFileEntry *reg;
		char what[80];

		if (!(v->status & (VMA_FILE_PRIVATE | VMA_FILE_SHARED)) ||
		    (v->status & (VMA_AREA_VDSO | VMA_AREA_VVAR | VMA_AREA_VSYSCALL |
				  VMA_AREA_MEMFD)))
			continue;	/* a memfd's inode: rst_memfd_objects() */
		snprintf(what, sizeof(what), "mapped at 0x%llx", (unsigned long long)v->start);
		if (v->shmid > UINT32_MAX || !(reg = reg_file(ri, (uint32_t)v->shmid, what)))
			return -EINVAL;
		ret = rst_check_path(ri, reg, what, &st);
		if (!ret)
			ret = rst_check_unchanged(ri, reg, &st, what);
		if (ret)
			return ret;
	}
	return 0;
}
