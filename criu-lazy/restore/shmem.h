/* The tree's shared memory (anonymous, memfds) and its SysV IPC namespace. */
#ifndef CRIU_LAZY_RESTORE_SHMEM_H
#define CRIU_LAZY_RESTORE_SHMEM_H

#include <stdbool.h>
#include <stdint.h>

#include "restore/restore.h"

/* images-load.c: a new shared memory object of ri, its pagemap-shmem-<shmid>
 * loaded (0 or -errno, logged) */
int rst_shmem_add(struct rst_images *ri, uint64_t shmid, struct rst_shmem **out);

/* files/memfd.c: every memfd inode the process refers to (descriptors,
 * mappings) as one of its shared memory objects; the one of an inode */
int rst_memfd_objects(struct rst_images *ri);
struct rst_shmem *rst_memfd_shmem(const struct rst_images *ri, uint64_t inode_id);

/* shmem.c: the tree's shared memory objects (anonymous, memfds) */
int rst_shmem_create(struct rst_tree *tree);
/* Read an object's dumped pages (PE_PRESENT runs of @pi) into @addr. */
int rst_shmem_fill(const struct pagemap_index *pi, uint64_t shmid, void *addr);
/* shmem-lazy.c: may the object be left empty for the lazy-pages daemon? */
bool rst_shmem_lazy(struct rst_tree *tree, const struct rst_shmem *s, uint64_t features);
void rst_shmem_release(struct rst_tree *tree);

/* ipc-ns.c, ipc-msg-sem.c: the tree's IPC namespace and its SysV objects */
int rst_ipc_ns_load(struct rst_tree *tree);
int rst_ipc_ns_create(struct rst_tree *tree);
int rst_ipc_ns_leave(struct rst_tree *tree);
int rst_ipc_ns_removed(struct rst_tree *tree);
void rst_ipc_ns_free(struct rst_tree *tree);
int rst_ipc_msg_sem(struct rst_tree *tree);
/* kernel.<kind>_next_id = @id: the next object of that kind gets it */
int rst_ipc_set_next_id(const char *kind, uint32_t id);

#endif
