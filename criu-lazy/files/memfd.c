/*
 * memfd (FD_TYPES__MEMFD), as a descriptor and as a mapping: a
 * memfd_file_entry per open file description (flags, offset) naming its
 * inode, and per inode one memfd_inode_entry in memfd.img (name, owner,
 * size, seals) whose contents go to pagemap-shmem-<shmid>.img like shared
 * anonymous memory, as CRIU writes them.  A mapping of a memfd is a VMA
 * with VMA_AREA_MEMFD and VMA_FILE_SHARED or VMA_FILE_PRIVATE whose shmid
 * is the id of such a file object (one per inode for all mappings, as for
 * mapped regular files), as in CRIU.
 *
 * Dump: the inode is reopened through /proc/PID/fd/N (or map_files); at
 * the end its data ranges (SEEK_DATA) are written from a mapping of it.
 * Restore: every memfd inode a process refers to (by a descriptor or a
 * mapping) is one of its shared memory objects (restore/shmem.c): the
 * restore process makes each inode of the tree once (memfd_create with
 * MFD_ALLOW_SEALING, sized, filled, owned, sealed) and keeps it mapped, so
 * every task inherits it; a task maps its VMAs of it and opens each of
 * its descriptors through /proc/self/map_files (a new open file
 * description of the one inode, with the dumped access mode, positioned):
 * descriptors and mappings of one memfd share it again, across the tree.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "images/pagemap.h"
#include "images/vma-status.h"
#include "restore/restore.h"
#include "restore/child.h"
#include "restore/files.h"
#include "restore/shmem.h"

#include "memfd.pb-c.h"

#define MEMFD_SETFL_FLAGS (O_APPEND | O_NONBLOCK | O_ASYNC | O_NOATIME)
#define MEMFD_PREFIX "/memfd:"
#define DELETED_SUFFIX " (deleted)"

struct memfd_dump {
	MemfdFileEntry e;
	MemfdInodeEntry ie;
	bool owns_inode;		/* the first file of its inode writes it */
	bool written;			/* its contents are (memfd_dump_write runs again
					 * for memfds the backlog's accepts bring) */
	int fd;				/* our reopen of the inode, or -1 */
};

static bool memfd_match(const struct dump_ctx *ctx, const struct fd_probe *p)
{
	return !strncmp(p->link, MEMFD_PREFIX, strlen(MEMFD_PREFIX)) && !(p->flags & O_PATH) &&
	       S_ISREG(p->st.st_mode);
}

static bool inode_done(struct dump_ctx *ctx, uint64_t ino)
{
	for (size_t i = 0; i < ctx->files.nr; i++) {
		struct dump_file *f = ctx->files.v[i];
		struct memfd_dump *md = f->priv;

		if (f->ops == &fd_kind_memfd && md && md->owns_inode && md->ie.inode_id == ino)
			return true;
	}
	return false;
}

/* The inode behind @proc_path (the first file object of it writes it). */
static int dump_inode(struct dump_ctx *ctx, struct dump_task *t, struct memfd_dump *md,
		      const char *proc_path, const char *link, const struct stat *st,
		      const char *what)
{
	const char *name = link + strlen(MEMFD_PREFIX);
	size_t len = strlen(name), sfx = strlen(DELETED_SUFFIX);
	int seals;

	md->fd = open(proc_path, O_RDONLY | O_CLOEXEC);
	if (md->fd < 0)
		return dump_task_error(t, -errno, "%s (%s): can't reopen it: %m", what, link);
	seals = fcntl(md->fd, F_GET_SEALS);
	if (seals < 0) {
		pr_perror("%s (%s): F_GET_SEALS", what, link);
		return -errno;
	}
	memfd_inode_entry__init(&md->ie);
	if (len > sfx && !strcmp(name + len - sfx, DELETED_SUFFIX))
		len -= sfx;
	md->ie.name = strndup(name, len);
	if (!md->ie.name)
		return -ENOMEM;
	md->ie.uid = st->st_uid;
	md->ie.gid = st->st_gid;
	md->ie.size = st->st_size;
	md->ie.shmid = st->st_ino;
	md->ie.seals = seals;
	md->ie.inode_id = st->st_ino;
	md->owns_inode = true;
	pr_debug("task %d: %s: memfd '%s' inode %llu, %llu bytes, seals %#x", t->pid, what,
		 md->ie.name, (unsigned long long)md->ie.inode_id,
		 (unsigned long long)md->ie.size, seals);
	return 0;
}

