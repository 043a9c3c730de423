/*
 * Dump of the pseudo-terminals the tree opened (pty.h): the pty kind
 * takes every ptmx master and the /dev/pts/N slaves whose master a
 * process of the tree holds (tty.c takes the others: terminals inherited
 * from outside, --shell-job).
 *
 * The state of both sides is read once, when the master is dumped,
 * through our own copy of the master (pidfd_getfd) and a slave opened
 * from it (TIOCGPTPEER): the master's side of the terminal can ask what
 * the slave's session and foreground group are.  The bytes queued on
 * each side are read (the master's with FIONREAD, the slave's in
 * non-canonical mode, so a line not ended yet comes too) and put back at
 * once the way the restore puts them (pty_queues_refill()), so the tree
 * keeps them whatever becomes of the dump.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "common/proc-fd.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "files/pty.h"
#include "files/sk-opts.h"

struct pty_side {
	TtyInfoEntry info;
	TtyPtyEntry pty;
	TermiosEntry termios, termios_locked;
	WinsizeEntry winsize;
	uint32_t cc[PTY_NCC], cc_locked[PTY_NCC];
	uint8_t *data;			/* queued for this side to read */
	size_t len;
};

struct pty_dump {
	int *masters;			/* indexes of the masters the tree holds */
	size_t nr_masters;
	bool scanned;
	struct pty_side **sides;	/* one per tty_info id written */
	size_t nr_sides;
};

struct pty_file {
	TtyFileEntry e;
};

static bool is_master_link(const char *link)
{
	return !strcmp(link, "/dev/ptmx") || !strcmp(link, "/dev/pts/ptmx");
}

static bool is_slave(const struct stat *st)
{
	return S_ISCHR(st->st_mode) && major(st->st_rdev) >= 136 && major(st->st_rdev) <= 143;
}

static int slave_index(const struct stat *st)
{
	return (major(st->st_rdev) - 136) * 256 + minor(st->st_rdev);
}

struct master_scan {
	pid_t pid;
	struct pty_dump *d;
};

/* The index of fd @fd of @arg's task, if it is a ptmx master, added to its list. */
static int add_master(int fd, void *arg)
{
	struct master_scan *s = arg;
	struct pty_dump *d = s->d;
	char fdpath[64], link[64];
	unsigned int index;
	int pidfd, copy;
	ssize_t n;

	snprintf(fdpath, sizeof(fdpath), "/proc/%d/fd/%d", s->pid, fd);
	n = readlink(fdpath, link, sizeof(link) - 1);
	if (n <= 0 || (link[n] = '\0', !is_master_link(link)))
		return 0;
	pidfd = syscall(SYS_pidfd_open, s->pid, 0);
	copy = pidfd < 0 ? -1 : syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	if (copy >= 0 && !ioctl(copy, TIOCGPTN, &index)) {
		int *grown = realloc(d->masters, (d->nr_masters + 1) * sizeof(int));

		if (grown) {
			d->masters = grown;
			d->masters[d->nr_masters++] = index;
		}
	}
	if (copy >= 0)
		close(copy);
	if (pidfd >= 0)
		close(pidfd);
	return 0;
}

/* Every ptmx master the tree holds, by index (once per dump). */
static void scan_masters(struct dump_ctx *ctx, struct pty_dump *d)
{
	d->scanned = true;
	for (size_t i = 0; i < ctx->nr_tasks; i++) {
		struct master_scan s = { ctx->tasks[i]->pid, d };

		/* a task whose fds can't be listed has no master we could see */
		if (!ctx->tasks[i]->zombie)
			proc_each_fd(s.pid, add_master, &s);
	}
}

static struct pty_dump *pty_state(const struct dump_ctx *ctx)
{
	struct dump_ctx *c = (struct dump_ctx *)ctx;	/* a cache of the tree's masters */

	if (!c->pty)
		c->pty = calloc(1, sizeof(*c->pty));
	if (c->pty && !c->pty->scanned)
		scan_masters(c, c->pty);
	return c->pty;
}

