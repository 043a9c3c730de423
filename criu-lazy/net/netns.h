/*
 * The tree's own network namespace (Documentation/netns.md): dumped as
 * CRIU does, into netns-ID.img (sysctls), netdev-ID.img (links) and the
 * raw images of the ip tool (ifaddr-ID.img, route-ID.img, route6-ID.img,
 * rule-ID.img); restored into a new namespace before any task exists.
 */
#ifndef CRIU_LAZY_NET_NETNS_H
#define CRIU_LAZY_NET_NETNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sysctl.pb-c.h"

struct dump_ctx;
struct rst_tree;
struct opts;
struct nl_sock;

/* --- sysctls (net-conf.c) --- */

/* net.ipv4.conf.X.* and net.ipv6.conf.X.* that CRIU saves, in its order:
 * an image's conf4/conf6 entry i is the sysctl named at i. */
extern const char *const net_conf4_names[];
extern const size_t net_conf4_nr;
extern const char *const net_conf6_names[];
extern const size_t net_conf6_nr;
extern const char *const net_unix_conf_names[];	/* net.unix.* */
extern const size_t net_unix_conf_nr;

/* One list of sysctl_entry read from /proc/sys (of our current netns). */
struct net_conf {
	SysctlEntry *v;
	SysctlEntry **p;		/* what the image's repeated field points at */
	size_t n;
};

/* Read /proc/sys/net/@dir/NAME for every name (a sysctl the kernel lacks
 * is an entry without a value, as CRIU writes it).  -errno logged. */
int net_conf_read(struct net_conf *c, const char *dir, const char *const *names, size_t n);
void net_conf_free(struct net_conf *c);
/* Write back what @conf has a value for (accept_redirects last, after
 * forwarding), skipping values equal to @def's (when given: a device's
 * defaults) or to what the kernel has already.  -errno logged, naming
 * the sysctl. */
int net_conf_write(const char *dir, const char *const *names, size_t nr_names,
		   SysctlEntry **conf, size_t n, SysctlEntry **def, size_t ndef);

/* --- the ip tool (ip-tool.c) --- */

/* Run "ip ARGS..." in our current netns with @in_fd / @out_fd as its
 * stdin / stdout (-1: /dev/null).  0, or -EIO logged with the first line
 * it printed on stderr. */
int ip_tool_run(const char *const args[], int in_fd, int out_fd);
/* The same for any tool: argv[0] looked up in PATH. */
int net_tool_run(const char *const argv[], int in_fd, int out_fd);
/* argv[0] is in PATH. */
bool net_tool_found(const char *name);

/* --- the firewall (netfilter.c) --- */

/* iptables-N.img, ip6tables-N.img, nftables-N.img: CRIU's names */
enum { NET_FW_IPTABLES, NET_FW_IP6TABLES, NET_FW_NFTABLES, NET_FW_NR };
extern const char *const net_fw_images[NET_FW_NR];
/* The rules of our current netns, each kind into a memfd of @fds (-1:
 * its tool is not here, or, for nftables, no table of its own).  -errno
 * logged. */
int net_fw_save(int fds[NET_FW_NR]);
/* Load whichever of the images exist, as saved.  -errno logged (a
 * missing tool names its Debian package). */
int net_fw_restore(int dirfd, uint32_t id);

/* --- dump (netns-dump.c, netdev-dump.c) --- */

/* After the tree is frozen: whether the root's netns is the tree's own;
 * then every task must share it, and we enter it for the rest of the
 * dump (socket diag, sysctls, links).  -errno logged. */
int dump_netns_enter(struct dump_ctx *ctx);
/* netns-ID.img, netdev-ID.img and the ip tool's images.  -errno logged. */
int dump_netns_write(struct dump_ctx *ctx);
/* Back to our own netns (after the tree was let go). */
void dump_netns_leave(struct dump_ctx *ctx);
/* The links of our current netns into netdev-@id.img (refusing a kind
 * we cannot restore, naming the link and @task). */
int dump_netdevs(struct dump_ctx *ctx, uint32_t id, int task);

/* --- restore (netns-restore.c, netdev-restore.c) --- */

/* If the root was in a netns of its own: make a new one, set it up from
 * the images and stay in it, so the tasks are created inside.  -errno
 * logged. */
int rst_netns_create(struct rst_tree *tree);
/* The links of netdev-@id.img in our (new) netns; @nl on NETLINK_ROUTE.
 * @up: second pass, the flags (a link is brought up once every link and
 * its sysctls are there). */
struct rst_netdev_ctx {
	const struct opts *o;		/* --external veth[...] */
	int own_ns;			/* the restore's own netns: outside peers */
	SysctlEntry **def4, **def6;	/* the namespace's defaults */
	size_t ndef4, ndef6;
};
int rst_netdevs(int dirfd, uint32_t id, struct nl_sock *nl, const struct rst_netdev_ctx *x);

#endif
