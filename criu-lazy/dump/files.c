/*
 * Files: every file object of files.img (open descriptors, mapped files,
 * the executable, cwd and root), the descriptor table of each task
 * (fdinfo-<files_id>.img) and its fs_struct (fs-PID.img).
 *
 * What we can restore for now is a "regular" file in CRIU's sense: a
 * regular file, a directory, one of the memory character devices
 * (/dev/null, /dev/zero, ...), and with --shell-job the terminal the task
 * runs on.  Everything else is refused here, naming the descriptor and what
 * it is, before anything has been done to the task.
 *
 * Ids: path-based objects (mappings, exe, cwd, root) are one per dev/ino;
 * descriptors are one per open file description (kcmp tells when two
 * descriptors share one, e.g. after dup2()).
 */
#include <dirent.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/log.h"
#include "dump/dump.h"

#ifndef F_GETOWNER_UIDS
#define F_GETOWNER_UIDS 17
#endif

static struct dump_file *file_new(struct dump_files *files, const struct stat *st,
				  const char *name)
{
	struct dump_file *f;

	if (files->nr == files->cap) {
		size_t cap = files->cap ? files->cap * 2 : 32;
		struct dump_file **grown = realloc(files->v, cap * sizeof(*grown));

		if (!grown)
			return NULL;
		files->v = grown;
		files->cap = cap;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	file_entry__init(&f->fe);
	reg_file_entry__init(&f->reg);
	fown_entry__init(&f->fown);
	f->reg.name = strdup(name);
	if (!f->reg.name) {
		free(f);
		return NULL;
	}
	f->fe.type = FD_TYPES__REG;
	f->fe.id = f->reg.id = ++files->next_id;
	f->fe.reg = &f->reg;
	f->reg.fown = &f->fown;
	f->reg.has_mode = true;
	f->reg.mode = st->st_mode;
	if (S_ISREG(st->st_mode)) {
		f->reg.has_size = true;
		f->reg.size = st->st_size;
	}
	f->dev = st->st_dev;
	f->ino = st->st_ino;
	files->v[files->nr++] = f;
	return f;
}

static int read_link(struct dump_task *t, const char *path, char *buf, size_t size)
{
	ssize_t n = readlink(path, buf, size - 1);

	if (n < 0)
		return dump_task_error(t, -errno, "can't read the link %s: %m", path);
	buf[n] = '\0';
	return 0;
}

static int refuse_deleted(const char *what, const char *name)
{
	char clean[PATH_MAX];
	size_t len = strlen(name);
	const char *suffix = " (deleted)";

	snprintf(clean, sizeof(clean), "%s", name);
	if (len > strlen(suffix) && !strcmp(name + len - strlen(suffix), suffix))
		clean[len - strlen(suffix)] = '\0';
	pr_err("%s is a deleted file (%s): deleted files are not supported yet", what, clean);
	return -EOPNOTSUPP;
}

int dump_file_by_path(struct dump_ctx *ctx, struct dump_task *t, const char *link,
		      const char *what, int open_flags, uint32_t *id)
{
	struct dump_files *files = &ctx->files;
	char path[128], name[PATH_MAX];
	struct dump_file *f;
	struct stat st;
	int ret;

	snprintf(path, sizeof(path), "/proc/%d/%s", t->pid, link);
	if (stat(path, &st))
		return dump_task_error(t, -errno, "can't stat %s (%s): %m", path, what);
	ret = read_link(t, path, name, sizeof(name));
	if (ret)
		return ret;
	if (!S_ISDIR(st.st_mode) && st.st_nlink == 0)
		return refuse_deleted(what, name);

	for (size_t i = 0; i < files->nr; i++) {
		f = files->v[i];
		if (!f->by_path || f->dev != st.st_dev || f->ino != st.st_ino)
			continue;
		if ((open_flags & O_ACCMODE) == O_RDWR)
			f->reg.flags = (f->reg.flags & ~O_ACCMODE) | O_RDWR;
		*id = f->fe.id;
		return 0;
	}
	f = file_new(files, &st, name);
	if (!f)
		return -ENOMEM;
	f->by_path = true;
	f->reg.flags = open_flags;
	*id = f->fe.id;
	pr_debug("file %u: %s (%s, mode %#o)", f->fe.id, name, what, st.st_mode);
	return 0;
}

struct fdinfo_text {
	uint64_t pos;
	unsigned int flags;
	int mnt_id;
};

static int read_fdinfo(struct dump_task *t, int fd, struct fdinfo_text *fi)
{
	char name[32], buf[4096];
	const char *p;
	int ret;

	snprintf(name, sizeof(name), "fdinfo/%d", fd);
	ret = dump_proc_read(t, name, buf, sizeof(buf));
	if (ret < 0)
		return ret;
	p = dump_status_field(buf, "pos");
	fi->pos = p ? strtoull(p, NULL, 10) : 0;
	p = dump_status_field(buf, "flags");
	fi->flags = p ? strtoul(p, NULL, 8) : 0;
	p = dump_status_field(buf, "mnt_id");
	fi->mnt_id = p ? atoi(p) : -1;
	return 0;
}

static const char *article(const char *s)
{
	/* "an eventfd", "an IPv4 TCP socket", but "a unix socket", "a UDP socket" */
	return s[0] && strchr("aeioAEIO", s[0]) ? "an" : "a";
}

static bool is_tty(const struct stat *st)
{
	unsigned int maj = major(st->st_rdev), min = minor(st->st_rdev);

	if (!S_ISCHR(st->st_mode))
		return false;
	return maj == 4 || (maj >= 136 && maj <= 143) || (maj == 5 && min <= 1) ||
	       maj == 188 || maj == 204 || maj == 229;
}

static bool is_mem_chardev(const struct stat *st)
{
	unsigned int min = minor(st->st_rdev);

	return S_ISCHR(st->st_mode) && major(st->st_rdev) == 1 &&
	       (min == 3 || min == 5 || min == 7 || min == 8 || min == 9);
}

static int refuse_fd(struct dump_task *t, int fd, const char *kind, const char *detail,
		     const char *what_not)
{
	pr_err("fd %d of task %d is %s %s%s%s%s: %s are not supported yet", fd, t->pid,
	       article(kind), kind, detail[0] ? " (" : "", detail, detail[0] ? ")" : "",
	       what_not);
	return -EOPNOTSUPP;
}

/* Refuse everything that is not a "regular" file we can reopen by path. */
static int check_fd_kind(struct dump_ctx *ctx, struct dump_task *t, int fd, const char *link,
			 const struct stat *st, const struct fdinfo_text *fi)
{
	char detail[PATH_MAX + 64];
	unsigned long long ino;
	int ret;

	if (sscanf(link, "socket:[%llu]", &ino) == 1) {
		char kind[128];

		ret = dump_sock_describe(ctx, t, fd, ino, kind, sizeof(kind));
		if (ret)
			return ret;
		snprintf(detail, sizeof(detail), "inode %llu", ino);
		return refuse_fd(t, fd, kind, detail, "sockets");
	}
	if (sscanf(link, "pipe:[%llu]", &ino) == 1) {
		snprintf(detail, sizeof(detail), "inode %llu", ino);
		return refuse_fd(t, fd, "pipe", detail, "pipes");
	}
	if (!strncmp(link, "anon_inode:", 11)) {
		static const struct { const char *name, *kind, *plural; } anon[] = {
			{ "[eventfd]", "eventfd", "eventfds" },
			{ "[eventpoll]", "epoll instance", "epoll instances" },
			{ "[signalfd]", "signalfd", "signalfds" },
			{ "[timerfd]", "timerfd", "timerfds" },
			{ "inotify", "inotify instance", "inotify instances" },
			{ "[fanotify]", "fanotify instance", "fanotify instances" },
			{ "[pidfd]", "pidfd", "pidfds" },
			{ "[userfaultfd]", "userfaultfd", "userfaultfds" },
			{ "[io_uring]", "io_uring instance", "io_uring instances" },
		};

		for (size_t i = 0; i < sizeof(anon) / sizeof(anon[0]); i++)
			if (!strcmp(link + 11, anon[i].name))
				return refuse_fd(t, fd, anon[i].kind, "", anon[i].plural);
		return refuse_fd(t, fd, "anonymous inode", link + 11, "such files");
	}
	if (!strncmp(link, "pidfd:", 6))
		return refuse_fd(t, fd, "pidfd", "", "pidfds");
	if (!strncmp(link, "/memfd:", 7))
		return refuse_fd(t, fd, "memfd", link + 7, "memfds");
	if (link[0] != '/')	/* net:[4026531840] and other nsfs/pseudo files */
		return refuse_fd(t, fd, "special file", link, "such files");
	if (fi->flags & O_PATH)
		return refuse_fd(t, fd, "O_PATH descriptor", link, "O_PATH descriptors");

	if (S_ISFIFO(st->st_mode))
		return refuse_fd(t, fd, "FIFO", link, "FIFOs");
	if (S_ISSOCK(st->st_mode))
		return refuse_fd(t, fd, "socket", link, "sockets");
	if (S_ISBLK(st->st_mode))
		return refuse_fd(t, fd, "block device", link, "block devices");
	if (is_tty(st)) {
		if (ctx->o->shell_job)
			return 0;
		pr_err("fd %d of task %d is a terminal (%s): use --shell-job to dump it",
		       fd, t->pid, link);
		return -EOPNOTSUPP;
	}
	if (S_ISCHR(st->st_mode)) {
		if (is_mem_chardev(st))
			return 0;
		if (major(st->st_rdev) == 5 && minor(st->st_rdev) == 2)
			return refuse_fd(t, fd, "pseudo-terminal master", link,
					 "pseudo-terminal masters");
		return refuse_fd(t, fd, "character device", link, "such devices");
	}
	if (S_ISREG(st->st_mode) && st->st_nlink == 0) {
		char what[64];

		snprintf(what, sizeof(what), "fd %d of task %d", fd, t->pid);
		return refuse_deleted(what, link);
	}
	if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode))
		return refuse_fd(t, fd, "special file", link, "such files");
	return 0;
}

