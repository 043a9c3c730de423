/*
 * What kind of socket a descriptor holds, for the refusal message: we ask
 * NETLINK_SOCK_DIAG (through libnl) for every socket of the families we
 * know, once per dump, and look the inode up.  A socket no dump lists (a
 * family without a diag module) is named by the protocol the kernel gives
 * in the "system.sockprotoname" attribute.
 */
#include <linux/inet_diag.h>
#include <linux/netlink_diag.h>
#include <linux/packet_diag.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/xattr.h>

#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

#include "common/array.h"
#include "common/log.h"
#include "dump/dump.h"

struct sock_kind {
	uint64_t ino;
	char desc[48];
};

struct sock_diag_cache {
	struct sock_kind *v;
	size_t nr, cap;
};

struct diag_query {
	struct sock_diag_cache *sk;
	int family;
	int protocol;
};

static void cache_add(struct sock_diag_cache *sk, uint64_t ino, const char *desc)
{
	if (ARRAY_GROW(sk->v, sk->cap, sk->nr + 1, 64))
		return;		/* only the message gets less precise */
	sk->v[sk->nr].ino = ino;
	snprintf(sk->v[sk->nr].desc, sizeof(sk->v[sk->nr].desc), "%s", desc);
	sk->nr++;
}

static const char *unix_type(int type)
{
	switch (type) {
	case SOCK_STREAM:	return "unix stream socket";
	case SOCK_DGRAM:	return "unix datagram socket";
	case SOCK_SEQPACKET:	return "unix seqpacket socket";
	default:		return "unix socket";
	}
}

static int diag_msg_cb(struct nl_msg *msg, void *arg)
{
	struct diag_query *q = arg;
	struct nlmsghdr *h = nlmsg_hdr(msg);
	void *data = nlmsg_data(h);
	char desc[48];

	if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY)
		return NL_OK;

	switch (q->family) {
	case AF_UNIX: {
		struct unix_diag_msg *m = data;

		if (nlmsg_datalen(h) >= (int)sizeof(*m))
			cache_add(q->sk, m->udiag_ino, unix_type(m->udiag_type));
		break;
	}
	case AF_INET:
	case AF_INET6: {
		struct inet_diag_msg *m = data;

		snprintf(desc, sizeof(desc), "%s %s socket", q->family == AF_INET ? "IPv4" : "IPv6",
			 q->protocol == IPPROTO_TCP ? "TCP" : "UDP");
		if (nlmsg_datalen(h) >= (int)sizeof(*m))
			cache_add(q->sk, m->idiag_inode, desc);
		break;
	}
	case AF_NETLINK: {
		struct netlink_diag_msg *m = data;

		snprintf(desc, sizeof(desc), "netlink socket (protocol %u)", m->ndiag_protocol);
		if (nlmsg_datalen(h) >= (int)sizeof(*m))
			cache_add(q->sk, m->ndiag_ino, desc);
		break;
	}
	case AF_PACKET: {
		struct packet_diag_msg *m = data;

		if (nlmsg_datalen(h) >= (int)sizeof(*m))
			cache_add(q->sk, m->pdiag_ino, "packet socket");
		break;
	}
	}
	return NL_OK;
}

/* One SOCK_DIAG_BY_FAMILY dump; a family the kernel can't dump is skipped. */
static void diag_dump(struct nl_sock *nl, struct diag_query *q, void *req, size_t len)
{
	struct nl_msg *msg;
	int ret;

	msg = nlmsg_alloc_simple(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP);
	if (!msg)
		return;
	if (nlmsg_append(msg, req, len, NLMSG_ALIGNTO) < 0) {
		nlmsg_free(msg);
		return;
	}
	nl_socket_modify_cb(nl, NL_CB_VALID, NL_CB_CUSTOM, diag_msg_cb, q);
	ret = nl_send_auto(nl, msg);
	nlmsg_free(msg);
	if (ret < 0) {
		pr_debug("sock_diag: can't send the request for family %d: %s", q->family,
			 nl_geterror(ret));
		return;
	}
	ret = nl_recvmsgs_default(nl);
	if (ret < 0)
		pr_debug("sock_diag: family %d/%d: %s", q->family, q->protocol, nl_geterror(ret));
}

static struct sock_diag_cache *diag_load(void)
{
	struct sock_diag_cache *sk = calloc(1, sizeof(*sk));
	struct nl_sock *nl;
	struct diag_query q = { .sk = sk };

	if (!sk)
		return NULL;
	nl = nl_socket_alloc();
	if (!nl)
		return sk;
	nl_socket_disable_auto_ack(nl);
	if (nl_connect(nl, NETLINK_SOCK_DIAG) < 0) {
		pr_debug("sock_diag: can't connect");
		nl_socket_free(nl);
		return sk;
	}

	{
		struct unix_diag_req r = {
			.sdiag_family = AF_UNIX, .udiag_states = ~0u,
		};

		q.family = AF_UNIX;
		q.protocol = 0;
		diag_dump(nl, &q, &r, sizeof(r));
	}
	for (int fam = 0; fam < 2; fam++) {
		for (int pi = 0; pi < 2; pi++) {
			struct inet_diag_req_v2 r = {
				.sdiag_family = fam ? AF_INET6 : AF_INET,
				.sdiag_protocol = pi ? IPPROTO_UDP : IPPROTO_TCP,
				.idiag_states = ~0u,
			};

			q.family = r.sdiag_family;
			q.protocol = r.sdiag_protocol;
			diag_dump(nl, &q, &r, sizeof(r));
		}
	}
	{
		struct netlink_diag_req r = {
			.sdiag_family = AF_NETLINK, .sdiag_protocol = NDIAG_PROTO_ALL,
		};

		q.family = AF_NETLINK;
		q.protocol = 0;
		diag_dump(nl, &q, &r, sizeof(r));
	}
	{
		struct packet_diag_req r = { .sdiag_family = AF_PACKET };

		q.family = AF_PACKET;
		q.protocol = 0;
		diag_dump(nl, &q, &r, sizeof(r));
	}
	nl_socket_free(nl);
	pr_debug("sock_diag: %zu sockets known", sk->nr);
	return sk;
}

int dump_sock_describe(struct dump_ctx *ctx, struct dump_task *t, int fd, uint64_t ino,
		       char *buf, size_t size)
{
	char path[64], proto[32];
	ssize_t n;

	if (!ctx->sk) {
		ctx->sk = diag_load();
		if (!ctx->sk)
			return -ENOMEM;
	}
	for (size_t i = 0; i < ctx->sk->nr; i++) {
		if (ctx->sk->v[i].ino == ino) {
			snprintf(buf, size, "%s", ctx->sk->v[i].desc);
			return 0;
		}
	}
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", t->pid, fd);
	n = getxattr(path, "system.sockprotoname", proto, sizeof(proto) - 1);
	if (n > 0) {
		proto[n] = '\0';
		snprintf(buf, size, "%s socket", proto);
	} else {
		snprintf(buf, size, "socket");
	}
	return 0;
}

void dump_sock_diag_free(struct sock_diag_cache *sk)
{
	if (!sk)
		return;
	free(sk->v);
	free(sk);
}
