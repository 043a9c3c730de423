/*
 * netns_link: two "hosts" on one machine for the tests.
 *
 *   netns_link up NS_A NS_B ADDR_A/PREFIX ADDR_B/PREFIX
 *   netns_link cut NS          the veth end in NS goes down (a broken link)
 *   netns_link down NS_A NS_B
 *
 * `up` creates two named network namespaces the way `ip netns add` does
 * (unshare(CLONE_NEWNET), bind-mount /proc/self/ns/net onto
 * /run/netns/NAME, with /run/netns a shared mount point), joins them with
 * a veth pair whose ends are created straight inside them, named veth0 in
 * both, and in each brings up lo and veth0 and adds its address.  All of
 * the network setup goes through libnl-route; no `ip` command.  The
 * addresses exist only inside the two namespaces: nothing reaches the
 * host's interfaces or leaves the machine.
 *
 * `down` unmounts and removes both names; the last reference to a
 * namespace going away destroys it and its veth end, and the other end
 * with it.  When no namespace is left under /run/netns its mount point
 * is undone too (`ip netns add` makes it again when it needs it).
 *
 * Each command holds a lock on /run/netns (flock on the directory) while it
 * works, so that one run's `down` cannot undo the mount point under another
 * run's `up`.
 *
 * An error is one line on stderr, "netns_link: ...", exit status 1; what
 * `up` had already created is removed before it exits.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>

#define RUN_DIR		"/run/netns"
#define VETH_NAME	"veth0"
#define RUNNING_TIMEOUT_MS	5000
#define RUNNING_POLL_MS		10
#define LOCK_TIMEOUT_MS		10000
#define LOCK_POLL_MS		10

struct host {
	const char *name;
	const char *cidr;		/* ADDR/PREFIX as given */
	char path[PATH_MAX];		/* RUN_DIR/name */
	struct nl_addr *addr;
	int fd;				/* the namespace, once created */
	bool created;			/* its file and mount are ours */
};