/* F_GETOWN_EX / F_GETSIG / F_GETOWNER_UIDS inside the task. */
static int dump_fown(struct dump_task *t, int fd, FownEntry *fown)
{
	struct { int type; pid_t pid; } owner;
	uint32_t uids[2];
	long res;
	int ret;

	ret = dump_remote_call(t, "fcntl(F_GETOWN_EX)", __NR_fcntl, fd, F_GETOWN_EX, t->scratch, 0,
			       &res);
	if (!ret)
		ret = dump_remote_read(t, t->scratch, &owner, sizeof(owner));
	if (!ret)
		ret = dump_remote_call(t, "fcntl(F_GETSIG)", __NR_fcntl, fd, F_GETSIG, 0, 0, &res);
	if (ret)
		return ret;
	fown->signum = res;
	if (!owner.pid)
		return 0;
	fown->pid_type = owner.type;
	fown->pid = owner.pid;
	ret = dump_remote_syscall(t, __NR_fcntl,
				  (unsigned long[6]){ fd, F_GETOWNER_UIDS, t->scratch }, &res);
	if (ret)
		return ret;
	if (res == 0 && !dump_remote_read(t, t->scratch, uids, sizeof(uids))) {
		fown->uid = uids[0];
		fown->euid = uids[1];
	}
	pr_debug("task %d: fd %d owned by %d (type %d), signal %u", t->pid, fd, owner.pid,
		 owner.type, fown->signum);
	return t->exited ? -ESRCH : 0;
}

