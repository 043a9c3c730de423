/*
 * Pipe and FIFO contents.  At dump the bytes are copied without being
 * consumed: we open the pipe through /proc/PID/fd/N (a reader of our own)
 * and tee(2) its contents into a scratch pipe of the same capacity, which
 * we then read.  The task never notices.  A capacity above the restoring
 * machine's fs.pipe-max-size is refused before any task exists: nothing
 * may depend on more than the machine's limit.
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
#include "files/pipe-data.h"
#include "restore/restore.h"
#include "restore/child.h"

#include "pipe-data.pb-c.h"

#define PIPE_MAX_SIZE_FILE "/proc/sys/fs/pipe-max-size"
#define PIPE_DEF_SIZE 65536u

static bool data_done(struct dump_ctx *ctx, const struct fd_kind_ops *ops, uint32_t pipe_id)
{
	for (size_t i = 0; i < ctx->files.nr; i++) {
		struct dump_file *f = ctx->files.v[i];
		struct pipe_data_dump *pd = f->priv;

		if (f->ops == ops && pd && pd->has_data && pd->pipe_id == pipe_id)
			return true;
	}
	return false;
}

static int tee_data(const struct fd_probe *p, int fd, struct pipe_data_dump *pd)
{
	int tmp[2], ret = 0;
	ssize_t n;

	pd->data = malloc(pd->bytes);
	if (!pd->data)
		return -ENOMEM;
	if (pipe2(tmp, O_CLOEXEC | O_NONBLOCK))
		return dump_task_error(p->t, -errno, "fd %d of task %d: no scratch pipe: %m", p->fd,
				       p->t->pid);
	if (fcntl(tmp[1], F_SETPIPE_SZ, pd->size) < 0) {
		ret = -errno;
		pr_perror("fd %d of task %d (%s): no scratch pipe of %u bytes for its data", p->fd,
			  p->t->pid, p->link, pd->size);
		goto out;
	}
	n = tee(fd, tmp[1], pd->bytes, SPLICE_F_NONBLOCK);
	if (n != (ssize_t)pd->bytes) {
		ret = n < 0 ? -errno : -EIO;
		pr_err("fd %d of task %d (%s): copied %zd of the %u bytes it holds%s%s", p->fd,
		       p->t->pid, p->link, n, pd->bytes, n < 0 ? ": " : "",
		       n < 0 ? strerror(errno) : "");
		goto out;
	}
	for (uint32_t done = 0; done < pd->bytes; done += n) {
		n = read(tmp[0], pd->data + done, pd->bytes - done);
		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			pr_err("fd %d of task %d: reading its data back: %s", p->fd, p->t->pid,
			       strerror(-ret));
			goto out;
		}
	}
out:
	close(tmp[0]);
	close(tmp[1]);
	return ret;
}

int pipe_data_dump(struct dump_ctx *ctx, const struct fd_kind_ops *ops,
		   const struct fd_probe *p, struct pipe_data_dump *pd)
{
	char path[64];
	int fd, size, avail, ret = 0;

	pd->pipe_id = p->st.st_ino;
	if (data_done(ctx, ops, pd->pipe_id))
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", p->t->pid, p->fd);
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return dump_task_error(p->t, -errno,
				       "fd %d of task %d (%s): can't open it to read its data: %m",
				       p->fd, p->t->pid, p->link);
	size = fcntl(fd, F_GETPIPE_SZ);
	if (size < 0 || ioctl(fd, FIONREAD, &avail) < 0) {
		ret = -errno;
		pr_perror("fd %d of task %d (%s): can't read its size or fill", p->fd, p->t->pid,
			  p->link);
		goto out;
	}
	pd->size = size;
	pd->bytes = avail;
	if (avail)
		ret = tee_data(p, fd, pd);
	if (!ret) {
		pd->has_data = true;
		pr_debug("task %d: %s %u holds %u bytes, size %u", p->t->pid, ops->name,
			 pd->pipe_id, pd->bytes, pd->size);
	}
out:
	close(fd);
	return ret;
}

int pipe_data_write(struct dump_ctx *ctx, const struct fd_kind_ops *ops, enum img_type type)
{
	struct cr_img *img = NULL;
	int ret = 0;

	for (size_t i = 0; i < ctx->files.nr && !ret; i++) {
		struct dump_file *f = ctx->files.v[i];
		struct pipe_data_dump *pd = f->priv;
		PipeDataEntry pde = PIPE_DATA_ENTRY__INIT;

		if (f->ops != ops || !pd || !pd->has_data)
			continue;
		if (!img) {
			ret = dump_img_open(ctx, type, 0, &img);
			if (ret)
				return ret;
		}
		pde.pipe_id = pd->pipe_id;
		pde.bytes = pd->bytes;
		pde.has_size = true;
		pde.size = pd->size;
		ret = img_write_entry(img, &pde.base);
		if (!ret && pd->bytes) {
			ret = img_write_raw(img, pd->data, pd->bytes);
			if (ret)
				pr_err("%s: can't write the data of %s %u: %s", img_name(img),
				       ops->name, pde.pipe_id, strerror(-ret));
		}
	}
	return img_close_keep(img, ret);
}

void pipe_data_dump_free(struct pipe_data_dump *pd)
{
	if (pd)
		free(pd->data);
}

/* ---- restore ---- */

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

