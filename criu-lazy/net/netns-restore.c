/*
 * The tree's own network namespace, made again before any task exists:
 * the restore process unshares a new netns and stays in it, so the root
 * (and so the whole tree) is created inside and every socket a task
 * makes is the namespace's.  In CRIU's order: the namespace's sysctls
 * (defaults first, so new links take them), the links (netdev-restore.c),
 * then "ip addr|route|rule restore" from the raw images, the firewall
 * (netfilter.c); last, the
 * network lock of the tree's TCP connections, as the dump held it in the
 * old namespace (files/inet-tcp.c removes it when they leave repair).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <linux/rtnetlink.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <netlink/netlink.h>
#include <netlink/socket.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "files/inet-sk.h"
#include "images/image.h"
#include "net/netns.h"
#include "restore/restore.h"

#include "netdev.pb-c.h"

/*
 * "ip route save" keeps the state flags of a route whose link has no
 * carrier (RTNH_F_LINKDOWN, a veth whose peer is down), which the kernel
 * refuses in a new route: a copy of the image without them, in a memfd.
 * The file is the ip tool's: a 4-byte magic, then netlink messages.
 */
static int routes_cleaned(int fd, const char *file)
{
	struct stat st;
	char *buf;
	int out = -1;

	if (fstat(fd, &st) || !(buf = malloc(st.st_size + 1)))
		return -ENOMEM;
	if (pread(fd, buf, st.st_size, 0) != st.st_size) {
		pr_err("%s: can't read it", file);
		free(buf);
		return -EIO;
	}
	for (off_t off = 4; off + (off_t)sizeof(struct nlmsghdr) <= st.st_size;) {
		struct nlmsghdr *h = (struct nlmsghdr *)(buf + off);

		if (h->nlmsg_len < sizeof(*h) || off + (off_t)h->nlmsg_len > st.st_size)
			break;	/* ip will say what is wrong */
		if (h->nlmsg_type == RTM_NEWROUTE && h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct rtmsg)))
			((struct rtmsg *)NLMSG_DATA(h))->rtm_flags &= ~(RTNH_F_DEAD | RTNH_F_LINKDOWN);
		off += NLMSG_ALIGN(h->nlmsg_len);
	}
	out = memfd_create("routes", MFD_CLOEXEC);
	if (out < 0 || write(out, buf, st.st_size) != st.st_size || lseek(out, 0, SEEK_SET)) {
		pr_perror("%s: can't copy it", file);
		if (out >= 0)
			close(out);
		out = -EIO;
	}
	free(buf);
	return out;
}

/* "ip ARGS" fed with the raw image NAME-id.img; a missing image is
 * nothing to restore unless @must. */
static int ip_restore(int dirfd, const char *name, uint32_t id, const char *const args[],
		      bool must)
{
	char file[64];
	int fd, ret;

	snprintf(file, sizeof(file), "%s-%u.img", name, id);
	fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && !must)
		return 0;
	if (fd < 0) {
		pr_perror("%s", file);
		return -errno;
	}
	if (strstr(name, "route")) {
		int clean = routes_cleaned(fd, file);

		close(fd);
		if (clean < 0)
			return clean;
		fd = clean;
	}
	ret = ip_tool_run(args, fd, -1);
	close(fd);
	return ret;
}

static int set_conf(const NetnsEntry *ne)
{
	int ret;

	ret = net_conf_write("ipv4/conf/default", net_conf4_names, net_conf4_nr, ne->def_conf4,
			     ne->n_def_conf4, NULL, 0);
	if (!ret)
		ret = net_conf_write("ipv4/conf/all", net_conf4_names, net_conf4_nr,
				     ne->all_conf4, ne->n_all_conf4, NULL, 0);
	if (!ret && ne->n_def_conf6)
		ret = net_conf_write("ipv6/conf/default", net_conf6_names, net_conf6_nr,
				     ne->def_conf6, ne->n_def_conf6, NULL, 0);
	if (!ret && ne->n_all_conf6)
		ret = net_conf_write("ipv6/conf/all", net_conf6_names, net_conf6_nr,
				     ne->all_conf6, ne->n_all_conf6, NULL, 0);
	if (!ret)
		ret = net_conf_write("unix", net_unix_conf_names, net_unix_conf_nr, ne->unix_conf,
				     ne->n_unix_conf, NULL, 0);
	return ret;
}

