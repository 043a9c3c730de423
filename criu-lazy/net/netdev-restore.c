/*
 * The links of netdev-ID.img, made again in the new netns (ours by now):
 *   1. each link, with its ifindex (ifaddr and route images name links by
 *      index), MTU and address, down: the loopback is there already; a
 *      veth pair inside the namespace is made once, both ends together,
 *      at the first end's entry; a veth whose peer was outside, with its
 *      peer in our own netns under the name --external veth[IN]:OUT gives;
 *   2. each link's ipv4/ipv6 conf sysctls (the ones differing from the
 *      namespace's defaults, restored just before);
 *   3. the flags (IFF_UP...), once every link and its sysctls are there.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>

#define LOG_PREFIX ""
#include "common/array.h"
#include "common/log.h"
#include "images/image.h"
#include "net/netns.h"
#include "options.h"

#include "netdev.pb-c.h"

/* the flags a link's owner sets; the others are the kernel's state */
#define LINK_FLAGS (IFF_UP | IFF_NOARP | IFF_PROMISC | IFF_ALLMULTI | IFF_MULTICAST | \
		    IFF_DEBUG | IFF_DYNAMIC)

struct netdevs {
	NetDeviceEntry **v;
	size_t n, cap;
};

static int load(int dirfd, uint32_t id, struct netdevs *d)
{
	struct cr_img *img;
	ProtobufCMessage *m;
	int ret;

	ret = img_open_existing(dirfd, IMG_NETDEV, id, &img);
	if (ret)
		return ret;
	while ((ret = img_read_entry(img, &net_device_entry__descriptor, &m)) == 1) {
		if (ARRAY_GROW(d->v, d->cap, d->n + 1, 8)) {
			protobuf_c_message_free_unpacked(m, NULL);
			ret = -ENOMEM;
			break;
		}
		d->v[d->n++] = (NetDeviceEntry *)m;
	}
	img_close(img);
	return ret;
}

static void set_basics(struct rtnl_link *l, const NetDeviceEntry *e, bool with_index)
{
	if (with_index)
		rtnl_link_set_ifindex(l, e->ifindex);
	rtnl_link_set_name(l, e->name);
	rtnl_link_set_mtu(l, e->mtu);
	if (e->has_address && e->address.len) {
		struct nl_addr *a = nl_addr_build(AF_LLC, e->address.data, e->address.len);

		if (a) {
			rtnl_link_set_addr(l, a);
			nl_addr_put(a);
		}
	}
}

static const NetDeviceEntry *find(const struct netdevs *d, uint32_t ifindex)
{
	for (size_t i = 0; i < d->n; i++)
		if (d->v[i]->ifindex == ifindex)
			return d->v[i];
	return NULL;
}

/* A change of the existing link @e->ifindex: basics and/or flags. */
static int change(struct nl_sock *nl, const NetDeviceEntry *e, bool basics, bool flags)
{
	struct rtnl_link *orig = NULL, *ch = rtnl_link_alloc();
	int ret;

	if (!ch)
		return -ENOMEM;
	ret = rtnl_link_get_kernel(nl, e->ifindex, NULL, &orig);
	if (!ret) {
		if (basics) {
			rtnl_link_set_mtu(ch, e->mtu);
			if (e->type != ND_TYPE__LOOPBACK)
				set_basics(ch, e, false);
		}
		if (flags) {
			rtnl_link_set_flags(ch, e->flags & LINK_FLAGS);
			rtnl_link_unset_flags(ch, ~e->flags & LINK_FLAGS);
		}
		ret = rtnl_link_change(nl, orig, ch, 0);
	}
	if (ret)
		pr_err("netdev: can't set link %s (index %u) back: %s", e->name, e->ifindex,
		       nl_geterror(ret));
	rtnl_link_put(ch);
	if (orig)
		rtnl_link_put(orig);
	return ret ? -EIO : 0;
}

/*
 * A veth whose peer was outside the namespace (--external veth[IN]:OUT):
 * made here with its index, its peer named OUT in the restore's own netns
 * (@own_ns, IFLA_NET_NS_FD), then brought up there (as the end a host
 * gives a container is).
 */
/* Link @name of the netns @ns_fd up, through a socket of that netns. */
static int link_up_in(int ns_fd, const char *name)
{
	int here = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC), ret = -EIO;
	struct rtnl_link *orig = NULL, *ch = NULL;
	struct nl_sock *nl = NULL;

	if (here < 0 || setns(ns_fd, CLONE_NEWNET)) {
		pr_perror("netdev: can't enter our own network namespace for %s", name);
		goto out;
	}
	nl = nl_socket_alloc();
	if (nl && nl_connect(nl, NETLINK_ROUTE)) {
		nl_socket_free(nl);
		nl = NULL;
	}
	if (setns(here, CLONE_NEWNET)) {
		pr_perror("netdev: can't go back to the tree's network namespace");
		goto out;
	}
	ch = rtnl_link_alloc();
	if (!nl || !ch || rtnl_link_get_kernel(nl, 0, name, &orig)) {
		pr_err("netdev: can't find %s in our own network namespace", name);
		goto out;
	}
	rtnl_link_set_flags(ch, IFF_UP);
	ret = rtnl_link_change(nl, orig, ch, 0);
	if (ret)
		pr_err("netdev: can't bring %s up: %s", name, nl_geterror(ret));
	ret = ret ? -EIO : 0;
