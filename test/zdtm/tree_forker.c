/*
 * A tree that never stops forking: each of the root's children forks
 * grandchildren in a loop, each of which lives a moment (a few
 * microseconds to a millisecond) and exits with a code the child checks
 * when it reaps it.  A dump catches the tree in some state of this
 * (grandchildren running, exiting, zombies not reaped yet) and must freeze
 * all of it consistently.
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
		if (pid == 0) {
			struct timespec ts = { 0, (getpid() % 8) * 125000 };

			nanosleep(&ts, NULL);
			_exit(getpid() & 0xff);
		}
		/* leave a few unreaped for a while: zombies for the dump */
		if (++n % 4 == 0)
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

	test_init(argc, argv, NULL);
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
