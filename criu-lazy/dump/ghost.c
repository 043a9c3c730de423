/*
 * Ghost files: a file the tree holds (open, mapped, its cwd) that was
 * deleted.  Its path leads nowhere, so, as CRIU does, the dump carries
 * the file itself: ghost-file-<id>.img (id in hex, from 1) holds its
 * owner, mode, times and contents, and remap-fpath.img (link-remap.c
 * writes it) says, for each file object of files.img, which ghost stands
 * in for it.  The file object keeps the path the file had, without
 * " (deleted)".
 *
 * Contents: a regular file of 3 pages or more is written in chunks (a
 * ghost_chunk_entry and the bytes of each data range, SEEK_DATA and
 * SEEK_HOLE: its holes stay holes), a smaller one as raw bytes after the
 * entry; a directory has none.  A regular file larger than --ghost-limit
 * (1 MiB by default, as in CRIU) is refused before anything is written.
 * One ghost per dev/ino, however many file objects refer to it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"

#include "ghost-file.pb-c.h"
#include "remap-file-path.pb-c.h"

#define GHOST_CHUNKS_MIN	(3 * 4096)	/* CRIU's threshold for chunks */
#define GHOST_BUF		(256 << 10)
#define DELETED_SUFFIX		" (deleted)"

static struct reg_remap *ghost_of(const struct dump_file *f)
{
	struct reg_remap *r = f->ops == &fd_kind_reg ? f->priv : NULL;

	return r && r->type == REMAP_TYPE__GHOST ? r : NULL;
}

void dump_ghost_strip(char *name)
{
	size_t len = strlen(name), sfx = strlen(DELETED_SUFFIX);

	if (len > sfx && !strcmp(name + len - sfx, DELETED_SUFFIX))
		name[len - sfx] = '\0';
}

/* @len bytes at @off of @fd, after the last record of @img. */
static int copy_range(struct cr_img *img, int fd, uint64_t off, uint64_t len, char *buf,
		      const char *name)
{
	while (len) {
		size_t want = len < GHOST_BUF ? len : GHOST_BUF;
		ssize_t n = pread(fd, buf, want, off);
		int ret;

		if (n <= 0) {
			pr_err("deleted file %s: cannot read %zu bytes at %llu: %s", name, want,
			       (unsigned long long)off, n ? strerror(errno) : "it shrank");
			return n ? -errno : -EIO;
		}
		ret = img_write_raw(img, buf, n);
		if (ret) {
			pr_err("%s: cannot write the contents of %s: %s", img_name(img), name,
			       strerror(-ret));
			return ret;
		}
		off += n;
		len -= n;
	}
	return 0;
}

