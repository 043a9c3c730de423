/*
 * Netlink sockets:
 *
 *   20  NETLINK_ROUTE, bound (port id chosen by the kernel) to the groups
 *       RTMGRP_LINK and RTMGRP_IPV4_IFADDR, and group 33 joined with
 *       NETLINK_ADD_MEMBERSHIP; NETLINK_NO_ENOBUFS and NETLINK_EXT_ACK on;
 *       the kernel's answer to an RTM_GETLINK of lo queued, not read
 *   21  NETLINK_ROUTE, never bound, SO_RCVBUF set
 *   22  NETLINK_USERSOCK bound to port 0x40000000|pid, two messages from
 *       23 queued (100 and 3000 bytes)
 *   23  NETLINK_USERSOCK bound to port 0x50000000|pid, connected to 22
 *   30  a unix datagram socket with a NETLINK_USERSOCK socket in flight
 *       (bound to port 0x70000000|pid, a message from 22 queued), held by
 *       no fd
 *
 * After SIGTERM: port ids, groups, flags, the queued messages with their
 * boundaries, and that each socket still talks: 20 to the kernel, 23 to 22.
 * The notifications of fd 20's groups are skipped: a link or an address
 * made by anyone in this network namespace sends one.
 */
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define GROUPS (RTMGRP_LINK | RTMGRP_IPV4_IFADDR)
#define HIGH_GROUP 33
#define SEQ 4242

static uint8_t buf[1 << 16];

static void nl_bind(int fd, uint32_t portid, uint32_t groups)
{
	struct sockaddr_nl a = { .nl_family = AF_NETLINK, .nl_pid = portid, .nl_groups = groups };

	if (bind(fd, (struct sockaddr *)&a, sizeof(a)))
		fail("bind fd %d to port %#x: %m", fd, portid);
}

static struct sockaddr_nl name_of(int fd, int peer)
{
	struct sockaddr_nl a;
	socklen_t len = sizeof(a);

	memset(&a, 0, sizeof(a));
	if ((peer ? getpeername : getsockname)(fd, (struct sockaddr *)&a, &len))
		fail("fd %d: get%sname: %m", fd, peer ? "peer" : "sock");
	return a;
}

static int get_opt(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, level, name, &v, &len))
		fail("fd %d: getsockopt %d/%d: %m", fd, level, name);
	return v;
}

static void set_opt(int fd, int level, int name, int v)
{
	if (setsockopt(fd, level, name, &v, sizeof(v)))
		fail("fd %d: setsockopt %d/%d: %m", fd, level, name);
}

static void ask_link_lo(int fd)
{
	struct {
		struct nlmsghdr h;
		struct ifinfomsg i;
	} req = {
		.h = { .nlmsg_len = sizeof(req), .nlmsg_type = RTM_GETLINK,
		       .nlmsg_flags = NLM_F_REQUEST, .nlmsg_seq = SEQ },
		.i = { .ifi_family = AF_UNSPEC, .ifi_index = 1 },
	};
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };

	if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel)) !=
	    sizeof(req))
		fail("fd %d: RTM_GETLINK: %m", fd);
}

/*
 * A notification of fd 20's groups (a link or an IPv4 address of this
 * network namespace changed): anything on the machine may send one at any
 * time (another test adding a veth or an address), so fd 20's checks skip
 * them; its own messages answer SEQ.
 */
static bool notification(const struct nlmsghdr *h, ssize_t n)
{
	if (n < (ssize_t)NLMSG_HDRLEN || !NLMSG_OK(h, n) || h->nlmsg_seq == SEQ)
		return false;
	return h->nlmsg_type == RTM_NEWLINK || h->nlmsg_type == RTM_DELLINK ||
	       h->nlmsg_type == RTM_NEWADDR || h->nlmsg_type == RTM_DELADDR;
}

/* The next message on @fd that is no notification (fd 20 only): its length. */
static ssize_t recv_own(int fd, int notify)
{
	ssize_t n;

	do
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	while (notify && notification((struct nlmsghdr *)buf, n));
	return n;
}

