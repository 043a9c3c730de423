/*
 * Pseudo-terminals the tree opened itself (FD_TYPES__TTY, pty.h): the
 * table of the kind, and its restore.  The dump is pty-dump.c.
 *
 * Restore: the master comes back with its index, opening /dev/ptmx until
 * the kernel hands out that index (keeping the ptys it hands out before,
 * as CRIU does): one another process took since the dump fails the
 * restore, naming it.  It is unlocked, its slave opened (TIOCGPTPEER),
 * both sides get their termios, locked termios and window size, the
 * master its packet mode, and the queued bytes go back
 * (pty_queues_refill()).  Each slave file is a TIOCGPTPEER of the master,
 * made first (and kept) if the task does not hold it; the master and its
 * slaves are one group (share_key()) when several processes hold them.
 * Once every descriptor is open (the connect step, by the maker of each
 * file): the lock and TIOCEXCL are put back.  Then each session leader
 * makes its slave its controlling terminal again, with its foreground
 * group (pty_ctty_restore(), task state rather than a file's).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "files/fd-kind.h"
#include "files/pty.h"
#include "images/image.h"
#include "restore/restore.h"
#include "restore/child.h"

/* status flags F_SETFL sets back */
#define PTY_SETFL_FLAGS (O_APPEND | O_NONBLOCK | O_ASYNC)

struct pty_state {
	TtyInfoEntry **infos;
	size_t nr_infos;
	TtyDataEntry **data;
	size_t nr_data;
};

void pty_termios_save(const struct termios *t, TermiosEntry *e, uint32_t *cc)
{
	e->c_iflag = t->c_iflag;
	e->c_oflag = t->c_oflag;
	e->c_cflag = t->c_cflag;
	e->c_lflag = t->c_lflag;
	e->c_line = t->c_line;
	e->c_ispeed = t->c_ispeed;
	e->c_ospeed = t->c_ospeed;
	for (int i = 0; i < PTY_NCC; i++)
		cc[i] = t->c_cc[i];
	e->c_cc = cc;
	e->n_c_cc = PTY_NCC;
}

void pty_termios_load(const TermiosEntry *e, struct termios *t)
{
	memset(t, 0, sizeof(*t));
	t->c_iflag = e->c_iflag;
	t->c_oflag = e->c_oflag;
	t->c_cflag = e->c_cflag;
	t->c_lflag = e->c_lflag;
	t->c_line = e->c_line;
	t->c_ispeed = e->c_ispeed;
	t->c_ospeed = e->c_ospeed;
	for (size_t i = 0; i < e->n_c_cc && i < NCCS; i++)
		t->c_cc[i] = e->c_cc[i];
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= n;
	}
	return 0;
}

/*
 * Wait until the line discipline at @fd has taken the @len bytes of @p
 * written to its other side (they get there through a work queue): in
 * canonical mode TIOCINQ counts the complete lines only, so up to the
 * last line end; poll() runs the queue's work when nothing is readable.
 */
static int wait_taken(int fd, const struct termios *t, const uint8_t *p, size_t len)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t want = len;
	int have = 0;

	if (t->c_lflag & ICANON) {
		want = 0;
		for (size_t i = 0; i < len; i++)
			if (p[i] == '\n' || (p[i] && (p[i] == t->c_cc[VEOL] ||
						       p[i] == t->c_cc[VEOL2])))
				want = i + 1;
	}
	for (int i = 0; i < 400; i++) {
		poll(&pfd, 1, 0);
		if (ioctl(fd, TIOCINQ, &have))
			return -errno;
		if ((size_t)have >= want) {
			usleep(want < len ? 10000 : 0);	/* the rest of a line */
			return 0;
		}
		usleep(5000);
	}
	return -ETIMEDOUT;
}

int pty_queues_refill(int master, int slave, const void *out, size_t nout, const void *in,
		      size_t nin)
{
	/* the master's own line discipline is raw (TCSETS on a master sets
	 * the slave's termios): everything it takes counts at once */
	struct termios t, quiet, mt = { 0 };
	int ret = 0;

	if (!nout && !nin)
		return 0;
	if (tcgetattr(slave, &t))
		return -errno;
	quiet = t;
	quiet.c_oflag &= ~OPOST;
	quiet.c_lflag &= ~(ECHO | ECHONL | ISIG | IEXTEN);
	/* not IXON: in packet mode its change is news for the master */
	quiet.c_iflag &= ~(ICRNL | INLCR | IGNCR | ISTRIP | IUCLC | INPCK | PARMRK);
	if (tcsetattr(slave, TCSANOW, &quiet))
		return -errno;
	ret = write_all(slave, out, nout);
	if (!ret && nout)
		ret = wait_taken(master, &mt, out, nout);
	if (!ret)
		ret = write_all(master, in, nin);
	if (!ret && nin)
		ret = wait_taken(slave, &quiet, in, nin);
	if (tcsetattr(slave, TCSANOW, &t) && !ret)
		ret = -errno;
	return ret;
}

