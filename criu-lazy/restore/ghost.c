/*
 * Ghost files: the deleted files the tree held (dump/ghost.c), made again
 * by the restore process before any image is checked, where each was: the
 * path the file had if it is free, else "<path>.cr.<id>.ghost" beside it
 * (CRIU's name for its ghosts), with any missing parent directories made
 * too.  The tasks open them (and map them, and chdir into them) by that
 * path like any other file; once every task has, they are deleted again,
 * so each task holds a deleted file as it did, whose /proc link reads
 * "<path> (deleted)".  A failed restore deletes them too.
 *
 * Links (--link-remap, dump/link-remap.c): a file whose name was gone
 * while other links kept it has a link "link_remap.<id>" made by the dump.
 * Its old name is linked to that again the same way (else, when taken,
 * "<path>.cr_link", CRIU's name), opened by the tasks and unlinked, so
 * they hold the same inode under a name that is gone.  The link_remap
 * name goes once the restore has succeeded; a failed restore leaves it
 * for the next try, as CRIU does.
 *
 * remap-fpath.img ties file objects to ghosts and links; ghost-file-<id>.img
 * (hex) holds each ghost's owner, mode, times and contents (raw after the
 * entry, or as chunks that leave the holes between them).
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
#include "images/image.h"
#include "restore/restore.h"
#include "restore/files.h"

#include "ghost-file.pb-c.h"
#include "remap-file-path.pb-c.h"

#define REMAP_GHOST_OLD	0x80000000u	/* old images: a ghost without remap_type */
#define GHOST_BUF	(256 << 10)

struct rst_ghost {
	uint32_t remap_id;		/* ghost number, or (linked) the link's file id */
	bool linked;			/* a link of --link-remap, not a ghost */
	const char *link;		/* linked: the link's name (in names[]) */
	char *path;			/* where it is now, NULL until made */
	bool borrowed;			/* linked: path was there (another's): not ours */
	bool is_dir;
	char **dirs;			/* parent directories we made, outermost first */
	size_t nr_dirs;
};

struct rst_ghost_remap {
	uint32_t orig_id;
	size_t ghost;			/* index in rst_ghosts.v */
};

struct rst_ghosts {
	struct rst_ghost *v;
	size_t nr;
	struct rst_ghost_remap *remaps;
	size_t nr_remaps;
	char **names;			/* files.img: name of each REG id (sparse) */
	uint32_t nr_names;
};

/* The name of REG file @id in files.img, or NULL. */
static const char *orig_name(const struct rst_ghosts *g, uint32_t id)
{
	return id < g->nr_names ? g->names[id] : NULL;
}

static int collect_name(struct cr_img *img, ProtobufCMessage *msg, void *arg)
{
	struct rst_ghosts *g = arg;
	const FileEntry *fe = (const FileEntry *)msg;
	char **grown;

	if (fe->type != FD_TYPES__REG || !fe->reg || fe->id > 1u << 24)
		return 0;
	if (fe->id >= g->nr_names) {
		grown = realloc(g->names, (fe->id + 1) * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		memset(grown + g->nr_names, 0, (fe->id + 1 - g->nr_names) * sizeof(*grown));
		g->names = grown;
		g->nr_names = fe->id + 1;
	}
	free(g->names[fe->id]);
	g->names[fe->id] = strdup(fe->reg->name);
	return g->names[fe->id] ? 0 : -ENOMEM;
}

static int collect_remap(struct cr_img *img, ProtobufCMessage *msg, void *arg)
{
	struct rst_ghosts *g = arg;
	const RemapFilePathEntry *rpe = (const RemapFilePathEntry *)msg;
	uint32_t remap_id = rpe->remap_id;
	struct rst_ghost_remap *r;
	bool linked;
	size_t k;

	if (!rpe->has_remap_type) {	/* old images: the high bit tells */
		linked = !(remap_id & REMAP_GHOST_OLD);
		remap_id &= ~REMAP_GHOST_OLD;
	} else if (rpe->remap_type == REMAP_TYPE__GHOST || rpe->remap_type == REMAP_TYPE__LINKED) {
		linked = rpe->remap_type == REMAP_TYPE__LINKED;
	} else {
		pr_err("%s: file %u is remapped as %s: only ghost files and links "
		       "(--link-remap) are supported", img_name(img), rpe->orig_id,
		       rpe->remap_type == REMAP_TYPE__PROCFS ? "a dead process's /proc file" :
		       "an unknown kind of remap");
		return -EOPNOTSUPP;
	}
	for (k = 0; k < g->nr && (g->v[k].remap_id != remap_id || g->v[k].linked != linked); k++)
		;
	if (k == g->nr) {
		struct rst_ghost *grown = realloc(g->v, (g->nr + 1) * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		g->v = grown;
		memset(&g->v[g->nr++], 0, sizeof(*grown));
		g->v[k].remap_id = remap_id;
		g->v[k].linked = linked;
	}
	r = realloc(g->remaps, (g->nr_remaps + 1) * sizeof(*r));
	if (!r)
		return -ENOMEM;
	g->remaps = r;
	g->remaps[g->nr_remaps].orig_id = rpe->orig_id;
	g->remaps[g->nr_remaps++].ghost = k;
	return 0;
}

/* Make the missing parents of @path, remembering them to remove later. */
static int make_parents(struct rst_ghost *gh, const char *path)
{
	char buf[PATH_MAX], *slash;

	snprintf(buf, sizeof(buf), "%s", path);
	slash = strrchr(buf, '/');
	if (!slash || slash == buf)
		return -ENOENT;
	*slash = '\0';
	for (char *p = buf + 1; ; p++) {
		char c = *p, **grown;

		if (c != '/' && c != '\0')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755)) {
			if (errno != EEXIST)
				return -errno;
		} else {
			grown = realloc(gh->dirs, (gh->nr_dirs + 1) * sizeof(*grown));
			if (!grown)
				return -ENOMEM;
			gh->dirs = grown;
			gh->dirs[gh->nr_dirs] = strdup(buf);
			if (!gh->dirs[gh->nr_dirs])
				return -ENOMEM;
			gh->nr_dirs++;
		}
		*p = c;
		if (!c)
			return 0;
	}
}