static int fail(const char *fmt, ...)
{
	va_list ap;

	fputs("netns_link: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -1;
}

/* ---- /run/netns and the namespace files -------------------------------- */

static bool is_mount_point(const char *path)
{
	char line[4096], mnt[PATH_MAX];
	bool found = false;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return false;
	/* "ID PARENT MAJ:MIN ROOT MOUNT_POINT ...": field 5 (no spaces in ours) */
	while (!found && fgets(line, sizeof(line), f))
		found = sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1 && !strcmp(mnt, path);
	fclose(f);
	return found;
}

/* The lock every command holds, on the directory itself (a bind mount of
 * it onto itself is the same inode); released when the process exits.
 * Returns the locked fd or -1. */
static int run_dir_lock(void)
{
	int fd;

	if (mkdir(RUN_DIR, 0755) && errno != EEXIST)
		return fail("mkdir %s: %s", RUN_DIR, strerror(errno));
	fd = open(RUN_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return fail("open %s: %s", RUN_DIR, strerror(errno));
	for (int waited_ms = 0; flock(fd, LOCK_EX | LOCK_NB); waited_ms += LOCK_POLL_MS) {
		if (errno != EWOULDBLOCK) {
			fail("lock %s: %s", RUN_DIR, strerror(errno));
			goto err_close;
		}
		if (waited_ms >= LOCK_TIMEOUT_MS) {
			fail("another netns_link has held the lock on %s for %d ms", RUN_DIR,
			     LOCK_TIMEOUT_MS);
			goto err_close;
		}
		usleep(LOCK_POLL_MS * 1000);
	}
	return fd;
err_close:
	close(fd);
	return -1;
}

/* As iproute2 does: a mount point of its own, shared, so that a namespace
 * mounted here is seen by mount namespaces created later too. */
static int run_dir_prepare(void)
{
	bool bound = false;

	while (mount("", RUN_DIR, "none", MS_SHARED | MS_REC, NULL)) {
		if (errno != EINVAL || bound)
			return fail("make %s a shared mount: %s", RUN_DIR, strerror(errno));
		if (mount(RUN_DIR, RUN_DIR, "none", MS_BIND | MS_REC, NULL))
			return fail("bind-mount %s onto itself: %s", RUN_DIR, strerror(errno));
		bound = true;
	}
	return 0;
}

static bool run_dir_empty(void)
{
	struct dirent *de;
	bool empty = true;
	DIR *d = opendir(RUN_DIR);

	if (!d)
		return false;
	while (empty && (de = readdir(d)))
		empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
	closedir(d);
	return empty;
}

static int run_dir_release(void)
{
	if (!run_dir_empty() || !is_mount_point(RUN_DIR))
		return 0;
	if (umount2(RUN_DIR, MNT_DETACH))
		return fail("unmount %s: %s", RUN_DIR, strerror(errno));
	return 0;
}

static void host_init(struct host *h, const char *name, const char *cidr)
{
	memset(h, 0, sizeof(*h));
	h->name = name;
	h->cidr = cidr;
	h->fd = -1;
	snprintf(h->path, sizeof(h->path), "%s/%s", RUN_DIR, name);
}

static int check_name(const char *name)
{
	if (!*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..") ||
	    strlen(name) > NAME_MAX)
		return fail("bad namespace name '%s'", name);
	return 0;
}

/* Unmount and remove /run/netns/NAME; the namespace dies with its last user. */
static int netns_del(const char *path)
{
	int ret = 0;

	if (umount2(path, MNT_DETACH) && errno != EINVAL)
		ret = fail("unmount %s: %s", path, strerror(errno));
	if (unlink(path) && !ret)
		ret = fail("remove %s: %s", path, strerror(errno));
	return ret;
}

/* A new network namespace bound to h->path, opened as h->fd; this process
 * stays in (returns to) the namespace it was in, given as `home`. */
static int netns_add(struct host *h, int home)
{
	int fd = open(h->path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);

	if (fd < 0) {
		if (errno == EEXIST)
			return fail("namespace %s already exists (%s)", h->name, h->path);
		return fail("create %s: %s", h->path, strerror(errno));
	}
	close(fd);
	h->created = true;	/* from here on, the file is ours to remove */

	if (unshare(CLONE_NEWNET))
		return fail("unshare(CLONE_NEWNET) for %s: %s", h->name, strerror(errno));
	if (mount("/proc/self/ns/net", h->path, "none", MS_BIND, NULL)) {
		fail("bind-mount the new namespace onto %s: %s", h->path, strerror(errno));
		setns(home, CLONE_NEWNET);
		return -1;
	}
	if (setns(home, CLONE_NEWNET))
		return fail("return to the first network namespace: %s", strerror(errno));
	h->fd = open(h->path, O_RDONLY | O_CLOEXEC);
	if (h->fd < 0)
		return fail("open %s: %s", h->path, strerror(errno));
	return 0;
}

/* ---- libnl-route: the veth pair, links up, addresses -------------------- */

static struct nl_sock *nl_open(const char *where)
{
	struct nl_sock *sk = nl_socket_alloc();
	int err;

	if (!sk) {
		fail("%s: out of memory for a netlink socket", where);
		return NULL;
	}
	err = nl_connect(sk, NETLINK_ROUTE);
	if (err < 0) {
		fail("%s: netlink connect: %s", where, nl_geterror(err));
		nl_socket_free(sk);
		return NULL;
	}
	return sk;
}

/* One request creates both ends, each already inside its namespace. */
static int veth_add(struct host *a, struct host *b)
{
	struct rtnl_link *link, *peer;
	struct nl_sock *sk;
	int err, ret = 0;

	sk = nl_open("veth");
	if (!sk)
		return -1;
	link = rtnl_link_veth_alloc();
	if (!link) {
		nl_socket_free(sk);
		return fail("veth: out of memory");
	}
	peer = rtnl_link_veth_get_peer(link);
	rtnl_link_set_name(link, VETH_NAME);
	rtnl_link_set_ns_fd(link, a->fd);
	rtnl_link_set_name(peer, VETH_NAME);
	rtnl_link_set_ns_fd(peer, b->fd);
	rtnl_link_put(peer);

	err = rtnl_link_add(sk, link, NLM_F_CREATE | NLM_F_EXCL);
	if (err < 0)
		ret = fail("create the veth pair %s:%s - %s:%s: %s", a->name, VETH_NAME,
			   b->name, VETH_NAME, nl_geterror(err));
	rtnl_link_veth_release(link);
	nl_socket_free(sk);
	return ret;
}

static int link_set_up(struct nl_sock *sk, const struct host *h, const char *ifname,
		       bool up, int *ifindex)
{
	struct rtnl_link *link, *change;
	int err;

	err = rtnl_link_get_kernel(sk, 0, ifname, &link);
	if (err < 0)
		return fail("%s: no link %s: %s", h->name, ifname, nl_geterror(err));
	change = rtnl_link_alloc();
	if (!change) {
		rtnl_link_put(link);
		return fail("%s: out of memory", h->name);
	}
	if (up)
		rtnl_link_set_flags(change, IFF_UP);
	else
		rtnl_link_unset_flags(change, IFF_UP);
	err = rtnl_link_change(sk, link, change, 0);
	if (ifindex)
		*ifindex = rtnl_link_get_ifindex(link);
	rtnl_link_put(change);
	rtnl_link_put(link);
	if (err < 0)
		return fail("%s: set %s %s: %s", h->name, ifname, up ? "up" : "down",
			    nl_geterror(err));
	return 0;
}

static int addr_add(struct nl_sock *sk, const struct host *h, int ifindex)
{
	struct rtnl_addr *addr = rtnl_addr_alloc();
	int err;

	if (!addr)
		return fail("%s: out of memory", h->name);
	rtnl_addr_set_ifindex(addr, ifindex);
	err = rtnl_addr_set_local(addr, h->addr);
	if (!err)
		err = rtnl_addr_add(sk, addr, 0);
	rtnl_addr_put(addr);
	if (err < 0)
		return fail("%s: add address %s to %s: %s", h->name, h->cidr, VETH_NAME,
			    nl_geterror(err));
	return 0;
}

/* Run fn inside the namespace h->fd with a netlink socket of that
 * namespace, then come back to `home`. */
static int in_netns(struct host *h, int home, bool up,
		    int (*fn)(struct nl_sock *, struct host *, bool))
{
	struct nl_sock *sk;
	int ret;

	if (setns(h->fd, CLONE_NEWNET))
		return fail("enter namespace %s: %s", h->name, strerror(errno));
	sk = nl_open(h->name);	/* a netlink socket talks to its own namespace */
	ret = sk ? fn(sk, h, up) : -1;
	if (sk)
		nl_socket_free(sk);
	if (setns(home, CLONE_NEWNET))
		return fail("return to the first network namespace: %s", strerror(errno));
	return ret;
}

static int configure(struct nl_sock *sk, struct host *h, bool up)
{
	int ifindex;

	if (link_set_up(sk, h, "lo", true, NULL) ||
	    link_set_up(sk, h, VETH_NAME, true, &ifindex))
		return -1;
	return addr_add(sk, h, ifindex);
}

/* Both ends up is not yet a working link: the kernel reports the carrier
 * (IFF_RUNNING) a moment later.  Wait for it, so the first packet of a
 * test is not dropped. */
static int wait_running(struct nl_sock *sk, struct host *h, bool up)
{
	for (int waited_ms = 0; ; waited_ms += RUNNING_POLL_MS) {
		struct rtnl_link *link;
		unsigned int flags;
		int err = rtnl_link_get_kernel(sk, 0, VETH_NAME, &link);

		if (err < 0)
			return fail("%s: no link %s: %s", h->name, VETH_NAME, nl_geterror(err));
		flags = rtnl_link_get_flags(link);
		rtnl_link_put(link);
		if (flags & IFF_RUNNING)
			return 0;
		if (waited_ms >= RUNNING_TIMEOUT_MS)
			return fail("%s: %s has no carrier after %d ms", h->name, VETH_NAME,
				    RUNNING_TIMEOUT_MS);
		usleep(RUNNING_POLL_MS * 1000);
	}
}

static int set_veth(struct nl_sock *sk, struct host *h, bool up)
{
	return link_set_up(sk, h, VETH_NAME, up, NULL);
}

/* ---- commands ------------------------------------------------------------ */

static int parse_addr(struct host *h)
{
	int err = nl_addr_parse(h->cidr, AF_INET, &h->addr);

	if (err < 0 || !strchr(h->cidr, '/') || nl_addr_get_prefixlen(h->addr) == 32 ||
	    nl_addr_get_prefixlen(h->addr) == 0)
		return fail("bad address '%s' for %s: want IPv4 ADDR/PREFIX with a prefix "
			    "of 1..31 bits", h->cidr, h->name);
	return 0;
}

static void host_undo(struct host *h)
{
	if (h->fd >= 0)
		close(h->fd);
	if (h->created)
		netns_del(h->path);
	if (h->addr)
		nl_addr_put(h->addr);
}

static int cmd_up(char **argv)
{
	struct host hosts[2];
	int home, lock, ret = -1;

	host_init(&hosts[0], argv[0], argv[2]);
	host_init(&hosts[1], argv[1], argv[3]);
	if (check_name(argv[0]) || check_name(argv[1]))
		return -1;
	if (!strcmp(argv[0], argv[1]))
		return fail("the two namespaces need two names, got %s twice", argv[0]);
	if (parse_addr(&hosts[0]) || parse_addr(&hosts[1]))
		goto out;
	lock = run_dir_lock();
	if (lock < 0)
		goto out;
	home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (home < 0) {
		fail("open /proc/self/ns/net: %s", strerror(errno));
		goto err_unlock;
	}
	if (run_dir_prepare() ||
	    netns_add(&hosts[0], home) || netns_add(&hosts[1], home) ||
	    veth_add(&hosts[0], &hosts[1]) ||
	    in_netns(&hosts[0], home, true, configure) ||
	    in_netns(&hosts[1], home, true, configure) ||
	    in_netns(&hosts[0], home, true, wait_running) ||
	    in_netns(&hosts[1], home, true, wait_running))
		goto err_home;
	for (int i = 0; i < 2; i++) {
		printf("%s: %s %s\n", hosts[i].name, VETH_NAME, hosts[i].cidr);
		hosts[i].created = false;	/* keep it */
	}
	ret = 0;
err_home:
	close(home);
err_unlock:
	host_undo(&hosts[1]);
	host_undo(&hosts[0]);
	if (ret)
		run_dir_release();
	close(lock);
	return ret;
out:
	host_undo(&hosts[1]);
	host_undo(&hosts[0]);
	return ret;
}

static int cmd_cut(char **argv)
{
	struct host h;
	int home, ret;

	host_init(&h, argv[0], "");
	if (check_name(argv[0]))
		return -1;
	home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (home < 0)
		return fail("open /proc/self/ns/net: %s", strerror(errno));
	h.fd = open(h.path, O_RDONLY | O_CLOEXEC);
	if (h.fd < 0) {
		ret = fail("no namespace %s (%s): %s", h.name, h.path, strerror(errno));
		goto out;
	}
	ret = in_netns(&h, home, false, set_veth);
	close(h.fd);
out:
	close(home);
	return ret;
}

static int cmd_down(char **argv)
{
	int lock, ret = 0;

	if (check_name(argv[0]) || check_name(argv[1]))
		return -1;
	lock = run_dir_lock();
	if (lock < 0)
		return -1;
	for (int i = 0; i < 2; i++) {
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/%s", RUN_DIR, argv[i]);
		if (access(path, F_OK))
			ret = fail("no namespace %s (%s)", argv[i], path);
		else if (netns_del(path))
			ret = -1;
	}
	if (run_dir_release())
		ret = -1;
	close(lock);
	return ret;
}

static int usage(void)
{
	return fail("usage: netns_link up NS_A NS_B ADDR_A/PREFIX ADDR_B/PREFIX | "
		    "cut NS | down NS_A NS_B");
}

int main(int argc, char **argv)
{
	int ret;

	if (argc == 6 && !strcmp(argv[1], "up"))
		ret = cmd_up(argv + 2);
	else if (argc == 3 && !strcmp(argv[1], "cut"))
		ret = cmd_cut(argv + 2);
	else if (argc == 4 && !strcmp(argv[1], "down"))
		ret = cmd_down(argv + 2);
	else
		ret = usage();
	return ret ? 1 : 0;
}