static struct memfd_dump *memfd_new(struct dump_file *f, unsigned int flags, uint64_t pos,
				    const struct stat *st)
{
	struct memfd_dump *md = calloc(1, sizeof(*md));

	if (!md)
		return NULL;
	md->fd = -1;
	f->priv = md;
	memfd_file_entry__init(&md->e);
	md->e.id = f->fe.id;
	md->e.flags = flags;
	md->e.pos = pos;
	md->e.fown = &f->fown;
	md->e.inode_id = st->st_ino;
	f->fe.memfd = &md->e;
	return md;
}

static int memfd_dump(struct dump_ctx *ctx, const struct fd_probe *p, struct dump_file *f)
{
	struct memfd_dump *md = memfd_new(f, p->flags & ~O_CLOEXEC, p->pos, &p->st);
	char path[64], what[64];
	int ret;

	if (!md)
		return -ENOMEM;
	if (!inode_done(ctx, p->st.st_ino)) {
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", p->t->pid, p->fd);
		snprintf(what, sizeof(what), "fd %d of task %d", p->fd, p->t->pid);
		ret = dump_inode(ctx, p->t, md, path, p->link, &p->st, what);
		if (ret)
			return ret;
	}
	return dump_fown(p->t, p->fd, &f->fown);
}

int dump_memfd_vma(struct dump_ctx *ctx, struct dump_task *t, const char *link,
		   const char *what, int open_flags, uint32_t *id)
{
	char path[128], name[PATH_MAX];
	struct memfd_dump *md;
	struct dump_file *f;
	struct stat st;
	ssize_t n;
	int ret;

	snprintf(path, sizeof(path), "/proc/%d/%s", t->pid, link);
	if (stat(path, &st))
		return dump_task_error(t, -errno, "can't stat %s (%s): %m", path, what);
	n = readlink(path, name, sizeof(name) - 1);
	if (n < 0)
		return dump_task_error(t, -errno, "can't read the link %s: %m", path);
	name[n] = '\0';
	/* one file object per inode for every mapping of it */
	for (size_t i = 0; i < ctx->files.nr; i++) {
		f = ctx->files.v[i];
		if (f->ops != &fd_kind_memfd || !f->by_path || f->ino != st.st_ino ||
		    f->dev != st.st_dev)
			continue;
		md = f->priv;
		if ((open_flags & O_ACCMODE) == O_RDWR)
			md->e.flags = (md->e.flags & ~O_ACCMODE) | O_RDWR;
		*id = f->fe.id;
		return 0;
	}
	f = dump_file_add(ctx, &fd_kind_memfd, &st);
	if (!f)
		return -ENOMEM;
	f->by_path = true;
	md = memfd_new(f, open_flags, 0, &st);
	if (!md)
		return -ENOMEM;
	*id = f->fe.id;
	if (inode_done(ctx, st.st_ino))
		return 0;
	ret = dump_inode(ctx, t, md, path, name, &st, what);
	return ret;
}

static int memfd_dump_write(struct dump_ctx *ctx)
{
	struct cr_img *img = NULL;
	int ret = 0;

	for (size_t i = 0; i < ctx->files.nr && !ret; i++) {
		struct dump_file *f = ctx->files.v[i];
		struct memfd_dump *md = f->priv;

		if (f->ops != &fd_kind_memfd || !md->owns_inode)
			continue;
		if (!img && (ret = dump_img_open(ctx, IMG_MEMFD_INODE, 0, &img)))
			return ret;
		ret = img_write_entry(img, &md->ie.base);
		if (!ret && !md->written)
			ret = dump_shmem_write_fd(ctx, md->fd, md->ie.shmid, md->ie.size);
		md->written = !ret;
	}
	return img_close_keep(img, ret);
}

