/*
 * NETLINK_DIAG has no lookup by inode: one dump of the protocol through
 * libnl, searched for the socket whose inode we want (sock_diag_find()).
 */
#include <linux/netlink_diag.h>
#include <linux/sock_diag.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <netlink/attr.h>

#include "files/netlink-diag.h"
#include "files/sock-diag.h"

static void parse_groups(const struct nlattr *a, struct netlink_diag_info *d)
{
	/* an array of unsigned long: on x86-64 words 2k and 2k+1 of 32 bits */
	unsigned int n = nla_len(a) / sizeof(uint32_t);

	if (n > NETLINK_DIAG_GROUP_WORDS)
		n = NETLINK_DIAG_GROUP_WORDS;
	memcpy(d->groups, nla_data(a), n * sizeof(uint32_t));
	while (n && !d->groups[n - 1])
		n--;
	d->nr_groups = n;
}

static void take(const void *msg, struct nlattr **tb, void *arg)
{
	const struct netlink_diag_msg *m = msg;
	struct netlink_diag_info *d = arg;

	d->protocol = m->ndiag_protocol;
	d->state = m->ndiag_state;
	d->portid = m->ndiag_portid;
	d->dst_portid = m->ndiag_dst_portid;
	d->dst_group = m->ndiag_dst_group;
	if (tb[NETLINK_DIAG_GROUPS])
		parse_groups(tb[NETLINK_DIAG_GROUPS], d);
	if (tb[NETLINK_DIAG_FLAGS])
		d->flags = nla_get_u32(tb[NETLINK_DIAG_FLAGS]);
	if (tb[NETLINK_DIAG_MEMINFO] &&
	    nla_len(tb[NETLINK_DIAG_MEMINFO]) > (int)(SK_MEMINFO_RMEM_ALLOC * sizeof(uint32_t)))
		d->rmem = ((uint32_t *)nla_data(tb[NETLINK_DIAG_MEMINFO]))[SK_MEMINFO_RMEM_ALLOC];
}

int netlink_diag_get(int protocol, uint32_t ino, struct netlink_diag_info *d)
{
	struct netlink_diag_req req = {
		.sdiag_family = AF_NETLINK,
		.sdiag_protocol = protocol,
		.ndiag_ino = ino,
		.ndiag_show = NDIAG_SHOW_GROUPS | NDIAG_SHOW_FLAGS | NDIAG_SHOW_MEMINFO,
	};
	char what[48];
	const struct sock_diag_search s = {
		.msg_size = sizeof(struct netlink_diag_msg),
		.ino_off = offsetof(struct netlink_diag_msg, ndiag_ino),
		.attr_max = NETLINK_DIAG_MAX,
		.what = what,
		.take = take,
		.arg = d,
	};

	memset(d, 0, sizeof(*d));
	d->ino = ino;
	snprintf(what, sizeof(what), "netlink protocol %d", protocol);
	return sock_diag_find(&req, sizeof(req), ino, &s);
}