static int load_one(struct cr_img *img, ProtobufCMessage *msg, void *arg)
{
	PipeDataEntry *pde = (PipeDataEntry *)msg;
	struct pipe_data_set *s = arg;
	uint32_t size = pde->has_size ? pde->size : PIPE_DEF_SIZE;
	struct pipe_data *grown, *d;
	ssize_t n = 0;
	int fd;

	if (pipe_data_find(s, pde->pipe_id)) {
		pr_err("%s: pipe %u appears twice", img_name(img), pde->pipe_id);
		return -EINVAL;
	}
	if (size > s->max_size) {
		pr_err("%s: pipe %u had a size of %u bytes, above fs.pipe-max-size (%u) here",
		       img_name(img), pde->pipe_id, size, s->max_size);
		return -E2BIG;
	}
	if (pde->bytes > size) {
		pr_err("%s: pipe %u holds %u bytes, more than its size %u", img_name(img),
		       pde->pipe_id, pde->bytes, size);
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

int pipe_data_load(struct rst_images *ri, enum img_type type, struct pipe_data_set **out)
{
	struct pipe_data_set *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	*out = s;
	if (read_max_size(&s->max_size)) {
		pr_perror("can't read %s", PIPE_MAX_SIZE_FILE);
		return -EIO;
	}
	return img_for_each_entry(ri->dirfd, type, 0, &pipe_data_entry__descriptor, load_one, s);
}

const struct pipe_data *pipe_data_find(const struct pipe_data_set *s, uint32_t pipe_id)
{
	for (size_t i = 0; s && i < s->nr; i++)
		if (s->v[i].pipe_id == pipe_id)
			return &s->v[i];
	return NULL;
}

int pipe_data_fill(struct rst_child *c, int wfd, const char *what, const struct pipe_data *d)
{
	if (d->size && fcntl(wfd, F_SETPIPE_SZ, d->size) < 0)
		return child_err(c, errno, "%s %u of task %d: F_SETPIPE_SZ %u: %s", what,
				 d->pipe_id, c->ri->pid, d->size, strerror(errno));
	for (uint32_t done = 0; done < d->bytes;) {
		ssize_t n = write(wfd, d->data + done, d->bytes - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return child_err(c, n < 0 ? errno : EIO,
					 "%s %u of task %d: refilling %u bytes: %s", what, d->pipe_id,
					 c->ri->pid, d->bytes, strerror(n < 0 ? errno : EIO));
		done += n;
	}
	return 0;
}

void pipe_data_set_free(void *set)
{
	struct pipe_data_set *s = set;

	for (size_t i = 0; i < s->nr; i++)
		free(s->v[i].data);
	free(s->v);
	free(s);
}
