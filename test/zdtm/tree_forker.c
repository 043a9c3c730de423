/*
 * A tree that never stops forking: each of the root's children forks
 * grandchildren in a loop, each of which lives a moment (a few
 * microseconds to a millisecond) and exits with a code the child checks
 * when it reaps it.  A dump catches the tree in some state of this
 * (grandchildren running, exiting, zombies not reaped yet) and must freeze
 * all of it consistently.
 *
 * --shy: each child keeps one grandchild at a time instead, which looks
 * at its own TracerPid every 200 us and exits (with the same code) the
 * moment it has one: a dump that seizes it finds it gone before it could
 * stop it, and dumps it as the zombie its parent then reaps
 * (test_seize_races makes that happen every time).
 *
 * After SIGTERM each child stops forking, reaps what is left (every exit
 * code must be the one its grandchild was given), checks its memory and
 * exits 0; the root checks that each child did.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define SEED 0x666f726bULL
#define CHILDREN 2
#define PAGES 32

static volatile sig_atomic_t got_term;
static int shy;

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

static int reap_one(int flags)
{
	int status;
	pid_t r = waitpid(-1, &status, flags);

	if (r <= 0)
		return r;
	/* each grandchild exits with the low byte of its pid */
	if (!WIFEXITED(status) || WEXITSTATUS(status) != (r & 0xff)) {
		fprintf(stderr, "%s: child %d: grandchild %d ended with status %#x\n",
			test_name(), getpid(), r, status);
		_exit(1);
	}
	return r;
}

/* Has a tracer seized us?  (The library fail()s if /proc is unreadable.) */
static int traced(void)
{
	char v[32];

	if (proc_status_value("TracerPid", v, sizeof(v)))
		die("no TracerPid in /proc/self/status");
	return atol(v) != 0;
}

static void __attribute__((noreturn)) grandchild_run(void)
{
	const struct timespec tick = { 0, 200000 };
	struct timespec ts = { 0, (getpid() % 8) * 125000 };

	if (!shy) {
		nanosleep(&ts, NULL);
		_exit(getpid() & 0xff);
	}
	/* (SIGTERM, the child's handler inherited: told to go) */
	while (!got_term && !traced())
		nanosleep(&tick, NULL);
	_exit(getpid() & 0xff);
}

/* --shy: wait for grandchild @pid to end, telling it to once we are told. */
static void wait_shy(pid_t pid)
{
	const struct timespec tick = { 0, 1000000 };
	int told = 0;
	pid_t r;

	while ((r = reap_one(WNOHANG)) != pid) {
		if (r < 0 && errno != EINTR)
			die("waitpid");
		if (got_term && !told) {
			kill(pid, SIGTERM);
			told = 1;
		}
		nanosleep(&tick, NULL);
	}
}

/* @mem: mapped by the root before the fork, ours once we write it */
static void __attribute__((noreturn)) child_run(uint8_t *mem, int ready_w)
{
	struct sigaction sa = { .sa_handler = on_term };
	unsigned long n = 0;

	sigaction(SIGTERM, &sa, NULL);
	pattern_fill(mem, PAGES * PAGE_SIZE, SEED + getpid());
	if (write(ready_w, "r", 1) != 1)
		die("write");
	close(ready_w);
	while (!got_term) {
		pid_t pid = fork();

		if (pid < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			die("fork");
		}
		if (pid == 0)
			grandchild_run();
		if (shy)
			wait_shy(pid);
		/* leave a few unreaped for a while: zombies for the dump */
		else if (++n % 4 == 0)
			while (reap_one(WNOHANG) > 0)
				;
	}
	while (reap_one(0) > 0)
		;
	if (errno != ECHILD)
		die("waitpid");
	if (pattern_find_bad(mem, PAGES * PAGE_SIZE, SEED + getpid()) != PAGES * PAGE_SIZE) {
		fprintf(stderr, "%s: child %d: its memory is wrong\n", test_name(), getpid());
		_exit(1);
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	pid_t kids[CHILDREN];
	uint8_t *mem;
	int status, p[2];
	char c;

	const struct test_opt opts[] = {
		{ "shy", TEST_OPT_FLAG, &shy, 0, "grandchildren that leave once traced" },
		{ NULL },
	};

	test_init(argc, argv, opts);
	test_kill_tree_at_exit();
	mem = mmap(NULL, PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		   -1, 0);
	if (mem == MAP_FAILED || pipe(p))
		fail("setup: %m");
	for (int i = 0; i < CHILDREN; i++) {
		kids[i] = fork();
		if (kids[i] < 0)
			fail("fork: %m");
		if (kids[i] == 0) {
			close(p[0]);
			child_run(mem, p[1]);
		}
	}
	close(p[1]);
	for (int i = 0; i < CHILDREN; i++)
		if (read(p[0], &c, 1) != 1)
			fail("a child did not get ready");
	close(p[0]);
	test_msg("child %d memory %p", kids[0], (void *)mem);
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
