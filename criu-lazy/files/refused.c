/*
 * A descriptor no kind of the registry takes: say which fd of which task
 * it is and what it is ("fd 42 of task 4711 is an eventfd: eventfds are
 * not supported yet"), before anything has been done to the task.  A kind
 * that learns to dump something simply takes it before it gets here.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"

static const char *article(const char *s)
{
	/* "an eventfd", "an IPv4 TCP socket", but "a unix socket", "a UDP socket" */
	return s[0] && strchr("aeioAEIO", s[0]) ? "an" : "a";
}

static int refuse(const struct fd_probe *p, const char *kind, const char *detail,
		  const char *what_not)
{
	pr_err("fd %d of task %d is %s %s%s%s%s: %s are not supported yet", p->fd, p->t->pid,
	       article(kind), kind, detail[0] ? " (" : "", detail, detail[0] ? ")" : "",
	       what_not);
	return -EOPNOTSUPP;
}

static int refuse_anon(const struct fd_probe *p)
{
	static const struct { const char *name, *kind, *plural; } anon[] = {
		{ "[eventfd]", "eventfd", "eventfds" },
		{ "[eventpoll]", "epoll instance", "epoll instances" },
		{ "[signalfd]", "signalfd", "signalfds" },
		{ "[timerfd]", "timerfd", "timerfds" },
		{ "inotify", "inotify instance", "inotify instances" },
		{ "[fanotify]", "fanotify instance", "fanotify instances" },
		{ "[userfaultfd]", "userfaultfd", "userfaultfds" },
		{ "[io_uring]", "io_uring instance", "io_uring instances" },
	};
	const char *name = p->link + strlen("anon_inode:");

	for (size_t i = 0; i < sizeof(anon) / sizeof(anon[0]); i++)
		if (!strcmp(name, anon[i].name))
			return refuse(p, anon[i].kind, "", anon[i].plural);
	return refuse(p, "anonymous inode", name, "such files");
}

int fd_refuse(const struct dump_ctx *ctx, const struct fd_probe *p)
{
	const struct stat *st = &p->st;
	char detail[64];
	unsigned long long ino;
	int ret;

	if (sscanf(p->link, "socket:[%llu]", &ino) == 1) {
		char kind[128];

		ret = dump_sock_describe((struct dump_ctx *)ctx, p->t, p->fd, ino, kind,
					 sizeof(kind));
		if (ret)
			return ret;
		snprintf(detail, sizeof(detail), "inode %llu", ino);
		return refuse(p, kind, detail, "sockets");
	}
	if (sscanf(p->link, "pipe:[%llu]", &ino) == 1) {
		snprintf(detail, sizeof(detail), "inode %llu", ino);
		return refuse(p, "pipe", detail, "pipes");
	}
	if (!strncmp(p->link, "anon_inode:", 11))
		return refuse_anon(p);
	if (!strncmp(p->link, "/memfd:", 7))
		return refuse(p, "memfd", p->link + 7, "memfds");
	if (p->link[0] != '/')	/* net:[4026531840] and other nsfs/pseudo files */
		return refuse(p, "special file", p->link, "such files");
	if (p->flags & O_PATH)
		return refuse(p, "O_PATH descriptor", p->link, "O_PATH descriptors");
	if (S_ISFIFO(st->st_mode))
		return refuse(p, "FIFO", p->link, "FIFOs");
	if (S_ISSOCK(st->st_mode))
		return refuse(p, "socket", p->link, "sockets");
	if (S_ISBLK(st->st_mode))
		return refuse(p, "block device", p->link, "block devices");
	if (S_ISCHR(st->st_mode) && major(st->st_rdev) == 5 && minor(st->st_rdev) == 2)
		return refuse(p, "pseudo-terminal master", p->link, "pseudo-terminal masters");
	if (S_ISCHR(st->st_mode))
		return refuse(p, "character device", p->link, "such devices");
	if (S_ISREG(st->st_mode) && st->st_nlink == 0) {
		size_t len = strlen(p->link), sfx = strlen(" (deleted)");

		pr_err("fd %d of task %d is a file of the kernel's own (%.*s, on a mount no "
		       "namespace shows): not supported",
		       p->fd, p->t->pid,
		       (int)(len > sfx && !strcmp(p->link + len - sfx, " (deleted)") ? len - sfx : len),
		       p->link);
		return -EOPNOTSUPP;
	}
	return refuse(p, "special file", p->link, "such files");
}