/* An earlier descriptor of the task on the same open file description. */
static struct dump_file *find_shared(struct dump_ctx *ctx, struct dump_task *t, int fd,
				     const struct stat *st, size_t nr_done)
{
	for (size_t i = 0; i < nr_done; i++) {
		FdinfoEntry *o = &t->fds[i].fdi;
		struct dump_file *f = NULL;

		for (size_t j = 0; j < ctx->files.nr; j++)
			if (ctx->files.v[j]->fe.id == o->id)
				f = ctx->files.v[j];
		if (!f || f->by_path || f->dev != st->st_dev || f->ino != st->st_ino)
			continue;
		if (syscall(SYS_kcmp, t->pid, t->pid, KCMP_FILE, fd, o->fd) == 0)
			return f;
	}
	return NULL;
}

static int dump_one_fd(struct dump_ctx *ctx, struct dump_task *t, int fd, size_t nr_done)
{
	struct dump_fd *dfd = &t->fds[nr_done];
	char path[64], link[PATH_MAX];
	struct fdinfo_text fi;
	struct dump_file *f;
	struct stat st;
	int ret;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", t->pid, fd);
	ret = read_link(t, path, link, sizeof(link));
	if (ret)
		return ret;
	if (stat(path, &st))
		return dump_task_error(t, -errno, "can't stat fd %d of task %d (%s): %m", fd, t->pid,
				       link);
	ret = read_fdinfo(t, fd, &fi);
	if (ret)
		return ret;
	ret = check_fd_kind(ctx, t, fd, link, &st, &fi);
	if (ret)
		return ret;

	fdinfo_entry__init(&dfd->fdi);
	dfd->fdi.fd = fd;
	dfd->fdi.type = FD_TYPES__REG;
	dfd->fdi.flags = (fi.flags & O_CLOEXEC) ? FD_CLOEXEC : 0;

	f = find_shared(ctx, t, fd, &st, nr_done);
	if (f) {
		dfd->fdi.id = f->fe.id;
		pr_debug("task %d: fd %d shares file %u", t->pid, fd, f->fe.id);
		return 0;
	}
	f = file_new(&ctx->files, &st, link);
	if (!f)
		return -ENOMEM;
	f->reg.flags = fi.flags & ~O_CLOEXEC;
	f->reg.pos = fi.pos;
	if (fi.mnt_id >= 0) {
		f->reg.has_mnt_id = true;
		f->reg.mnt_id = fi.mnt_id;
	}
	dfd->fdi.id = f->fe.id;
	pr_debug("task %d: fd %d -> file %u %s flags %#o pos %llu%s", t->pid, fd, f->fe.id,
		 link, f->reg.flags, (unsigned long long)f->reg.pos, dfd->fdi.flags ? " cloexec" : "");
	return dump_fown(t, fd, &f->fown);
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

int dump_fds(struct dump_ctx *ctx, struct dump_task *t)
{
	char path[64];
	struct dirent *de;
	int *fds = NULL, ret = 0;
	size_t n = 0, cap = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", t->pid);
	d = opendir(path);
	if (!d)
		return dump_task_error(t, -errno, "can't open %s: %m", path);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			int *grown;

			cap = cap ? cap * 2 : 64;
			grown = realloc(fds, cap * sizeof(*fds));
			if (!grown) {
				ret = -ENOMEM;
				goto out;
			}
			fds = grown;
		}
		fds[n++] = atoi(de->d_name);
	}
	qsort(fds, n, sizeof(*fds), cmp_int);

	t->fds = calloc(n ? n : 1, sizeof(*t->fds));
	if (!t->fds) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n && !ret; i++) {
		ret = dump_one_fd(ctx, t, fds[i], i);
		if (!ret)
			t->nr_fds = i + 1;
	}
