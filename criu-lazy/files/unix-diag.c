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

#define LOG_PREFIX "unix_diag: "
#include "common/log.h"
#include "files/sock-diag.h"
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
	return unix_diag_get_on(NULL, ino, u);
}

int unix_diag_get_on(struct nl_sock *nl, uint32_t ino, struct unix_diag_info *u)
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
	int ret, nl_err;

	memset(u, 0, sizeof(*u));
	u->ino = ino;
	ret = nl ? sock_diag_query_on(nl, &req, sizeof(req), NLM_F_REQUEST, reply_cb, &r, &nl_err) :
		   sock_diag_query(&req, sizeof(req), NLM_F_REQUEST, true, reply_cb, &r, &nl_err);
	if (ret == -EIO) {
		/* an exact lookup of an inode the kernel does not know: ENOENT */
		if (nl_err == -NLE_OBJ_NOTFOUND)
			ret = -ENOENT;
		else
			pr_err("unix socket inode %u: the sock_diag request failed", ino);
	}
	if (!ret)
		ret = r.err ? r.err : (r.found ? 0 : -ENOENT);
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