static const TtyInfoEntry *find_info(const struct pty_state *s, uint32_t id)
{
	for (size_t i = 0; i < s->nr_infos; i++)
		if (s->infos[i]->id == id)
			return s->infos[i];
	return NULL;
}

static const TtyDataEntry *find_data(const struct pty_state *s, uint32_t id)
{
	for (size_t i = 0; i < s->nr_data; i++)
		if (s->data[i]->tty_id == id)
			return s->data[i];
	return NULL;
}

/* The master's file entry of the pty of @info_id in files.img, or NULL. */
static const FileEntry *master_file(const struct rst_images *ri, uint32_t info_id)
{
	for (size_t i = 0; i < ri->nr_files; i++) {
		const FileEntry *fe = ri->files[i];

		if (fe->type == FD_TYPES__TTY && fe->tty &&
		    fe->tty->tty_info_id == (info_id | 1))
			return fe;
	}
	return NULL;
}

/* A pty of the tree's own: a master, or a slave whose master is there. */
static bool pty_rst_match(const struct rst_images *ri, const FileEntry *fe)
{
	return fe->tty && master_file(ri, fe->tty->tty_info_id);
}

static int load_state(struct rst_images *ri, struct pty_state **out)
{
	struct pty_state *s = calloc(1, sizeof(*s));
	ProtobufCMessage *msg;
	struct cr_img *img;
	int ret;

	if (!s)
		return -ENOMEM;
	*out = s;
	ret = img_open(ri->dirfd, IMG_TTY_INFO, 0, O_RDONLY, &img);
	if (ret && ret != -ENOENT)
		return ret;
	while (!ret && (ret = img_read_entry(img, &tty_info_entry__descriptor, &msg)) > 0) {
		TtyInfoEntry **grown = realloc(s->infos, (s->nr_infos + 1) * sizeof(*grown));

		if (!grown) {
			protobuf_c_message_free_unpacked(msg, NULL);
			ret = -ENOMEM;
			break;
		}
		s->infos = grown;
		s->infos[s->nr_infos++] = (TtyInfoEntry *)msg;
		ret = 0;
	}
	if (ret != -ENOENT)
		img_close(img);
	if (ret && ret != -ENOENT)
		return ret;
	ret = img_open(ri->dirfd, IMG_TTY_DATA, 0, O_RDONLY, &img);
	if (ret == -ENOENT)
		return 0;
	if (ret)
		return ret;
	while ((ret = img_read_entry(img, &tty_data_entry__descriptor, &msg)) > 0) {
		TtyDataEntry **grown = realloc(s->data, (s->nr_data + 1) * sizeof(*grown));

		if (!grown) {
			protobuf_c_message_free_unpacked(msg, NULL);
			ret = -ENOMEM;
			break;
		}
		s->data = grown;
		s->data[s->nr_data++] = (TtyDataEntry *)msg;
	}
	img_close(img);
	return ret;
}

static void pty_rst_free(void *state)
{
	struct pty_state *s = state;

	for (size_t i = 0; i < s->nr_infos; i++)
		protobuf_c_message_free_unpacked(&s->infos[i]->base, NULL);
	for (size_t i = 0; i < s->nr_data; i++)
		protobuf_c_message_free_unpacked(&s->data[i]->base, NULL);
	free(s->infos);
	free(s->data);
	free(s);
}

static int pty_check(const struct opts *o, struct rst_images *ri, struct rst_fd *f)
{
	void **state = &ri->kind_state[fd_kind_index(&fd_kind_pty)];
	const TtyFileEntry *e = f->fe->tty;
	const TtyInfoEntry *mi, *si;
	int ret;

	if (!*state) {
		ret = load_state(ri, (struct pty_state **)state);
		if (ret)
			return ret;
	}
	if (e->id != f->fe->id) {
		pr_err("files.img: terminal %u has a mismatching tty entry", f->fe->id);
		return -EINVAL;
	}
	mi = find_info(*state, e->tty_info_id | 1);
	si = find_info(*state, e->tty_info_id & ~1u);
	if (!mi || !si || mi->type != TTY_TYPE__PTY || !mi->pty || !si->termios ||
	    !mi->termios || !si->winsize || !mi->winsize ||
	    mi->pty->index != PTY_INFO_INDEX(e->tty_info_id)) {
		pr_err("tty-info.img: pty %u (fd %d of task %d) has no or an incomplete entry for one of its sides",
		       PTY_INFO_INDEX(e->tty_info_id), f->fd, ri->pid);
		return -EINVAL;
	}
	return 0;
}