bool pty_dump_match(const struct dump_ctx *ctx, const struct fd_probe *p)
{
	struct pty_dump *d;

	if (p->flags & O_PATH)
		return false;
	if (S_ISCHR(p->st.st_mode) && is_master_link(p->link))
		return true;
	if (p->link[0] != '/' || !is_slave(&p->st) || !(d = pty_state(ctx)))
		return false;
	for (size_t i = 0; i < d->nr_masters; i++)
		if (d->masters[i] == slave_index(&p->st))
			return true;
	return false;
}

/* A task's pid as the images name it, from ours; 0 for 0. */
static int tree_vpid(const struct dump_ctx *ctx, pid_t pid, pid_t *vpid)
{
	*vpid = 0;
	if (pid <= 0)
		return 0;
	for (size_t i = 0; i < ctx->nr_tasks; i++) {
		if (ctx->tasks[i]->pid == pid) {
			*vpid = ctx->tasks[i]->vpid;
			return 0;
		}
	}
	return -ESRCH;
}

static struct pty_side *side_new(struct pty_dump *d, uint32_t id, int index)
{
	struct pty_side *s = calloc(1, sizeof(*s)), **grown;

	grown = realloc(d->sides, (d->nr_sides + 1) * sizeof(*grown));
	if (!s || !grown) {
		free(s);
		return NULL;
	}
	d->sides = grown;
	d->sides[d->nr_sides++] = s;
	tty_info_entry__init(&s->info);
	tty_pty_entry__init(&s->pty);
	termios_entry__init(&s->termios);
	termios_entry__init(&s->termios_locked);
	winsize_entry__init(&s->winsize);
	s->info.id = id;
	s->info.type = TTY_TYPE__PTY;
	s->pty.index = index;
	s->info.pty = &s->pty;
	s->termios.c_cc = s->cc;
	s->termios_locked.c_cc = s->cc_locked;
	return s;
}

/* termios, locked termios, window size, TIOCEXCL of one side at @fd */
static int side_state(struct pty_side *s, int fd, const struct stat *st)
{
	struct termios t, lt;
	struct winsize w;
	int excl = 0;

	memset(&lt, 0, sizeof(lt));
	if (tcgetattr(fd, &t) || ioctl(fd, TIOCGLCKTRMIOS, &lt) || ioctl(fd, TIOCGWINSZ, &w) ||
	    ioctl(fd, TIOCGEXCL, &excl))
		return -errno;
	pty_termios_save(&t, &s->termios, s->cc);
	pty_termios_save(&lt, &s->termios_locked, s->cc_locked);
	s->info.termios = &s->termios;
	s->info.termios_locked = &s->termios_locked;
	s->winsize.ws_row = w.ws_row;
	s->winsize.ws_col = w.ws_col;
	s->winsize.ws_xpixel = w.ws_xpixel;
	s->winsize.ws_ypixel = w.ws_ypixel;
	s->info.winsize = &s->winsize;
	s->info.exclusive = excl;
	s->info.rdev = st->st_rdev;
	s->info.has_dev = true;
	s->info.dev = st->st_dev;
	return 0;
}

/* Everything readable at @fd now and within a short while (the pty's
 * buffers reach the line discipline through a work queue). */
static int drain(int fd, bool packet, uint8_t **data, size_t *len)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint8_t buf[4096];

	while (poll(&pfd, 1, 50) == 1 && (pfd.revents & POLLIN)) {
		int avail = 0;
		ssize_t n;
		uint8_t *grown;

		if (ioctl(fd, FIONREAD, &avail) || avail <= 0)
			break;
		n = read(fd, buf, avail + packet < (int)sizeof(buf) ? avail + packet :
			 (int)sizeof(buf));
		if (n <= 0)
			break;
		/* packet mode: a status byte heads every read */
		if (packet && buf[0] != 0)
			continue;
		n -= packet;
		if (*len + n > PTY_DATA_MAX)
			return -EFBIG;
		grown = realloc(*data, *len + n);
		if (!grown)
			return -ENOMEM;
		*data = grown;
		memcpy(*data + *len, buf + packet, n);
		*len += n;
	}
	return 0;
}

