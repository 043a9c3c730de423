/*
 * What the kernel says about one TCP or UDP socket through
 * NETLINK_SOCK_DIAG (INET_DIAG): its state, queues (a listener's backlog
 * and waiting connections) and shutdown state.
 */
#ifndef CRIU_LAZY_FILES_INET_DIAG_H
#define CRIU_LAZY_FILES_INET_DIAG_H

#include <stdint.h>

struct inet_diag_info {
	uint32_t ino;
	uint8_t state;			/* TCP_* */
	uint32_t rqueue, wqueue;	/* listener: connections waiting / backlog */
	uint8_t shutdown;
	uint32_t dst[4];		/* the peer's address (network order) and */
	uint16_t dport;			/* port: what getpeername() hides in SYN_SENT */
};

/* 0, -ENOENT when no socket of @family/@protocol has inode @ino, or -errno
 * (logged). */
int inet_diag_get(int family, int protocol, uint32_t ino, struct inet_diag_info *out);

#endif
