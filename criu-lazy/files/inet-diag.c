/*
 * INET_DIAG has no lookup by inode: one dump of the family and protocol
 * through libnl, searched for the socket whose inode we want
 * (sock_diag_find()).
 */
#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <netlink/attr.h>

#include "files/inet-diag.h"
#include "files/sock-diag.h"

static void take(const void *msg, struct nlattr **tb, void *arg)
{
	const struct inet_diag_msg *m = msg;
	struct inet_diag_info *d = arg;

	d->state = m->idiag_state;
	d->rqueue = m->idiag_rqueue;
	d->wqueue = m->idiag_wqueue;
	memcpy(d->dst, m->id.idiag_dst, sizeof(d->dst));
	d->dport = ntohs(m->id.idiag_dport);
	if (tb[INET_DIAG_SHUTDOWN])
		d->shutdown = nla_get_u8(tb[INET_DIAG_SHUTDOWN]);
}

int inet_diag_get(int family, int protocol, uint32_t ino, struct inet_diag_info *d)
{
	struct inet_diag_req_v2 req = {
		.sdiag_family = family,
		.sdiag_protocol = protocol,
		.idiag_states = ~0u,
	};
	char what[48];
	const struct sock_diag_search s = {
		.msg_size = sizeof(struct inet_diag_msg),
		.ino_off = offsetof(struct inet_diag_msg, idiag_inode),
		.attr_max = INET_DIAG_MAX,
		.what = what,
		.take = take,
		.arg = d,
	};

	memset(d, 0, sizeof(*d));
	d->ino = ino;
	snprintf(what, sizeof(what), "family %d protocol %d", family, protocol);
	return sock_diag_find(&req, sizeof(req), ino, &s);
}
