/*
 * The links of the tree's netns into netdev-ID.img, one net_device_entry
 * each, in ifindex order, with the link's own ipv4/ipv6 conf sysctls.
 * Restorable kinds: the loopback, and veth pairs whose two ends are both
 * in the namespace (the kernel then gives no IFLA_LINK_NETNSID), and a
 * veth whose peer is outside, named by --external veth[NAME] (CRIU's):
 * peer_nsid says so.  Every other kind is refused, naming the link and
 * the task.
 */
#include <errno.h>
#include <net/if_arp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netlink/cache.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "net/netns.h"

#include "netdev.pb-c.h"

struct netdev_one {
	NetDeviceEntry e;
	char name[32];
	uint8_t addr[32];
	struct net_conf c4, c6;
};

/* The entry's type, or -EOPNOTSUPP logged.  *nsid: a veth's peer's
 * namespace (-1: this one). */
static int link_type(const struct opts *o, struct rtnl_link *l, int task, int *type,
		     uint32_t *peer, int32_t *nsid)
{
	const char *kind = rtnl_link_get_type(l);
	const char *name = rtnl_link_get_name(l);
	int ifindex = rtnl_link_get_ifindex(l);

	*nsid = -1;
	if (rtnl_link_get_arptype(l) == ARPHRD_LOOPBACK) {
		*type = ND_TYPE__LOOPBACK;
		return 0;
	}
	if (kind && !strcmp(kind, "veth")) {
		if (!rtnl_link_get_link_netnsid(l, nsid) && !opts_ext_veth(o, name)) {
			pr_err("link %s (index %d) of the network namespace of task %d is a veth "
			       "whose peer is in another namespace: dump it with --external "
			       "veth[%s]", name, ifindex, task, name);
			return -EOPNOTSUPP;
		}
		*type = ND_TYPE__VETH;
		*peer = rtnl_link_get_link(l);
		return 0;
	}
	pr_err("link %s (index %d, kind %s) of the network namespace of task %d: not "
	       "supported (only the loopback and veth pairs inside the namespace)", name,
	       ifindex, kind ? kind : "none", task);
	return -EOPNOTSUPP;
}

static int fill_one(const struct opts *o, struct netdev_one *d, struct rtnl_link *l, int task)
{
	NetDeviceEntry *e = &d->e;
	struct nl_addr *a = rtnl_link_get_addr(l);
	char dir[64];
	uint32_t peer = 0;
	int32_t nsid;
	int type, ret;

	net_device_entry__init(e);
	ret = link_type(o, l, task, &type, &peer, &nsid);
	if (ret)
		return ret;
	e->type = type;
	e->ifindex = rtnl_link_get_ifindex(l);
	e->mtu = rtnl_link_get_mtu(l);
	e->flags = rtnl_link_get_flags(l);
	snprintf(d->name, sizeof(d->name), "%s", rtnl_link_get_name(l));
	e->name = d->name;
	if (a && nl_addr_get_len(a) && nl_addr_get_len(a) <= sizeof(d->addr)) {
		memcpy(d->addr, nl_addr_get_binary_addr(a), nl_addr_get_len(a));
		e->has_address = true;
		e->address.data = d->addr;
		e->address.len = nl_addr_get_len(a);
	}
	if (peer) {
		e->has_peer_ifindex = true;
		e->peer_ifindex = peer;
	}
	if (nsid >= 0) {	/* outside: --external veth[NAME] */
		e->has_peer_nsid = true;
		e->peer_nsid = nsid;
	}
	snprintf(dir, sizeof(dir), "ipv4/conf/%s", d->name);
	ret = net_conf_read(&d->c4, dir, net_conf4_names, net_conf4_nr);
	snprintf(dir, sizeof(dir), "ipv6/conf/%s", d->name);
	if (!ret && !access("/proc/sys/net/ipv6/conf", F_OK))
		ret = net_conf_read(&d->c6, dir, net_conf6_names, net_conf6_nr);
	e->n_conf4 = d->c4.n;
	e->conf4 = d->c4.p;
	e->n_conf6 = d->c6.n;
	e->conf6 = d->c6.p;
	return ret;
}

static int cmp_ifindex(const void *a, const void *b)
{
	const struct netdev_one *x = a, *y = b;

	return (int)x->e.ifindex - (int)y->e.ifindex;
}

int dump_netdevs(struct dump_ctx *ctx, uint32_t id, int task)
{
	struct nl_sock *nl = nl_socket_alloc();
	struct nl_cache *cache = NULL;
	struct netdev_one *devs = NULL;
	struct cr_img *img = NULL;
	struct nl_object *o;
	size_t n = 0;
	int ret;

	if (!nl)
		return -ENOMEM;
	ret = nl_connect(nl, NETLINK_ROUTE);
	if (!ret)
		ret = rtnl_link_alloc_cache(nl, AF_UNSPEC, &cache);
	if (ret) {
		pr_err("can't list the links of the network namespace of task %d: %s", task,
		       nl_geterror(ret));
		ret = -EIO;
		goto out;
	}
	devs = calloc(nl_cache_nitems(cache) + 1, sizeof(*devs));
	if (!devs) {
		ret = -ENOMEM;
		goto out;
	}
	for (o = nl_cache_get_first(cache); o && !ret; o = nl_cache_get_next(o))
		ret = fill_one(ctx->o, &devs[n++], (struct rtnl_link *)o, task);
	if (ret)
		goto out;
	qsort(devs, n, sizeof(*devs), cmp_ifindex);
	ret = dump_img_open(ctx, IMG_NETDEV, id, &img);
	for (size_t i = 0; i < n && !ret; i++) {
		pr_debug("netns %u: link %s index %u type %d mtu %u flags %#x", id, devs[i].name,
			 devs[i].e.ifindex, devs[i].e.type, devs[i].e.mtu, devs[i].e.flags);
		ret = img_write_entry(img, &devs[i].e.base);
	}
	ret = img_close_keep(img, ret);
out:
	for (size_t i = 0; devs && i < n; i++) {
		net_conf_free(&devs[i].c4);
		net_conf_free(&devs[i].c6);
	}
	free(devs);
	nl_cache_free(cache);
	nl_socket_free(nl);
	return ret;
}
