/*
 * The registry of fd kinds: the first kind whose match() takes a
 * descriptor dumps it, the first kind of a file_entry's type (and
 * rst_match(), if it has one) restores it.  Order matters where two kinds
 * could take the same thing: the tree's own ptys before terminals,
 * terminals and memfds (a memfd looks like a deleted file) before regular
 * files.
 */
#include <stddef.h>

#include "files/fd-kind.h"

const struct fd_kind_ops *const fd_kinds[] = {
	&fd_kind_pty,
	&fd_kind_tty,
	&fd_kind_tty_criu,
	&fd_kind_memfd,
	&fd_kind_reg,
	&fd_kind_pipe,
	&fd_kind_fifo,
	&fd_kind_eventfd,
	&fd_kind_signalfd,
	&fd_kind_timerfd,
	&fd_kind_unix,
	&fd_kind_inet,
	&fd_kind_netlink,
	&fd_kind_epoll,
	&fd_kind_pidfd,
	&fd_kind_inotify,
	&fd_kind_fanotify,
};

const unsigned int fd_kinds_nr = sizeof(fd_kinds) / sizeof(fd_kinds[0]);

_Static_assert(sizeof(fd_kinds) / sizeof(fd_kinds[0]) <= FD_KINDS_MAX, "raise FD_KINDS_MAX");

const struct fd_kind_ops *fd_kind_for_dump(const struct dump_ctx *ctx, const struct fd_probe *p)
{
	for (unsigned int i = 0; i < fd_kinds_nr; i++)
		if (fd_kinds[i]->match && fd_kinds[i]->match(ctx, p))
			return fd_kinds[i];
	return NULL;
}

const struct fd_kind_ops *fd_kind_for_restore(const struct rst_images *ri, const FileEntry *fe)
{
	for (unsigned int i = 0; i < fd_kinds_nr; i++) {
		const struct fd_kind_ops *k = fd_kinds[i];

		if (k->type == fe->type && k->open && (!k->rst_match || k->rst_match(ri, fe)))
			return k;
	}
	return NULL;
}

unsigned int fd_kind_index(const struct fd_kind_ops *ops)
{
	for (unsigned int i = 0; i < fd_kinds_nr; i++)
		if (fd_kinds[i] == ops)
			return i;
	return FD_KINDS_MAX;	/* never: every ops table is listed above */
}

const char *fd_type_name(int type)
{
	static const char *const names[] = {
		[FD_TYPES__UND] = "an unknown file", [FD_TYPES__REG] = "a regular file",
		[FD_TYPES__PIPE] = "a pipe", [FD_TYPES__FIFO] = "a FIFO",
		[FD_TYPES__INETSK] = "an inet socket", [FD_TYPES__UNIXSK] = "a unix socket",
		[FD_TYPES__EVENTFD] = "an eventfd", [FD_TYPES__EVENTPOLL] = "an epoll fd",
		[FD_TYPES__INOTIFY] = "an inotify fd", [FD_TYPES__SIGNALFD] = "a signalfd",
		[FD_TYPES__PACKETSK] = "a packet socket", [FD_TYPES__TTY] = "a terminal",
		[FD_TYPES__FANOTIFY] = "a fanotify fd", [FD_TYPES__NETLINKSK] = "a netlink socket",
		[FD_TYPES__NS] = "a namespace fd", [FD_TYPES__TUNF] = "a tun device",
		[FD_TYPES__EXT] = "an external file", [FD_TYPES__TIMERFD] = "a timerfd",
		[FD_TYPES__MEMFD] = "a memfd", [FD_TYPES__BPFMAP] = "a BPF map",
		[FD_TYPES__PIDFD] = "a pidfd",
	};

	if (type >= 0 && (size_t)type < sizeof(names) / sizeof(names[0]) && names[type])
		return names[type];
	return "an unknown file";
}