out:
	closedir(d);
	free(fds);
	return ret;
}

int dump_fs(struct dump_ctx *ctx, struct dump_task *t, const char *status)
{
	char path[64], root[PATH_MAX], what[64];
	const char *p;
	int ret;

	fs_entry__init(&t->fs);
	snprintf(path, sizeof(path), "/proc/%d/root", t->pid);
	ret = read_link(t, path, root, sizeof(root));
	if (ret)
		return ret;
	if (strcmp(root, "/")) {
		pr_err("task %d runs chrooted in %s: not supported yet", t->pid, root);
		return -EOPNOTSUPP;
	}
	snprintf(what, sizeof(what), "the working directory of task %d", t->pid);
	ret = dump_file_by_path(ctx, t, "cwd", what, O_RDONLY, &t->fs.cwd_id);
	if (ret)
		return ret;
	snprintf(what, sizeof(what), "the root of task %d", t->pid);
	ret = dump_file_by_path(ctx, t, "root", what, O_RDONLY, &t->fs.root_id);
	if (ret)
		return ret;
	p = dump_status_field(status, "Umask");
	if (p) {
		t->fs.has_umask = true;
		t->fs.umask = strtoul(p, NULL, 8);
	}
	pr_debug("task %d: cwd file %u, root file %u, umask %#o", t->pid, t->fs.cwd_id,
		 t->fs.root_id, t->fs.umask);
	return 0;
}

int dump_write_files(struct dump_ctx *ctx)
{
	struct cr_img *img;
	int ret;

	ret = dump_img_open(ctx, IMG_FILES, 0, &img);
	if (ret)
		return ret;
	for (size_t i = 0; i < ctx->files.nr && !ret; i++)
		ret = img_write_entry(img, &ctx->files.v[i]->fe.base);
	if (ret) {
		img_close(img);
		return ret;
	}
	return img_close(img);
}

int dump_write_fdinfo(struct dump_ctx *ctx, struct dump_task *t)
{
	struct cr_img *img;
	int ret;

	ret = dump_img_open(ctx, IMG_FDINFO, t->ids.files_id, &img);
	if (ret)
		return ret;
	for (size_t i = 0; i < t->nr_fds && !ret; i++)
		ret = img_write_entry(img, &t->fds[i].fdi.base);
	if (ret) {
		img_close(img);
		return ret;
	}
	return img_close(img);
}

int dump_write_fs(struct dump_ctx *ctx, struct dump_task *t)
{
	return dump_img_write_one(ctx, IMG_FS, t->vpid, &t->fs.base);
}

void dump_files_free(struct dump_files *files)
{
	for (size_t i = 0; i < files->nr; i++) {
		free(files->v[i]->reg.name);
		free(files->v[i]);
	}
	free(files->v);
	files->v = NULL;
	files->nr = files->cap = 0;
}
