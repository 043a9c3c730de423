/*
 * The socket options every socket kind keeps (sk_opts_entry): read from
 * our own copy of the task's socket at dump, set on the new socket at
 * restore.  Shared by the unix, inet and netlink kinds, with the steps
 * around every socket kind's own part of a dump.
 */
#ifndef CRIU_LAZY_FILES_SK_OPTS_H
#define CRIU_LAZY_FILES_SK_OPTS_H

#include <stdbool.h>
#include <stddef.h>

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

/* What every socket kind's dump does around its own part: */
/* the kernel's name of @p's protocol ("UNIX-STREAM", "TCPv6", "NETLINK",
 * system.sockprotoname) into @buf; false if @p is no socket */
bool sk_proto_name(const struct fd_probe *p, char *buf, size_t size);
/* the end of dump(): our copy @sk closed and, @ret being 0, the owner of
 * the file (fown) into @f; @ret or the first error */
struct dump_file;
int sk_dump_end(const struct fd_probe *p, struct dump_file *f, int sk, int ret);
/* what sk_queue_dump() and sk_opts_dump() hung on a kind's own */
struct sk_queue;
void sk_dump_parts_free(struct sk_queue *q, SkOptsEntry *opts);

#endif
