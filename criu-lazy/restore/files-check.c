/*
 * files.img, fdinfo-<files_id>.img and every path the restore reopens (open
 * descriptors, mapped files, the exe, cwd, root), checked before any task
 * exists: a file that is gone fails the restore here with the path and
 * what refers to it.
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

const FileEntry *rst_file_find(const struct rst_images *ri, uint32_t id)
{
	for (size_t i = 0; i < ri->nr_files; i++)
		if (ri->files[i]->id == id)
			return ri->files[i];
	return NULL;
}

static const char *fd_type_name(int type)
{
	static const char *const names[] = {
		[FD_TYPES__UND] = "an unknown file", [FD_TYPES__REG] = "a regular file",
		[FD_TYPES__PIPE] = "a pipe", [FD_TYPES__FIFO] = "a FIFO",
		[FD_TYPES__INETSK] = "an inet socket", [FD_TYPES__UNIXSK] = "a unix socket",
		[FD_TYPES__EVENTFD] = "an eventfd", [FD_TYPES__EVENTPOLL] = "an epoll fd",
		[FD_TYPES__INOTIFY] = "an inotify fd", [FD_TYPES__SIGNALFD] = "a signalfd",
		[FD_TYPES__PACKETSK] = "a packet socket", [FD_TYPES__TTY] = "a terminal",
		[FD_TYPES__FANOTIFY] = "a fanotify fd", [FD_TYPES__NETLINKSK] = "a netlink socket",
		[FD_TYPES__NS] = "a namespace fd", [FD_TYPES__TUNF] = "a tun device",
		[FD_TYPES__EXT] = "an external file", [FD_TYPES__TIMERFD] = "a timerfd",
		[FD_TYPES__MEMFD] = "a memfd", [FD_TYPES__BPFMAP] = "a BPF map",
		[FD_TYPES__PIDFD] = "a pidfd",
	};

	if (type >= 0 && (size_t)type < sizeof(names) / sizeof(names[0]) && names[type])
		return names[type];
	return "an unknown file";
}

static int load_files(struct rst_images *ri)
{
	struct cr_img *img;
	ProtobufCMessage *msg;
	int ret;

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
		grown = realloc(ri->files, (ri->nr_files + 1) * sizeof(*grown));
		if (!grown) {
			protobuf_c_message_free_unpacked(msg, NULL);
			ret = -ENOMEM;
			break;
		}
		ri->files = grown;
		ri->files[ri->nr_files++] = fe;
	}
	img_close(img);
	return ret;
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

static bool is_terminal(const struct stat *st)
{
	unsigned int maj = major(st->st_rdev);

	/* tty/console (4, 5) and the Unix98 pty slaves (136-143) */
	return S_ISCHR(st->st_mode) && (maj == 4 || maj == 5 || (maj >= 136 && maj <= 143));
}

/* Does @path still exist as something we can reopen for @what? */
static int check_path(const struct rst_images *ri, const RegFileEntry *reg, const char *what,
		      struct stat *st)
{
	const char *name = reg->name;
	size_t len = strlen(name);

	if (len > 10 && !strcmp(name + len - 10, " (deleted)")) {
		pr_err("%s: the file was deleted before the dump (%s of task %d): not supported",
		       name, what, ri->pid);
		return -EOPNOTSUPP;
	}
	if (name[0] != '/') {
		pr_err("%s: not an absolute path (%s of task %d)", name, what, ri->pid);
		return -EINVAL;
	}
	if (stat(name, st)) {
		int err = errno;

		pr_err("%s: %s (%s of task %d)", name, strerror(err), what, ri->pid);
		return -err;
	}
	return 0;
}

static int load_fd(const struct opts *o, struct rst_images *ri, const FdinfoEntry *fdi,
		   struct rst_fd *fd)
{
	const FileEntry *fe = rst_file_find(ri, fdi->id);
	char what[64];
	struct stat st;
	int ret;

	snprintf(what, sizeof(what), "fd %u", fdi->fd);
	memset(fd, 0, sizeof(*fd));
	fd->fd = fdi->fd;
	fd->cloexec = fdi->flags & FD_CLOEXEC;
	if (!fe) {
		pr_err("files.img: file %u (fd %u of task %d) is missing", fdi->id, fdi->fd,
		       ri->pid);
		return -EINVAL;
	}
	if (fe->type == FD_TYPES__TTY) {
		if (!o->shell_job) {
			pr_err("fd %u of task %d is a terminal: restore it with --shell-job",
			       fdi->fd, ri->pid);
			return -EOPNOTSUPP;
		}
		fd->tty = true;
		return 0;
	}
	if (fe->type != FD_TYPES__REG) {
		pr_err("fd %u of task %d is %s: not supported yet", fdi->fd, ri->pid,
		       fd_type_name(fe->type));
		return -EOPNOTSUPP;
	}
	fd->reg = fe->reg;
	ret = check_path(ri, fe->reg, what, &st);
	if (ret)
		return ret;
	if (is_terminal(&st)) {
		if (!o->shell_job) {
			pr_err("fd %u of task %d is the terminal %s: restore it with --shell-job",
			       fdi->fd, ri->pid, fe->reg->name);
			return -EOPNOTSUPP;
		}
		fd->tty = true;
		return 0;
	}
	if (fe->reg->has_size && S_ISREG(st.st_mode) && (uint64_t)st.st_size != fe->reg->size) {
		pr_err("%s: size %lld differs from the dumped %llu (fd %u of task %d)",
		       fe->reg->name, (long long)st.st_size, (unsigned long long)fe->reg->size,
		       fdi->fd, ri->pid);
		return -EINVAL;
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

	ret = load_files(ri);
	if (ret)
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

	qsort(ri->fds, ri->nr_fds, sizeof(*ri->fds), fd_cmp);
	for (size_t i = 1; i < ri->nr_fds; i++) {
		if (ri->fds[i].fd == ri->fds[i - 1].fd) {
			pr_err("%s: fd %d of task %d appears twice", name, ri->fds[i].fd, ri->pid);
			return -EINVAL;
		}
	}
	return 0;
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

	ret = check_path(ri, ri->cwd, "cwd", &st);
	if (!ret && !S_ISDIR(st.st_mode)) {
		pr_err("%s: not a directory (cwd of task %d)", ri->cwd->name, ri->pid);
		ret = -ENOTDIR;
	}
	if (!ret)
		ret = check_path(ri, ri->root, "root", &st);
	if (!ret && !S_ISDIR(st.st_mode)) {
		pr_err("%s: not a directory (root of task %d)", ri->root->name, ri->pid);
		ret = -ENOTDIR;
	}
	if (!ret)
		ret = check_path(ri, ri->exe, "exe", &st);
	if (ret)
		return ret;

	for (size_t i = 0; i < ri->mm->n_vmas; i++) {
		const VmaEntry *v = ri->mm->vmas[i];
		const RegFileEntry *reg;
		char what[80];

		if (!(v->status & (VMA_FILE_PRIVATE | VMA_FILE_SHARED)) ||
		    (v->status & (VMA_AREA_VDSO | VMA_AREA_VVAR | VMA_AREA_VSYSCALL)))
			continue;
		snprintf(what, sizeof(what), "mapped at 0x%llx", (unsigned long long)v->start);
		if (v->shmid > UINT32_MAX || !(reg = reg_file(ri, (uint32_t)v->shmid, what)))
			return -EINVAL;
		ret = check_path(ri, reg, what, &st);
		if (ret)
			return ret;
	}
	return 0;
}