/* Create the file or directory, or the link to gh->link, at @path
 * (exclusive), making parents. */
static int make_node(struct rst_ghost *gh, const char *path, bool dir)
{
	int fd = -1;

	for (int tries = 0; tries < 2; tries++) {
		if (gh->linked)
			fd = linkat(AT_FDCWD, gh->link, AT_FDCWD, path, 0) ? -1 : 0;
		else if (dir)
			fd = mkdir(path, 0700) ? -1 : 0;
		else
			fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0 || errno != ENOENT || tries)
			break;
		if (make_parents(gh, path))
			return -ENOENT;
	}
	return fd < 0 ? -errno : fd;
}

static int copy_from_image(struct cr_img *img, int fd, uint64_t off, uint64_t len,
			   bool to_eof, char *buf, const char *path)
{
	int src = img_raw_fd(img);

	if (src < 0)
		return src;
	while (to_eof || len) {
		size_t want = to_eof || len > GHOST_BUF ? GHOST_BUF : len;
		ssize_t n = read(src, buf, want);

		if (n == 0 && to_eof)
			return 0;
		if (n <= 0) {
			pr_err("%s: truncated contents of the deleted file %s (%llu bytes missing)",
			       img_name(img), path, (unsigned long long)len);
			return n ? -errno : -EBADMSG;
		}
		if (pwrite(fd, buf, n, off) != n) {
			pr_perror("%s: cannot write the deleted file's contents", path);
			return -errno;
		}
		off += n;
		len -= to_eof ? 0 : (uint64_t)n;
	}
	return 0;
}

static int fill_regular(struct cr_img *img, const GhostFileEntry *gfe, int fd, const char *path)
{
	char *buf = malloc(GHOST_BUF);
	ProtobufCMessage *msg;
	int ret;

	if (!buf)
		return -ENOMEM;
	if (!gfe->chunks) {
		ret = copy_from_image(img, fd, 0, 0, true, buf, path);
		goto out;
	}
	if (!gfe->has_size) {
		pr_err("%s: a ghost in chunks without its size", img_name(img));
		ret = -EINVAL;
		goto out;
	}
	if (ftruncate(fd, gfe->size)) {
		pr_perror("%s: cannot make it %llu bytes", path, (unsigned long long)gfe->size);
		ret = -errno;
		goto out;
	}
	while ((ret = img_read_entry(img, &ghost_chunk_entry__descriptor, &msg)) > 0) {
		const GhostChunkEntry *ce = (const GhostChunkEntry *)msg;

		if (ce->off > gfe->size || ce->len > gfe->size - ce->off) {
			pr_err("%s: chunk of %llu bytes at %llu lies past the %llu bytes of the file",
			       img_name(img), (unsigned long long)ce->len,
			       (unsigned long long)ce->off, (unsigned long long)gfe->size);
			ret = -EINVAL;
		} else {
			ret = copy_from_image(img, fd, ce->off, ce->len, false, buf, path);
		}
		protobuf_c_message_free_unpacked(msg, NULL);
		if (ret)
			break;
	}
out:
	free(buf);
	return ret;
}

