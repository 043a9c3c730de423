/* One process's images read and checked before any task exists (images-load.c). */
#ifndef CRIU_LAZY_RESTORE_IMAGES_H
#define CRIU_LAZY_RESTORE_IMAGES_H

#include "restore/restore.h"

int rst_images_load(int dirfd, const struct opts *o, const InventoryEntry *inv,
		    const PstreeEntry *ps, CoreEntry *core, const struct rst_ghosts *ghosts,
		    struct rst_tree_files *tf, const struct rst_images *parent,
		    struct rst_images *ri);
void rst_images_free(struct rst_images *ri);

/* attrs/seccomp.c: seccomp.img for a process with filters, checked */
int rst_seccomp_load(struct rst_images *ri);
/* attrs/posix-timers.c: the threads the timers name are the task's */
int rst_posix_timers_check_threads(const struct rst_images *ri);

#endif
