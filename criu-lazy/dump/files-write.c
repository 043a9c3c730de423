/*
 * The file objects after every task is dumped, in the order of
 * write_images() (dump.c): each kind's resolve (peers, refusals that need
 * every file known), the accepts of waiting connections with the space of
 * what they write reserved first, each kind's images, files.img, and each
 * task's fdinfo and fs images; the kinds' release as the tree is let go.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"

int dump_resolve_files(struct dump_ctx *ctx)
{
	int ret = 0;

	for (unsigned int k = 0; k < fd_kinds_nr && !ret; k++)
		if (fd_kinds[k]->dump_resolve)
			ret = fd_kinds[k]->dump_resolve(ctx);
	return ret;
}

static bool has_kind_from(const struct dump_ctx *ctx, const struct fd_kind_ops *k, size_t from)
{
	for (size_t i = from; i < ctx->files.nr; i++)
		if (ctx->files.v[i]->ops == k)
			return true;
	return false;
}

int dump_accept_files(struct dump_ctx *ctx)
{
	size_t from = ctx->files.nr;
	unsigned int first = fd_kinds_nr;
	int ret = 0;

	for (unsigned int k = 0; k < fd_kinds_nr && !ret; k++) {
		if (!fd_kinds[k]->dump_accept)
			continue;
		ret = fd_kinds[k]->dump_accept(ctx);
		first = first < k ? first : k + 1;
	}
	/* the files it met (in flight): the resolve of their kind again, for
	 * the kinds whose resolve came after and met such files before (they
	 * check their files: running one twice is harmless) */
	for (unsigned int k = first; k < fd_kinds_nr && !ret; k++)
		if (fd_kinds[k]->dump_resolve && has_kind_from(ctx, fd_kinds[k], from))
			ret = fd_kinds[k]->dump_resolve(ctx);
	return ret;
}

/* Each kind's own images: of every file (@from 0), or again for a kind
 * that has files from @from on. */
static int write_kinds(struct dump_ctx *ctx, size_t from)
{
	int ret = 0;

	for (unsigned int k = 0; k < fd_kinds_nr && !ret; k++)
		if (fd_kinds[k]->dump_write && (!from || has_kind_from(ctx, fd_kinds[k], from)))
			ret = fd_kinds[k]->dump_write(ctx);
	return ret;
}

int dump_write_kinds(struct dump_ctx *ctx)
{
	return write_kinds(ctx, 0);
}

/*
 * What the accepts will write, made sure of before them: files.img and the
 * kinds' late images (sk-queues.img) open, the space of what they hold now
 * and of the most the accepts can add taken (img_reserve), so that after
 * the accepts only writes into space the file system already gave remain.
 */
int dump_reserve_files(struct dump_ctx *ctx)
{
	uint64_t size = 0, extra = 0;
	bool reads = false;
	int ret = 0;

	ctx->files_before_accept = ctx->files.nr;
	for (unsigned int k = 0; k < fd_kinds_nr && ret >= 0; k++) {
		if (!fd_kinds[k]->dump_reserve)
			continue;
		ret = fd_kinds[k]->dump_reserve(ctx, &extra);
		reads |= ret > 0;
	}
	if (ret < 0 || !reads)
		return ret < 0 ? ret : 0;
	for (size_t i = 0; i < ctx->files.nr; i++)
		size += sizeof(uint32_t) +
			protobuf_c_message_get_packed_size(&ctx->files.v[i]->fe.base);
	ret = dump_img_open(ctx, IMG_FILES, 0, &ctx->files_img);
	if (ret)
		return ret;
	ret = img_reserve(ctx->files_img, size + extra);
	if (ret)	/* cr_dump discards the image */
		pr_err("files.img: can't reserve %llu bytes before accepting the connections not yet accepted whose data the dump reads: %s",
		       (unsigned long long)(size + extra), strerror(-ret));
	return ret;
}

int dump_write_files(struct dump_ctx *ctx)
{
	struct cr_img *img = ctx->files_img;
	int ret = 0;

	ctx->files_img = NULL;
	if (!img)
		ret = dump_img_open(ctx, IMG_FILES, 0, &img);
	if (ret)
		return ret;
	for (size_t i = 0; i < ctx->files.nr && !ret; i++)
		ret = img_write_entry(img, &ctx->files.v[i]->fe.base);
	ret = img_close_keep(img, ret);
	for (unsigned int k = 0; k < fd_kinds_nr && !ret; k++)
		if (fd_kinds[k]->dump_write_late)
			ret = fd_kinds[k]->dump_write_late(ctx);
	/* the files the accepts brought (in flight): their kinds' images
	 * again, with them */
	if (!ret && ctx->files_before_accept < ctx->files.nr)
		ret = write_kinds(ctx, ctx->files_before_accept);
	return ret;
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

int dump_files_release(struct dump_ctx *ctx, bool resume)
{
	int ret = 0;

	for (size_t i = 0; i < ctx->files.nr; i++) {
		struct dump_file *f = ctx->files.v[i];
		int r = f->ops->dump_release ? f->ops->dump_release(ctx, f, resume) : 0;

		ret = ret ? ret : r;
	}
	return ret;
}
