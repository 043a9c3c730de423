/*
 * INET_DIAG has no lookup by inode: one dump of the family and protocol
 * through libnl, keeping the socket whose inode we want.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/sock_diag.h>
#include <string.h>
#include <sys/socket.h>

#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>

#define LOG_PREFIX "inet_diag: "
#include "common/log.h"
#include "files/inet-diag.h"
#include "files/sock-diag.h"

struct diag_reply {
	struct inet_diag_info *d;
	int found;
};

static int reply_cb(struct nl_msg *msg, void *arg)
{
	struct diag_reply *r = arg;
	struct nlmsghdr *h = nlmsg_hdr(msg);
	struct nlattr *tb[INET_DIAG_MAX + 1];
	struct inet_diag_msg *m;

	if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || nlmsg_datalen(h) < (int)sizeof(*m))
		return NL_OK;
	m = nlmsg_data(h);
	if (m->idiag_inode != r->d->ino)
		return NL_OK;
	r->d->state = m->idiag_state;
	r->d->rqueue = m->idiag_rqueue;
	r->d->wqueue = m->idiag_wqueue;
	memcpy(r->d->dst, m->id.idiag_dst, sizeof(r->d->dst));
	r->d->dport = ntohs(m->id.idiag_dport);
	if (nlmsg_parse(h, sizeof(*m), tb, INET_DIAG_MAX, NULL) >= 0 && tb[INET_DIAG_SHUTDOWN])
		r->d->shutdown = nla_get_u8(tb[INET_DIAG_SHUTDOWN]);
	r->found = 1;
	return NL_OK;
}

int inet_diag_get(int family, int protocol, uint32_t ino, struct inet_diag_info *d)
{
	struct inet_diag_req_v2 req = {
		.sdiag_family = family,
		.sdiag_protocol = protocol,
		.idiag_states = ~0u,
	};
	struct diag_reply r = { .d = d };
	int ret, nl_err;

	memset(d, 0, sizeof(*d));
	d->ino = ino;
	ret = sock_diag_query(&req, sizeof(req), NLM_F_REQUEST | NLM_F_DUMP, false, reply_cb, &r,
			      &nl_err);
	if (ret == -EIO)
		pr_err("socket inode %u: the sock_diag dump of family %d protocol %d failed: %s",
		       ino, family, protocol, nl_geterror(nl_err));
	if (ret)
		return ret;
	return r.found ? 0 : -ENOENT;
}
