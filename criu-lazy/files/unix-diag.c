/*
 * One UNIX_DIAG request per socket, by inode (an exact lookup, no dump of
 * every socket of the machine), through libnl.
 */
#include <errno.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

#define LOG_PREFIX "unix_diag: "
#include "common/log.h"
#include "files/unix-diag.h"

struct diag_reply {
	struct unix_diag_info *u;
	bool found;
	int err;
};

static int parse_attrs(struct nlattr **tb, struct unix_diag_info *u)
{
	if (tb[UNIX_DIAG_NAME]) {
		unsigned int len = nla_len(tb[UNIX_DIAG_NAME]);

		if (len > UNIX_DIAG_NAME_MAX)
			len = UNIX_DIAG_NAME_MAX;
		memcpy(u->name, nla_data(tb[UNIX_DIAG_NAME]), len);
		u->name[len] = '\0';
		u->namelen = len;
	}
	if (tb[UNIX_DIAG_PEER])
		u->peer = nla_get_u32(tb[UNIX_DIAG_PEER]);
	if (tb[UNIX_DIAG_SHUTDOWN])
		u->shutdown = nla_get_u8(tb[UNIX_DIAG_SHUTDOWN]);
	if (tb[UNIX_DIAG_RQLEN] && nla_len(tb[UNIX_DIAG_RQLEN]) >= (int)sizeof(struct unix_diag_rqlen)) {
		struct unix_diag_rqlen *rq = nla_data(tb[UNIX_DIAG_RQLEN]);

		u->rqueue = rq->udiag_rqueue;
		u->wqueue = rq->udiag_wqueue;
	}
	if (tb[UNIX_DIAG_VFS] && nla_len(tb[UNIX_DIAG_VFS]) >= (int)sizeof(struct unix_diag_vfs)) {
		struct unix_diag_vfs *v = nla_data(tb[UNIX_DIAG_VFS]);

		u->has_vfs = true;
		u->vfs_ino = v->udiag_vfs_ino;
		u->vfs_dev = v->udiag_vfs_dev;
	}
	if (tb[UNIX_DIAG_ICONS]) {
		unsigned int n = nla_len(tb[UNIX_DIAG_ICONS]) / sizeof(uint32_t);

		u->icons = malloc((n ? n : 1) * sizeof(uint32_t));
		if (!u->icons)
			return -ENOMEM;
		memcpy(u->icons, nla_data(tb[UNIX_DIAG_ICONS]), n * sizeof(uint32_t));
		u->nr_icons = n;
	}
	return 0;
}

static int reply_cb(struct nl_msg *msg, void *arg)
{
	struct diag_reply *r = arg;
	struct nlmsghdr *h = nlmsg_hdr(msg);
	struct nlattr *tb[UNIX_DIAG_MAX + 1];
	struct unix_diag_msg *m;

	if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || nlmsg_datalen(h) < (int)sizeof(*m))
		return NL_OK;
	m = nlmsg_data(h);
	if (m->udiag_ino != r->u->ino)
		return NL_OK;
	r->u->type = m->udiag_type;
	r->u->state = m->udiag_state;
	if (nlmsg_parse(h, sizeof(*m), tb, UNIX_DIAG_MAX, NULL) < 0) {
		r->err = -EBADMSG;
		return NL_STOP;
	}
	r->err = parse_attrs(tb, r->u);
	r->found = true;
	return NL_OK;
}

int unix_diag_get(uint32_t ino, struct unix_diag_info *u)
{
	struct unix_diag_req req = {
		.sdiag_family = AF_UNIX,
		.udiag_ino = ino,
		.udiag_states = ~0u,
		.udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER |
			      UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN,
		.udiag_cookie = { ~0u, ~0u },	/* INET_DIAG_NOCOOKIE: any */
	};
	struct diag_reply r = { .u = u };
	struct nl_sock *nl;
	struct nl_msg *msg;
	int ret;

	memset(u, 0, sizeof(*u));
	u->ino = ino;
	nl = nl_socket_alloc();
	if (!nl)
		return -ENOMEM;
	ret = nl_connect(nl, NETLINK_SOCK_DIAG);
	if (ret < 0) {
		pr_err("can't open a NETLINK_SOCK_DIAG socket: %s", nl_geterror(ret));
		ret = -EPROTONOSUPPORT;
		goto out;
	}
	msg = nlmsg_alloc_simple(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST);
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
		/* an exact lookup of an inode the kernel does not know: ENOENT */
		ret = ret == -NLE_OBJ_NOTFOUND ? -ENOENT : -EIO;
		if (ret == -EIO)
			pr_err("unix socket inode %u: the sock_diag request failed", ino);
		goto out;
	}
	ret = r.err ? r.err : (r.found ? 0 : -ENOENT);
out:
	nl_socket_free(nl);
	if (ret)
		unix_diag_info_free(u);
	return ret;
}

void unix_diag_info_free(struct unix_diag_info *u)
{
	free(u->icons);
	u->icons = NULL;
	u->nr_icons = 0;
}
