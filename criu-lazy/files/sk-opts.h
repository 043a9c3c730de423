/*
 * The socket options every socket kind keeps (sk_opts_entry): read from
 * our own copy of the task's socket at dump, set on the new socket at
 * restore.  Shared by unix-sk.c and the inet kinds.
 */
#ifndef CRIU_LAZY_FILES_SK_OPTS_H
#define CRIU_LAZY_FILES_SK_OPTS_H

#include "sk-opts.pb-c.h"

struct fd_probe;
struct rst_child;

/* @sk is our copy of @p's socket.  Fills @e (its so_bound_dev malloc'ed). */
int sk_opts_dump(const struct fd_probe *p, int sk, SkOptsEntry *e);
void sk_opts_dump_free(SkOptsEntry *e);
/* In the new task: everything but the peek offset (sk_opts_peek_off()). */
int sk_opts_restore(struct rst_child *c, int sk, const SkOptsEntry *e, uint32_t id);
int sk_opts_peek_off(struct rst_child *c, int sk, const SkOptsEntry *e, uint32_t id);

/* pidfd_getfd(): the task's fd @fd in our process (same socket), or -errno
 * logged. */
int sk_grab_fd(const struct fd_probe *p);

#endif