static void expect_link_lo(int fd, const char *what)
{
	ssize_t n = recv_own(fd, 1);
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	struct ifinfomsg *i = NLMSG_DATA(h);

	if (n < (ssize_t)NLMSG_LENGTH(sizeof(*i)) || !NLMSG_OK(h, n) || h->nlmsg_len != n)
		fail("%s: a message of %zd bytes (%m)", what, n);
	if (h->nlmsg_type != RTM_NEWLINK || h->nlmsg_seq != SEQ || i->ifi_index != 1)
		fail("%s: message type %u seq %u ifindex %d, expected RTM_NEWLINK %d of lo",
		     what, h->nlmsg_type, h->nlmsg_seq, i->ifi_index, SEQ);
}

static void expect_empty(int fd, const char *what)
{
	if (recv_own(fd, fd == 20) != -1 || errno != EAGAIN)
		fail("%s: expected an empty queue (%m)", what);
}

static void put(int fd, size_t len, uint64_t seed)
{
	pattern_fill(buf, len, seed);
	if (send(fd, buf, len, MSG_DONTWAIT) != (ssize_t)len)
		fail("fd %d: send %zu bytes: %m", fd, len);
}

static void get(int fd, size_t len, uint64_t seed, const char *what)
{
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);

	if (n != (ssize_t)len)
		fail("%s: a message of %zd bytes, expected %zu (%m)", what, n, len);
	pattern_expect(what, buf, len, seed);
}

/* A USERSOCK socket bound to @port, a message from 22 in its queue, in
 * flight in the queue of 30 (from 31). */
static void pass_netlink(uint32_t port)
{
	union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr a; } cbuf;
	struct sockaddr_nl to = { .nl_family = AF_NETLINK, .nl_pid = port };
	struct iovec iov = { "nl", 2 };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf.b, .msg_controllen = sizeof(cbuf.b),
	};
	struct cmsghdr *ch = CMSG_FIRSTHDR(&mh);
	int sv[2], nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_USERSOCK);

	if (nl < 0 || socketpair(AF_UNIX, SOCK_DGRAM, 0, sv))
		fail("socket: %m");
	fd_place(sv[0], 30, 0);
	fd_place(sv[1], 31, 0);
	nl_bind(nl, port, 0);
	pattern_fill(buf, 50, 0x70a);
	if (sendto(22, buf, 50, 0, (struct sockaddr *)&to, sizeof(to)) != 50)
		fail("fd 22: send to port %#x: %m", port);
	ch->cmsg_level = SOL_SOCKET;
	ch->cmsg_type = SCM_RIGHTS;
	ch->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(ch), &nl, sizeof(int));
	if (sendmsg(31, &mh, 0) != 2)
		fail("fd 31: sendmsg with a netlink socket: %m");
	close(nl);
}

static void check_in_flight(uint32_t port)
{
	union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr a; } cbuf;
	struct sockaddr_nl to = { .nl_family = AF_NETLINK, .nl_pid = port };
	char data[4];
	struct iovec iov = { data, sizeof(data) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf.b, .msg_controllen = sizeof(cbuf.b),
	};
	struct cmsghdr *ch;
	int nl;

	if (recvmsg(30, &mh, MSG_DONTWAIT) != 2 || !(ch = CMSG_FIRSTHDR(&mh)) ||
	    ch->cmsg_type != SCM_RIGHTS)
		fail("fd 30: the netlink socket in flight is gone (%m)");
	memcpy(&nl, CMSG_DATA(ch), sizeof(int));
	if (name_of(nl, 0).nl_pid != port || get_opt(nl, SOL_SOCKET, SO_PROTOCOL) != NETLINK_USERSOCK)
		fail("the netlink socket in flight: port %#x, expected %#x", name_of(nl, 0).nl_pid,
		     port);
	get(nl, 50, 0x70a, "the netlink socket in flight: its queued message");
	expect_empty(nl, "the netlink socket in flight");
	if (sendto(22, "x", 1, 0, (struct sockaddr *)&to, sizeof(to)) != 1 ||
	    recv(nl, buf, 2, MSG_DONTWAIT) != 1)
		fail("the netlink socket in flight does not hear fd 22 (%m)");
	close(nl);
}

