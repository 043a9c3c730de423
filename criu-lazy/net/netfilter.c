/*
 * The firewall of the tree's netns, as CRIU keeps it: iptables-N.img and
 * ip6tables-N.img are what iptables-save and ip6tables-save print inside
 * it, given back to iptables-restore / ip6tables-restore.  nftables-N.img
 * holds, as nft prints them, the nftables tables the xtables tools do not
 * show (with Debian's iptables on the nf_tables backend, the tables ip|ip6
 * filter/nat/mangle/raw/security are iptables' own and saved by it), given
 * back to "nft -f".  Saved when the dump enters the namespace, before any
 * lock of ours is there; restored after the routes, before the lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_PREFIX "netns: "
#include "common/log.h"
#include "net/netns.h"

const char *const net_fw_images[NET_FW_NR] = { "iptables", "ip6tables", "nftables" };

static const char *const save_tool[NET_FW_NR] = { "iptables-save", "ip6tables-save", "nft" };
static const char *const restore_tool[NET_FW_NR] = { "iptables-restore", "ip6tables-restore",
						     "nft" };
static const char *const package[NET_FW_NR] = { "iptables", "iptables", "nftables" };

static int new_memfd(const char *name)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd < 0)
		pr_perror("memfd_create");
	return fd < 0 ? -errno : fd;
}

/* A table iptables-save shows already (its nf_tables backend's own). */
static bool xtables_table(const char *family, const char *name)
{
	static const char *const names[] = { "filter", "nat", "mangle", "raw", "security" };

	if (strcmp(family, "ip") && strcmp(family, "ip6"))
		return false;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(name, names[i]))
			return true;
	return false;
}

/* "nft list table F N" of every table but iptables' own, into *out
 * (-1 if there is none). */
static int save_nft(bool xtables_saved, int *out)
{
	char line[256];
	FILE *f;
	int list, ret;

	list = new_memfd("nft-tables");
	if (list < 0)
		return list;
	ret = net_tool_run((const char *const[]){ "nft", "list", "tables", NULL }, -1, list);
	lseek(list, 0, SEEK_SET);
	f = ret ? NULL : fdopen(list, "r");
	if (!f) {
		close(list);
		return ret ? ret : -ENOMEM;
	}
	while (!ret && fgets(line, sizeof(line), f)) {
		char family[32], name[200];

		if (sscanf(line, "table %31s %199s", family, name) != 2 ||
		    (xtables_saved && xtables_table(family, name)))
			continue;
		if (*out < 0)
			*out = new_memfd("nftables");
		if (*out < 0)
			ret = *out;
		else
			ret = net_tool_run((const char *const[]){ "nft", "list", "table", family,
								  name, NULL }, -1, *out);
	}
	fclose(f);
	return ret;
}

int net_fw_save(int fds[NET_FW_NR])
{
	bool ipv6 = !access("/proc/sys/net/ipv6", F_OK);
	int ret = 0;

	for (int k = NET_FW_IPTABLES; k <= NET_FW_IP6TABLES && !ret; k++) {
		if ((k == NET_FW_IP6TABLES && !ipv6) || !net_tool_found(save_tool[k])) {
			pr_info("no %s here: the namespace's %s rules are not saved", save_tool[k],
				net_fw_images[k]);
			continue;
		}
		fds[k] = new_memfd(net_fw_images[k]);
		if (fds[k] < 0)
			return fds[k];
		ret = net_tool_run((const char *const[]){ save_tool[k], NULL }, -1, fds[k]);
	}
	if (!ret && net_tool_found("nft"))
		ret = save_nft(fds[NET_FW_IPTABLES] >= 0, &fds[NET_FW_NFTABLES]);
	return ret;
}

/* A line that is not blank and not a comment: rules to load.  The fd is
 * back at its start. */
static bool has_rules(int fd)
{
	char buf[4096];
	bool bol = true, found = false;
	ssize_t n;

	while (!found && (n = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n && !found; i++) {
			if (buf[i] == '\n')
				bol = true;
			else if (bol && buf[i] != ' ' && buf[i] != '\t')
				found = buf[i] != '#', bol = false;
		}
	lseek(fd, 0, SEEK_SET);
	return found;
}

int net_fw_restore(int dirfd, uint32_t id)
{
	for (int k = 0; k < NET_FW_NR; k++) {
		const char *argv[] = { restore_tool[k], NULL, NULL, NULL };
		char file[64];
		int fd, ret;

		snprintf(file, sizeof(file), "%s-%u.img", net_fw_images[k], id);
		fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT)
			continue;
		if (fd < 0) {
			pr_perror("%s", file);
			return -errno;
		}
		if (!has_rules(fd)) {
			close(fd);
			continue;
		}
		if (!net_tool_found(restore_tool[k])) {
			pr_err("%s holds the firewall rules of the tree's network namespace, but %s "
			       "is not in PATH (Debian package %s)", file, restore_tool[k],
			       package[k]);
			close(fd);
			return -ENOENT;
		}
		if (k == NET_FW_NFTABLES) {
			argv[1] = "-f";
			argv[2] = "-";
		} else {
			argv[1] = "-w";
		}
		ret = net_tool_run(argv, fd, -1);
		close(fd);
		if (ret)
			return ret;
	}
	return 0;
}