/* Owner, mode and times, as they were. */
static int apply_meta(const GhostFileEntry *gfe, const char *path)
{
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };

	if (chown(path, gfe->uid, gfe->gid) || chmod(path, gfe->mode & 07777)) {
		pr_perror("%s: cannot give the deleted file back its owner %u:%u and mode %#o",
			  path, gfe->uid, gfe->gid, gfe->mode);
		return -errno;
	}
	if (gfe->atim) {
		ts[0].tv_sec = gfe->atim->tv_sec;
		ts[0].tv_nsec = gfe->atim->tv_usec * 1000;
	}
	if (gfe->mtim) {
		ts[1].tv_sec = gfe->mtim->tv_sec;
		ts[1].tv_nsec = gfe->mtim->tv_usec * 1000;
	}
	if (utimensat(AT_FDCWD, path, ts, 0)) {
		pr_perror("%s: cannot set the deleted file's times", path);
		return -errno;
	}
	return 0;
}

/* The old name of a linked file, a link to the one the dump made. */
static int link_one(struct rst_ghost *gh, const char *orig)
{
	char path[PATH_MAX];
	struct stat st, cur;
	int ret;

	if (lstat(gh->link, &st)) {
		ret = -errno;
		pr_err("%s: the link --link-remap made at the dump for %s is gone: %s", gh->link,
		       orig, strerror(-ret));
		return ret;
	}
	snprintf(path, sizeof(path), "%s", orig);
	ret = make_node(gh, path, false);
	/* the same file by that name already: the link of another open file
	 * of it (each has a link of its own), which removes it */
	if (ret == -EEXIST && !lstat(path, &cur) && cur.st_dev == st.st_dev &&
	    cur.st_ino == st.st_ino) {
		gh->borrowed = true;
		ret = 0;
	}
	if (ret == -EEXIST) {
		/* the name is taken by now: beside it, under CRIU's name */
		snprintf(path, sizeof(path), "%s.cr_link", orig);
		ret = make_node(gh, path, false);
	}
	if (ret < 0) {
		pr_err("%s: cannot link %s there again (--link-remap): %s", path, gh->link,
		       strerror(-ret));
		return ret;
	}
	gh->path = strdup(path);
	if (!gh->path)
		return -ENOMEM;
	pr_debug("link %s: %s linked again as %s", gh->link, orig, path);
	return 0;
}

/* The ghost if it is a directory (@dirs) or a file (!@dirs), else nothing. */
static int create_one(int dirfd, struct rst_ghost *gh, const char *orig, bool dirs)
{
	char path[PATH_MAX], file[IMG_NAME_MAX];
	GhostFileEntry *gfe;
	struct cr_img *img;
	int fd, ret;

	img_format_name(IMG_GHOST_FILE, gh->remap_id, file, sizeof(file));
	ret = img_open_existing(dirfd, IMG_GHOST_FILE, gh->remap_id, &img);
	if (ret)
		return ret;
	ret = img_read_entry(img, &ghost_file_entry__descriptor, (ProtobufCMessage **)&gfe);
	if (ret <= 0) {
		if (!ret)
			pr_err("%s: empty (the deleted file %s)", file, orig);
		img_close(img);
		return ret ? ret : -EINVAL;
	}
	ret = 0;
	if (!S_ISREG(gfe->mode) && !S_ISDIR(gfe->mode)) {
		pr_err("%s: the deleted file %s has mode %#o: only regular files and directories "
		       "are supported", file, orig, gfe->mode);
		ret = -EOPNOTSUPP;
		goto out;
	}
	gh->is_dir = S_ISDIR(gfe->mode);
	if (gh->is_dir != dirs)
		goto out;
	snprintf(path, sizeof(path), "%s", orig);
	fd = make_node(gh, path, gh->is_dir);
	if (fd == -EEXIST) {
		/* the path is taken by now: beside it, under CRIU's ghost name */
		snprintf(path, sizeof(path), "%s.cr.%x.ghost", orig, gh->remap_id);
		fd = make_node(gh, path, gh->is_dir);
	}
	if (fd < 0) {
		ret = fd;
		pr_err("%s: cannot recreate the deleted %s: %s", path,
		       gh->is_dir ? "directory" : "file", strerror(-ret));
		goto out;
	}
	gh->path = strdup(path);
	if (!gh->path)
		ret = -ENOMEM;
	if (!ret && !gh->is_dir)
		ret = fill_regular(img, gfe, fd, path);
	if (!gh->is_dir)
		close(fd);
	if (!ret)
		ret = apply_meta(gfe, path);
	if (!ret)
		pr_debug("ghost %#x: %s made again at %s", gh->remap_id, orig, path);
out:
	ghost_file_entry__free_unpacked(gfe, NULL);
	img_close(img);
	return ret;
}