int main(int argc, char **argv)
{
	uint32_t port20, port22, port23, groups[2] = { 0 };
	socklen_t glen = sizeof(groups);
	struct sockaddr_nl a;

	test_init(argc, argv, NULL);
	port22 = 0x40000000u | getpid();
	port23 = 0x50000000u | getpid();

	fd_place(socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE), 20, 0);
	nl_bind(20, 0, GROUPS);
	set_opt(20, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, HIGH_GROUP);
	set_opt(20, SOL_NETLINK, NETLINK_NO_ENOBUFS, 1);
	set_opt(20, SOL_NETLINK, NETLINK_EXT_ACK, 1);
	port20 = name_of(20, 0).nl_pid;
	ask_link_lo(20);

	fd_place(socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE), 21, 0);
	set_opt(21, SOL_SOCKET, SO_RCVBUF, 50000);

	fd_place(socket(AF_NETLINK, SOCK_RAW, NETLINK_USERSOCK), 22, 0);
	nl_bind(22, port22, 0);
	fd_place(socket(AF_NETLINK, SOCK_RAW, NETLINK_USERSOCK), 23, 0);
	nl_bind(23, port23, 0);
	a = (struct sockaddr_nl){ .nl_family = AF_NETLINK, .nl_pid = port22 };
	if (connect(23, (struct sockaddr *)&a, sizeof(a)))
		fail("connect fd 23: %m");
	put(23, 100, 0x22a);
	put(23, 3000, 0x22b);
	test_msg("port22 %#x\n", port22);
	pass_netlink(0x70000000u | getpid());

	test_daemon();
	test_waitsig();

	a = name_of(20, 0);
	if (a.nl_pid != port20 || a.nl_groups != GROUPS)
		fail("fd 20: port %#x groups %#x, expected %#x %#x", a.nl_pid, a.nl_groups,
		     port20, GROUPS);
	if (getsockopt(20, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, groups, &glen))
		fail("fd 20: NETLINK_LIST_MEMBERSHIPS: %m");
	if (groups[0] != GROUPS || groups[1] != 1u << (HIGH_GROUP - 33))
		fail("fd 20: groups %#x %#x", groups[0], groups[1]);
	if (get_opt(20, SOL_NETLINK, NETLINK_NO_ENOBUFS) != 1 ||
	    get_opt(20, SOL_NETLINK, NETLINK_EXT_ACK) != 1 ||
	    get_opt(20, SOL_NETLINK, NETLINK_PKTINFO) != 0)
		fail("fd 20: its SOL_NETLINK flags changed");
	expect_link_lo(20, "fd 20: the queued answer");
	expect_empty(20, "fd 20");
	ask_link_lo(20);
	expect_link_lo(20, "fd 20: a new answer");

	if (name_of(21, 0).nl_pid != 0)
		fail("fd 21: bound to %#x, was never bound", name_of(21, 0).nl_pid);
	if (get_opt(21, SOL_SOCKET, SO_PROTOCOL) != NETLINK_ROUTE ||
	    get_opt(21, SOL_SOCKET, SO_RCVBUF) != 100000)
		fail("fd 21: protocol %d rcvbuf %d", get_opt(21, SOL_SOCKET, SO_PROTOCOL),
		     get_opt(21, SOL_SOCKET, SO_RCVBUF));

	if (name_of(22, 0).nl_pid != port22 || name_of(23, 0).nl_pid != port23)
		fail("fd 22/23: port ids %#x %#x", name_of(22, 0).nl_pid, name_of(23, 0).nl_pid);
	if (name_of(23, 1).nl_pid != port22)
		fail("fd 23: connected to %#x, expected %#x", name_of(23, 1).nl_pid, port22);
	if (get_opt(22, SOL_SOCKET, SO_PROTOCOL) != NETLINK_USERSOCK)
		fail("fd 22: protocol %d", get_opt(22, SOL_SOCKET, SO_PROTOCOL));
	get(22, 100, 0x22a, "fd 22: message 1");
	get(22, 3000, 0x22b, "fd 22: message 2");
	expect_empty(22, "fd 22");
	put(23, 7, 0x22c);
	get(22, 7, 0x22c, "fd 22: a message after the restore");
	check_in_flight(0x70000000u | getpid());
	pass();
}
