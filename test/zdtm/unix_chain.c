/*
 * Unix sockets connected by name across three processes: the root A, its
 * child B and B's child C, a chain of stream connections A -> B -> C (a
 * listener in B with A's connection, a listener in C with B's) and a
 * datagram socket in C that A and B both send to by name.  The restore
 * must bind each name before anything connects to it, whichever process
 * gets there first, and refill each queue in its order.
 *
 *   C  fd 30 datagram bound to chain-z.sock; fd 31 a stream listener on
 *      chain-l2.sock; fd 32 accepted from B
 *   B  fd 30 datagram connected to chain-z.sock; fd 31 a stream client of
 *      chain-l2.sock; fd 33 a stream listener on chain-l1.sock; fd 34
 *      accepted from A
 *   A  fd 30 datagram connected to chain-z.sock; fd 31 a stream client of
 *      chain-l1.sock
 * Before the dump B sends "y0" through its fd 30, then A "x0" (both wait
 * in C's fd 30), and the clients write "a0" (to B) and "b0" (to C).
 * After SIGTERM, down the chain: A checks its peers' names, sends "x1" and
 * "a1", then SIGTERM to B; B must read a0a1 on fd 34, checks its peers,
 * sends "y1" and "b1", SIGTERM to C; C must read y0 x0 x1 y1 on fd 30 and
 * b0b1 on fd 32 and answers "c"; B must read it and answers "b" to A.
 * And a datagram chain A -> B -> C (fd 35 each): B's socket bound to
 * chain-y.sock, A's connected to it, then B's connected to C's, bound to
 * chain-w.sock; A sent "x0" before B connected on, B sends "y0".  A may
 * not send any more (EPERM: its peer has a peer of its own); the restore
 * must connect A's before B's, and bind B's before A's connects.
 * A child's failure reaches the root through the file chain-fail.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define FAIL_FILE	"chain-fail"
#define WAIT_MS		10000

static const char *me = "A";
static volatile sig_atomic_t term;

static void on_term(int sig)
{
	(void)sig;
	term = 1;
}

/* fail() in the root; a line in FAIL_FILE and exit 1 in a child. */
static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int fd, len;

	va_start(ap, fmt);
	len = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (me[0] == 'A')
		fail("%s: %s", me, buf);
	fprintf(stderr, "unix_chain: %s: %s\n", me, buf);
	fd = open(FAIL_FILE, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		char line[600];

		len = snprintf(line, sizeof(line), "%s: %s", me, buf);
		if (write(fd, line, len) < 0) {
			/* stderr has it */
		}
		close(fd);
	}
	_exit(1);
}

static struct sockaddr_un name_of(const char *name, socklen_t *len)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", name);
	*len = offsetof(struct sockaddr_un, sun_path) + strlen(name) + 1;
	return a;
}

static void at(int got, int fd, const char *what)
{
	if (got < 0 || (got != fd && dup2(got, fd) != fd))
		die("%s as fd %d: %m", what, fd);
	if (got != fd)
		close(got);
}

static void bind_to(int sk, const char *name)
{
	socklen_t len;
	struct sockaddr_un a = name_of(name, &len);

	unlink(name);
	if (bind(sk, (struct sockaddr *)&a, len))
		die("bind %s: %m", name);
}

static void connect_to(int sk, const char *name)
{
	socklen_t len;
	struct sockaddr_un a = name_of(name, &len);

	if (connect(sk, (struct sockaddr *)&a, len))
		die("connect to %s: %m", name);
}

static void send_all(int fd, const char *s)
{
	if (send(fd, s, strlen(s), MSG_NOSIGNAL) != (ssize_t)strlen(s))
		die("fd %d: send %s: %m", fd, s);
}

/* Exactly @want from fd @fd (one datagram, or stream bytes), within WAIT_MS. */
static void expect(int fd, const char *want, const char *what)
{
	char buf[64];
	size_t len = strlen(want), got = 0;

	while (got < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, WAIT_MS) != 1)
			die("%s: fd %d: nothing within %d s (got %zu of %s)", what, fd,
			    WAIT_MS / 1000, got, want);
		n = recv(fd, buf + got, sizeof(buf) - 1 - got, MSG_DONTWAIT);
		if (n <= 0)
			die("%s: fd %d: recv: %s", what, fd, n ? strerror(errno) : "end of file");
		got += n;
	}
	buf[got] = '\0';
	if (strcmp(buf, want))
		die("%s: fd %d: read \"%s\", expected \"%s\"", what, fd, buf, want);
}

static void expect_peer(int fd, const char *name)
{
	struct sockaddr_un a;
	socklen_t len = sizeof(a);

	if (getpeername(fd, (struct sockaddr *)&a, &len))
		die("fd %d: getpeername: %m", fd);
	if (len <= offsetof(struct sockaddr_un, sun_path) || strcmp(a.sun_path, name))
		die("fd %d: connected to \"%s\", expected %s", fd,
		    len > offsetof(struct sockaddr_un, sun_path) ? a.sun_path : "", name);
}

static void signal_pipe(int fd)
{
	if (write(fd, "r", 1) != 1)
		die("a sync pipe: %m");
	close(fd);
}

static void wait_pipe(int fd)
{
	char c;

	if (read(fd, &c, 1) != 1)
		die("a sync pipe closed early");
	close(fd);
}

/* Its status within WAIT_MS, or die. */
static int reap(pid_t pid)
{
	for (int i = 0; i < WAIT_MS / 10; i++) {
		int status;

		if (waitpid(pid, &status, WNOHANG) == pid)
			return status;
		usleep(10000);
	}
	die("child %d did not exit within %d s", pid, WAIT_MS / 1000);
}

