/*
 * Pseudo-terminals of the program's own (it leads its session):
 *   fd 20  a ptmx master in packet mode, fd 21 its slave (TIOCEXCL, custom
 *          termios and window size), the controlling terminal of the
 *          session with the program's group in the foreground, fd 22 a
 *          second open file description of the slave (O_NONBLOCK);
 *          queued: "line one\npart" for the slave (a line and a half),
 *          "out data\n" for the master
 *   fd 23  another master, still locked (its slave never opened)
 * After SIGTERM: the same indexes, settings and modes, the slave is the
 * controlling terminal, and the queued bytes arrive as they were sent.
 *
 * --child: a child leads a session of its own whose controlling terminal
 * is the slave (its own open of it, fd 30), its group in the foreground;
 * the program checks that through the master.
 * --child-nofd: the same, and the child then closes every fd of the pty
 * (a dump must refuse: the child would have nothing to take it back with).
 * --outside: fd 24 is a slave whose master is closed, as a terminal from
 * outside the tree would be (a dump must refuse it without --shell-job,
 * naming the terminal).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

static int pty_index(int fd)
{
	unsigned int n;

	if (ioctl(fd, TIOCGPTN, &n))
		fail("TIOCGPTN on %d: %m", fd);
	return n;
}

static int ioctl_int(int fd, unsigned long req, const char *what)
{
	int v = -1;

	if (ioctl(fd, req, &v))
		fail("%s on %d: %m", what, fd);
	return v;
}

static void expect_read(int fd, const char *want, size_t len)
{
	char buf[256];
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n != (ssize_t)len || memcmp(buf, want, len))
		fail("fd %d: read %zd bytes '%.*s', expected %zu '%.*s' (%m)", fd, n,
		     n > 0 ? (int)n : 0, buf, len, (int)len, want);
}

int main(int argc, char **argv)
{
	int outside = 0, child = 0, nofd = 0;
	pid_t kid = 0;
	const struct test_opt opts[] = {
		{ "outside", TEST_OPT_FLAG, &outside, 0, "fd 24: a slave of a master not held" },
		{ "child", TEST_OPT_FLAG, &child, 0,
		  "the slave is the controlling terminal of a child's session instead" },
		{ "child-nofd", TEST_OPT_FLAG, &nofd, 0,
		  "--child, and the child closes every fd of the pty (a dump must refuse)" },
		{ NULL, 0, NULL, 0, NULL },
	};
	struct termios t, t_before;
	struct winsize w = { .ws_row = 40, .ws_col = 132, .ws_xpixel = 7, .ws_ypixel = 9 }, w2;
	char path[64];
	int idx, idx2, one = 1;
	struct stat st;

	test_init(argc, argv, opts);
	child |= nofd;
	if (getsid(0) != getpid())
		fail("not a session leader");
	fd_place(posix_openpt(O_RDWR | O_NOCTTY), 20, 0);
	if (grantpt(20) || unlockpt(20))
		fail("unlockpt: %m");
	idx = pty_index(20);
	snprintf(path, sizeof(path), "/dev/pts/%d", idx);
	/* a session leader's open of a tty makes it its terminal: not with --child */
	fd_place(open(path, O_RDWR | (child ? O_NOCTTY : 0)), 21, 0);
	if (!child && (ioctl(21, TIOCSCTTY, 0) || tcsetpgrp(21, getpgrp())))
		fail("TIOCSCTTY / tcsetpgrp: %m");
	fd_place(open(path, O_RDWR | O_NONBLOCK | O_NOCTTY), 22, 0);
	if (tcgetattr(21, &t))
		fail("tcgetattr: %m");
	t.c_lflag &= ~(ECHO | ECHOE);
	t.c_cc[VINTR] = 7;
	t.c_cc[VERASE] = 8;
	cfsetospeed(&t, B9600);
	cfsetispeed(&t, B9600);
	if (tcsetattr(21, TCSANOW, &t) || ioctl(21, TIOCSWINSZ, &w) || ioctl(21, TIOCEXCL) ||
	    ioctl(20, TIOCPKT, &one))
		fail("tty settings: %m");
	if (write(20, "line one\npart", 13) != 13 || write(21, "out data\n", 9) != 9)
		fail("write: %m");
	fd_place(posix_openpt(O_RDWR | O_NOCTTY), 23, 0);
	idx2 = pty_index(23);
	if (outside) {
		/* a slave alone: its master closed (hung up) */
		int m = posix_openpt(O_RDWR | O_NOCTTY);

		if (m < 0 || unlockpt(m))
			fail("posix_openpt: %m");
		snprintf(path, sizeof(path), "/dev/pts/%d", pty_index(m));
		fd_place(open(path, O_RDWR | O_NOCTTY), 24, 0);
		close(m);
	}
	if (child) {
		/* a session of its own whose controlling terminal is the slave,
		 * opened on its own (fd 30) */
		int ready[2];
		char c;

		test_kill_tree_at_exit();
		if (pipe(ready))
			fail("pipe: %m");
		kid = fork();
		if (kid < 0)
			fail("fork: %m");
		if (kid == 0) {
			snprintf(path, sizeof(path), "/dev/pts/%d", idx);
			int o = setsid() < 0 ? -1 : open(path, O_RDWR);

			if (o < 0 || dup2(o, 30) != 30 || close(o) ||
			    ioctl(30, TIOCSCTTY, 0) || tcsetpgrp(30, getpid())) {
				test_msg("child: taking %s as its terminal: %m", path);
				_exit(1);
			}
			close(ready[0]);
			if (nofd)	/* the terminal stays its own without them */
				close_range(20, 30, 0);
			if (write(ready[1], "r", 1) != 1)
				_exit(1);
			close(ready[1]);
			for (;;)
				pause();
		}
		close(ready[1]);
		if (read(ready[0], &c, 1) != 1)
			fail("the child could not take the slave as its terminal");
		close(ready[0]);
	}
	if (tcgetattr(21, &t_before))
		fail("tcgetattr: %m");
	usleep(100000);		/* the bytes reach the line disciplines */

	test_daemon();
	test_waitsig();

	if (pty_index(20) != idx || pty_index(23) != idx2)
		fail("pty indexes %d %d, expected %d %d", pty_index(20), pty_index(23), idx, idx2);
	if (tcgetattr(21, &t) || memcmp(&t, &t_before, sizeof(t)))
		fail("fd 21: termios changed (lflag %#x, was %#x; ospeed %u, was %u)",
		     t.c_lflag, t_before.c_lflag, cfgetospeed(&t), cfgetospeed(&t_before));
	if (ioctl(21, TIOCGWINSZ, &w2) || memcmp(&w, &w2, sizeof(w)))
		fail("fd 21: window size %ux%u, expected %ux%u", w2.ws_row, w2.ws_col, w.ws_row,
		     w.ws_col);
	if (ioctl_int(20, TIOCGPKT, "TIOCGPKT") != 1 || ioctl_int(21, TIOCGEXCL, "TIOCGEXCL") != 1)
		fail("packet mode %d, exclusive %d, expected 1 1", ioctl_int(20, TIOCGPKT, "TIOCGPKT"),
		     ioctl_int(21, TIOCGEXCL, "TIOCGEXCL"));
	if (ioctl_int(23, TIOCGPTLCK, "TIOCGPTLCK") != 1 || ioctl_int(20, TIOCGPTLCK, "TIOCGPTLCK"))
		fail("pty locks: fd 23 %d, fd 20 %d, expected 1 0",
		     ioctl_int(23, TIOCGPTLCK, "TIOCGPTLCK"), ioctl_int(20, TIOCGPTLCK, "TIOCGPTLCK"));
	if (child) {
		int sid = ioctl_int(20, TIOCGSID, "TIOCGSID"), pgrp = ioctl_int(20, TIOCGPGRP, "TIOCGPGRP");

		if (sid != kid || pgrp != kid || proc_stat_field(7))
			fail("the slave: session %d, foreground group %d, expected the child's %d; ours %#llx",
			     sid, pgrp, kid, proc_stat_field(7));
		goto data;
	}
	if (tcgetsid(21) != getpid() || tcgetpgrp(21) != getpgrp())
		fail("the slave: session %d, foreground group %d, expected %d %d", tcgetsid(21),
		     tcgetpgrp(21), getpid(), getpgrp());
	if (fstat(21, &st))
		fail("fstat: %m");
	/* stat field 7: the controlling terminal, in the kernel's encoding */
	if (proc_stat_field(7) != ((minor(st.st_rdev) & 0xff) | (major(st.st_rdev) << 8) |
				   ((minor(st.st_rdev) & ~0xffU) << 12)))
		fail("the controlling terminal is %#llx, not the slave", proc_stat_field(7));
data:
	if ((fcntl(22, F_GETFL) & O_NONBLOCK) == 0 || (fcntl(21, F_GETFL) & O_NONBLOCK))
		fail("O_NONBLOCK of fds 21 and 22 changed");

	expect_read(21, "line one\n", 9);
	if (read(22, path, sizeof(path)) != -1 || errno != EAGAIN)
		fail("fd 22: a line not ended is readable");
	if (write(20, "\n", 1) != 1)
		fail("write: %m");
	usleep(50000);
	expect_read(22, "part\n", 5);
	/* packet mode: TIOCPKT_DATA, then what the slave wrote (ONLCR) */
	expect_read(20, "\0out data\r\n", 11);
	pass();
}
