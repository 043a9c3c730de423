/*
 * A child that holds the test's state through the checkpoint and checks
 * its own side of it after the parent's (the --child variants of
 * ghost_files, memfd_map, mmap_devzero):
 *
 *   waiter_fork()  forks it (the tree is killed when the root exits); the
 *                  child sleeps on a pipe until woken, then exits with
 *                  check(arg): 0 when all it holds is right, else a code
 *                  of its own (it cannot write the outfile itself)
 *   waiter_wake()  in the parent, after its own checks: wakes the child,
 *                  waits for it and fail()s unless it exited 0, naming
 *                  the status and @codes (what each exit code means)
 */
#ifndef ZDTM_WAITER_H
#define ZDTM_WAITER_H

#include <sys/types.h>

struct waiter {
	pid_t pid;
	int wake;		/* the write end of the child's pipe */
};

void waiter_fork(struct waiter *w, int (*check)(void *arg), void *arg);
void waiter_wake(struct waiter *w, const char *codes);

#endif