/* The queued bytes of both sides, read and put back. */
static int queues(int master, int slave, bool packet, struct pty_side *ms, struct pty_side *ss)
{
	struct termios t, raw;
	int ret;

	ret = drain(master, packet, &ms->data, &ms->len);
	if (ret)
		return ret;
	/* the slave's in non-canonical mode: a line not ended comes too */
	if (tcgetattr(slave, &t))
		return -errno;
	raw = t;
	raw.c_lflag &= ~ICANON;
	raw.c_cc[VMIN] = 0;
	raw.c_cc[VTIME] = 0;
	if (tcsetattr(slave, TCSANOW, &raw))
		return -errno;
	ret = drain(slave, false, &ss->data, &ss->len);
	if (tcsetattr(slave, TCSANOW, &t) && !ret)
		ret = -errno;
	if (!ret)
		ret = pty_queues_refill(master, slave, ms->data, ms->len, ss->data, ss->len);
	return ret;
}

/* Both sides of the pty whose master the task holds at p->fd. */
static int dump_pair(struct dump_ctx *ctx, const struct fd_probe *p, int master, int index)
{
	struct pty_dump *d = ctx->pty;
	struct pty_side *ms, *ss;
	int slave, lock = 0, pkt = 0, sid = 0, pgrp = 0, ret;
	struct stat st;
	pid_t v;

	ms = side_new(d, PTY_INFO_ID(index, true), index);
	ss = side_new(d, PTY_INFO_ID(index, false), index);
	if (!ms || !ss)
		return -ENOMEM;
	if (ioctl(master, TIOCGPTLCK, &lock) || ioctl(master, TIOCGPKT, &pkt))
		goto err;
	ms->info.locked = ss->info.locked = lock;
	ms->info.packet_mode = pkt;
	/* the master's view of the slave's session and foreground group */
	if (ioctl(master, TIOCGSID, &sid))
		sid = 0;
	if (sid && ioctl(master, TIOCGPGRP, &pgrp))
		pgrp = 0;
	if (tree_vpid(ctx, sid, &v)) {
		pr_err("fd %d of task %d: /dev/pts/%d is the controlling terminal of session %d, which is not in the tree: not supported",
		       p->fd, p->t->pid, index, sid);
		return -EOPNOTSUPP;
	}
	ss->info.sid = v;
	if (tree_vpid(ctx, pgrp, &v)) {
		pr_err("fd %d of task %d: the foreground group of /dev/pts/%d is %d, which is not in the tree: not supported",
		       p->fd, p->t->pid, index, pgrp);
		return -EOPNOTSUPP;
	}
	ss->info.pgrp = v;
	if (lock) {
		/* a slave cannot be opened while locked: read its side unlocked */
		int zero = 0;

		if (ioctl(master, TIOCSPTLCK, &zero))
			goto err;
	}
	slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (lock)
		ioctl(master, TIOCSPTLCK, &lock);
	if (slave < 0)
		goto err;
	ret = side_state(ms, master, &p->st);
	if (!ret && !fstat(slave, &st))
		ret = side_state(ss, slave, &st);
	if (!ret)
		ret = queues(master, slave, pkt, ms, ss);
	close(slave);
	if (ret) {
		pr_err("fd %d of task %d: pty %d: reading its state or queues: %s", p->fd,
		       p->t->pid, index, strerror(-ret));
		return ret;
	}
	pr_info("task %d: fd %d: pty %d, session %u, group %u, %zu bytes queued for the master, %zu for the slave",
		p->t->pid, p->fd, index, ss->info.sid, ss->info.pgrp, ms->len, ss->len);
	return 0;
err:
	pr_perror("fd %d of task %d: pty %d", p->fd, p->t->pid, index);
	return -EIO;
}