out:
	if (orig)
		rtnl_link_put(orig);
	if (ch)
		rtnl_link_put(ch);
	if (nl)
		nl_socket_free(nl);
	if (here >= 0)
		close(here);
	return ret;
}

static int make_ext_veth(struct nl_sock *nl, const struct opts *o, int own_ns,
			 const NetDeviceEntry *e)
{
	const struct ext_veth *x = opts_ext_veth(o, e->name);
	struct rtnl_link *l, *peer;
	int ret;

	if (!x || !x->out[0]) {
		pr_err("netdev: veth %s (index %u) had its peer outside the namespace: restore it "
		       "with --external veth[%s]:OUTSIDE, OUTSIDE the name its peer gets here",
		       e->name, e->ifindex, e->name);
		return -EINVAL;
	}
	l = rtnl_link_veth_alloc();
	if (!l)
		return -ENOMEM;
	peer = rtnl_link_veth_get_peer(l);
	set_basics(l, e, true);
	rtnl_link_set_name(peer, x->out);
	rtnl_link_set_mtu(peer, e->mtu);
	rtnl_link_set_ns_fd(peer, own_ns);
	rtnl_link_put(peer);
	ret = rtnl_link_add(nl, l, NLM_F_CREATE | NLM_F_EXCL);
	if (ret)
		pr_err("netdev: can't make the veth %s (index %u) with its peer %s outside: %s",
		       e->name, e->ifindex, x->out, nl_geterror(ret));
	rtnl_link_veth_release(l);
	return ret ? -EIO : link_up_in(own_ns, x->out);
}

static int make_veth(struct nl_sock *nl, const struct netdevs *d, const NetDeviceEntry *e)
{
	const NetDeviceEntry *pe = e->has_peer_ifindex ? find(d, e->peer_ifindex) : NULL;
	struct rtnl_link *l, *peer;
	int ret;

	if (!pe || pe->type != ND_TYPE__VETH) {
		pr_err("netdev: veth %s (index %u): its peer %u is no veth of the namespace's "
		       "images", e->name, e->ifindex, e->peer_ifindex);
		return -EINVAL;
	}
	if (pe->ifindex < e->ifindex)
		return 0;	/* made with its peer */
	l = rtnl_link_veth_alloc();
	if (!l)
		return -ENOMEM;
	peer = rtnl_link_veth_get_peer(l);
	set_basics(l, e, true);
	set_basics(peer, pe, true);
	rtnl_link_put(peer);
	ret = rtnl_link_add(nl, l, NLM_F_CREATE | NLM_F_EXCL);
	if (ret)
		pr_err("netdev: can't make the veth pair %s (index %u) / %s (index %u): %s",
		       e->name, e->ifindex, pe->name, pe->ifindex, nl_geterror(ret));
	rtnl_link_veth_release(l);
	return ret ? -EIO : 0;
}

static int dev_conf(const NetDeviceEntry *e, SysctlEntry **def4, size_t ndef4,
		    SysctlEntry **def6, size_t ndef6)
{
	char dir[64];
	int ret;

	snprintf(dir, sizeof(dir), "ipv4/conf/%s", e->name);
	ret = net_conf_write(dir, net_conf4_names, net_conf4_nr, e->conf4, e->n_conf4,
			     def4, ndef4);
	snprintf(dir, sizeof(dir), "ipv6/conf/%s", e->name);
	if (!ret && e->n_conf6)
		ret = net_conf_write(dir, net_conf6_names, net_conf6_nr, e->conf6, e->n_conf6,
				     def6, ndef6);
	return ret;
}

int rst_netdevs(int dirfd, uint32_t id, struct nl_sock *nl, const struct rst_netdev_ctx *x)
{
	SysctlEntry **def4 = x->def4, **def6 = x->def6;
	size_t ndef4 = x->ndef4, ndef6 = x->ndef6;
	struct netdevs d = { 0 };
	int ret = load(dirfd, id, &d);

	for (size_t i = 0; i < d.n && !ret; i++) {
		const NetDeviceEntry *e = d.v[i];

		if (e->type == ND_TYPE__LOOPBACK)
			ret = change(nl, e, true, false);
		else if (e->type == ND_TYPE__VETH && e->has_peer_nsid)
			ret = make_ext_veth(nl, x->o, x->own_ns, e);
		else if (e->type == ND_TYPE__VETH)
			ret = make_veth(nl, &d, e);
		else {
			pr_err("netdev-%u.img: link %s (index %u) is of type %d, which is not "
			       "supported", id, e->name, e->ifindex, e->type);
			ret = -EOPNOTSUPP;
		}
	}
	for (size_t i = 0; i < d.n && !ret; i++)
		ret = dev_conf(d.v[i], def4, ndef4, def6, ndef6);
	for (size_t i = 0; i < d.n && !ret; i++)
		ret = change(nl, d.v[i], false, true);
	for (size_t i = 0; i < d.n; i++)
		protobuf_c_message_free_unpacked(&d.v[i]->base, NULL);
	free(d.v);
	return ret;
}