/* SIGTERM stays blocked but here: none is lost before the wait. */
static void until_term(void)
{
	sigset_t none;

	sigemptyset(&none);
	while (!term)
		sigsuspend(&none);
}

static void catch_term(void)
{
	struct sigaction sa = { .sa_handler = on_term };
	sigset_t t;

	sigemptyset(&t);
	sigaddset(&t, SIGTERM);
	sigprocmask(SIG_BLOCK, &t, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static void __attribute__((noreturn)) run_c(int ready_w)
{
	me = "C";
	at(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), 30, "datagram z");
	bind_to(30, "chain-z.sock");
	at(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), 31, "listener l2");
	bind_to(31, "chain-l2.sock");
	if (listen(31, 4))
		die("listen: %m");
	at(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), 35, "datagram w");
	bind_to(35, "chain-w.sock");
	signal_pipe(ready_w);
	at(accept4(31, NULL, NULL, SOCK_CLOEXEC), 32, "B's connection");
	until_term();
	expect(30, "y0", "B's datagram before the dump");
	expect(30, "x0", "A's datagram before the dump");
	expect(30, "x1", "A's datagram after the restore");
	expect(30, "y1", "B's datagram after the restore");
	expect(32, "b0b1", "B's stream");
	expect(35, "y0", "the chain's datagram before the dump");
	expect(35, "y1", "the chain's datagram after the restore");
	send_all(32, "c");
	_exit(0);
}

static void __attribute__((noreturn)) run_b(int ready_w, int x_done_r, int b_done_w)
{
	int c_ready[2];
	pid_t c;

	me = "B";
	catch_term();
	if (pipe2(c_ready, O_CLOEXEC))
		die("pipe: %m");
	c = fork();
	if (c < 0)
		die("fork: %m");
	if (c == 0) {
		close(c_ready[0]);
		close(ready_w);
		close(x_done_r);
		close(b_done_w);
		run_c(c_ready[1]);
	}
	close(c_ready[1]);
	wait_pipe(c_ready[0]);
	at(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), 30, "datagram y");
	connect_to(30, "chain-z.sock");
	at(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), 31, "B's client");
	connect_to(31, "chain-l2.sock");
	at(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), 33, "listener l1");
	bind_to(33, "chain-l1.sock");
	if (listen(33, 4))
		die("listen: %m");
	at(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), 35, "datagram y");
	bind_to(35, "chain-y.sock");
	send_all(30, "y0");
	send_all(31, "b0");
	signal_pipe(ready_w);
	wait_pipe(x_done_r);	/* A's fd 35 is connected to ours */
	connect_to(35, "chain-w.sock");
	send_all(35, "y0");
	at(accept4(33, NULL, NULL, SOCK_CLOEXEC), 34, "A's connection");
	signal_pipe(b_done_w);
	until_term();
	expect(35, "x0", "the chain's datagram from A");
	expect_peer(35, "chain-w.sock");
	send_all(35, "y1");
	expect(34, "a0a1", "A's stream");
	expect_peer(30, "chain-z.sock");
	expect_peer(31, "chain-l2.sock");
	send_all(30, "y1");
	send_all(31, "b1");
	kill(c, SIGTERM);
	if (reap(c))
		_exit(1);	/* C said why */
	expect(31, "c", "C's answer");
	send_all(34, "b");
	_exit(0);
}

int main(int argc, char **argv)
{
	int b_ready[2], x_done[2], b_done[2];
	char why[600] = "";
	pid_t b;
	int status, fd;

	test_init(argc, argv, NULL);
	test_kill_tree_at_exit();
	unlink(FAIL_FILE);
	if (pipe2(b_ready, O_CLOEXEC) || pipe2(x_done, O_CLOEXEC) || pipe2(b_done, O_CLOEXEC))
		fail("pipe: %m");
	b = fork();
	if (b < 0)
		fail("fork: %m");
	if (b == 0) {
		close(b_ready[0]);
		close(x_done[1]);
		close(b_done[0]);
		run_b(b_ready[1], x_done[0], b_done[1]);
	}
	close(b_ready[1]);
	close(x_done[0]);
	close(b_done[1]);
	wait_pipe(b_ready[0]);
	at(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), 30, "datagram x");
	connect_to(30, "chain-z.sock");
	at(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), 31, "A's client");
	connect_to(31, "chain-l1.sock");
	send_all(30, "x0");
	send_all(31, "a0");
	at(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), 35, "datagram x");
	connect_to(35, "chain-y.sock");
	send_all(35, "x0");
	signal_pipe(x_done[1]);
	wait_pipe(b_done[0]);	/* B connected on, and accepted us */

	test_daemon();
	test_waitsig();

	expect_peer(30, "chain-z.sock");
	expect_peer(31, "chain-l1.sock");
	expect_peer(35, "chain-y.sock");
	if (send(35, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT) != -1 || errno != EPERM)
		fail("fd 35: a send to chain-y.sock, connected on to chain-w.sock, did not "
		     "fail with EPERM: %m");
	send_all(30, "x1");
	send_all(31, "a1");
	kill(b, SIGTERM);
	status = reap(b);
	if (status) {
		fd = open(FAIL_FILE, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t n = read(fd, why, sizeof(why) - 1);

			why[n > 0 ? n : 0] = '\0';
			close(fd);
		}
		fail("%s (status %#x)", why[0] ? why : "a child failed, saying nothing", status);
	}
	expect(31, "b", "B's answer");
	pass();
}
