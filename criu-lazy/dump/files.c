/*
 * Files: every file object of files.img (open descriptors, mapped files,
 * the executable, cwd and root), the descriptor table of each task
 * (fdinfo-<files_id>.img) and its fs_struct (fs-PID.img).
 *
 * Each descriptor goes to the first fd kind of the registry that takes it
 * (files/kinds.c), which fills its file object; one no kind takes is
 * refused (files/refused.c), naming the descriptor and what it is, before
 * anything has been done to the task.
 *
 * Ids: path-based objects (mappings, exe, cwd, root) are one per dev/ino;
 * descriptors are one per open file description (kcmp tells when two
 * descriptors share one, e.g. after dup2()).
 *
 * What happens to them once every task is dumped, images included, is
 * files-write.c's.
 */
#include <fcntl.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/array.h"
#include "common/elf-build-id.h"
#include "common/log.h"
#include "common/proc-fd.h"
#include "dump/dump.h"
#include "files/fd-kind.h"

#ifndef F_GETOWNER_UIDS
#define F_GETOWNER_UIDS 17
#endif

/* A new file object of files.img of @ops's kind, with the next id. */
static struct dump_file *file_new(struct dump_files *files, const struct fd_kind_ops *ops,
				  const struct stat *st)
{
	struct dump_file *f;

	if (ARRAY_GROW(files->v, files->cap, files->nr + 1, 32))
		return NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	file_entry__init(&f->fe);
	fown_entry__init(&f->fown);
	f->ops = ops;
	f->fe.type = ops->type;
	f->fe.id = ++files->next_id;
	f->dev = st->st_dev;
	f->ino = st->st_ino;
	files->v[files->nr++] = f;
	return f;
}

/*
 * The ELF build-id of a regular file, as CRIU records it since 3.15: the
 * restore refuses a binary rebuilt to the same size.  A file we cannot
 * read by its name (a ghost's, gone, replaced) simply has none.
 */
static int reg_build_id(struct dump_file *f, const char *name)
{
	uint32_t words[BUILD_ID_MAX_WORDS];
	struct stat now;
	int n;

	/* the name may be another file's by now (link-remap): not that one's id */
	if (stat(name, &now) || now.st_dev != f->dev || now.st_ino != f->ino)
		return 0;
	n = elf_build_id(name, words, BUILD_ID_MAX_WORDS);
	if (n <= 0)
		return 0;
	f->reg.build_id = malloc(n * sizeof(*words));
	if (!f->reg.build_id)
		return -ENOMEM;
	memcpy(f->reg.build_id, words, n * sizeof(*words));
	f->reg.n_build_id = n;
	return 0;
}

int dump_file_reg_init(struct dump_file *f, const struct stat *st, const char *name)
{
	reg_file_entry__init(&f->reg);
	f->reg.name = strdup(name);
	if (!f->reg.name)
		return -ENOMEM;
	f->reg.id = f->fe.id;
	f->fe.reg = &f->reg;
	f->reg.fown = &f->fown;
	f->reg.has_mode = true;
	f->reg.mode = st->st_mode;
	if (S_ISREG(st->st_mode)) {
		f->reg.has_size = true;
		f->reg.size = st->st_size;
		return reg_build_id(f, name);
	}
	return 0;
}

/* A REG file object of its own, no descriptor's: the path of a FIFO. */
struct dump_file *dump_file_add_reg(struct dump_ctx *ctx, const struct stat *st, const char *name)
{
	struct dump_file *f = file_new(&ctx->files, &fd_kind_reg, st);