/* Each data range as a chunk entry and its bytes. */
static int write_chunks(struct cr_img *img, int fd, uint64_t size, char *buf, const char *name)
{
	GhostChunkEntry ce = GHOST_CHUNK_ENTRY__INIT;
	off_t data, hole = 0;
	int ret;

	while ((uint64_t)hole < size) {
		data = lseek(fd, hole, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break;			/* only a hole is left */
		if (data < 0 && hole) {
			pr_perror("deleted file %s: SEEK_DATA at %lld", name, (long long)hole);
			return -errno;
		}
		if (data < 0) {			/* the filesystem can't tell: all data */
			data = 0;
			hole = size;
		} else {
			hole = lseek(fd, data, SEEK_HOLE);
			if (hole < 0) {
				pr_perror("deleted file %s: SEEK_HOLE at %lld", name, (long long)data);
				return -errno;
			}
			if ((uint64_t)hole > size)
				hole = size;
		}
		if ((uint64_t)data >= size)
			break;
		ce.off = data;
		ce.len = hole - data;
		ret = img_write_entry(img, &ce.base);
		if (!ret)
			ret = copy_range(img, fd, ce.off, ce.len, buf, name);
		if (ret)
			return ret;
	}
	return 0;
}

static int write_ghost(struct dump_ctx *ctx, uint32_t id, const char *proc_path,
		       const struct stat *st, const char *name)
{
	GhostFileEntry gfe = GHOST_FILE_ENTRY__INIT;
	Timeval atim = TIMEVAL__INIT, mtim = TIMEVAL__INIT;
	struct cr_img *img;
	char *buf = NULL;
	int fd = -1, ret;

	gfe.uid = st->st_uid;
	gfe.gid = st->st_gid;
	gfe.mode = st->st_mode;
	gfe.has_dev = gfe.has_ino = true;
	gfe.dev = st->st_dev;
	gfe.ino = st->st_ino;
	atim.tv_sec = st->st_atim.tv_sec;
	atim.tv_usec = st->st_atim.tv_nsec / 1000;
	mtim.tv_sec = st->st_mtim.tv_sec;
	mtim.tv_usec = st->st_mtim.tv_nsec / 1000;
	gfe.atim = &atim;
	gfe.mtim = &mtim;
	if (S_ISREG(st->st_mode) && st->st_size >= GHOST_CHUNKS_MIN) {
		gfe.has_chunks = gfe.chunks = true;
		gfe.has_size = true;
		gfe.size = st->st_size;
	}
	if (S_ISREG(st->st_mode)) {
		/* ours, read-only: the task's may be write-only */
		fd = open(proc_path, O_RDONLY | O_CLOEXEC);
		buf = malloc(GHOST_BUF);
		if (fd < 0 || !buf) {
			ret = fd < 0 ? -errno : -ENOMEM;
			pr_err("deleted file %s: cannot open %s: %s", name, proc_path, strerror(-ret));
			goto out;
		}
	}
	ret = dump_img_open(ctx, IMG_GHOST_FILE, id, &img);
	if (ret)
		goto out;
	ret = img_write_entry(img, &gfe.base);
	if (!ret && gfe.chunks)
		ret = write_chunks(img, fd, st->st_size, buf, name);
	else if (!ret && fd >= 0)
		ret = copy_range(img, fd, 0, st->st_size, buf, name);
	if (ret)
		img_close(img);
	else
		ret = img_close(img);
	if (!ret)
		pr_debug("ghost %#x: %s, mode %#o, %lld bytes%s", id, name, st->st_mode,
			 (long long)st->st_size, gfe.chunks ? " in chunks" : "");
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return ret;
}

int dump_ghost(struct dump_ctx *ctx, struct dump_file *f, const char *proc_path,
	       const struct stat *st, const char *what)
{
	struct reg_remap *ref;
	uint32_t id = 0, next = 1;
	int ret;

	dump_ghost_strip(f->reg.name);
	if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode)) {
		pr_err("%s: %s is a deleted file of mode %#o: only deleted regular files and "
		       "directories are supported", what, f->reg.name, st->st_mode);
		return -EOPNOTSUPP;
	}
	if (S_ISREG(st->st_mode) && (uint64_t)st->st_size > ctx->o->ghost_limit) {
		pr_err("%s: %s is a deleted file of %lld bytes, over the ghost limit of %llu "
		       "bytes: raise it with --ghost-limit", what, f->reg.name,
		       (long long)st->st_size, (unsigned long long)ctx->o->ghost_limit);
		return -EFBIG;
	}
	for (size_t i = 0; i < ctx->files.nr; i++) {
		const struct dump_file *o = ctx->files.v[i];
		const struct reg_remap *r = ghost_of(o);

		if (!r)
			continue;
		if (o->dev == st->st_dev && o->ino == st->st_ino)
			id = r->remap_id;
		if (r->remap_id >= next)
			next = r->remap_id + 1;
	}
	if (!id) {
		id = next;
		ret = write_ghost(ctx, id, proc_path, st, f->reg.name);
		if (ret)
			return ret;
	}
	ref = calloc(1, sizeof(*ref));
	if (!ref)
		return -ENOMEM;
	ref->type = REMAP_TYPE__GHOST;
	ref->remap_id = id;
	ref->fd = -1;
	f->priv = ref;
	pr_debug("file %u (%s): deleted %s, ghost %#x", f->fe.id, what, f->reg.name, id);
	return 0;
}
