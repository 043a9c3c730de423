/*
 * memfd as a descriptor (FD_TYPES__MEMFD): a memfd_file_entry per open
 * file description (flags, offset) naming its inode, and per inode one
 * memfd_inode_entry in memfd.img (name, owner, size, seals) whose
 * contents go to pagemap-shmem-<shmid>.img like shared anonymous memory,
 * as CRIU writes them.  A memfd mapped into memory is refused (mm.c).
 *
 * Dump: the inode is reopened through /proc/PID/fd/N; at the end its data
 * ranges (SEEK_DATA) are written from a mapping of it.
 * Restore: the contents are read before any task exists; the first open
 * of an inode in a task creates it (memfd_create with MFD_ALLOW_SEALING),
 * sizes and fills it, then seals it; the descriptor is a reopen through
 * /proc/self/fd with the dumped access mode, positioned.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "images/pagemap.h"
#include "restore/restore.h"

#include "memfd.pb-c.h"

#define MEMFD_SETFL_FLAGS (O_APPEND | O_NONBLOCK | O_ASYNC | O_NOATIME)
#define MEMFD_PREFIX "/memfd:"
#define DELETED_SUFFIX " (deleted)"

struct memfd_dump {
	MemfdFileEntry e;
	MemfdInodeEntry ie;
	bool owns_inode;		/* the first file of its inode writes it */
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

static int memfd_dump(struct dump_ctx *ctx, const struct fd_probe *p, struct dump_file *f)
{
	struct memfd_dump *md = calloc(1, sizeof(*md));
	const char *name = p->link + strlen(MEMFD_PREFIX);
	size_t len = strlen(name), sfx = strlen(DELETED_SUFFIX);
	char path[64];
	int seals;

	if (!md)
		return -ENOMEM;
	md->fd = -1;
	f->priv = md;
	memfd_file_entry__init(&md->e);
	md->e.id = f->fe.id;
	md->e.flags = p->flags & ~O_CLOEXEC;
	md->e.pos = p->pos;
	md->e.fown = &f->fown;
	md->e.inode_id = p->st.st_ino;
	f->fe.memfd = &md->e;
	if (!inode_done(ctx, p->st.st_ino)) {
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", p->t->pid, p->fd);
		md->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (md->fd < 0)
			return dump_task_error(p->t, -errno, "fd %d of task %d (%s): can't reopen it: %m",
					       p->fd, p->t->pid, p->link);
		seals = fcntl(md->fd, F_GET_SEALS);
		if (seals < 0) {
			pr_perror("fd %d of task %d (%s): F_GET_SEALS", p->fd, p->t->pid, p->link);
			return -errno;
		}
		memfd_inode_entry__init(&md->ie);
		if (len > sfx && !strcmp(name + len - sfx, DELETED_SUFFIX))
			len -= sfx;
		md->ie.name = strndup(name, len);
		if (!md->ie.name)
			return -ENOMEM;
		md->ie.uid = p->st.st_uid;
		md->ie.gid = p->st.st_gid;
		md->ie.size = p->st.st_size;
		md->ie.shmid = p->st.st_ino;
		md->ie.seals = seals;
		md->ie.inode_id = p->st.st_ino;
		md->owns_inode = true;
		pr_debug("task %d: fd %d memfd '%s' inode %llu, %llu bytes, seals %#x", p->t->pid,
			 p->fd, md->ie.name, (unsigned long long)md->ie.inode_id,
			 (unsigned long long)md->ie.size, seals);
	}
	return dump_fown(p->t, p->fd, &f->fown);
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
		if (!ret)
			ret = dump_shmem_write_fd(ctx, md->fd, md->ie.shmid, md->ie.size);
	}
	if (!img)
		return 0;
	if (ret) {
		img_close(img);
		return ret;
	}
	return img_close(img);
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

struct memfd_data {
	uint64_t off, len;
	uint8_t *data;
};

struct memfd_inode {
	MemfdInodeEntry *ie;
	struct memfd_data *runs;
	size_t nr_runs;
};

struct memfd_state {
	struct memfd_inode *v;
	size_t nr;
};

static void memfd_rst_free(void *state)
{
	struct memfd_state *s = state;

	for (size_t i = 0; i < s->nr; i++) {
		for (size_t k = 0; k < s->v[i].nr_runs; k++)
			free(s->v[i].runs[k].data);
		free(s->v[i].runs);
		protobuf_c_message_free_unpacked(&s->v[i].ie->base, NULL);
	}
	free(s->v);
	free(s);
}

/* The contents of one inode, read from its pagemap-shmem and pages files. */
static int load_contents(struct rst_images *ri, struct memfd_inode *in)
{
	struct pagemap_index pi;
	int ret;

	ret = pagemap_index_load(ri->dirfd, IMG_PAGEMAP_SHMEM, in->ie->shmid, true, &pi);
	if (ret)
		return ret;
	in->runs = calloc(pi.nr_runs ? pi.nr_runs : 1, sizeof(*in->runs));
	if (!in->runs) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < pi.nr_runs; i++) {
		const struct page_run *r = &pi.runs[i];
		struct memfd_data *d = &in->runs[in->nr_runs];
		uint64_t len = r->nr_pages * PAGEMAP_PAGE_SIZE;

		if (!(r->flags & PE_PRESENT))
			continue;
		if (r->vaddr >= in->ie->size) {
			pr_err("pagemap-shmem-%u.img: pages at offset %#llx lie past the %llu bytes of memfd '%s'",
			       in->ie->shmid, (unsigned long long)r->vaddr,
			       (unsigned long long)in->ie->size, in->ie->name);
			ret = -EINVAL;
			goto out;
		}
		if (len > in->ie->size - r->vaddr)
			len = in->ie->size - r->vaddr;
		d->off = r->vaddr;
		d->len = len;
		d->data = malloc(len);
		if (!d->data) {
			ret = -ENOMEM;
			goto out;
		}
		in->nr_runs++;
		if (pread(pi.pages_fd, d->data, len, r->pages_off) != (ssize_t)len) {
			pr_err("pages-%u.img: can't read %llu bytes at %llu (memfd '%s')", pi.pages_id,
			       (unsigned long long)len, (unsigned long long)r->pages_off,
			       in->ie->name);
			ret = -EIO;
			goto out;
		}
	}