	if (!f || dump_file_reg_init(f, st, name))
		return NULL;
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
	for (size_t i = 0; i < files->nr; i++) {
		f = files->v[i];
		if (!f->by_path || f->dev != st.st_dev || f->ino != st.st_ino)
			continue;
		if ((open_flags & O_ACCMODE) == O_RDWR)
			f->reg.flags = (f->reg.flags & ~O_ACCMODE) | O_RDWR;
		*id = f->fe.id;
		return 0;
	}
	f = file_new(files, &fd_kind_reg, &st);
	if (!f || dump_file_reg_init(f, &st, name))
		return -ENOMEM;
	f->by_path = true;
	f->reg.flags = open_flags;
	*id = f->fe.id;
	if (st.st_nlink == 0)
		ret = dump_ghost(ctx, f, path, &st, what);
	else if (dump_name_gone(name, &st))
		ret = dump_link_remap(ctx, f, path, &st, what);
	if (ret)
		return ret;
	pr_debug("file %u: %s (%s, mode %#o)", f->fe.id, f->reg.name, what, st.st_mode);
	return 0;
}

#define FDINFO_MAX (64 << 10)	/* an epoll's fdinfo has a line per watch */

static int read_fdinfo(struct dump_task *t, struct fd_probe *p, char *buf)
{
	char name[32];
	const char *v;
	int ret;

	snprintf(name, sizeof(name), "fdinfo/%d", p->fd);
	ret = dump_proc_read(t, name, buf, FDINFO_MAX);
	if (ret < 0)
		return ret;
	p->fdinfo = buf;
	v = proc_status_field(buf, "pos");
	p->pos = v ? strtoull(v, NULL, 10) : 0;
	v = proc_status_field(buf, "flags");
	p->flags = v ? strtoul(v, NULL, 8) : 0;
	v = proc_status_field(buf, "mnt_id");
	p->mnt_id = v ? atoi(v) : -1;
	return 0;
}

/* The same of a file we hold ourselves (one in flight). */
static int dump_fown_local(int fd, FownEntry *fown)
{
	struct f_owner_ex owner;
	uint32_t uids[2];
	int sig;

	sig = fcntl(fd, F_GETSIG);
	if (sig < 0 || fcntl(fd, F_GETOWN_EX, &owner)) {
		pr_perror("a file in flight: its owner");
		return -errno;
	}
	fown->signum = sig;
	if (!owner.pid)
		return 0;
	fown->pid_type = owner.type;
	fown->pid = owner.pid;
	if (!fcntl(fd, F_GETOWNER_UIDS, uids)) {
		fown->uid = uids[0];
		fown->euid = uids[1];
	}
	return 0;
}