/* The kernel's three default rules would be there twice: CRIU removes
 * them before "ip rule restore" puts the saved ones back. */
static int rules(int dirfd, uint32_t id)
{
	char file[64];

	snprintf(file, sizeof(file), "rule-%u.img", id);
	if (faccessat(dirfd, file, F_OK, 0))
		return 0;
	ip_tool_run((const char *const[]){ "rule", "flush", NULL }, -1, -1);
	ip_tool_run((const char *const[]){ "rule", "delete", "table", "local", NULL }, -1, -1);
	return ip_restore(dirfd, "rule", id, (const char *const[]){ "rule", "restore", NULL },
			  true);
}

static int setup(struct rst_tree *tree, uint32_t id, const NetnsEntry *ne, int own_ns)
{
	struct nl_sock *nl;
	int ret;

	ret = set_conf(ne);
	if (ret)
		return ret;
	nl = nl_socket_alloc();
	if (!nl)
		return -ENOMEM;
	ret = nl_connect(nl, NETLINK_ROUTE);
	if (ret) {
		pr_err("netns: can't open a NETLINK_ROUTE socket: %s", nl_geterror(ret));
		nl_socket_free(nl);
		return -EIO;
	}
	ret = rst_netdevs(tree->dirfd, id, nl, &(struct rst_netdev_ctx){
		.o = tree->o, .own_ns = own_ns, .def4 = ne->def_conf4, .ndef4 = ne->n_def_conf4,
		.def6 = ne->def_conf6, .ndef6 = ne->n_def_conf6 });
	nl_socket_free(nl);
	if (!ret)
		ret = ip_restore(tree->dirfd, "ifaddr", id,
				 (const char *const[]){ "addr", "restore", NULL }, true);
	if (!ret)
		ret = ip_restore(tree->dirfd, "route", id,
				 (const char *const[]){ "route", "restore", NULL }, true);
	if (!ret)
		ret = ip_restore(tree->dirfd, "route6", id,
				 (const char *const[]){ "-6", "route", "restore", NULL }, false);
	if (!ret)
		ret = rules(tree->dirfd, id);
	if (!ret)
		ret = net_fw_restore(tree->dirfd, id);
	return ret;
}

int rst_netns_create(struct rst_tree *tree)
{
	const struct rst_proc *root = &tree->procs[0];
	const TaskKobjIdsEntry *own = tree->inv->root_ids, *ids = root->ri.ids;
	ProtobufCMessage *m;
	char file[64];
	int ret, own_ns;
	uint32_t id;

	if (!ids || !ids->has_net_ns_id)
		return 0;
	id = ids->net_ns_id;
	/* one namespace for the whole tree: the root's, new or ours */
	for (size_t i = 1; i < tree->nr; i++) {
		const TaskKobjIdsEntry *t = tree->procs[i].ri.ids;

		if (tree->procs[i].kind == RST_PROC_ALIVE && t && t->has_net_ns_id &&
		    t->net_ns_id != id) {
			pr_err("ids-%d.img: task %d was in another network namespace (%u) than the "
			       "root task %d (%u): not supported", tree->procs[i].pid,
			       tree->procs[i].pid, t->net_ns_id, root->pid, id);
			return -EOPNOTSUPP;
		}
	}
	if (!own || !own->has_net_ns_id || own->net_ns_id == id)
		return 0;
	snprintf(file, sizeof(file), "netns-%u.img", id);
	if (faccessat(tree->dirfd, file, F_OK, 0)) {
		pr_err("task %d was in a network namespace of its own (%u) but %s is missing "
		       "(an external namespace is not supported)", root->pid, id, file);
		return -ENOENT;
	}
	ret = img_read_one(tree->dirfd, IMG_NETNS, id, &netns_entry__descriptor, &m);
	if (ret)
		return ret;
	own_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (own_ns < 0 || unshare(CLONE_NEWNET)) {
		ret = -errno;
		pr_perror("can't make a network namespace for task %d", root->pid);
	} else {
		tree->new_net_ns = true;
		ret = setup(tree, id, (NetnsEntry *)m, own_ns);
		/* the connections stay quiet until they leave repair mode */
		if (!ret)
			ret = inet_tcp_lock_new_netns(tree);
	}
	protobuf_c_message_free_unpacked(m, NULL);
	if (own_ns >= 0)
		close(own_ns);
	if (!ret)
		pr_info("network namespace %u of task %d made again", id, root->pid);
	return ret;
}
