/* The tree's files before any task exists: files.img and fdinfo, paths, file locks, ghosts. */
#ifndef CRIU_LAZY_RESTORE_FILES_H
#define CRIU_LAZY_RESTORE_FILES_H

#include <stdbool.h>
#include <sys/stat.h>

#include "restore/restore.h"

/* files-check.c: files.img (once for the tree), fdinfo, the paths to reopen */
const FileEntry *rst_file_find(const struct rst_images *ri, uint32_t id);
int rst_fds_load(const struct opts *o, struct rst_images *ri);
void rst_tree_files_free(struct rst_tree_files *tf);
int rst_check_path(const struct rst_images *ri, const RegFileEntry *reg, const char *what,
		   struct stat *st);
int rst_fs_check(struct rst_images *ri);

/* file-unchanged.c: the stat of @reg's path, taken once per restore (0 or
 * -errno, not logged); the file at @reg's path (stat @st) is the one dumped */
int rst_path_stat(struct rst_tree_files *tf, const RegFileEntry *reg, struct stat *st);
int rst_check_unchanged(const struct rst_images *ri, const RegFileEntry *reg,
			const struct stat *st, const char *what);
void rst_file_checks_free(struct rst_tree_files *tf);

/* file-locks.c: filelocks.img, read before any task, taken back in it */
int rst_file_locks_load(const struct opts *o, struct rst_images *ri);
void rst_file_locks_free(struct rst_tree_files *tf);
int child_file_locks(struct rst_child *c);

/* ghost.c: the deleted files of the tree, made again while the tasks open
 * them (remap-fpath.img, ghost-file-N.img) */
int rst_ghosts_create(struct rst_tree *tree);
/* Where the file object @id's deleted file is now, or NULL if it is no ghost. */
const char *rst_ghost_path(const struct rst_ghosts *g, uint32_t file_id);
/* The ghosts and links made again go; @done (the tasks hold them): the
 * links --link-remap made at the dump too. */
void rst_ghosts_remove(struct rst_tree *tree, bool done);
void rst_ghosts_free(struct rst_tree *tree);

#endif