/* F_GETOWN_EX / F_GETSIG / F_GETOWNER_UIDS inside the task. */
int dump_fown(struct dump_task *t, int fd, FownEntry *fown)
{
	struct { int type; pid_t pid; } owner;
	uint32_t uids[2];
	long res;
	int ret;

	if (t->self)
		return dump_fown_local(fd, fown);
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

/* Is fd @fd of @t the open file description of fd @ofd of @u? */
static bool same_ofd(const struct dump_task *t, int fd, const struct dump_task *u, int ofd)
{
	return syscall(SYS_kcmp, t->pid, u->pid, KCMP_FILE, fd, ofd) == 0;
}

/* One of @u's first @nr fds on the open file description of p->fd. */
static struct dump_file *find_in_task(struct dump_ctx *ctx, const struct fd_probe *p,
				      const struct fd_kind_ops *ops, const struct dump_task *u,
				      size_t nr)
{
	for (size_t i = 0; i < nr; i++) {
		FdinfoEntry *o = &u->fds[i].fdi;
		struct dump_file *f = dump_file_find(ctx, o->id);

		if (!f || f->ops != ops || f->dev != p->st.st_dev || f->ino != p->st.st_ino)
			continue;
		if (same_ofd(p->t, p->fd, u, o->fd))
			return f;
	}
	return NULL;
}

/*
 * An earlier descriptor on the same open file description: a dup in the
 * task, or one inherited across fork by another process of the tree
 * (dumped before it).  kcmp says so; the kind and inode say which to ask.
 * One file object for all of them: the restore makes it once and passes it
 * to every process that holds it.
 */
static struct dump_file *find_shared(struct dump_ctx *ctx, struct dump_task *t,
				     const struct fd_probe *p, const struct fd_kind_ops *ops,
				     size_t nr_done)
{
	struct dump_file *f = find_in_task(ctx, p, ops, t, nr_done);

	for (size_t i = 0; !f && i < ctx->nr_tasks && ctx->tasks[i] != t; i++) {
		const struct dump_task *u = ctx->tasks[i];

		if (!u->zombie && u->fds)
			f = find_in_task(ctx, p, ops, u, u->nr_fds);
	}
	return f;
}

struct dump_file *dump_file_find(struct dump_ctx *ctx, uint32_t id)
{
	for (size_t j = 0; j < ctx->files.nr; j++)
		if (ctx->files.v[j]->fe.id == id)
			return ctx->files.v[j];
	return NULL;
}

/* What /proc says about fd @p->fd of @p->t: its link (into @link), stat, fdinfo. */
static int probe_fd(struct fd_probe *p, char *link, size_t size, char *fdinfo)
{
	struct dump_task *t = p->t;
	char path[64];
	int ret;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", t->pid, p->fd);
	ret = read_link(t, path, link, size);
	if (ret)
		return ret;
	p->link = link;
	if (stat(path, &p->st))
		return dump_task_error(t, -errno, "can't stat fd %d of task %d (%s): %m", p->fd,
				       t->pid, link);
	return read_fdinfo(t, p, fdinfo);
}

/*
 * A file in flight (SCM_RIGHTS in a socket's queue) that we received as
 * @fd: a new file object, dumped by its kind like a task's descriptor
 * through a probe of our own process (our /proc entries, pidfd_getfd and
 * fcntl on ourselves).  @what names it for messages.
 */
int dump_file_in_flight(struct dump_ctx *ctx, int fd, struct dump_task *owner, const char *what,
			struct dump_file **out)
{
	struct dump_task self = { .pid = getpid(), .vpid = getpid(), .self = true, .owner = owner };
	struct fd_probe p = { .t = &self, .fd = fd };
	const struct fd_kind_ops *ops;
	char link[PATH_MAX], *fdinfo = malloc(FDINFO_MAX);
	struct dump_file *f;
	int ret;

	if (!fdinfo)
		return -ENOMEM;
	ret = probe_fd(&p, link, sizeof(link), fdinfo);
	if (ret)
		goto out;
	ops = fd_kind_for_dump(ctx, &p);
	if (!ops || ops->stage == FD_STAGE_AFTER_FILES) {
		/* a kind that names other descriptors (epoll) names a task's */
		pr_err("%s is %s (%s): not supported in flight", what,
		       ops ? fd_type_name(ops->type) : "a file of a kind we do not dump", link);
		ret = -EOPNOTSUPP;
		goto out;
	}
	f = file_new(&ctx->files, ops, &p.st);
	if (!f || (ops->type == FD_TYPES__REG && dump_file_reg_init(f, &p.st, link))) {
		ret = -ENOMEM;
		goto out;
	}
	ret = ops->dump(ctx, &p, f);
	if (!ret) {
		pr_debug("%s: %s %u %s flags %#o pos %llu", what, ops->name, f->fe.id, link,
			 p.flags & ~O_CLOEXEC, (unsigned long long)p.pos);
		*out = f;
	}
out:
	free(fdinfo);
	return ret;
}

static int dump_one_fd(struct dump_ctx *ctx, struct dump_task *t, int fd, size_t nr_done,
		       char *fdinfo)
{
	struct dump_fd *dfd = &t->fds[nr_done];
	struct fd_probe p = { .t = t, .fd = fd };
	const struct fd_kind_ops *ops;
	char link[PATH_MAX];
	struct dump_file *f;
	int ret;

	ret = probe_fd(&p, link, sizeof(link), fdinfo);
	if (ret)
		return ret;
	ops = fd_kind_for_dump(ctx, &p);
	if (!ops)
		return fd_refuse(ctx, &p);

	fdinfo_entry__init(&dfd->fdi);
	dfd->fdi.fd = fd;
	dfd->fdi.type = ops->type;
	dfd->fdi.flags = (p.flags & O_CLOEXEC) ? FD_CLOEXEC : 0;

	f = find_shared(ctx, t, &p, ops, nr_done);
	if (f) {
		dfd->fdi.id = f->fe.id;
		pr_debug("task %d: fd %d shares file %u", t->pid, fd, f->fe.id);
		return dump_fd_locks(ctx, &p, f->fe.id);
	}
	f = file_new(&ctx->files, ops, &p.st);
	if (!f)
		return -ENOMEM;
	dfd->fdi.id = f->fe.id;
	if (ops->type == FD_TYPES__REG && dump_file_reg_init(f, &p.st, link))
		return -ENOMEM;
	ret = ops->dump(ctx, &p, f);
	if (ret)
		return ret;
	pr_debug("task %d: fd %d -> %s %u %s flags %#o pos %llu%s", t->pid, fd, ops->name,
		 f->fe.id, link, p.flags & ~O_CLOEXEC, (unsigned long long)p.pos,
		 dfd->fdi.flags ? " cloexec" : "");
	if (t->exited)
		return -ESRCH;
	return dump_fd_locks(ctx, &p, f->fe.id);
}

int dump_fds(struct dump_ctx *ctx, struct dump_task *t)
{
	char *fdinfo;
	int *fds, ret;
	size_t n;

	ret = proc_fd_list(t->pid, &fds, &n);
	if (ret)
		return dump_task_error(t, ret, "can't list the fds of task %d (/proc/%d/fd): %m",
				       t->pid, t->pid);
	t->fds = calloc(n ? n : 1, sizeof(*t->fds));
	fdinfo = malloc(FDINFO_MAX);
	if (!t->fds || !fdinfo) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n && !ret; i++) {
		ret = dump_one_fd(ctx, t, fds[i], i, fdinfo);
		if (!ret)
			t->nr_fds = i + 1;
	}
out:
	free(fdinfo);
	free(fds);
	return ret;
}

