/*
 * Stage 2's images read by a worker thread too (images-prefetch.c).
 */
#ifndef CRIU_LAZY_RESTORE_IMAGES_PREFETCH_H
#define CRIU_LAZY_RESTORE_IMAGES_PREFETCH_H

#include <stddef.h>

#include "images/image.h"
#include "pstree.pb-c.h"

/* A worker starts reading the cores, ids, mm and fs images of @entries
 * (none for a small tree, or if it cannot start: only slower). */
void rst_prefetch_start(int dirfd, PstreeEntry **entries, size_t nr);
/* img_read_one(), from the worker's work when it has done it already */
int rst_img_read_one(int dirfd, enum img_type type, unsigned long id,
		     const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out);
/* Stage 2 has every image it needs: the worker reads no more. */
void rst_prefetch_images_done(void);
/* The worker joined (its FPU probe done), what it read and nobody took
 * freed; nothing if there is none. */
void rst_prefetch_stop(void);

#endif