static void memfd_dump_free(struct dump_file *f)
{
	struct memfd_dump *md = f->priv;

	if (md) {
		if (md->fd >= 0)
			close(md->fd);
		free(md->ie.name);
	}
	free(md);
}

/* ---- restore ---- */

/* memfd.img, read once per process: every inode of the dump. */
struct memfd_state {
	MemfdInodeEntry **v;
	size_t nr;
};

static void memfd_rst_free(void *state)
{
	struct memfd_state *s = state;

	for (size_t i = 0; i < s->nr; i++)
		protobuf_c_message_free_unpacked(&s->v[i]->base, NULL);
	free(s->v);
	free(s);
}

static int load_state(struct rst_images *ri)
{
	void **state = &ri->kind_state[fd_kind_index(&fd_kind_memfd)];
	struct memfd_state *s;
	ProtobufCMessage *msg;
	struct cr_img *img;
	int ret;

	if (*state)
		return 0;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	*state = s;
	/* memfd.img must be there when a file refers to a memfd */
	ret = img_open_existing(ri->dirfd, IMG_MEMFD_INODE, 0, &img);
	if (ret)
		return ret;
	while ((ret = img_read_entry(img, &memfd_inode_entry__descriptor, &msg)) > 0) {
		MemfdInodeEntry **grown = realloc(s->v, (s->nr + 1) * sizeof(*grown));

		if (!grown) {
			protobuf_c_message_free_unpacked(msg, NULL);
			ret = -ENOMEM;
			break;
		}
		s->v = grown;
		s->v[s->nr++] = (MemfdInodeEntry *)msg;
	}
	img_close(img);
	return ret;
}

static const MemfdInodeEntry *find_inode(const struct rst_images *ri, uint64_t inode_id)
{
	const struct memfd_state *s = ri->kind_state[fd_kind_index(&fd_kind_memfd)];

	for (size_t i = 0; s && i < s->nr; i++)
		if (s->v[i]->inode_id == inode_id)
			return s->v[i];
	return NULL;
}

struct rst_shmem *rst_memfd_shmem(const struct rst_images *ri, uint64_t inode_id)
{
	for (size_t k = 0; k < ri->nr_shmems; k++)
		if (ri->shmems[k].memfd && ri->shmems[k].memfd->inode_id == inode_id)
			return &ri->shmems[k];
	return NULL;
}

/* The memfd inode of file object @id (a descriptor's or a mapping's). */
static int add_object(struct rst_images *ri, uint32_t id, const char *what)
{
	const FileEntry *fe = rst_file_find(ri, id);
	const MemfdInodeEntry *ie;
	struct rst_shmem *s;
	int ret;

	if (!fe || fe->type != FD_TYPES__MEMFD || !fe->memfd || fe->memfd->id != fe->id) {
		pr_err("files.img: file %u (%s of task %d) is missing or not a memfd", id, what,
		       ri->pid);
		return -EINVAL;
	}
	ret = load_state(ri);
	if (ret)
		return ret;
	ie = find_inode(ri, fe->memfd->inode_id);
	if (!ie) {
		pr_err("memfd.img: no inode %u for memfd %u (%s of task %d)", fe->memfd->inode_id,
		       id, what, ri->pid);
		return -EINVAL;
	}
	if (rst_memfd_shmem(ri, ie->inode_id))
		return 0;
	ret = rst_shmem_add(ri, ie->shmid, &s);
	if (ret)
		return ret;
	s->memfd = ie;
	/* at least a page: an empty memfd is mapped all the same */
	s->size = RST_PAGE_ALIGN(ie->size ? ie->size : 1);
	for (size_t r = 0; r < s->pi.nr_runs; r++) {
		const struct page_run *run = &s->pi.runs[r];

		if (run->vaddr + run->nr_pages * RST_PAGE_SIZE > s->size) {
			pr_err("pagemap-shmem-%u.img: pages at offset %#llx lie past the %llu bytes "
			       "of memfd '%s'", ie->shmid, (unsigned long long)run->vaddr,
			       (unsigned long long)ie->size, ie->name);
			return -EINVAL;
		}
	}
	return 0;
}

