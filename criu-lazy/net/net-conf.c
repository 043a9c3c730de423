/*
 * The sysctls of a network namespace and of its links that CRIU keeps in
 * netns-ID.img and netdev-ID.img: lists of sysctl_entry whose position
 * names the sysctl (CRIU's devconfs4/devconfs6 order, which images of
 * both tools must share).  Read and written through /proc/sys
 * (common/sysctl.c), which shows the netns of the process that opens it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_PREFIX "netns: "
#include "common/log.h"
#include "common/sysctl.h"
#include "net/netns.h"

const char *const net_conf4_names[] = {
	"accept_local", "accept_redirects", "accept_source_route", "arp_accept",
	"arp_announce", "arp_filter", "arp_ignore", "arp_notify", "bootp_relay",
	"disable_policy", "disable_xfrm", "force_igmp_version", "forwarding",
	"igmpv2_unsolicited_report_interval", "igmpv3_unsolicited_report_interval",
	"log_martians", "medium_id", "promote_secondaries", "proxy_arp", "proxy_arp_pvlan",
	"route_localnet", "rp_filter", "secure_redirects", "send_redirects", "shared_media",
	"src_valid_mark", "tag", "ignore_routes_with_linkdown", "drop_gratuitous_arp",
	"drop_unicast_in_l2_multicast",
};
const size_t net_conf4_nr = sizeof(net_conf4_names) / sizeof(net_conf4_names[0]);

const char *const net_conf6_names[] = {
	"accept_dad", "accept_ra", "accept_ra_defrtr", "accept_ra_from_local",
	"accept_ra_min_hop_limit", "accept_ra_mtu", "accept_ra_pinfo",
	"accept_ra_rt_info_max_plen", "accept_ra_rtr_pref", "accept_redirects",
	"accept_source_route", "autoconf", "dad_transmits", "disable_ipv6",
	"drop_unicast_in_l2_multicast", "drop_unsolicited_na", "force_mld_version",
	"force_tllao", "forwarding", "hop_limit", "ignore_routes_with_linkdown",
	"keep_addr_on_down", "max_addresses", "max_desync_factor",
	"mldv1_unsolicited_report_interval", "mldv2_unsolicited_report_interval", "mtu",
	"ndisc_notify", "optimistic_dad", "proxy_ndp", "regen_max_retry",
	"router_probe_interval", "router_solicitation_delay", "router_solicitation_interval",
	"router_solicitations", "stable_secret", "suppress_frag_ndisc", "temp_prefered_lft",
	"temp_valid_lft", "use_oif_addrs_only", "use_optimistic", "use_tempaddr",
};
const size_t net_conf6_nr = sizeof(net_conf6_names) / sizeof(net_conf6_names[0]);

const char *const net_unix_conf_names[] = { "max_dgram_qlen" };
const size_t net_unix_conf_nr = 1;

/* the one string sysctl of the lists: unset, it reads as EIO */
static bool is_str(const char *name)
{
	return !strcmp(name, "stable_secret");
}

int net_conf_read(struct net_conf *c, const char *dir, const char *const *names, size_t n)
{
	c->n = n;
	c->v = calloc(n, sizeof(*c->v));
	c->p = calloc(n, sizeof(*c->p));
	if (!c->v || !c->p) {
		net_conf_free(c);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		SysctlEntry *e = &c->v[i];
		char path[256], val[256];
		int ret;

		sysctl_entry__init(e);
		c->p[i] = e;
		e->type = is_str(names[i]) ? SYSCTL_TYPE__CTL_STR : SYSCTL_TYPE__CTL_32;
		snprintf(path, sizeof(path), "net/%s/%s", dir, names[i]);
		ret = sysctl_read_text(path, val, sizeof(val));
		if (ret == -ENOENT || (ret == -EIO && is_str(names[i])))
			continue;	/* the kernel lacks it / a secret never set */
		if (ret) {
			pr_err("can't read /proc/sys/%s: %s", path, strerror(-ret));
			net_conf_free(c);
			return ret;
		}
		if (e->type == SYSCTL_TYPE__CTL_STR) {
			e->sarg = strdup(val);
			if (!e->sarg) {
				net_conf_free(c);
				return -ENOMEM;
			}
		} else {
			e->has_iarg = true;
			e->iarg = (int32_t)strtol(val, NULL, 10);
		}
	}
	return 0;
}

void net_conf_free(struct net_conf *c)
{
	for (size_t i = 0; c->v && i < c->n; i++)
		free(c->v[i].sarg);
	free(c->v);
	free(c->p);
	c->v = NULL;
	c->p = NULL;
	c->n = 0;
}

static bool same(const SysctlEntry *a, const SysctlEntry *b)
{
	if (a->type != b->type)
		return false;
	if (a->type == SYSCTL_TYPE__CTL_32)
		return a->has_iarg && b->has_iarg && a->iarg == b->iarg;
	return a->sarg && b->sarg && !strcmp(a->sarg, b->sarg);
}

/* a sysctl already at the value is not written */
static int write_one(const char *dir, const char *name, const SysctlEntry *e)
{
	char path[256], val[256], now[256];
	int ret;

	if (e->type == SYSCTL_TYPE__CTL_32 && e->has_iarg)
		snprintf(val, sizeof(val), "%d", e->iarg);
	else if (e->type == SYSCTL_TYPE__CTL_STR && e->sarg)
		snprintf(val, sizeof(val), "%s", e->sarg);
	else
		return 0;	/* the dumping kernel lacked it */
	snprintf(path, sizeof(path), "net/%s/%s", dir, name);
	ret = sysctl_read_text(path, now, sizeof(now));
	if (!ret && !strcmp(now, val))
		return 0;
	ret = sysctl_write_text(path, val);
	if (ret)
		pr_err("can't set net.%s.%s to %s: %s", dir, name, val, strerror(-ret));
	return ret;
}

int net_conf_write(const char *dir, const char *const *names, size_t nr_names,
		   SysctlEntry **conf, size_t n, SysctlEntry **def, size_t ndef)
{
	ssize_t last = -1;
	int ret;

	if (n > nr_names)
		pr_warn("%s: %zu sysctls in the image, %zu known: the rest is skipped", dir, n,
			nr_names);
	for (size_t i = 0; i < n && i < nr_names; i++) {
		/* mtu follows disable_ipv6: never skipped as a default */
		if (def && i < ndef && same(conf[i], def[i]) && strcmp(names[i], "mtu"))
			continue;
		if (!strcmp(names[i], "accept_redirects")) {
			last = i;	/* forwarding changes it: set after */
			continue;
		}
		ret = write_one(dir, names[i], conf[i]);
		if (ret)
			return ret;
	}
	return last < 0 ? 0 : write_one(dir, names[last], conf[last]);
}
