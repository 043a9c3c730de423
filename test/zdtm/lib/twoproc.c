/* A root and one child sharing descriptors: see twoproc.h. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "twoproc.h"
#include "zdtmtst.h"

#define CHILD_RESULT "child-result"
#define CHILD_EXIT_S 30

static volatile sig_atomic_t child_term;
static pid_t root_pid;

static void on_child_term(int sig)
{
	(void)sig;
	child_term = 1;
}

static void __attribute__((noreturn)) vchild_fail(const char *fmt, va_list ap)
{
	char buf[512];
	int fd, len;

	len = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (len < 0)
		len = 0;
	if (len >= (int)sizeof(buf))
		len = sizeof(buf) - 1;
	fprintf(stderr, "%s: child %d: %s\n", test_name(), getpid(), buf);
	fd = open(CHILD_RESULT, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		if (write(fd, buf, len) < 0) {
			/* stderr has it */
		}
		close(fd);
	}
	_exit(1);
}

void twoproc_child_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vchild_fail(fmt, ap);
}

void twoproc_fail(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	if (getpid() != root_pid)
		vchild_fail(fmt, ap);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fail("%s", buf);
}

int twoproc_same_file(pid_t a, int fa, pid_t b, int fb)
{
	return syscall(SYS_kcmp, a, b, KCMP_FILE, fa, fb) == 0;
}

void twoproc_expect_shared(pid_t child, int root_fd, int child_fd, const char *what)
{
	long r = syscall(SYS_kcmp, getpid(), child, KCMP_FILE, root_fd, child_fd);

	if (r)
		fail("%s: fd %d of the root and fd %d of the child are not one open file any more "
		     "(kcmp: %s)", what, root_fd, child_fd, r < 0 ? strerror(errno) : "different");
}

void twoproc_open_at(const char *path, int flags, int fd)
{
	int got = open(path, flags, 0644);

	if (got < 0 || (got != fd && dup2(got, fd) != fd))
		twoproc_fail("%s as fd %d: %s", path, fd, strerror(errno));
	if (got != fd)
		close(got);
}

void twoproc_read(int fd, void *buf, size_t len, const char *what)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, (char *)buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			twoproc_fail("%s: fd %d: read %zu of %zu bytes: %s", what, fd, done, len,
				     n ? strerror(errno) : "end of file");
		done += n;
	}
}

void twoproc_write(int fd, const void *buf, size_t len, const char *what)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			twoproc_fail("%s: fd %d: wrote %zu of %zu bytes: %s", what, fd, done, len,
				     n ? strerror(errno) : "nothing written");
		done += n;
	}
}

static void __attribute__((noreturn)) child_main(const struct twoproc *tp, int ready_w)
{
	struct sigaction sa = { .sa_handler = on_child_term };

	sigaction(SIGTERM, &sa, NULL);
	if (tp->child_setup)
		tp->child_setup();
	if (write(ready_w, "r", 1) != 1)
		_exit(2);
	if (!(tp->clone_flags & CLONE_FILES))	/* else the root's too */
		close(ready_w);
	test_wait_flag(&child_term, SIGTERM);	/* no lost wake-up, as pause() had */
	if (tp->child_check)
		tp->child_check();
	_exit(0);
}

/* The child's status within CHILD_EXIT_S, or fail. */
static int wait_child(pid_t child)
{
	for (int i = 0; i < CHILD_EXIT_S * 100; i++) {
		int status;
		pid_t r = waitpid(child, &status, WNOHANG);

		if (r == child)
			return status;
		if (r < 0)
			fail("waitpid(%d): %m", child);
		usleep(10000);
	}
	fail("the child %d did not exit within %d s of SIGTERM", child, CHILD_EXIT_S);
}

void twoproc_run(const struct twoproc *tp)
{
	char why[512] = "";
	int p[2], status;
	pid_t child;
	char c;

	root_pid = getpid();
	unlink(CHILD_RESULT);
	test_kill_tree_at_exit();
	if (pipe2(p, O_CLOEXEC))
		fail("pipe: %m");
	/* clone() without a new stack returns twice, as fork() does */
	child = syscall(SYS_clone, tp->clone_flags | SIGCHLD, NULL, NULL, NULL, 0);
	if (child < 0)
		fail("fork: %m");
	if (child == 0) {
		if (!(tp->clone_flags & CLONE_FILES))
			close(p[0]);
		child_main(tp, p[1]);
	}
	if (!(tp->clone_flags & CLONE_FILES))
		close(p[1]);
	if (tp->root_setup)
		tp->root_setup();
	if (read(p[0], &c, 1) != 1)
		fail("the child did not get ready");
	close(p[0]);
	if (tp->clone_flags & CLONE_FILES)
		close(p[1]);
	test_msg("child %d", child);

	test_daemon();
	test_waitsig();

	if (tp->root_check)
		tp->root_check(child);
	kill(child, SIGTERM);
	status = wait_child(child);
	if (status) {
		int fd = open(CHILD_RESULT, O_RDONLY | O_CLOEXEC);

		if (fd >= 0) {
			ssize_t n = read(fd, why, sizeof(why) - 1);

			why[n > 0 ? n : 0] = '\0';
			close(fd);
		}
		fail("child: %s (status %#x)", why[0] ? why : "no reason given", status);
	}
	if (tp->root_after)
		tp->root_after(child);
	pass();
}
