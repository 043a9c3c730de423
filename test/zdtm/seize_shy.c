/*
 * Processes that leave as soon as they are traced: each of the root's
 * children keeps one grandchild, which looks at its own TracerPid every
 * 200 us and exits the moment it has one, with the low byte of its pid as
 * its code; the child reaps it, checks that code and forks the next.  A
 * dump that seizes a grandchild finds it gone before it could stop it:
 * exited during its own seize, and dumped as the zombie its parent then
 * reaps (test_seize_races makes that happen every time, with a wait
 * between the seize and the interrupt).
 *
 * After SIGTERM each child ends its grandchild (SIGTERM: the same code),
 * reaps it, checks the code and exits 0; the root checks that each child
 * did.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define CHILDREN 2

static volatile sig_atomic_t got_term;

static void on_term(int sig)
{
	(void)sig;
	got_term = 1;
}

static void __attribute__((noreturn)) die(const char *what)
{
	fprintf(stderr, "%s: child %d: %s: %s\n", test_name(), getpid(), what, strerror(errno));
	_exit(1);
}

/* The TracerPid of /proc/self/status, or -1 if it cannot be read. */
static long tracer(void)
{
	char buf[4096], *p;
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	p = strstr(buf, "\nTracerPid:");
	return p ? strtol(p + 11, NULL, 10) : -1;
}

static void __attribute__((noreturn)) grandchild_run(void)
{
	const struct timespec tick = { 0, 200000 };
	long t = 0;

	while (!got_term && !(t = tracer()))
		nanosleep(&tick, NULL);
	if (t < 0 && !got_term)
		die("read /proc/self/status");
	_exit(getpid() & 0xff);
}

/* Wait for grandchild @g, telling it to go once we are told to. */
static int wait_grandchild(pid_t g)
{
	const struct timespec tick = { 0, 1000000 };
	int told = 0, status;
	pid_t r;

	while ((r = waitpid(g, &status, WNOHANG)) == 0 || (r < 0 && errno == EINTR)) {
		if (got_term && !told) {
			kill(g, SIGTERM);
			told = 1;
		}
		nanosleep(&tick, NULL);
	}
	if (r != g)
		die("waitpid");
	return status;
}

static void __attribute__((noreturn)) child_run(int ready_w)
{
	struct sigaction sa = { .sa_handler = on_term };

	sigaction(SIGTERM, &sa, NULL);
	if (write(ready_w, "r", 1) != 1)
		die("write");
	close(ready_w);
	while (!got_term) {
		pid_t g = fork();
		int status;

		if (g < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			die("fork");
		}
		if (g == 0)
			grandchild_run();
		status = wait_grandchild(g);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != (g & 0xff)) {
			fprintf(stderr, "%s: child %d: grandchild %d ended with status %#x\n",
				test_name(), getpid(), g, status);
			_exit(1);
		}
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	pid_t kids[CHILDREN];
	int status, p[2];
	char c;

	test_init(argc, argv, NULL);
	test_kill_tree_at_exit();
	if (pipe(p))
		fail("pipe: %m");
	for (int i = 0; i < CHILDREN; i++) {
		kids[i] = fork();
		if (kids[i] < 0)
			fail("fork: %m");
		if (kids[i] == 0) {
			close(p[0]);
			child_run(p[1]);
		}
	}
	close(p[1]);
	for (int i = 0; i < CHILDREN; i++)
		if (read(p[0], &c, 1) != 1)
			fail("a child did not get ready");
	close(p[0]);
	test_daemon();
	test_waitsig();
	for (int i = 0; i < CHILDREN; i++) {
		if (kill(kids[i], SIGTERM))
			fail("kill child %d: %m", kids[i]);
		if (waitpid(kids[i], &status, 0) != kids[i])
			fail("waitpid child %d: %m", kids[i]);
		if (status)
			fail("child %d ended with status %#x", kids[i], status);
	}
	pass();
}
