/*
 * A terminal inherited from outside the tree (the shell's; a pty whose
 * master the tree holds is pty.c's), with
 * --shell-job: dumped as a REG entry naming its path, restored as the
 * terminal criu-lazy itself runs on (the first of its stdin, stdout,
 * stderr that is one).  A TTY entry from CRIU (`criu dump --shell-job`)
 * is restored the same way.  Without --shell-job both sides refuse, saying
 * which descriptor and which terminal.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "restore/restore.h"
#include "restore/child.h"
#include "restore/files.h"

/* tty/console (4, 5), the Unix98 pty slaves (136-143), and at dump also
 * the serial and USB-serial majors */
static bool is_terminal(const struct stat *st, bool at_dump)
{
	unsigned int maj = major(st->st_rdev), min = minor(st->st_rdev);

	if (!S_ISCHR(st->st_mode))
		return false;
	if (maj == 4 || (maj >= 136 && maj <= 143))
		return true;
	if (!at_dump)
		return maj == 5;
	return (maj == 5 && min <= 1) || maj == 188 || maj == 204 || maj == 229;
}

static bool tty_match(const struct dump_ctx *ctx, const struct fd_probe *p)
{
	return p->link[0] == '/' && !(p->flags & O_PATH) && is_terminal(&p->st, true);
}

static int tty_dump(struct dump_ctx *ctx, const struct fd_probe *p, struct dump_file *f)
{
	if (!ctx->o->shell_job) {
		pr_err("fd %d of task %d is the terminal %s, which the tree did not open (no process of it holds its master): dump with --shell-job to give the restored process the restore's own terminal instead",
		       p->fd, p->t->pid, p->link);
		return -EOPNOTSUPP;
	}
	f->reg.flags = p->flags & ~O_CLOEXEC;
	return dump_fown(p->t, p->fd, &f->fown);
}

/* A terminal then: one now, or a pty or tty name gone with its session. */
static bool tty_rst_match(const struct rst_images *ri, const FileEntry *fe)
{
	const char *name = fe->reg ? fe->reg->name : NULL;
	struct stat st;

	if (!name || (fe->reg->has_mode && !S_ISCHR(fe->reg->mode)))
		return false;
	if (!rst_path_stat(ri->tf, fe->reg, &st))
		return is_terminal(&st, false);
	return !strncmp(name, "/dev/pts/", 9) || !strncmp(name, "/dev/tty", 8);
}

static int tty_check(const struct opts *o, struct rst_images *ri, struct rst_fd *f)
{
	if (o->shell_job)
		return 0;
	if (f->fe->type == FD_TYPES__TTY)
		pr_err("fd %d of task %d is a terminal: restore it with --shell-job", f->fd,
		       ri->pid);
	else
		pr_err("fd %d of task %d is the terminal %s: restore it with --shell-job", f->fd,
		       ri->pid, f->fe->reg->name);
	return -EOPNOTSUPP;
}

static int tty_open(struct rst_child *c, const struct rst_fd *f)
{
	int fd = fcntl(c->tty_fd, F_DUPFD_CLOEXEC, 0);

	if (fd < 0)
		return child_err(c, errno, "our terminal as fd %d of task %d: %s", f->fd,
				 c->ri->pid, strerror(errno));
	return fd;
}

const struct fd_kind_ops fd_kind_tty = {
	.name = "terminal",
	.type = FD_TYPES__REG,
	.stage = FD_STAGE_OPEN,
	.match = tty_match,
	.dump = tty_dump,
	.rst_match = tty_rst_match,
	.check = tty_check,
	.open = tty_open,
	.needs_our_tty = true,
};

/* CRIU's own TTY entries: restore only, the same way. */
const struct fd_kind_ops fd_kind_tty_criu = {
	.name = "terminal",
	.type = FD_TYPES__TTY,
	.stage = FD_STAGE_OPEN,
	.check = tty_check,
	.open = tty_open,
	.needs_our_tty = true,
};
