/*
 * A task in a network namespace of its own (issue 9): it unshares one and
 * sets it up, then holds sockets inside it.
 *
 *   the loopback up, MTU 16000, a second address 10.77.0.1/24 (label lo:1)
 *   a route 10.78.0.0/16 dev lo
 *   sysctls: net.ipv4.ip_forward 1 (= conf.all.forwarding), conf.lo.arp_ignore 2,
 *            conf.default.rp_filter 2, net.unix.max_dgram_qlen 77,
 *            net.ipv6.conf.lo.hop_limit 33 (where there is IPv6)
 *   20  a TCP listener on 10.77.0.1:7701
 *   21  a UDP socket on 10.77.0.1:7702 with one datagram queued, sent by 22
 *   22  a UDP socket connected to 21
 *   23/24  a unix socketpair, "hello" queued in 24
 *   with --established: 25/26 a TCP connection 10.77.0.1 <-> 10.77.0.1:7701,
 *       3000 bytes queued each way (dumped with --tcp-established)
 *   with --child-netns: a child in a network namespace of its own again,
 *       which a dump must refuse (it only waits to be killed)
 *
 * After SIGTERM: all of it as it was, no other link than lo (the host's
 * are not visible; --links N: N links, the test made the others), the listener still takes a connection, the datagram,
 * the queued bytes, and the connection still carries data both ways.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/sockio.h"
#include "lib/zdtmtst.h"

#define ADDR	"10.77.0.1"
#define MTU	16000

static int established, child_netns;
static long links = 1;
static uint8_t buf[8192];

static void sin_of(struct sockaddr_in *in, const char *addr, int port)
{
	memset(in, 0, sizeof(*in));
	in->sin_family = AF_INET;
	in->sin_port = htons(port);
	inet_pton(AF_INET, addr, &in->sin_addr);
}

static void sysctl_set(const char *path, const char *val)
{
	write_file(path, val, strlen(val));
}

static void sysctl_expect(const char *path, const char *val)
{
	char now[64];
	size_t n = read_file(path, now, sizeof(now));

	now[n] = '\0';
	now[strcspn(now, "\n")] = '\0';
	if (strcmp(now, val))
		fail("%s: %s, expected %s", path, now, val);
}

static void set_up_netns(void)
{
	struct ifreq ifr = { 0 };
	struct rtentry rt = { 0 };
	int s;

	if (unshare(CLONE_NEWNET))
		fail("unshare(CLONE_NEWNET): %m");
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		fail("socket: %m");
	snprintf(ifr.ifr_name, IFNAMSIZ, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr))
		fail("SIOCGIFFLAGS lo: %m");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr))
		fail("SIOCSIFFLAGS lo: %m");
	ifr.ifr_mtu = MTU;
	if (ioctl(s, SIOCSIFMTU, &ifr))
		fail("SIOCSIFMTU lo: %m");
	snprintf(ifr.ifr_name, IFNAMSIZ, "lo:1");
	sin_of((struct sockaddr_in *)&ifr.ifr_addr, ADDR, 0);
	if (ioctl(s, SIOCSIFADDR, &ifr))
		fail("SIOCSIFADDR lo:1: %m");
	sin_of((struct sockaddr_in *)&ifr.ifr_netmask, "255.255.255.0", 0);
	if (ioctl(s, SIOCSIFNETMASK, &ifr))
		fail("SIOCSIFNETMASK lo:1: %m");
	sin_of((struct sockaddr_in *)&rt.rt_dst, "10.78.0.0", 0);
	sin_of((struct sockaddr_in *)&rt.rt_genmask, "255.255.0.0", 0);
	rt.rt_flags = RTF_UP;
	rt.rt_dev = "lo";
	if (ioctl(s, SIOCADDRT, &rt))
		fail("SIOCADDRT 10.78.0.0/16 dev lo: %m");
	close(s);
	sysctl_set("/proc/sys/net/ipv4/ip_forward", "1");
	sysctl_set("/proc/sys/net/ipv4/conf/lo/arp_ignore", "2");
	sysctl_set("/proc/sys/net/ipv4/conf/default/rp_filter", "2");
	sysctl_set("/proc/sys/net/unix/max_dgram_qlen", "77");
	if (!access("/proc/sys/net/ipv6/conf/lo", F_OK))
		sysctl_set("/proc/sys/net/ipv6/conf/lo/hop_limit", "33");
}

static void check_netns(long nr_links)
{
	struct ifreq ifr = { 0 };
	char routes[4096], devs[4096];
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in *in = (struct sockaddr_in *)&ifr.ifr_addr;
	size_t n;

	if (s < 0)
		fail("socket: %m");
	snprintf(ifr.ifr_name, IFNAMSIZ, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) || !(ifr.ifr_flags & IFF_UP))
		fail("lo is not up (%m)");
	if (ioctl(s, SIOCGIFMTU, &ifr) || ifr.ifr_mtu != MTU)
		fail("lo: MTU %d, expected %d (%m)", ifr.ifr_mtu, MTU);
	snprintf(ifr.ifr_name, IFNAMSIZ, "lo:1");
	if (ioctl(s, SIOCGIFADDR, &ifr))
		fail("lo:1 has no address: %m");
	if (strcmp(inet_ntoa(in->sin_addr), ADDR))
		fail("lo:1: %s, expected %s", inet_ntoa(in->sin_addr), ADDR);
	close(s);
	n = read_file("/proc/net/route", routes, sizeof(routes) - 1);
	routes[n] = '\0';
	/* 10.78.0.0/16 in /proc/net/route's little-endian hex */
	if (!strstr(routes, "lo\t00004E0A\t00000000\t0001\t0\t0\t0\t0000FFFF"))
		fail("the route 10.78.0.0/16 dev lo is gone:\n%s", routes);
	n = read_file("/proc/net/dev", devs, sizeof(devs) - 1);
	devs[n] = '\0';
	{
		int lines = 0;

		for (char *p = devs; (p = strchr(p, '\n')); p++)
			lines++;
		if (lines != 2 + nr_links || !strstr(devs, "lo:"))
			fail("expected %ld link(s), the loopback among them, in /proc/net/dev:\n%s",
			     nr_links, devs);
	}
	sysctl_expect("/proc/sys/net/ipv4/ip_forward", "1");
	sysctl_expect("/proc/sys/net/ipv4/conf/lo/arp_ignore", "2");
	sysctl_expect("/proc/sys/net/ipv4/conf/default/rp_filter", "2");
	sysctl_expect("/proc/sys/net/unix/max_dgram_qlen", "77");
	if (!access("/proc/sys/net/ipv6/conf/lo", F_OK))
		sysctl_expect("/proc/sys/net/ipv6/conf/lo/hop_limit", "33");
}