static uint64_t pty_share_key(const struct rst_images *ri, const FileEntry *fe)
{
	return PTY_INFO_INDEX(fe->tty->tty_info_id);
}

/* /dev/ptmx until the kernel gives @index; the ptys before it are let go. */
static int open_ptmx_index(struct rst_child *c, uint32_t index, int flags)
{
	int held[64], nr = 0, fd = -1, err = 0;
	unsigned int got;

	for (;;) {
		fd = open("/dev/ptmx", (flags & O_ACCMODE) | O_NOCTTY | O_CLOEXEC);
		if (fd < 0) {
			err = errno;
			break;
		}
		if (ioctl(fd, TIOCGPTN, &got)) {
			err = errno;
			close(fd);
			fd = -1;
			break;
		}
		if (got == index)
			break;
		if (got > index || nr == (int)(sizeof(held) / sizeof(held[0]))) {
			close(fd);
			fd = -1;
			err = EBUSY;
			break;
		}
		held[nr++] = fd;
	}
	while (nr)
		close(held[--nr]);
	if (fd < 0)
		return child_err(c, err, "pty %u (task %d): %s", index, c->ri->pid,
				 err == EBUSY ? "its index is taken by another pty now" :
				 strerror(err));
	return fd;
}

static int set_side(int fd, const TtyInfoEntry *i)
{
	struct termios t;
	struct winsize w = {
		.ws_row = i->winsize->ws_row, .ws_col = i->winsize->ws_col,
		.ws_xpixel = i->winsize->ws_xpixel, .ws_ypixel = i->winsize->ws_ypixel,
	};

	pty_termios_load(i->termios, &t);
	if (tcsetattr(fd, TCSANOW, &t) || ioctl(fd, TIOCSWINSZ, &w))
		return -errno;
	if (i->termios_locked) {
		pty_termios_load(i->termios_locked, &t);
		if (ioctl(fd, TIOCSLCKTRMIOS, &t))
			return -errno;
	}
	return 0;
}

static int open_master(struct rst_child *c, const FileEntry *fe)
{
	const struct pty_state *s = c->ri->kind_state[fd_kind_index(&fd_kind_pty)];
	const TtyInfoEntry *mi = find_info(s, fe->tty->tty_info_id);
	const TtyInfoEntry *si = find_info(s, fe->tty->tty_info_id & ~1u);
	const TtyDataEntry *out = find_data(s, mi->id), *in = find_data(s, si->id);
	uint32_t index = mi->pty->index;
	int fd, slave = -1, zero = 0, err = 0;
	const char *what = "";

	fd = open_ptmx_index(c, index, fe->tty->flags);
	if (fd < 0)
		return fd;
	if (ioctl(fd, TIOCSPTLCK, &zero) ||
	    (slave = ioctl(fd, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)) < 0) {
		err = errno;
		what = "unlock and open its slave";
	} else if ((err = -set_side(slave, si))) {
		what = "the slave's termios and window size";
	} else if ((err = -pty_queues_refill(fd, slave, out ? out->data.data : NULL,
					     out ? out->data.len : 0, in ? in->data.data : NULL,
					     in ? in->data.len : 0))) {
		what = "the queued bytes";
	} else if ((err = -set_side(fd, mi))) {
		what = "the master's termios and window size";
	} else if (ioctl(fd, TIOCPKT, &(int){ mi->packet_mode }) ||
		   fcntl(fd, F_SETFL, fe->tty->flags & PTY_SETFL_FLAGS)) {
		err = errno;
		what = "packet mode and flags";
	}
	if (slave >= 0)
		close(slave);
	if (err) {
		close(fd);
		return child_err(c, err, "pty %u (task %d): %s: %s", index, c->ri->pid, what,
				 strerror(err));
	}
	return fd;
}

