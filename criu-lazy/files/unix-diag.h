/*
 * What the kernel says about one unix socket through NETLINK_SOCK_DIAG
 * (UNIX_DIAG): the things no getsockopt() tells, its peer's inode, its
 * shutdown state, the connections waiting on a listener.
 */
#ifndef CRIU_LAZY_FILES_UNIX_DIAG_H
#define CRIU_LAZY_FILES_UNIX_DIAG_H

#include <stdbool.h>
#include <stdint.h>

#define UNIX_DIAG_NAME_MAX 108		/* sun_path */

struct unix_diag_info {
	uint32_t ino;
	uint8_t type;			/* SOCK_STREAM, ... */
	uint8_t state;			/* TCP_ESTABLISHED, TCP_LISTEN, TCP_CLOSE */
	uint32_t peer;			/* 0: none */
	uint8_t shutdown;		/* RCV_SHUTDOWN 1 | SEND_SHUTDOWN 2 */
	uint32_t rqueue, wqueue;	/* listener: backlog now / max */
	bool has_vfs;			/* bound to a path: its inode */
	uint32_t vfs_ino, vfs_dev;
	char name[UNIX_DIAG_NAME_MAX + 1];
	unsigned int namelen;		/* 0: unbound; name[0] == 0: abstract */
	uint32_t *icons;		/* listener: peers of the embryos */
	unsigned int nr_icons;
};

/* 0, -ENOENT when the kernel knows no such socket, or -errno (logged). */
int unix_diag_get(uint32_t ino, struct unix_diag_info *out);
/* The same through @nl, a socket of sock_diag_open() */
struct nl_sock;
int unix_diag_get_on(struct nl_sock *nl, uint32_t ino, struct unix_diag_info *out);
void unix_diag_info_free(struct unix_diag_info *u);

#endif