int rst_ghosts_create(struct rst_tree *tree)
{
	struct rst_ghosts *g = calloc(1, sizeof(*g));
	int ret;

	if (!g)
		return -ENOMEM;
	tree->ghosts = g;
	ret = img_for_each_entry(tree->dirfd, IMG_REMAP_FPATH, 0,
				 &remap_file_path_entry__descriptor, collect_remap, g);
	if (ret || !g->nr_remaps)
		return ret;
	ret = img_for_each_entry(tree->dirfd, IMG_FILES, 0, &file_entry__descriptor,
				 collect_name, g);
	for (size_t i = 0; !ret && i < g->nr_remaps; i++) {
		if (!orig_name(g, g->remaps[i].orig_id)) {
			pr_err("remap-fpath.img: file %u is not a regular file of files.img",
			       g->remaps[i].orig_id);
			ret = -EINVAL;
		}
	}
	for (size_t k = 0; !ret && k < g->nr; k++) {
		if (g->v[k].linked && !(g->v[k].link = orig_name(g, g->v[k].remap_id))) {
			pr_err("remap-fpath.img: a file is linked to file %u, which is not a "
			       "regular file of files.img", g->v[k].remap_id);
			ret = -EINVAL;
		}
	}
	/* each ghost where the first file object that uses it was; the
	 * directories first, as a deleted file may have been in one */
	for (int dirs = 1; dirs >= 0; dirs--) {
		for (size_t k = 0; !ret && k < g->nr; k++) {
			const char *orig = NULL;

			for (size_t i = 0; !orig && i < g->nr_remaps; i++)
				if (g->remaps[i].ghost == k)
					orig = orig_name(g, g->remaps[i].orig_id);
			if (!g->v[k].linked)
				ret = create_one(tree->dirfd, &g->v[k], orig, dirs);
			else if (!dirs)
				ret = link_one(&g->v[k], orig);
		}
	}
	return ret;
}

const char *rst_ghost_path(const struct rst_ghosts *g, uint32_t file_id)
{
	for (size_t i = 0; g && i < g->nr_remaps; i++)
		if (g->remaps[i].orig_id == file_id)
			return g->v[g->remaps[i].ghost].path;
	return NULL;
}

void rst_ghosts_remove(struct rst_tree *tree, bool done)
{
	struct rst_ghosts *g = tree->ghosts;

	/* files first: a directory ghost may have held one */
	for (int dirs = 0; dirs <= 1; dirs++) {
		for (size_t k = 0; g && k < g->nr; k++) {
			struct rst_ghost *gh = &g->v[k];

			if (gh->is_dir != dirs)
				continue;
			if (gh->path && !gh->borrowed &&
			    (gh->is_dir ? rmdir(gh->path) : unlink(gh->path)))
				pr_warn("cannot delete the %s %s again: %s",
					gh->linked ? "link" : "ghost", gh->path, strerror(errno));
			free(gh->path);
			gh->path = NULL;
			/* every task holds it now: the dump's link has done its job */
			if (done && gh->linked && gh->link) {
				if (unlink(gh->link) && errno != ENOENT)
					pr_warn("cannot remove the link %s made by the dump: %s",
						gh->link, strerror(errno));
				gh->link = NULL;
			}
			while (gh->nr_dirs) {
				char *d = gh->dirs[--gh->nr_dirs];

				if (rmdir(d))
					pr_warn("cannot remove the directory %s made for a ghost: %s",
						d, strerror(errno));
				free(d);
			}
		}
	}
}

void rst_ghosts_free(struct rst_tree *tree)
{
	struct rst_ghosts *g = tree->ghosts;

	if (!g)
		return;
	rst_ghosts_remove(tree, false);
	for (size_t k = 0; k < g->nr; k++)
		free(g->v[k].dirs);
	for (uint32_t i = 0; i < g->nr_names; i++)
		free(g->names[i]);
	free(g->names);
	free(g->v);
	free(g->remaps);
	free(g);
	tree->ghosts = NULL;
}