int rst_memfd_objects(struct rst_images *ri)
{
	char what[64];
	int ret;

	for (size_t i = 0; i < ri->nr_fds; i++) {
		if (ri->fds[i].fe->type != FD_TYPES__MEMFD)
			continue;
		snprintf(what, sizeof(what), "fd %d", ri->fds[i].fd);
		ret = add_object(ri, ri->fds[i].fe->id, what);
		if (ret)
			return ret;
	}
	for (size_t i = 0; i < ri->mm->n_vmas; i++) {
		const VmaEntry *v = ri->mm->vmas[i];

		if (!(v->status & VMA_AREA_MEMFD))
			continue;
		snprintf(what, sizeof(what), "mapped at 0x%llx", (unsigned long long)v->start);
		if (v->shmid > UINT32_MAX) {
			pr_err("mm-%d.img: the memfd %s is file %llu, not a file id", ri->pid, what,
			       (unsigned long long)v->shmid);
			return -EINVAL;
		}
		ret = add_object(ri, v->shmid, what);
		if (ret)
			return ret;
	}
	return 0;
}

static int memfd_check(const struct opts *o, struct rst_images *ri, struct rst_fd *f)
{
	const MemfdFileEntry *e = f->fe->memfd;

	if (!e || e->id != f->fe->id) {
		pr_err("files.img: memfd %u has no or a mismatching memfd entry", f->fe->id);
		return -EINVAL;
	}
	/* a memfd in flight in a socket's queue (sk-scm.c, fd -1) is no fd
	 * rst_memfd_objects() walks: its inode is made all the same */
	if (f->fd < 0)
		return add_object(ri, f->fe->id, "in flight");
	return 0;	/* its inode: rst_memfd_objects() */
}

/* The tree's object of the inode, inherited: a file of its own, reopened
 * with the dumped access mode, positioned. */
static int memfd_open(struct rst_child *c, const struct rst_fd *f)
{
	const MemfdFileEntry *e = f->fe->memfd;
	const struct rst_shmem *s = rst_memfd_shmem(c->ri, e->inode_id);
	char path[80];
	int fd;

	if (!s || !s->obj)
		return child_err(c, ENOENT, "memfd %u (fd %d of task %d): its inode %u was not made",
				 e->id, f->fd, c->ri->pid, e->inode_id);
	snprintf(path, sizeof(path), "/proc/self/map_files/%llx-%llx",
		 (unsigned long long)s->obj, (unsigned long long)(s->obj + s->obj_size));
	fd = open(path, (e->flags & O_ACCMODE) | O_CLOEXEC);
	if (fd < 0)
		return child_err(c, errno, "memfd %u (fd %d of task %d): reopening it: %s", e->id,
				 f->fd, c->ri->pid, strerror(errno));
	if ((e->pos && lseek(fd, e->pos, SEEK_SET) < 0) ||
	    fcntl(fd, F_SETFL, e->flags & MEMFD_SETFL_FLAGS)) {
		int err = errno;

		close(fd);
		return child_err(c, err, "memfd %u (fd %d of task %d): offset %llu or flags %#o: %s",
				 e->id, f->fd, c->ri->pid, (unsigned long long)e->pos, e->flags,
				 strerror(err));
	}
	return fd;
}

/* Every file of one memfd inode in the tree is made by one process from one
 * memfd_create() and passed on (restore/fd-share.c). */
static uint64_t memfd_share_key(const struct rst_images *ri, const FileEntry *fe)
{
	return fe->memfd->inode_id;
}

const struct fd_kind_ops fd_kind_memfd = {
	.name = "memfd",
	.type = FD_TYPES__MEMFD,
	.stage = FD_STAGE_OPEN,
	.match = memfd_match,
	.dump = memfd_dump,
	.dump_write = memfd_dump_write,
	.dump_free = memfd_dump_free,
	.check = memfd_check,
	.open = memfd_open,
	.share_key = memfd_share_key,
	.rst_free = memfd_rst_free,
};
