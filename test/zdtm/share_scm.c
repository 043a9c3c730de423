/*
 * Files in flight (SCM_RIGHTS in a unix socket's queue) that another
 * process of the tree holds too (issue 9): after the restore the file
 * received must be the same open file description the other process holds
 * (one offset), not a copy.
 *
 * Before the dump the root builds, then forks:
 *   fds 20/21  a unix stream pair, the root's; in flight in 20's queue:
 *              "f30" with fd 30's file, "p40" with the pipe's read end
 *              (fd 40), "s50" with the datagram socket 50
 *   fd 30      share_scm.data, opened read-write, offset 5: the child's
 *              only (the root closes it after the fork)
 *   fds 40/41  a pipe: the child holds the write end 41, nobody the read
 *              end 40 (in flight only)
 *   fds 50/51  a unix datagram pair: 50 in flight only, 51 the child's
 *   fds 60/61  a unix stream pair, the child's; in its queue: "c30" with
 *              fd 30's file again (in flight in two processes' queues),
 *              then "r71" with fd 71's file
 *   fds 70/71  a pipe, the root's only: its write end in flight in the
 *              child's queue (each process's queue carries a file only
 *              the other holds: the restore must not wait on itself)
 *   fds 80/81  a unix stream pair: 81 the child's, 80 in flight only, in
 *              20's queue ("s80"); in 81's queue "y91" with fd 91
 *   fds 90/91  a pipe, the child's (so the root, which makes the pair
 *              80/81 since 80 is in flight in its queue, refills 81 with
 *              the child's pipe end: handed over, not made again)
 * After the restore the root takes its three messages: the file at offset
 * 5, one open file with the child's fd 30 (kcmp), which it moves to 9; the
 * child then finds its fd 30 at 9, takes "c30" (its own fd 30, kcmp),
 * writes "hello" into the pipe and sends a datagram from 51; once the
 * child is gone the root reads "hello" from the read end it received and
 * the datagram from the socket it received.  The child also takes "r71"
 * and writes "cross" into it, which the root reads from its fd 70.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/twoproc.h"
#include "lib/zdtmtst.h"

#define FILE_NAME "share_scm.data"

static int got_file = -1, got_pipe = -1, got_sock = -1, got_pair = -1;

static void send_fd(int sk, const char *tag, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { (void *)tag, 3 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *ch = CMSG_FIRSTHDR(&mh);

	ch->cmsg_level = SOL_SOCKET;
	ch->cmsg_type = SCM_RIGHTS;
	ch->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(ch), &fd, sizeof(int));
	if (sendmsg(sk, &mh, MSG_DONTWAIT) != 3)
		twoproc_fail("sending fd %d with '%s' through fd %d: %m", fd, tag, sk);
}

/* The next 3 bytes of @sk, which must be @tag, with one file. */
static int recv_fd(int sk, const char *tag)
{
	char cbuf[CMSG_SPACE(sizeof(int))], got[4] = "";
	struct iovec iov = { got, 3 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *ch;
	int fd;

	if (recvmsg(sk, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) != 3 || memcmp(got, tag, 3))
		twoproc_fail("fd %d: expected '%s' with a file, got '%.3s' (%m)", sk, tag, got);
	ch = CMSG_FIRSTHDR(&mh);
	if (!ch || ch->cmsg_type != SCM_RIGHTS || ch->cmsg_len != CMSG_LEN(sizeof(int)))
		twoproc_fail("fd %d: '%s' came without its file", sk, tag);
	memcpy(&fd, CMSG_DATA(ch), sizeof(int));
	return fd;
}

static void expect_pos(int fd, off_t want, const char *what)
{
	off_t pos = lseek(fd, 0, SEEK_CUR);

	if (pos != want)
		twoproc_fail("%s: offset %lld, expected %lld", what, (long long)pos,
			     (long long)want);
}

static void pair_at(int type, int a, int b)
{
	int sv[2];

	if (socketpair(AF_UNIX, type | SOCK_NONBLOCK, 0, sv) || dup2(sv[0], a) != a ||
	    dup2(sv[1], b) != b)
		fail("socketpair for fds %d/%d: %m", a, b);
	close(sv[0]);
	close(sv[1]);
}

static void root_setup(void)
{
	close(30);
	close(41);
	close(51);
	close(60);
	close(61);
	close(81);
	close(90);
	close(91);
}

static void child_setup(void)
{
	close(20);
	close(21);
	send_fd(61, "c30", 30);
	send_fd(61, "r71", 71);
	close(70);
	close(71);
}

static void root_check(pid_t child)
{
	got_file = recv_fd(20, "f30");
	got_pipe = recv_fd(20, "p40");
	got_sock = recv_fd(20, "s50");
	got_pair = recv_fd(20, "s80");
	if (send(got_pair, "abc", 3, MSG_DONTWAIT) != 3)
		fail("the socket received with 's80': send: %m");
	expect_pos(got_file, 5, "the file received by the root");
	twoproc_expect_shared(child, got_file, 30, "the file in flight and the child's fd 30");
	if (lseek(got_file, 9, SEEK_SET) != 9)
		fail("lseek on the file received: %m");
}

static void child_check(void)
{
	char got[8] = "";
	int own;

	expect_pos(30, 9, "the child's fd 30 after the root moved the file received");
	own = recv_fd(60, "c30");
	if (!twoproc_same_file(getpid(), own, getpid(), 30))
		twoproc_child_fail("the file in flight on fd 60 is not the child's fd 30");
	close(own);
	own = recv_fd(81, "y91");
	twoproc_write(own, "moved", 5, "the pipe write end received on fd 81");
	close(own);
	twoproc_read(90, got, 5, "the child's pipe (fd 90)");
	if (memcmp(got, "moved", 5))
		twoproc_child_fail("fd 90: '%.5s', expected 'moved' (fd 81's file in flight is not the child's fd 91)",
				   got);
	twoproc_read(81, got, 3, "fd 81 (the root's 's80' end)");
	if (memcmp(got, "abc", 3))
		twoproc_child_fail("fd 81: '%.3s', expected the root's 'abc'", got);
	own = recv_fd(60, "r71");
	twoproc_write(own, "cross", 5, "the root's pipe write end received");
	close(own);
	twoproc_write(41, "hello", 5, "the pipe's write end");
	if (send(51, "dgram", 5, MSG_DONTWAIT) != 5)
		twoproc_child_fail("fd 51: send: %m");
}

static void root_after(pid_t child)
{
	char got[8] = "";

	(void)child;
	twoproc_read(got_pipe, got, 5, "the pipe's read end received");
	if (memcmp(got, "hello", 5))
		fail("the pipe's read end received: '%.5s', expected 'hello'", got);
	if (recv(got_sock, got, sizeof(got), MSG_DONTWAIT) != 5 || memcmp(got, "dgram", 5))
		fail("the socket received: no datagram from the child's fd 51 (%m)");
	twoproc_read(70, got, 5, "the root's pipe (fd 70)");
	if (memcmp(got, "cross", 5))
		fail("the root's pipe (fd 70): '%.5s', expected the child's 'cross'", got);
}

int main(int argc, char **argv)
{
	static const struct twoproc tp = {
		.root_setup = root_setup, .child_setup = child_setup,
		.root_check = root_check, .child_check = child_check, .root_after = root_after,
	};
	int p[2];

	test_init(argc, argv, NULL);
	twoproc_open_at(FILE_NAME, O_RDWR | O_CREAT | O_TRUNC, 30);
	if (write(30, "0123456789", 10) != 10 || lseek(30, 5, SEEK_SET) != 5)
		fail("%s: %m", FILE_NAME);
	if (pipe(p) || dup2(p[0], 40) != 40 || dup2(p[1], 41) != 41)
		fail("pipe: %m");
	close(p[0]);
	close(p[1]);
	if (pipe(p) || dup2(p[0], 90) != 90 || dup2(p[1], 91) != 91)
		fail("pipe: %m");
	close(p[0]);
	close(p[1]);
	pair_at(SOCK_STREAM, 80, 81);
	pair_at(SOCK_STREAM, 20, 21);
	pair_at(SOCK_DGRAM, 50, 51);
	pair_at(SOCK_STREAM, 60, 61);
	if (pipe(p) || dup2(p[0], 70) != 70 || dup2(p[1], 71) != 71)
		fail("pipe: %m");
	close(p[0]);
	close(p[1]);
	send_fd(21, "f30", 30);
	send_fd(21, "p40", 40);
	send_fd(21, "s50", 50);
	send_fd(80, "y91", 91);
	send_fd(21, "s80", 80);
	close(80);
	close(40);
	close(50);
	twoproc_run(&tp);
}