int dump_fs(struct dump_ctx *ctx, struct dump_task *t, const char *status)
{
	char what[64];
	const char *p;
	int ret;

	/* a root of its own (chroot) is one more directory, deleted or not:
	 * every path of the task reads from ours, and the restore opens them
	 * all before it chroots */
	fs_entry__init(&t->fs);
	snprintf(what, sizeof(what), "the working directory of task %d", t->pid);
	ret = dump_file_by_path(ctx, t, "cwd", what, O_RDONLY, &t->fs.cwd_id);
	if (ret)
		return ret;
	snprintf(what, sizeof(what), "the root of task %d", t->pid);
	ret = dump_file_by_path(ctx, t, "root", what, O_RDONLY, &t->fs.root_id);
	if (ret)
		return ret;
	p = proc_status_field(status, "Umask");
	if (p) {
		t->fs.has_umask = true;
		t->fs.umask = strtoul(p, NULL, 8);
	}
	pr_debug("task %d: cwd file %u, root file %u, umask %#o", t->pid, t->fs.cwd_id,
		 t->fs.root_id, t->fs.umask);
	return 0;
}

struct dump_file *dump_file_add(struct dump_ctx *ctx, const struct fd_kind_ops *ops,
			       const struct stat *st)
{
	return file_new(&ctx->files, ops, st);
}

void dump_files_free(struct dump_files *files)
{
	for (size_t i = 0; i < files->nr; i++) {
		if (files->v[i]->ops->dump_free)
			files->v[i]->ops->dump_free(files->v[i]);
		free(files->v[i]->reg.name);
		free(files->v[i]->reg.build_id);
		free(files->v[i]);
	}
	free(files->v);
	files->v = NULL;
	files->nr = files->cap = 0;
}
