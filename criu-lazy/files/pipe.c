/*
 * Pipes (FD_TYPES__PIPE): one pipe_entry per open end (per open file
 * description), both ends naming the pipe by its inode (pipe_id), and one
 * pipe_data_entry per pipe in pipes-data.img with its capacity and the
 * bytes buffered in it, followed by those bytes.
 *
 * Dump: the buffered bytes are copied without being consumed: we open the
 * pipe through /proc/PID/fd/N (a reader of our own) and tee(2) its
 * contents into a scratch pipe of the same capacity, which we then read.
 * The task never notices.
 *
 * Restore: the first end of a pipe a task opens creates the pipe (sized
 * with F_SETPIPE_SZ, refilled byte for byte), and the other end is stashed
 * for the peer's file id; another open file description of an end that
 * is there already is a reopen of /proc/self/fd/N, as the kernel allows.
 * A capacity above fs.pipe-max-size is refused before any task exists:
 * nothing may depend on more than the machine's limit.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "restore/restore.h"

#include "pipe-data.pb-c.h"
#include "pipe.pb-c.h"

#define PIPE_MAX_SIZE_FILE "/proc/sys/fs/pipe-max-size"
/* status flags of a pipe end that F_SETFL sets back */
#define PIPE_SETFL_FLAGS (O_APPEND | O_NONBLOCK | O_DIRECT | O_ASYNC | O_NOATIME)

/* The dump's per-end state; the first end of each pipe carries the data. */
struct pipe_dump {
	PipeEntry pe;
	bool has_data;			/* the pipe's data lives here */
	uint32_t size;			/* F_GETPIPE_SZ */
	uint32_t bytes;
	uint8_t *data;
};

static bool pipe_match(const struct dump_ctx *ctx, const struct fd_probe *p)
{
	unsigned long long ino;

	return sscanf(p->link, "pipe:[%llu]", &ino) == 1;
}

/* Is the data of pipe @ino collected already (by another end)? */
static bool pipe_data_done(struct dump_ctx *ctx, uint32_t ino)
{
	for (size_t i = 0; i < ctx->files.nr; i++) {
		struct dump_file *f = ctx->files.v[i];
		struct pipe_dump *pd = f->priv;

		if (f->ops == &fd_kind_pipe && pd && pd->has_data && pd->pe.pipe_id == ino)
			return true;
	}
	return false;
}

/* Copy the bytes buffered in the pipe of @p without consuming them. */
static int pipe_read_data(const struct fd_probe *p, struct pipe_dump *pd)
{
	char path[64];
	int fd, tmp[2] = { -1, -1 }, avail, ret = 0;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", p->t->pid, p->fd);
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return dump_task_error(p->t, -errno, "fd %d of task %d (%s): can't open it to read its data: %m",
				       p->fd, p->t->pid, p->link);
	ret = fcntl(fd, F_GETPIPE_SZ);
	if (ret < 0 || ioctl(fd, FIONREAD, &avail) < 0) {
		ret = -errno;
		pr_perror("fd %d of task %d (%s): can't read its size or fill", p->fd, p->t->pid,
			  p->link);
		goto out;
	}
	pd->size = ret;
	pd->bytes = avail;
	ret = 0;
	if (!avail)
		goto out;
	pd->data = malloc(avail);
	if (!pd->data || pipe2(tmp, O_CLOEXEC | O_NONBLOCK) ||
	    fcntl(tmp[1], F_SETPIPE_SZ, pd->size) < 0) {
		ret = pd->data ? -errno : -ENOMEM;
		pr_perror("fd %d of task %d (%s): no scratch pipe of %u bytes for its data", p->fd,
			  p->t->pid, p->link, pd->size);
		goto out;
	}
	n = tee(fd, tmp[1], avail, SPLICE_F_NONBLOCK);
	if (n != avail) {
		ret = n < 0 ? -errno : -EIO;
		pr_err("fd %d of task %d (%s): copied %zd of the %d bytes it holds%s%s", p->fd,
		       p->t->pid, p->link, n, avail, n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
		goto out;
	}
	for (int done = 0; done < avail; done += n) {
		n = read(tmp[0], pd->data + done, avail - done);
		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			pr_perror("fd %d of task %d: reading its data back", p->fd, p->t->pid);
			goto out;
		}
	}
out:
	if (tmp[0] >= 0) {
		close(tmp[0]);
		close(tmp[1]);
	}
	close(fd);
	return ret;
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
	if (!pipe_data_done(ctx, pd->pe.pipe_id)) {
		ret = pipe_read_data(p, pd);
		if (ret)
			return ret;
		pd->has_data = true;
		pr_debug("task %d: pipe %u holds %u bytes, size %u", p->t->pid, pd->pe.pipe_id,
			 pd->bytes, pd->size);
	}
	return dump_fown(p->t, p->fd, &f->fown);
}

