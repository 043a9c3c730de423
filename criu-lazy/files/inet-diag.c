/*
 * INET_DIAG has no lookup by inode: one dump of the family and protocol
 * through libnl, keeping the socket whose inode we want.
 */
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/sock_diag.h>
#include <string.h>
#include <sys/socket.h>

#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

#define LOG_PREFIX "inet_diag: "
#include "common/log.h"
#include "files/inet-diag.h"

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
	struct nl_sock *nl;
	struct nl_msg *msg;
	int ret;

	memset(d, 0, sizeof(*d));
	d->ino = ino;
	nl = nl_socket_alloc();
	if (!nl)
		return -ENOMEM;
	nl_socket_disable_auto_ack(nl);
	ret = nl_connect(nl, NETLINK_SOCK_DIAG);
	if (ret < 0) {
		pr_err("can't open a NETLINK_SOCK_DIAG socket: %s", nl_geterror(ret));
		ret = -EPROTONOSUPPORT;
		goto out;
	}
	msg = nlmsg_alloc_simple(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP);
	if (!msg || nlmsg_append(msg, &req, sizeof(req), NLMSG_ALIGNTO) < 0) {
		nlmsg_free(msg);
		ret = -ENOMEM;
		goto out;
	}
	nl_socket_modify_cb(nl, NL_CB_VALID, NL_CB_CUSTOM, reply_cb, &r);
	ret = nl_send_auto(nl, msg);
	nlmsg_free(msg);
	if (ret >= 0)
		ret = nl_recvmsgs_default(nl);
	if (ret < 0) {
		pr_err("socket inode %u: the sock_diag dump of family %d protocol %d failed: %s",
		       ino, family, protocol, nl_geterror(ret));
		ret = -EIO;
		goto out;
	}
	ret = r.found ? 0 : -ENOENT;
out:
	nl_socket_free(nl);
	return ret;
}