out:
	pagemap_index_free(&pi);
	return ret;
}

static int load_state(struct rst_images *ri, struct memfd_state **out)
{
	struct memfd_state *s = calloc(1, sizeof(*s));
	ProtobufCMessage *msg;
	struct cr_img *img;
	int ret;

	if (!s)
		return -ENOMEM;
	*out = s;
	ret = img_open_existing(ri->dirfd, IMG_MEMFD_INODE, 0, &img);
	if (ret)
		return ret;
	while ((ret = img_read_entry(img, &memfd_inode_entry__descriptor, &msg)) > 0) {
		struct memfd_inode *grown = realloc(s->v, (s->nr + 1) * sizeof(*grown));

		if (!grown) {
			protobuf_c_message_free_unpacked(msg, NULL);
			ret = -ENOMEM;
			break;
		}
		s->v = grown;
		memset(&s->v[s->nr], 0, sizeof(s->v[s->nr]));
		s->v[s->nr].ie = (MemfdInodeEntry *)msg;
		ret = load_contents(ri, &s->v[s->nr++]);
		if (ret)
			break;
	}
	img_close(img);
	return ret;
}

static const struct memfd_inode *find_inode(const struct rst_images *ri, uint64_t inode_id)
{
	const struct memfd_state *s = ri->kind_state[fd_kind_index(&fd_kind_memfd)];

	for (size_t i = 0; s && i < s->nr; i++)
		if (s->v[i].ie->inode_id == inode_id)
			return &s->v[i];
	return NULL;
}

static int memfd_check(const struct opts *o, struct rst_images *ri, struct rst_fd *f)
{
	void **state = &ri->kind_state[fd_kind_index(&fd_kind_memfd)];
	const MemfdFileEntry *e = f->fe->memfd;
	int ret;

	if (!e || e->id != f->fe->id) {
		pr_err("files.img: memfd %u has no or a mismatching memfd entry", f->fe->id);
		return -EINVAL;
	}
	if (!*state) {
		ret = load_state(ri, (struct memfd_state **)state);
		if (ret)
			return ret;
	}
	if (!find_inode(ri, e->inode_id)) {
		pr_err("memfd.img: no inode %u for memfd %u (fd %d of task %d)", e->inode_id, e->id,
		       f->fd, ri->pid);
		return -EINVAL;
	}
	return 0;
}

/* Where this task has the inode open already, or -1. */
static int find_open_inode(const struct rst_child *c, uint32_t inode_id)
{
	for (size_t i = 0; i < c->nr_open; i++) {
		const FileEntry *fe = rst_file_find(c->ri, c->open[i].id);

		if (fe && fe->type == FD_TYPES__MEMFD && fe->memfd->inode_id == inode_id)
			return c->open[i].fd;
	}
	return -1;
}

static int create_inode(struct rst_child *c, const struct memfd_inode *in)
{
	const MemfdInodeEntry *ie = in->ie;
	int fd = memfd_create(ie->name, MFD_CLOEXEC | MFD_ALLOW_SEALING), err;
	const char *what = "memfd_create";

	if (fd < 0)
		goto err;
	what = "ftruncate";
	if (ftruncate(fd, ie->size))
		goto err_close;
	what = "writing its contents";
	for (size_t i = 0; i < in->nr_runs; i++)
		if (pwrite(fd, in->runs[i].data, in->runs[i].len, in->runs[i].off) !=
		    (ssize_t)in->runs[i].len)
			goto err_close;
	what = "fchown";
	if ((ie->uid != getuid() || ie->gid != getgid()) && fchown(fd, ie->uid, ie->gid))
		goto err_close;
	what = "F_ADD_SEALS";
	if (ie->seals && fcntl(fd, F_ADD_SEALS, ie->seals))
		goto err_close;
	return fd;
err_close:
	err = errno;
	close(fd);
	errno = err;
err:
	return child_err(c, errno, "memfd '%s' of task %d: %s: %s", ie->name, c->ri->pid, what,
			 strerror(errno));
}

static int memfd_open(struct rst_child *c, const struct rst_fd *f)
{
	const MemfdFileEntry *e = f->fe->memfd;
	int inode = find_open_inode(c, e->inode_id), fd;
	bool made = inode < 0;
	char path[64];

	if (made) {
		inode = create_inode(c, find_inode(c->ri, e->inode_id));
		if (inode < 0)
			return inode;
	}
	/* a file of its own with the dumped access mode */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", inode);
	fd = open(path, (e->flags & O_ACCMODE) | O_CLOEXEC);
	if (made)
		close(inode);
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