static int pty_open(struct rst_child *c, const struct rst_fd *f)
{
	const TtyFileEntry *e = f->fe->tty;
	const FileEntry *mfe;
	int master, fd, ret;

	if (PTY_INFO_MASTER(e->tty_info_id))
		return open_master(c, f->fe);
	mfe = master_file(c->ri, e->tty_info_id);
	master = child_file_lookup(c, mfe->id);
	if (master < 0) {
		/* the master first, kept for its own descriptors (or others') */
		fd = open_master(c, mfe);
		if (fd < 0)
			return fd;
		ret = child_file_stash(c, mfe->id, fd);
		if (ret)
			return ret;
		master = child_file_lookup(c, mfe->id);
	}
	/* f_flags keep what TIOCGPTPEER is given: the dumped ones, no O_CLOEXEC */
	fd = ioctl(master, TIOCGPTPEER, (e->flags & ~O_CLOEXEC) | O_NOCTTY);
	if (fd < 0)
		return child_err(c, errno, "/dev/pts/%u (fd %d of task %d): %s",
				 PTY_INFO_INDEX(e->tty_info_id), f->fd, c->ri->pid, strerror(errno));
	return fd;
}

/*
 * The session leader, every fd in place: the slave of its session's pty
 * becomes its controlling terminal again, with the foreground group.  Any
 * fd of that pty of the task does: a slave, or the master's TIOCGPTPEER.
 */
int pty_ctty_restore(struct rst_child *c)
{
	const struct rst_images *fdt = rst_fdt_images(c->ri);	/* who holds our fds */
	const struct pty_state *s = fdt->kind_state[fd_kind_index(&fd_kind_pty)];
	const TtyInfoEntry *si = NULL;
	int fd = -1, slave, err = 0;

	for (size_t i = 0; s && i < s->nr_infos && !si; i++)
		if (!PTY_INFO_MASTER(s->infos[i]->id) && (pid_t)s->infos[i]->sid == c->ri->pid)
			si = s->infos[i];
	if (!si)
		return 0;
	for (size_t i = 0; i < fdt->nr_fds; i++) {
		const struct rst_fd *f = &fdt->fds[i];

		if (f->ops != &fd_kind_pty ||
		    PTY_INFO_INDEX(f->fe->tty->tty_info_id) != PTY_INFO_INDEX(si->id))
			continue;
		if (!PTY_INFO_MASTER(f->fe->tty->tty_info_id) || fd < 0)
			fd = f->fd;
		if (!PTY_INFO_MASTER(f->fe->tty->tty_info_id))
			break;
	}
	if (fd < 0)
		return child_err(c, ENOENT, "task %d: its controlling terminal /dev/pts/%u: the task holds no descriptor of that pty",
				 c->ri->pid, PTY_INFO_INDEX(si->id));
	slave = fd;
	if (ioctl(fd, TIOCGPTN, &(unsigned int){ 0 }) == 0)	/* the master */
		slave = ioctl(fd, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0 || ioctl(slave, TIOCSCTTY, 0) ||
	    (si->pgrp && tcsetpgrp(slave, si->pgrp)))
		err = errno;
	if (slave >= 0 && slave != fd)
		close(slave);
	if (err)
		return child_err(c, err, "task %d: /dev/pts/%u as its controlling terminal (foreground group %u): %s",
				 c->ri->pid, PTY_INFO_INDEX(si->id), si->pgrp, strerror(err));
	return 0;
}

/* Every fd open (by the file's maker): the lock and TIOCEXCL. */
static int pty_connect(struct rst_child *c, const struct rst_fd *f, int fd)
{
	const struct pty_state *s = c->ri->kind_state[fd_kind_index(&fd_kind_pty)];
	const TtyFileEntry *e = f->fe->tty;
	const TtyInfoEntry *mi = find_info(s, e->tty_info_id | 1);
	const TtyInfoEntry *si = find_info(s, e->tty_info_id & ~1u);
	bool master = PTY_INFO_MASTER(e->tty_info_id);
	int err = 0;
	const char *what = "";

	if (master && mi->locked && ioctl(fd, TIOCSPTLCK, &(int){ 1 })) {
		err = errno;
		what = "lock it";
	}
	if (!err && !master && si->exclusive && ioctl(fd, TIOCEXCL)) {
		err = errno;
		what = "TIOCEXCL";
	}
	if (err)
		return child_err(c, err, "pty %u (fd %d of task %d): %s: %s",
				 PTY_INFO_INDEX(e->tty_info_id), f->fd, c->ri->pid, what,
				 strerror(err));
	return 0;
}

const struct fd_kind_ops fd_kind_pty = {
	.name = "pty",
	.type = FD_TYPES__TTY,
	.stage = FD_STAGE_OPEN,
	.match = pty_dump_match,
	.dump = pty_dump,
	.dump_resolve = pty_dump_resolve,
	.dump_write = pty_dump_write,
	.dump_free = pty_dump_free,
	.rst_match = pty_rst_match,
	.check = pty_check,
	.open = pty_open,
	.connect = pty_connect,
	.share_key = pty_share_key,
	.rst_free = pty_rst_free,
};
