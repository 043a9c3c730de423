/*
 * Files in flight (SCM_RIGHTS) in unix socket queues, both sides: sk-scm.c.
 */
#ifndef CRIU_LAZY_FILES_SK_SCM_H
#define CRIU_LAZY_FILES_SK_SCM_H

#include "files/sk-queue.h"

#include "sk-unix.pb-c.h"

struct dump_ctx;
struct opts;
struct rst_images;

/* Dump, before unix peers are tied: every file in flight of every unix
 * socket's queue made a file id (a task's file, or a new file object). */
int sk_scm_resolve(struct dump_ctx *ctx);
/* Restore, before any task exists: the files in flight of @ue's queue. */
int sk_scm_check(const struct opts *o, struct rst_images *ri, const struct sk_queue_set *set,
		 const UnixSkEntry *ue);

#endif
