/*
 * Pipes (FD_TYPES__PIPE): one pipe_entry per open end (per open file
 * description), both ends naming the pipe by its inode (pipe_id), and one
 * pipe_data_entry per pipe in pipes-data.img with its capacity and the
 * bytes buffered in it (pipe-data.c).
 *
 * Restore: the first end of a pipe a task opens creates the pipe (sized
 * and refilled), and the other end is stashed for the peer's file id
 * (passed on if another process holds it: one process makes every end of
 * a pipe, share_key());
 * another open file description of an end that is there already is a
 * reopen of /proc/self/fd/N, as the kernel allows.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "files/pipe-data.h"
#include "restore/restore.h"
#include "restore/child.h"
#include "restore/files.h"

#include "pipe.pb-c.h"

/* status flags of a pipe end that F_SETFL sets back */
#define PIPE_SETFL_FLAGS (O_APPEND | O_NONBLOCK | O_DIRECT | O_ASYNC | O_NOATIME)

struct pipe_dump {
	struct pipe_data_dump data;	/* first: pipe-data.c finds it there */
	PipeEntry pe;
};

static bool pipe_match(const struct dump_ctx *ctx, const struct fd_probe *p)
{
	unsigned long long ino;

	return sscanf(p->link, "pipe:[%llu]", &ino) == 1;
}

static int pipe_dump(struct dump_ctx *ctx, const struct fd_probe *p, struct dump_file *f)
{
	struct pipe_dump *pd = calloc(1, sizeof(*pd));
	int ret;

	if (!pd)
		return -ENOMEM;
	f->priv = pd;
	pipe_entry__init(&pd->pe);
	pd->pe.id = f->fe.id;
	pd->pe.pipe_id = p->st.st_ino;
	pd->pe.flags = p->flags & ~O_CLOEXEC;
	pd->pe.fown = &f->fown;
	f->fe.pipe = &pd->pe;
	ret = pipe_data_dump(ctx, &fd_kind_pipe, p, &pd->data);
	if (ret)
		return ret;
	return dump_fown(p->t, p->fd, &f->fown);
}

static int pipe_dump_write(struct dump_ctx *ctx)
{
	return pipe_data_write(ctx, &fd_kind_pipe, IMG_PIPES_DATA);
}

static void pipe_dump_free(struct dump_file *f)
{
	pipe_data_dump_free(f->priv);
	free(f->priv);
}

/* ---- restore ---- */

static int pipe_check(const struct opts *o, struct rst_images *ri, struct rst_fd *f)
{
	void **state = &ri->kind_state[fd_kind_index(&fd_kind_pipe)];
	const PipeEntry *pe = f->fe->pipe;

	if (!pe || pe->id != f->fe->id) {
		pr_err("files.img: pipe %u has no or a mismatching pipe entry", f->fe->id);
		return -EINVAL;
	}
	if (!*state)
		return pipe_data_load(ri, IMG_PIPES_DATA, (struct pipe_data_set **)state);
	return 0;
}

static bool is_writer(const PipeEntry *pe)
{
	return (pe->flags & O_ACCMODE) == O_WRONLY;
}

static int set_flags(struct rst_child *c, int fd, const PipeEntry *pe)
{
	if (fcntl(fd, F_SETFL, pe->flags & PIPE_SETFL_FLAGS))
		return child_err(c, errno, "pipe %u (file %u) of task %d: F_SETFL %#o: %s",
				 pe->pipe_id, pe->id, c->ri->pid, pe->flags, strerror(errno));
	return 0;
}

/* An end of the same pipe that this task has open already, or -1. */
static int find_open_end(const struct rst_child *c, uint32_t pipe_id)
{
	for (size_t i = 0; i < c->nr_open; i++) {
		const FileEntry *fe = rst_file_find(c->ri, c->open[i].id);

		if (fe && fe->type == FD_TYPES__PIPE && fe->pipe->pipe_id == pipe_id)
			return c->open[i].fd;
	}
	return -1;
}

/* The peer end's file (the other direction), whichever process holds it:
 * another's gets it from us (restore/fd-share.c). */
static const PipeEntry *find_peer(const struct rst_child *c, const PipeEntry *pe)
{
	for (size_t i = 0; i < c->ri->nr_files; i++) {
		const FileEntry *fe = c->ri->files[i];

		if (fe->type == FD_TYPES__PIPE && fe->pipe->pipe_id == pe->pipe_id &&
		    is_writer(fe->pipe) != is_writer(pe))
			return fe->pipe;
	}
	return NULL;
}

static int pipe_open(struct rst_child *c, const struct rst_fd *f)
{
	const PipeEntry *pe = f->fe->pipe, *peer;
	const struct pipe_data *d;
	int end = find_open_end(c, pe->pipe_id), fds[2], fd, ret;
	char path[64];

	if (end >= 0) {
		/* another open file description of a pipe that is here */
		snprintf(path, sizeof(path), "/proc/self/fd/%d", end);
		fd = open(path, (is_writer(pe) ? O_WRONLY : O_RDONLY) | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			return child_err(c, errno, "pipe %u of task %d: reopening an end: %s",
					 pe->pipe_id, c->ri->pid, strerror(errno));
		goto flags;
	}
	if (pipe2(fds, O_CLOEXEC))
		return child_err(c, errno, "pipe %u of task %d: pipe2: %s", pe->pipe_id, c->ri->pid,
				 strerror(errno));
	d = pipe_data_find(c->ri->kind_state[fd_kind_index(&fd_kind_pipe)], pe->pipe_id);
	if (d && (ret = pipe_data_fill(c, fds[1], "pipe", d))) {
		close(fds[0]);
		close(fds[1]);
		return ret;
	}
	fd = fds[is_writer(pe)];
	peer = find_peer(c, pe);
	if (!peer) {
		close(fds[!is_writer(pe)]);	/* the other end was closed */
	} else {
		ret = set_flags(c, fds[!is_writer(pe)], peer);
		if (!ret)
			ret = child_file_stash(c, peer->id, fds[!is_writer(pe)]);
		else
			close(fds[!is_writer(pe)]);
		if (ret) {
			close(fd);
			return ret;
		}
	}
flags:
	ret = set_flags(c, fd, pe);
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

/* Both ends of a pipe are made together, whichever processes hold them. */
static uint64_t pipe_share_key(const struct rst_images *ri, const FileEntry *fe)
{
	return fe->pipe->pipe_id;
}

const struct fd_kind_ops fd_kind_pipe = {
	.name = "pipe",
	.type = FD_TYPES__PIPE,
	.stage = FD_STAGE_OPEN,
	.match = pipe_match,
	.dump = pipe_dump,
	.dump_write = pipe_dump_write,
	.dump_free = pipe_dump_free,
	.check = pipe_check,
	.open = pipe_open,
	.share_key = pipe_share_key,
	.rst_free = pipe_data_set_free,
};
