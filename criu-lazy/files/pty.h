/*
 * Pseudo-terminals the tree opened itself (pty-dump.c, pty.c): a ptmx
 * master and the /dev/pts/N slaves of it, as CRIU writes them:
 *
 *   files.img	a TTY file_entry per open file description (tty_file_entry:
 *		its f_flags, owner, tty_info_id, and regf_id: a REG entry
 *		with the path it was opened by)
 *   tty-info.img	one tty_info_entry per side of a pty: id = index << 1,
 *		+ 1 for the master; the pty's index, lock, packet mode,
 *		TIOCEXCL, termios, locked termios, window size, and on the
 *		slave's the session whose controlling terminal it is and
 *		its foreground group
 *   tty-data.img	the bytes queued on a side (tty_id: the side that
 *		would read them)
 */
#ifndef CRIU_LAZY_FILES_PTY_H
#define CRIU_LAZY_FILES_PTY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <termios.h>

#include "tty.pb-c.h"

#define PTY_INFO_ID(index, master)	(((uint32_t)(index) << 1) | ((master) ? 1 : 0))
#define PTY_INFO_MASTER(id)		((id) & 1)
#define PTY_INFO_INDEX(id)		((id) >> 1)
#define PTY_NCC				19	/* the kernel's c_cc[] (CRIU's TERMIOS_NCC) */
#define PTY_DATA_MAX			(256 << 10)

void pty_termios_save(const struct termios *t, TermiosEntry *e, uint32_t *cc);
void pty_termios_load(const TermiosEntry *e, struct termios *t);

/*
 * Put bytes back in the queues of a pty: @out, what its master had to
 * read (written to the slave with output processing off), @in, what its
 * slave had to read (written to the master with the slave's input
 * processing, echo and signals off, its canonical mode as it is, so a
 * line not ended yet is one again).  @slave is an fd of the slave.
 * Returns 0 or -errno; the slave's termios is as before either way.
 */
int pty_queues_refill(int master, int slave, const void *out, size_t nout, const void *in,
		      size_t nin);

/* In the new task after its fds: its controlling terminal, if a pty of
 * the tree's is (pty.c).  0 or -errno after child_err(). */
struct rst_child;
int pty_ctty_restore(struct rst_child *c);

/* pty-dump.c: the dump side of fd_kind_pty */
struct dump_ctx;
struct dump_file;
struct fd_probe;
bool pty_dump_match(const struct dump_ctx *ctx, const struct fd_probe *p);
int pty_dump(struct dump_ctx *ctx, const struct fd_probe *p, struct dump_file *f);
int pty_dump_resolve(struct dump_ctx *ctx);
int pty_dump_write(struct dump_ctx *ctx);
void pty_dump_free(struct dump_file *f);
void pty_dump_fini(struct dump_ctx *ctx);

#endif
