#include <errno.h>
#include <linux/sock_diag.h>

#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

#define LOG_PREFIX "sock_diag: "
#include "common/log.h"
#include "files/sock-diag.h"

int sock_diag_query(const void *req, size_t len, int nlflags, bool ack,
		    nl_recvmsg_msg_cb_t cb, void *arg, int *nl_err)
{
	struct nl_sock *nl;
	struct nl_msg *msg;
	int ret;

	*nl_err = 0;
	nl = nl_socket_alloc();
	if (!nl)
		return -ENOMEM;
	if (!ack)
		nl_socket_disable_auto_ack(nl);
	ret = nl_connect(nl, NETLINK_SOCK_DIAG);
	if (ret < 0) {
		pr_err("can't open a NETLINK_SOCK_DIAG socket: %s", nl_geterror(ret));
		ret = -EPROTONOSUPPORT;
		goto out;
	}
	msg = nlmsg_alloc_simple(SOCK_DIAG_BY_FAMILY, nlflags);
	if (!msg || nlmsg_append(msg, (void *)req, len, NLMSG_ALIGNTO) < 0) {
		nlmsg_free(msg);
		ret = -ENOMEM;
		goto out;
	}
	nl_socket_modify_cb(nl, NL_CB_VALID, NL_CB_CUSTOM, cb, arg);
	ret = nl_send_auto(nl, msg);
	nlmsg_free(msg);
	if (ret >= 0)
		ret = nl_recvmsgs_default(nl);
	if (ret < 0) {
		*nl_err = ret;
		ret = -EIO;
	} else {
		ret = 0;
	}
out:
	nl_socket_free(nl);
	return ret;
}
