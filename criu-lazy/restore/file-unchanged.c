/*
 * Is a regular file the restore reopens or maps the one that was dumped?
 * Its size, then its ELF build-id, against reg-files' record.
 *
 * Every task of a tree maps the same binary and libraries, each in several
 * VMAs, and holds the same /dev/null: each is looked at once per restore,
 * in the tree's struct rst_tree_files.  The stat of a path is kept for its
 * file object (one entry of files.img, which every process shares); the
 * build-id for the file itself (device, inode, size, mtime of the
 * descriptor it was read from), so two different files never share a
 * reading.  Each use still compares against its own file object's record
 * and names itself when that differs: the first use of a file is checked
 * as it always was, and a failure ends the restore there.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/array.h"
#include "common/elf-build-id.h"
#include "common/log.h"
#include "restore/restore.h"
#include "restore/files.h"

/* A file object's path as it was first found at this restore. */
struct rst_path_stat {
	const RegFileEntry *reg;
	struct stat st;
};

/* One file's build-id as read at this restore (n 0: none to compare). */
struct rst_build_id_read {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	int n;
	uint32_t words[BUILD_ID_MAX_WORDS];
};

static bool same_file(const struct rst_build_id_read *r, const struct stat *st)
{
	return r->dev == st->st_dev && r->ino == st->st_ino && r->size == st->st_size &&
	       r->mtime.tv_sec == st->st_mtim.tv_sec && r->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

int rst_path_stat(struct rst_tree_files *tf, const RegFileEntry *reg, struct stat *st)
{
	for (size_t i = 0; i < tf->nr_stats; i++) {
		if (tf->stats[i].reg == reg) {
			*st = tf->stats[i].st;
			return 0;
		}
	}
	if (stat(reg->name, st))
		return -errno;
	/* no room to keep it: stat again next time */
	if (!ARRAY_GROW(tf->stats, tf->cap_stats, tf->nr_stats + 1, 16))
		tf->stats[tf->nr_stats++] = (struct rst_path_stat){ .reg = reg, .st = *st };
	return 0;
}

static void keep_read(struct rst_tree_files *tf, const struct stat *st, int n,
		      const uint32_t *words)
{
	struct rst_build_id_read *r;

	if (ARRAY_GROW(tf->build_ids, tf->cap_build_ids, tf->nr_build_ids + 1, 8))
		return;		/* no room to keep it: read again next time */
	r = &tf->build_ids[tf->nr_build_ids++];
	r->dev = st->st_dev;
	r->ino = st->st_ino;
	r->size = st->st_size;
	r->mtime = st->st_mtim;
	r->n = n;
	memcpy(r->words, words, sizeof(r->words));
}

/*
 * The build-id of @path, whose stat was @st: words into @buf, or *@out
 * pointed at the reading kept in @tf.  A reading is kept under the
 * stat of the descriptor it was read from, so it is only found again for
 * that very file.  Returns the number of words or a negative errno (not
 * logged).
 */
static int build_id_now(struct rst_tree_files *tf, const char *path, const struct stat *st,
			uint32_t *buf, const uint32_t **out)
{
	struct stat fst;
	int fd, n;

	for (size_t i = 0; i < tf->nr_build_ids; i++) {
		if (same_file(&tf->build_ids[i], st)) {
			*out = tf->build_ids[i].words;
			return tf->build_ids[i].n;
		}
	}
	*out = buf;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	memset(buf, 0, BUILD_ID_MAX_WORDS * sizeof(*buf));
	n = fstat(fd, &fst) ? -errno : elf_build_id_fd(fd, buf, BUILD_ID_MAX_WORDS);
	close(fd);
	if (n >= 0)
		keep_read(tf, &fst, n, buf);
	return n;
}

void rst_file_checks_free(struct rst_tree_files *tf)
{
	free(tf->stats);
	free(tf->build_ids);
	tf->stats = NULL;
	tf->build_ids = NULL;
	tf->nr_stats = tf->cap_stats = tf->nr_build_ids = tf->cap_build_ids = 0;
}

/*
 * A regular file with a build-id at the dump (ours, or CRIU's since 3.15)
 * must have the same one: a binary rebuilt to the same size.  One without
 * (not ELF, an older image) is taken on its size alone.  The words are the
 * note's bytes, the last word padded with zeros, as CRIU writes them.
 */
static int check_build_id(const struct rst_images *ri, const RegFileEntry *reg,
			  const struct stat *st, const char *what)
{
	char now_hex[8 * BUILD_ID_MAX_WORDS + 1], was_hex[8 * BUILD_ID_MAX_WORDS + 1];
	uint32_t buf[BUILD_ID_MAX_WORDS];
	const uint32_t *now = buf;
	size_t was_n = reg->n_build_id;
	int n;

	if (!was_n)
		return 0;
	if (was_n > BUILD_ID_MAX_WORDS)
		was_n = BUILD_ID_MAX_WORDS;	/* compared as far as we read */
	n = build_id_now(ri->tf, reg->name, st, buf, &now);
	if (n < 0) {
		pr_err("%s: %s (%s of task %d)", reg->name, strerror(-n), what, ri->pid);
		return n;
	}
	/* none we can read now (a 32-bit ELF of CRIU's): the size, as CRIU does */
	if (!n || ((size_t)n == was_n && !memcmp(now, reg->build_id, was_n * sizeof(*now))))
		return 0;
	build_id_format(reg->build_id, was_n, was_hex);
	build_id_format(now, n, now_hex);
	pr_err("%s: build-id %s differs from the dumped %s (%s of task %d): the file changed "
	       "since the dump", reg->name, now_hex, was_hex, what, ri->pid);
	return -EINVAL;
}

/*
 * A regular file a task holds or maps must be the one dumped: a binary or
 * library rebuilt since would be mapped in the place of the old one and
 * the task would crash on its first instruction there, a data file would
 * be read at offsets that no longer mean what they did.  Its size is what
 * the dump recorded, and so is its build-id.  @st is the file's stat now.
 */
int rst_check_unchanged(const struct rst_images *ri, const RegFileEntry *reg,
			const struct stat *st, const char *what)
{
	if (!S_ISREG(st->st_mode))
		return 0;
	if (!reg->has_size || (uint64_t)st->st_size == reg->size)
		return check_build_id(ri, reg, st, what);
	pr_err("%s: size %lld differs from the dumped %llu (%s of task %d): the file changed "
	       "since the dump", reg->name, (long long)st->st_size,
	       (unsigned long long)reg->size, what, ri->pid);
	return -EINVAL;
}
