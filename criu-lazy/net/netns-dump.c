/*
 * Dump of the tree's own network namespace.  A tree whose root is in
 * another netns than ours is dumped with it, as CRIU does when the
 * namespace is not declared external: every task must share the root's
 * (a netns inside the tree is refused), and the dump enters it once the
 * tree is frozen, so that socket diag, /proc/sys/net and the links are
 * the tree's.  It writes, under the root's net_ns_id N:
 *   netns-N.img    net.ipv4/ipv6.conf.{default,all}.*, net.unix.*
 *   netdev-N.img   one entry per link (netdev-dump.c)
 *   ifaddr-N.img   "ip addr save"          (raw, no magic of ours)
 *   route-N.img    "ip route save"         route6-N.img: "ip -6 route save"
 *   rule-N.img     "ip rule save"
 *   iptables-N.img, ip6tables-N.img, nftables-N.img: its firewall
 *                  (netfilter.c), saved as the dump enters it
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "net/netns.h"

#include "netdev.pb-c.h"

static int ns_ino(pid_t pid, ino_t *ino)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", pid);
	if (stat(path, &st))
		return -errno;
	*ino = st.st_ino;
	return 0;
}

int dump_netns_enter(struct dump_ctx *ctx)
{
	struct stat own;
	char path[64];
	ino_t root_ino = 0;
	int ret;

	if (stat("/proc/self/ns/net", &own))
		return 0;	/* a kernel without network namespaces */
	ret = ns_ino(ctx->root->pid, &root_ino);
	if (ret) {
		pr_err("can't read the network namespace of task %d: %s", ctx->root->pid,
		       strerror(-ret));
		return ret;
	}
	/* whether the root's is ours or not: the restore makes one for the
	 * whole tree, or none */
	for (size_t i = 1; i < ctx->nr_tasks; i++) {
		const struct dump_task *t = ctx->tasks[i];
		ino_t ino = 0;

		if (t->zombie || ns_ino(t->pid, &ino) || ino == root_ino)
			continue;
		pr_err("task %d is in another network namespace than the root task %d: network "
		       "namespaces inside the tree are not supported", t->pid, ctx->root->pid);
		return -EOPNOTSUPP;
	}
	if (root_ino == own.st_ino)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/ns/net", ctx->root->pid);
	ctx->netns_fd = open(path, O_RDONLY | O_CLOEXEC);
	ctx->own_netns_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (ctx->netns_fd < 0 || ctx->own_netns_fd < 0) {
		pr_perror("can't open the network namespaces of task %d and ours",
			  ctx->root->pid);
		return -EIO;
	}
	if (setns(ctx->netns_fd, CLONE_NEWNET)) {
		pr_perror("can't enter the network namespace of task %d", ctx->root->pid);
		return -errno;
	}
	pr_info("the tree of task %d has a network namespace of its own: dumped with it",
		ctx->root->pid);
	/* its connections are locked as CRIU does: the whole namespace */
	ctx->netlock.whole_ns = true;
	/* before anything of ours (the network lock) is in its firewall */
	return net_fw_save(ctx->netns_fw);
}

void dump_netns_leave(struct dump_ctx *ctx)
{
	if (ctx->own_netns_fd >= 0 && setns(ctx->own_netns_fd, CLONE_NEWNET))
		pr_warn("can't go back to our own network namespace: %m");
	if (ctx->own_netns_fd >= 0)
		close(ctx->own_netns_fd);
	if (ctx->netns_fd >= 0)
		close(ctx->netns_fd);
	ctx->own_netns_fd = ctx->netns_fd = -1;
	for (int k = 0; k < NET_FW_NR; k++) {
		if (ctx->netns_fw[k] >= 0)
			close(ctx->netns_fw[k]);
		ctx->netns_fw[k] = -1;
	}
}

