/*
 * Files whose name is gone while they still have other links: a task
 * opened (or mapped) "a/x", and "a/x" was unlinked while a hard link "b/y"
 * keeps the file alive.  /proc shows "a/x (deleted)" with nlink > 0.  This
 * is CRIU's --link-remap:
 *
 *  - without the flag such a file is refused, naming it and the flag;
 *  - with it, the file gets one more link, "link_remap.<id>", in the
 *    directory it was in (or the nearest one above it that is still
 *    there), by linkat(AT_EMPTY_PATH) of the file itself.  The link is a
 *    file object of files.img of its own (id <id>, no descriptor refers to
 *    it) and remap-fpath.img says {orig_id, remap_id <id>, LINKED}; the
 *    original object keeps the name the file had, without " (deleted)";
 *  - the link is made once the images are written (after every refusal),
 *    and removed again when the dump fails or the tree runs on (-R), as
 *    CRIU does: only a dump that ends the tree leaves it for the restore;
 *  - the restore (restore/ghost.c) links the old name to it again, lets
 *    the tasks open that, and unlinks it, so each task holds a file whose
 *    name is gone as before, the same inode as "b/y".
 *
 * A file with no link left cannot be linked again (the kernel says ENOENT
 * unless it was made with O_TMPFILE), so deleted files are always ghosts
 * (ghost.c), with or without the flag, as in CRIU.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"

#include "remap-file-path.pb-c.h"

#define DELETED_SUFFIX " (deleted)"

static struct reg_remap *remap_of(const struct dump_file *f)
{
	return f->ops == &fd_kind_reg ? f->priv : NULL;
}

bool dump_name_gone(const char *name, const struct stat *st)
{
	size_t len = strlen(name), sfx = strlen(DELETED_SUFFIX);
	struct stat named;

	if (st->st_nlink == 0 || len <= sfx || strcmp(name + len - sfx, DELETED_SUFFIX))
		return false;
	/* a file really called "... (deleted)" */
	return stat(name, &named) || named.st_dev != st->st_dev || named.st_ino != st->st_ino;
}

/* The directory of @name, or the nearest one above it still there. */
static void link_dir(const char *name, char *dir, size_t size)
{
	struct stat st;
	char *slash;

	snprintf(dir, size, "%s", name);
	for (;;) {
		slash = strrchr(dir, '/');
		if (!slash || slash == dir) {
			snprintf(dir, size, "/");
			return;
		}
		*slash = '\0';
		if (!stat(dir, &st) || errno != ENOENT)
			return;
	}
}

int dump_link_remap(struct dump_ctx *ctx, struct dump_file *f, const char *proc_path,
		    const struct stat *st, const char *what)
{
	char dir[PATH_MAX], link[PATH_MAX + 32];
	struct dump_file *lf;
	struct reg_remap *r;

	dump_ghost_strip(f->reg.name);
	if (!ctx->o->link_remap) {
		pr_err("%s: %s was unlinked while the file still has %lu other link(s): "
		       "dump with --link-remap to link it again for the restore", what,
		       f->reg.name, (unsigned long)st->st_nlink);
		return -EOPNOTSUPP;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->type = REMAP_TYPE__LINKED;
	r->fd = open(proc_path, O_PATH | O_CLOEXEC);
	f->priv = r;
	if (r->fd < 0) {
		pr_perror("%s: cannot open %s (%s)", what, proc_path, f->reg.name);
		return -errno;
	}
	lf = dump_file_add_reg(ctx, st, "");
	if (!lf)
		return -ENOMEM;
	link_dir(f->reg.name, dir, sizeof(dir));
	snprintf(link, sizeof(link), "%s/link_remap.%u", strcmp(dir, "/") ? dir : "",
		 lf->fe.id);
	free(lf->reg.name);
	lf->reg.name = strdup(link);
	r->link = strdup(link);
	if (!lf->reg.name || !r->link)
		return -ENOMEM;
	/* as CRIU writes it: a name and nothing to check */
	lf->reg.has_mode = lf->reg.has_size = false;
	r->remap_id = lf->fe.id;
	pr_debug("file %u (%s): %s has %lu other link(s): linked as %s (file %u)", f->fe.id,
		 what, f->reg.name, (unsigned long)st->st_nlink, link, lf->fe.id);
	return 0;
}

/* Every link of the dump, made now that nothing can refuse the tree. */
static int make_links(struct dump_ctx *ctx)
{
	for (size_t i = 0; i < ctx->files.nr; i++) {
		const struct dump_file *f = ctx->files.v[i];
		struct reg_remap *r = remap_of(f);

		if (!r || r->type != REMAP_TYPE__LINKED || r->made)
			continue;
		if (linkat(r->fd, "", AT_FDCWD, r->link, AT_EMPTY_PATH)) {
			pr_perror("%s: cannot link the file once named %s there (--link-remap)",
				  r->link, f->reg.name);
			return -errno;
		}
		r->made = true;
		close(r->fd);
		r->fd = -1;
	}
	return 0;
}

int dump_remaps_write(struct dump_ctx *ctx)
{
	RemapFilePathEntry rpe = REMAP_FILE_PATH_ENTRY__INIT;
	struct cr_img *img = NULL;
	int ret;

	ret = make_links(ctx);
	rpe.has_remap_type = true;
	for (size_t i = 0; i < ctx->files.nr && !ret; i++) {
		const struct dump_file *f = ctx->files.v[i];
		const struct reg_remap *r = remap_of(f);

		if (!r)
			continue;
		if (!img && (ret = dump_img_open(ctx, IMG_REMAP_FPATH, 0, &img)))
			return ret;
		rpe.orig_id = f->fe.id;
		rpe.remap_id = r->remap_id;
		rpe.remap_type = r->type;
		ret = img_write_entry(img, &rpe.base);
	}
	return img_close_keep(img, ret);
}

int dump_remap_release(struct dump_ctx *ctx, struct dump_file *f, bool resume)
{
	struct reg_remap *r = remap_of(f);

	if (!r || !r->made || !(resume || ctx->failed))
		return 0;
	r->made = false;
	if (unlink(r->link) && errno != ENOENT)
		pr_warn("%s: cannot remove the link --link-remap made: %m", r->link);
	else
		pr_debug("file %u: link %s removed again", f->fe.id, r->link);
	return 0;
}

void dump_remap_free(struct dump_file *f)
{
	struct reg_remap *r = remap_of(f);

	if (r) {
		if (r->fd >= 0)
			close(r->fd);
		free(r->link);
		free(r);
	}
	f->priv = NULL;
}
