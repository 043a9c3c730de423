/*
 * NETLINK_DIAG has no lookup by inode: one dump of the protocol through
 * libnl (sock-diag.c), keeping the socket whose inode we want.
 */
#include <errno.h>
#include <linux/netlink_diag.h>
#include <linux/sock_diag.h>
#include <string.h>
#include <sys/socket.h>

#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>

#define LOG_PREFIX "netlink_diag: "
#include "common/log.h"
#include "files/netlink-diag.h"
#include "files/sock-diag.h"

struct diag_reply {
	struct netlink_diag_info *d;
	int found;
};

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

static int reply_cb(struct nl_msg *msg, void *arg)
{
	struct diag_reply *r = arg;
	struct nlmsghdr *h = nlmsg_hdr(msg);
	struct nlattr *tb[NETLINK_DIAG_MAX + 1];
	struct netlink_diag_msg *m;

	if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || nlmsg_datalen(h) < (int)sizeof(*m))
		return NL_OK;
	m = nlmsg_data(h);
	if (m->ndiag_ino != r->d->ino)
		return NL_OK;
	r->d->protocol = m->ndiag_protocol;
	r->d->state = m->ndiag_state;
	r->d->portid = m->ndiag_portid;
	r->d->dst_portid = m->ndiag_dst_portid;
	r->d->dst_group = m->ndiag_dst_group;
	if (nlmsg_parse(h, sizeof(*m), tb, NETLINK_DIAG_MAX, NULL) >= 0) {
		if (tb[NETLINK_DIAG_GROUPS])
			parse_groups(tb[NETLINK_DIAG_GROUPS], r->d);
		if (tb[NETLINK_DIAG_FLAGS])
			r->d->flags = nla_get_u32(tb[NETLINK_DIAG_FLAGS]);
		if (tb[NETLINK_DIAG_MEMINFO] &&
		    nla_len(tb[NETLINK_DIAG_MEMINFO]) > (int)(SK_MEMINFO_RMEM_ALLOC * sizeof(uint32_t)))
			r->d->rmem = ((uint32_t *)nla_data(tb[NETLINK_DIAG_MEMINFO]))[SK_MEMINFO_RMEM_ALLOC];
	}
	r->found = 1;
	return NL_OK;
}

int netlink_diag_get(int protocol, uint32_t ino, struct netlink_diag_info *d)
{
	struct netlink_diag_req req = {
		.sdiag_family = AF_NETLINK,
		.sdiag_protocol = protocol,
		.ndiag_ino = ino,
		.ndiag_show = NDIAG_SHOW_GROUPS | NDIAG_SHOW_FLAGS | NDIAG_SHOW_MEMINFO,
	};
	struct diag_reply r = { .d = d };
	int ret, nl_err;

	memset(d, 0, sizeof(*d));
	d->ino = ino;
	ret = sock_diag_query(&req, sizeof(req), NLM_F_REQUEST | NLM_F_DUMP, false, reply_cb, &r,
			      &nl_err);
	if (ret == -EIO)
		pr_err("socket inode %u: the sock_diag dump of netlink protocol %d failed: %s",
		       ino, protocol, nl_geterror(nl_err));
	if (ret)
		return ret;
	return r.found ? 0 : -ENOENT;
}