/* A firewall saved at enter time into its raw image. */
static int fw_write(struct dump_ctx *ctx, int k, uint32_t id)
{
	char file[64], buf[65536];
	int src = ctx->netns_fw[k], fd, ret = 0;
	ssize_t n;

	if (src < 0)
		return 0;
	snprintf(file, sizeof(file), "%s-%u.img", net_fw_images[k], id);
	fd = dump_raw_open(ctx, file);
	if (fd < 0)
		return fd;
	lseek(src, 0, SEEK_SET);
	while ((n = read(src, buf, sizeof(buf))) > 0)
		if (write(fd, buf, n) != n) {
			ret = -EIO;
			break;
		}
	if (n < 0 || ret)
		pr_perror("can't write %s", file);
	close(fd);
	return n < 0 ? -errno : ret;
}

static int write_netns_conf(struct dump_ctx *ctx, uint32_t id)
{
	NetnsEntry e = NETNS_ENTRY__INIT;
	struct net_conf c[5] = { 0 };
	int ret;

	ret = net_conf_read(&c[0], "ipv4/conf/default", net_conf4_names, net_conf4_nr);
	if (!ret)
		ret = net_conf_read(&c[1], "ipv4/conf/all", net_conf4_names, net_conf4_nr);
	/* a kernel without IPv6 has no ipv6/conf: its entries stay empty */
	if (!ret && !access("/proc/sys/net/ipv6/conf", F_OK)) {
		ret = net_conf_read(&c[2], "ipv6/conf/default", net_conf6_names, net_conf6_nr);
		if (!ret)
			ret = net_conf_read(&c[3], "ipv6/conf/all", net_conf6_names, net_conf6_nr);
	}
	if (!ret)
		ret = net_conf_read(&c[4], "unix", net_unix_conf_names, net_unix_conf_nr);
	if (!ret) {
		e.n_def_conf4 = c[0].n;
		e.def_conf4 = c[0].p;
		e.n_all_conf4 = c[1].n;
		e.all_conf4 = c[1].p;
		e.n_def_conf6 = c[2].n;
		e.def_conf6 = c[2].p;
		e.n_all_conf6 = c[3].n;
		e.all_conf6 = c[3].p;
		e.n_unix_conf = c[4].n;
		e.unix_conf = c[4].p;
		ret = dump_img_write_one(ctx, IMG_NETNS, id, &e.base);
	}
	for (int i = 0; i < 5; i++)
		net_conf_free(&c[i]);
	return ret;
}

/* "ip ARGS" into the raw image NAME-id.img. */
static int ip_save(struct dump_ctx *ctx, const char *name, uint32_t id, const char *const args[])
{
	char file[64];
	int fd, ret;

	snprintf(file, sizeof(file), "%s-%u.img", name, id);
	fd = dump_raw_open(ctx, file);
	if (fd < 0)
		return fd;
	ret = ip_tool_run(args, -1, fd);
	close(fd);
	return ret;
}

int dump_netns_write(struct dump_ctx *ctx)
{
	uint32_t id = ctx->root->ids.net_ns_id;
	int ret;

	if (ctx->netns_fd < 0)
		return 0;
	ret = write_netns_conf(ctx, id);
	if (!ret)
		ret = dump_netdevs(ctx, id, ctx->root->pid);
	if (!ret)
		ret = ip_save(ctx, "ifaddr", id, (const char *const[]){ "addr", "save", NULL });
	if (!ret)
		ret = ip_save(ctx, "route", id, (const char *const[]){ "route", "save", NULL });
	if (!ret && !access("/proc/sys/net/ipv6", F_OK))
		ret = ip_save(ctx, "route6", id,
			      (const char *const[]){ "-6", "route", "save", NULL });
	if (!ret)
		ret = ip_save(ctx, "rule", id, (const char *const[]){ "rule", "save", NULL });
	for (int k = 0; k < NET_FW_NR && !ret; k++)
		ret = fw_write(ctx, k, id);
	return ret;
}