int pty_dump(struct dump_ctx *ctx, const struct fd_probe *p, struct dump_file *f)
{
	struct pty_file *pf = calloc(1, sizeof(*pf));
	bool master = is_master_link(p->link);
	struct dump_file *reg;
	unsigned int index;
	int ret = 0;

	if (!pf || !pty_state(ctx))
		return -ENOMEM;
	f->priv = pf;
	tty_file_entry__init(&pf->e);
	if (master) {
		int fd = sk_grab_fd(p);

		if (fd < 0)
			return fd;
		if (ioctl(fd, TIOCGPTN, &index))
			ret = -errno;
		if (!ret)
			ret = dump_pair(ctx, p, fd, index);
		close(fd);
		if (ret)
			return ret;
	} else {
		index = slave_index(&p->st);
	}
	reg = dump_file_add_reg(ctx, &p->st, p->link);
	if (!reg)
		return -ENOMEM;
	pf->e.id = f->fe.id;
	pf->e.tty_info_id = PTY_INFO_ID(index, master);
	pf->e.flags = p->flags & ~O_CLOEXEC;
	pf->e.fown = &f->fown;
	pf->e.has_regf_id = true;
	pf->e.regf_id = reg->fe.id;
	f->fe.tty = &pf->e;
	return dump_fown(p->t, p->fd, &f->fown);
}

void pty_dump_free(struct dump_file *f)
{
	free(f->priv);
}

/* Does the task of images pid @vpid hold a descriptor of pty @index? */
static bool holds_pty(struct dump_ctx *ctx, pid_t vpid, uint32_t index)
{
	for (size_t i = 0; i < ctx->nr_tasks; i++) {
		const struct dump_task *t = ctx->tasks[i];

		if (t->vpid != vpid)
			continue;
		for (size_t k = 0; k < t->nr_fds; k++) {
			const struct dump_file *f = dump_file_find(ctx, t->fds[k].fdi.id);

			if (f && f->fe.tty && PTY_INFO_INDEX(f->fe.tty->tty_info_id) == index)
				return true;
		}
	}
	return false;
}

/* A session leader takes its terminal back through a descriptor of it. */
int pty_dump_resolve(struct dump_ctx *ctx)
{
	const struct pty_dump *d = ctx->pty;

	for (size_t i = 0; d && i < d->nr_sides; i++) {
		const TtyInfoEntry *s = &d->sides[i]->info;

		if (PTY_INFO_MASTER(s->id) || !s->sid || holds_pty(ctx, s->sid, s->pty->index))
			continue;
		pr_err("task %u: its controlling terminal is /dev/pts/%u, but it holds no descriptor of that pty to take it back with: not supported",
		       s->sid, s->pty->index);
		return -EOPNOTSUPP;
	}
	return 0;
}

int pty_dump_write(struct dump_ctx *ctx)
{
	struct pty_dump *d = ctx->pty;
	struct cr_img *img;
	int ret = 0;

	if (!d || !d->nr_sides)
		return 0;
	ret = dump_img_open(ctx, IMG_TTY_INFO, 0, &img);
	if (ret)
		return ret;
	for (size_t i = 0; i < d->nr_sides && !ret; i++)
		ret = img_write_entry(img, &d->sides[i]->info.base);
	ret = ret ? (img_close(img), ret) : img_close(img);
	if (ret)
		return ret;
	img = NULL;
	for (size_t i = 0; i < d->nr_sides && !img && !ret; i++)
		if (d->sides[i]->len)
			ret = dump_img_open(ctx, IMG_TTY_DATA, 0, &img);
	for (size_t i = 0; i < d->nr_sides && !ret; i++) {
		TtyDataEntry e = TTY_DATA_ENTRY__INIT;

		if (!d->sides[i]->len)
			continue;
		e.tty_id = d->sides[i]->info.id;
		e.data.data = d->sides[i]->data;
		e.data.len = d->sides[i]->len;
		ret = img_write_entry(img, &e.base);
	}
	if (img)
		ret = ret ? (img_close(img), ret) : img_close(img);
	return ret;
}

void pty_dump_fini(struct dump_ctx *ctx)
{
	struct pty_dump *d = ctx->pty;

	if (!d)
		return;
	for (size_t i = 0; i < d->nr_sides; i++) {
		free(d->sides[i]->data);
		free(d->sides[i]);
	}
	free(d->sides);
	free(d->masters);
	free(d);
	ctx->pty = NULL;
}