static int write_full(int fd, const void *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf = (const char *)buf + n;
		len -= n;
	}
	return 0;
}

static int pipe_dump_write(struct dump_ctx *ctx)
{
	struct cr_img *img = NULL;
	int ret = 0;

	for (size_t i = 0; i < ctx->files.nr && !ret; i++) {
		struct dump_file *f = ctx->files.v[i];
		struct pipe_dump *pd = f->priv;
		PipeDataEntry pde = PIPE_DATA_ENTRY__INIT;

		if (f->ops != &fd_kind_pipe || !pd->has_data)
			continue;
		if (!img) {
			ret = dump_img_open(ctx, IMG_PIPES_DATA, 0, &img);
			if (ret)
				return ret;
		}
		pde.pipe_id = pd->pe.pipe_id;
		pde.bytes = pd->bytes;
		pde.has_size = true;
		pde.size = pd->size;
		ret = img_write_entry(img, &pde.base);
		if (!ret && pd->bytes) {
			int fd = img_raw_fd(img);

			ret = fd < 0 ? fd : write_full(fd, pd->data, pd->bytes);
			if (fd >= 0 && ret)
				pr_err("%s: can't write the data of pipe %u: %s", img_name(img),
				       pde.pipe_id, strerror(-ret));
		}
	}
	if (!img)
		return 0;
	if (ret) {
		img_close(img);
		return ret;
	}
	return img_close(img);
}

static void pipe_dump_free(struct dump_file *f)
{
	struct pipe_dump *pd = f->priv;

	if (pd)
		free(pd->data);
	free(pd);
}

/* ---- restore ---- */

struct pipe_data {
	uint32_t pipe_id, bytes, size;	/* size 0: the default */
	uint8_t *data;
};

struct pipe_state {
	struct pipe_data *v;
	size_t nr;
	unsigned int max_size;		/* fs.pipe-max-size */
};

