/*
 * What the kernel says about one netlink socket through NETLINK_SOCK_DIAG
 * (NETLINK_DIAG): its protocol, state, port id, peer and multicast groups.
 */
#ifndef CRIU_LAZY_FILES_NETLINK_DIAG_H
#define CRIU_LAZY_FILES_NETLINK_DIAG_H

#include <stdint.h>

#define NETLINK_DIAG_GROUP_WORDS 32	/* 1024 groups, in 32-bit words */

struct netlink_diag_info {
	uint32_t ino;
	uint8_t protocol, state;
	uint32_t portid, dst_portid, dst_group;
	uint32_t groups[NETLINK_DIAG_GROUP_WORDS];
	unsigned int nr_groups;		/* words up to the last one set */
	uint32_t flags;			/* NDIAG_FLAG_* */
	uint32_t rmem;			/* bytes queued (SK_MEMINFO_RMEM_ALLOC) */
};

/* 0, -ENOENT when no netlink socket of @protocol has inode @ino, or
 * -errno (logged). */
int netlink_diag_get(int protocol, uint32_t ino, struct netlink_diag_info *out);

#endif
