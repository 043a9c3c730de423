#include <errno.h>
#include <linux/sock_diag.h>
#include <string.h>

#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

#define LOG_PREFIX "sock_diag: "
#include "common/log.h"
#include "files/sock-diag.h"

struct nl_sock *sock_diag_open(void)
{
	struct nl_sock *nl = nl_socket_alloc();
	int ret;

	if (!nl) {
		pr_err("can't open a NETLINK_SOCK_DIAG socket: out of memory");
		return NULL;
	}
	ret = nl_connect(nl, NETLINK_SOCK_DIAG);
	if (ret < 0) {
		pr_err("can't open a NETLINK_SOCK_DIAG socket: %s", nl_geterror(ret));
		nl_socket_free(nl);
		return NULL;
	}
	/* no acknowledgement: one that came apart from its reply would be
	 * the next query's first read, and that query would end on it */
	nl_socket_disable_auto_ack(nl);
	return nl;
}

void sock_diag_close(struct nl_sock *nl)
{
	if (nl)
		nl_socket_free(nl);
}

int sock_diag_query_on(struct nl_sock *nl, const void *req, size_t len, int nlflags,
		       nl_recvmsg_msg_cb_t cb, void *arg, int *nl_err)
{
	struct nl_msg *msg;
	int ret;

	*nl_err = 0;
	msg = nlmsg_alloc_simple(SOCK_DIAG_BY_FAMILY, nlflags);
	if (!msg || nlmsg_append(msg, (void *)req, len, NLMSG_ALIGNTO) < 0) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	nl_socket_modify_cb(nl, NL_CB_VALID, NL_CB_CUSTOM, cb, arg);
	ret = nl_send_auto(nl, msg);
	nlmsg_free(msg);
	if (ret >= 0)
		ret = nl_recvmsgs_default(nl);
	if (ret < 0) {
		*nl_err = ret;
		return -EIO;
	}
	return 0;
}

int sock_diag_query(const void *req, size_t len, int nlflags, bool ack,
		    nl_recvmsg_msg_cb_t cb, void *arg, int *nl_err)
{
	struct nl_sock *nl;
	int ret;

	*nl_err = 0;
	nl = sock_diag_open();
	if (!nl)
		return -EPROTONOSUPPORT;
	if (ack)
		nl_socket_enable_auto_ack(nl);
	ret = sock_diag_query_on(nl, req, len, nlflags, cb, arg, nl_err);
	sock_diag_close(nl);
	return ret;
}

struct find_state {
	const struct sock_diag_search *s;
	uint32_t ino;
	bool found;
};

static int find_cb(struct nl_msg *msg, void *arg)
{
	struct find_state *f = arg;
	struct nlmsghdr *h = nlmsg_hdr(msg);
	struct nlattr *tb[SOCK_DIAG_ATTR_MAX + 1];
	const char *m;
	uint32_t ino;

	if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || nlmsg_datalen(h) < (int)f->s->msg_size)
		return NL_OK;
	m = nlmsg_data(h);
	memcpy(&ino, m + f->s->ino_off, sizeof(ino));
	if (ino != f->ino)
		return NL_OK;
	if (nlmsg_parse(h, f->s->msg_size, tb, f->s->attr_max, NULL) < 0)
		memset(tb, 0, sizeof(tb));
	f->s->take(m, tb, f->s->arg);
	f->found = true;
	return NL_OK;
}

int sock_diag_find(const void *req, size_t len, uint32_t ino, const struct sock_diag_search *s)
{
	struct find_state f = { .s = s, .ino = ino };
	int ret, nl_err;

	if (s->attr_max > SOCK_DIAG_ATTR_MAX)
		return -E2BIG;
	ret = sock_diag_query(req, len, NLM_F_REQUEST | NLM_F_DUMP, false, find_cb, &f, &nl_err);
	if (ret == -EIO)
		pr_err("socket inode %u: the sock_diag dump of %s failed: %s", ino, s->what,
		       nl_geterror(nl_err));
	if (ret)
		return ret;
	return f.found ? 0 : -ENOENT;
}
