/*
 * FIFOs (FD_TYPES__FIFO): a fifo_entry per open file description naming
 * the FIFO's pipe (its inode) and a REG entry of its own (regf_id) with
 * the path, the status flags and the owner; the bytes buffered in it go
 * to fifo-data.img as for pipes (pipe-data.c).
 *
 * Restore: the path is opened O_RDWR first, which never blocks, as a
 * keeper: the first opener of a FIFO sizes and refills it through the
 * keeper, then the task's own descriptor is opened (O_NONBLOCK, so a
 * write end does not wait for a reader: the keeper is one) and gets its
 * flags; the keeper goes.  The data stays as long as the task holds the
 * FIFO open, as it did.  A FIFO that holds data already is open elsewhere
 * (the dumped task itself, still frozen during a lazy migration on one
 * machine): it is the same object, so it is not refilled.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "files/pipe-data.h"
#include "restore/restore.h"
#include "restore/child.h"
#include "restore/files.h"

#include "fifo.pb-c.h"

#define FIFO_SETFL_FLAGS (O_APPEND | O_NONBLOCK | O_DIRECT | O_ASYNC | O_NOATIME)

struct fifo_dump {
	struct pipe_data_dump data;	/* first: pipe-data.c finds it there */
	FifoEntry fe;
};

static bool fifo_match(const struct dump_ctx *ctx, const struct fd_probe *p)
{
	return p->link[0] == '/' && !(p->flags & O_PATH) && S_ISFIFO(p->st.st_mode) &&
	       p->st.st_nlink > 0;
}

static int fifo_dump(struct dump_ctx *ctx, const struct fd_probe *p, struct dump_file *f)
{
	struct fifo_dump *fd = calloc(1, sizeof(*fd));
	struct dump_file *reg;
	int ret;

	if (!fd)
		return -ENOMEM;
	f->priv = fd;
	reg = dump_file_add_reg(ctx, &p->st, p->link);
	if (!reg)
		return -ENOMEM;
	reg->reg.flags = p->flags & ~O_CLOEXEC;
	fifo_entry__init(&fd->fe);
	fd->fe.id = f->fe.id;
	fd->fe.pipe_id = p->st.st_ino;
	fd->fe.has_regf_id = true;
	fd->fe.regf_id = reg->fe.id;
	f->fe.fifo = &fd->fe;
	ret = pipe_data_dump(ctx, &fd_kind_fifo, p, &fd->data);
	if (ret)
		return ret;
	return dump_fown(p->t, p->fd, &reg->fown);
}

static int fifo_dump_write(struct dump_ctx *ctx)
{
	return pipe_data_write(ctx, &fd_kind_fifo, IMG_FIFO_DATA);
}

static void fifo_dump_free(struct dump_file *f)
{
	pipe_data_dump_free(f->priv);
	free(f->priv);
}

/* ---- restore ---- */

static const RegFileEntry *fifo_reg(const struct rst_images *ri, const FileEntry *fe)
{
	const FileEntry *reg = fe->fifo && fe->fifo->has_regf_id ?
			       rst_file_find(ri, fe->fifo->regf_id) : NULL;

	return reg && reg->type == FD_TYPES__REG ? reg->reg : NULL;
}

static int fifo_check(const struct opts *o, struct rst_images *ri, struct rst_fd *f)
{
	void **state = &ri->kind_state[fd_kind_index(&fd_kind_fifo)];
	const RegFileEntry *reg = fifo_reg(ri, f->fe);
	char what[64];
	struct stat st;
	int ret;

	if (!f->fe->fifo || f->fe->fifo->id != f->fe->id || !reg) {
		pr_err("files.img: FIFO %u has no fifo entry or no REG entry with its path",
		       f->fe->id);
		return -EINVAL;
	}
	snprintf(what, sizeof(what), "FIFO fd %d", f->fd);
	ret = rst_check_path(ri, reg, what, &st);
	if (ret)
		return ret;
	if (!S_ISFIFO(st.st_mode)) {
		pr_err("%s: not a FIFO any more (fd %d of task %d)", reg->name, f->fd, ri->pid);
		return -EINVAL;
	}
	if (!*state)
		return pipe_data_load(ri, IMG_FIFO_DATA, (struct pipe_data_set **)state);
	return 0;
}

/* Has this task opened the FIFO already (so it holds its data)? */
static bool fifo_is_open(const struct rst_child *c, uint32_t pipe_id)
{
	for (size_t i = 0; i < c->nr_open; i++) {
		const FileEntry *fe = rst_file_find(c->ri, c->open[i].id);

		if (fe && fe->type == FD_TYPES__FIFO && fe->fifo->pipe_id == pipe_id)
			return true;
	}
	return false;
}

static int fifo_open(struct rst_child *c, const struct rst_fd *f)
{
	const RegFileEntry *reg = fifo_reg(c->ri, f->fe);
	const FifoEntry *fe = f->fe->fifo;
	const struct pipe_data *d;
	int keeper, fd, held, ret = 0;

	keeper = open(reg->name, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (keeper < 0)
		return child_err(c, errno, "%s: %s (FIFO fd %d of task %d)", reg->name,
				 strerror(errno), f->fd, c->ri->pid);
	d = pipe_data_find(c->ri->kind_state[fd_kind_index(&fd_kind_fifo)], fe->pipe_id);
	if (d && !fifo_is_open(c, fe->pipe_id) && !ioctl(keeper, FIONREAD, &held) && !held)
		ret = pipe_data_fill(c, keeper, "FIFO", d);
	if (ret)
		goto out;
	fd = open(reg->name, (reg->flags & O_ACCMODE) | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		ret = child_err(c, errno, "%s: %s (FIFO fd %d of task %d)", reg->name,
				strerror(errno), f->fd, c->ri->pid);
		goto out;
	}
	if (fcntl(fd, F_SETFL, reg->flags & FIFO_SETFL_FLAGS)) {
		ret = child_err(c, errno, "%s: F_SETFL %#o: %s (FIFO fd %d of task %d)", reg->name,
				reg->flags, strerror(errno), f->fd, c->ri->pid);
		close(fd);
		goto out;
	}
	ret = fd;
out:
	close(keeper);
	return ret;
}

/* Every open of one FIFO in the tree is made by one process, which refills
 * it once and passes the others on (restore/fd-share.c). */
static uint64_t fifo_share_key(const struct rst_images *ri, const FileEntry *fe)
{
	return fe->fifo->pipe_id;
}

const struct fd_kind_ops fd_kind_fifo = {
	.name = "FIFO",
	.type = FD_TYPES__FIFO,
	.stage = FD_STAGE_OPEN,
	.match = fifo_match,
	.dump = fifo_dump,
	.dump_write = fifo_dump_write,
	.dump_free = fifo_dump_free,
	.check = fifo_check,
	.open = fifo_open,
	.share_key = fifo_share_key,
	.rst_free = pipe_data_set_free,
};
