/* What runs in the new task: its descriptors, premapped memory and blob (struct rst_child). */
#ifndef CRIU_LAZY_RESTORE_CHILD_H
#define CRIU_LAZY_RESTORE_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "restore/restore.h"

struct iovec;

/* child.c: runs in the new task, never returns */
_Noreturn void rst_child_main(struct rst_child *c);
int child_err(const struct rst_child *c, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* fds.c */
int child_fds_prepare(struct rst_child *c);
int child_fds_move_high(struct rst_child *c, int *fd, bool keep);
int child_fds_room(struct rst_child *c, unsigned long room);
int child_fs_lock_open(struct rst_child *c);
int child_fds_restore(struct rst_child *c);
int child_file_lookup(const struct rst_child *c, uint32_t id);
int child_file_stash(struct rst_child *c, uint32_t id, int fd);
int child_file_keep(struct rst_child *c, uint32_t id, int fd);
int child_file_get(struct rst_child *c, uint32_t id);
int child_fs_restore(struct rst_child *c);
int child_cwd_lock(struct rst_child *c);
void child_cwd_unlock(struct rst_child *c);

/* fd-share.c: files shared between processes, the task's side */
const struct rst_share_file *child_share_find(const struct rst_child *c, uint32_t id);
bool child_file_mine(const struct rst_child *c, uint32_t id);
size_t child_share_count(const struct rst_child *c);
int child_share_prepare(struct rst_child *c);
int child_share_open_early(struct rst_child *c);
int child_share_adopt(struct rst_child *c);
int child_share_open_rest(struct rst_child *c, enum fd_stage stage);
int child_share_send(struct rst_child *c, enum fd_stage stage);
int child_share_wait(struct rst_child *c, const struct rst_fd *f);

/* fdt.c: a descriptor table shared with other processes, the task's side */
int child_fdt_apart(struct rst_child *c, int *sync_r);
int child_fdt_done(struct rst_child *c);

/* premap.c, premap-cow.c (before the task forks its own children) */
int child_premap(struct rst_child *c);
int child_premap_fill(struct rst_child *c);
int child_premap_inherit(struct rst_child *c);
int child_premap_drop(struct rst_child *c);
int child_fill_compare(struct rst_child *c, const struct rst_fill *f, uint64_t dst);
int child_pages_read(struct rst_child *c, int fd, uint32_t pages_id, struct iovec *iov,
		     int iovcnt, uint64_t off, uint64_t total);
/* premap.c: a task's attachment of a SysV segment */
int child_premap_sysv(struct rst_child *c, const struct rst_vma_plan *vp);

/* blob-setup.c */
int child_blob_prepare(struct rst_child *c, struct restorer_args **args);
_Noreturn void child_blob_jump(const struct rst_plan *plan, struct restorer_args *args);

#endif