static void put(int fd, size_t len, uint64_t seed)
{
	pattern_fill(buf, len, seed);
	if (send(fd, buf, len, MSG_NOSIGNAL) != (ssize_t)len)
		fail("send %zu bytes on fd %d: %m", len, fd);
}

static void connect_to(int fd, int port)
{
	struct sockaddr_in in;

	sin_of(&in, ADDR, port);
	if (connect(fd, (struct sockaddr *)&in, sizeof(in)))
		fail("connect fd %d to %s:%d: %m", fd, ADDR, port);
}

static void make_sockets(void)
{
	struct sockaddr_in in;
	int one = 1, sv[2];

	fd_place(socket(AF_INET, SOCK_STREAM, 0), 20, 0);
	setsockopt(20, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sin_of(&in, ADDR, 7701);
	if (bind(20, (struct sockaddr *)&in, sizeof(in)) || listen(20, 5))
		fail("listen on %s:7701: %m", ADDR);
	fd_place(socket(AF_INET, SOCK_DGRAM, 0), 21, 0);
	sin_of(&in, ADDR, 7702);
	if (bind(21, (struct sockaddr *)&in, sizeof(in)))
		fail("bind %s:7702: %m", ADDR);
	fd_place(socket(AF_INET, SOCK_DGRAM, 0), 22, 0);
	connect_to(22, 7702);
	put(22, 700, 0x22);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		fail("socketpair: %m");
	fd_place(sv[0], 23, 0);
	fd_place(sv[1], 24, 0);
	if (write(23, "hello", 5) != 5)
		fail("write 23: %m");
	if (established) {
		fd_place(socket(AF_INET, SOCK_STREAM, 0), 25, 0);
		connect_to(25, 7701);
		fd_place(accept(20, NULL, NULL), 26, 0);
		put(25, 3000, 0x25);
		put(26, 3000, 0x26);
	}
}

static void check_sockets(void)
{
	int c, a;

	sock_get(21, buf, 700, 0x22, "fd 21 (the datagram queued before the dump)");
	put(22, 100, 0x23);
	sock_get(21, buf, 100, 0x23, "fd 21 (a datagram sent after the restore)");
	if (read(24, buf, 5) != 5 || memcmp(buf, "hello", 5))
		fail("fd 24: the queued bytes are gone");
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0)
		fail("socket: %m");
	connect_to(c, 7701);
	sock_wait(20, POLLIN, "fd 20 (the listener)");
	a = accept(20, NULL, NULL);
	if (a < 0)
		fail("accept on fd 20: %m");
	put(c, 10, 0x30);
	sock_get(a, buf, 10, 0x30, "a connection accepted after the restore");
	close(a);
	close(c);
	if (established) {
		sock_get(26, buf, 3000, 0x25, "fd 26 (queued before the dump)");
		sock_get(25, buf, 3000, 0x26, "fd 25 (queued before the dump)");
		put(25, 500, 0x35);
		sock_get(26, buf, 500, 0x35, "fd 26 (sent after the restore)");
	}
}

int main(int argc, char **argv)
{
	static const struct test_opt opts[] = {
		{ "established", TEST_OPT_FLAG, &established, 0,
		  "also a TCP connection inside the namespace" },
		{ "child-netns", TEST_OPT_FLAG, &child_netns, 0,
		  "a child in another network namespace (for the refusal)" },
		{ "links", TEST_OPT_INT, &links, 0,
		  "the links the namespace has at the end (the test adds the others)" },
		{ NULL, 0, NULL, 0, NULL },
	};

	test_init(argc, argv, opts);
	set_up_netns();
	if (child_netns) {
		int ready[2];
		char c;

		test_kill_tree_at_exit();
		if (pipe(ready))
			fail("pipe: %m");
		switch (fork()) {
		case -1:
			fail("fork: %m");
		case 0:
			if (unshare(CLONE_NEWNET))
				_exit(1);
			close(ready[0]);
			if (write(ready[1], "r", 1) != 1)
				_exit(1);
			for (;;)
				pause();
		}
		close(ready[1]);
		if (read(ready[0], &c, 1) != 1)
			fail("the child did not make its network namespace");
		close(ready[0]);
	}
	make_sockets();
	check_netns(1);
	test_daemon();
	test_waitsig();
	check_netns(links);
	check_sockets();
	pass();
}