static int read_max_size(unsigned int *max)
{
	char buf[32];
	ssize_t n;
	int fd = open(PIPE_MAX_SIZE_FILE, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	*max = strtoul(buf, NULL, 10);
	return 0;
}

static int load_one(struct cr_img *img, PipeDataEntry *pde, struct pipe_state *s)
{
	struct pipe_data *grown, *d;
	ssize_t n = 0;
	int fd;

	for (size_t i = 0; i < s->nr; i++) {
		if (s->v[i].pipe_id == pde->pipe_id) {
			pr_err("%s: pipe %u appears twice", img_name(img), pde->pipe_id);
			return -EINVAL;
		}
	}
	if (pde->has_size && pde->size > s->max_size) {
		pr_err("%s: pipe %u had a size of %u bytes, above fs.pipe-max-size (%u) here",
		       img_name(img), pde->pipe_id, pde->size, s->max_size);
		return -E2BIG;
	}
	if (pde->bytes > (pde->has_size ? pde->size : 65536u) || pde->bytes > s->max_size) {
		pr_err("%s: pipe %u holds %u bytes, more than its size %u", img_name(img),
		       pde->pipe_id, pde->bytes, pde->has_size ? pde->size : 65536u);
		return -EINVAL;
	}
	grown = realloc(s->v, (s->nr + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	s->v = grown;
	d = &s->v[s->nr];
	d->pipe_id = pde->pipe_id;
	d->bytes = pde->bytes;
	d->size = pde->has_size ? pde->size : 0;
	d->data = malloc(pde->bytes ? pde->bytes : 1);
	if (!d->data)
		return -ENOMEM;
	s->nr++;
	fd = img_raw_fd(img);
	for (uint32_t done = 0; done < pde->bytes; done += n) {
		n = read(fd, d->data + done, pde->bytes - done);
		if (n <= 0) {
			pr_err("%s: the data of pipe %u is cut short (%u of %u bytes)",
			       img_name(img), pde->pipe_id, done, pde->bytes);
			return -EBADMSG;
		}
	}
	return 0;
}

static int load_state(struct rst_images *ri, struct pipe_state **out)
{
	struct pipe_state *s = calloc(1, sizeof(*s));
	ProtobufCMessage *msg;
	struct cr_img *img;
	int ret;

	if (!s)
		return -ENOMEM;
	*out = s;
	if (read_max_size(&s->max_size)) {
		pr_perror("can't read %s", PIPE_MAX_SIZE_FILE);
		return -EIO;
	}
	ret = img_open(ri->dirfd, IMG_PIPES_DATA, 0, O_RDONLY, &img);
	if (ret == -ENOENT)
		return 0;
	if (ret)
		return ret;
	while ((ret = img_read_entry(img, &pipe_data_entry__descriptor, &msg)) > 0) {
		ret = load_one(img, (PipeDataEntry *)msg, s);
		protobuf_c_message_free_unpacked(msg, NULL);
		if (ret)
			break;
	}
	img_close(img);
	return ret;
}

static void pipe_rst_free(void *state)
{
	struct pipe_state *s = state;

	for (size_t i = 0; i < s->nr; i++)
		free(s->v[i].data);
	free(s->v);
	free(s);
}

static int pipe_check(const struct opts *o, struct rst_images *ri, struct rst_fd *f)
{
	void **state = &ri->kind_state[fd_kind_index(&fd_kind_pipe)];
	const PipeEntry *pe = f->fe->pipe;

	if (!pe || pe->id != f->fe->id) {
		pr_err("files.img: pipe %u has no or a mismatching pipe entry", f->fe->id);
		return -EINVAL;
	}
	if (!*state)
		return load_state(ri, (struct pipe_state **)state);
	return 0;
}

static const struct pipe_data *find_data(const struct rst_images *ri, uint32_t pipe_id)
{
	const struct pipe_state *s = ri->kind_state[fd_kind_index(&fd_kind_pipe)];

	for (size_t i = 0; s && i < s->nr; i++)
		if (s->v[i].pipe_id == pipe_id)
			return &s->v[i];
	return NULL;
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

/* The peer end's file (the other direction) among the task's fds. */
static const PipeEntry *find_peer(const struct rst_child *c, const PipeEntry *pe)
{
	for (size_t i = 0; i < c->ri->nr_fds; i++) {
		const FileEntry *fe = c->ri->fds[i].fe;

		if (fe->type == FD_TYPES__PIPE && fe->pipe->pipe_id == pe->pipe_id &&
		    is_writer(fe->pipe) != is_writer(pe))
			return fe->pipe;
	}
	return NULL;
}

static int fill(struct rst_child *c, int wfd, const PipeEntry *pe, const struct pipe_data *d)
{
	if (d->size && fcntl(wfd, F_SETPIPE_SZ, d->size) < 0)
		return child_err(c, errno, "pipe %u of task %d: F_SETPIPE_SZ %u: %s", pe->pipe_id,
				 c->ri->pid, d->size, strerror(errno));
	for (uint32_t done = 0; done < d->bytes;) {
		ssize_t n = write(wfd, d->data + done, d->bytes - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return child_err(c, n < 0 ? errno : EIO,
					 "pipe %u of task %d: refilling %u bytes: %s", pe->pipe_id,
					 c->ri->pid, d->bytes, strerror(n < 0 ? errno : EIO));
		done += n;
	}
	return 0;
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
	d = find_data(c->ri, pe->pipe_id);
	if (d && (ret = fill(c, fds[1], pe, d))) {
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
	.rst_free = pipe_rst_free,
};
