/*
 * A root and one child that hold descriptors together across a
 * checkpoint (the share_* programs: files shared between processes).
 *
 * twoproc_run(): the root has built what it shares; it forks the child,
 * which runs child_setup() (closes what it must not hold, queues its
 * data) and says it is ready.  The root says it is ready (pidfile) and
 * waits for SIGTERM.  Then: root_check() in the root (the child still
 * runs: kcmp can compare their fds); SIGTERM to the child, which runs
 * child_check() and exits 0, or calls twoproc_child_fail(), which leaves
 * its reason in a file the root fails with; root_after() in the root once
 * the child is gone (what the child did through a shared file shows here);
 * pass().
 */
#ifndef ZDTM_TWOPROC_H
#define ZDTM_TWOPROC_H

#include <sys/types.h>

struct twoproc {
	unsigned long clone_flags;	/* the child is a clone() with these, or a fork */
	void (*root_setup)(void);	/* in the root after the fork */
	void (*child_setup)(void);
	void (*root_check)(pid_t child);
	void (*child_check)(void);
	void (*root_after)(pid_t child);
};

void twoproc_run(const struct twoproc *tp) __attribute__((noreturn));
void twoproc_child_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* fail() (root) or twoproc_child_fail() (child), as the caller is */
void twoproc_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* fd @fa of @a and fd @fb of @b are one open file description (kcmp). */
int twoproc_same_file(pid_t a, int fa, pid_t b, int fb);
/* the root fails unless they are */
void twoproc_expect_shared(pid_t child, int root_fd, int child_fd, const char *what);
/* open @path at fd @fd (nothing left at another number), or fail */
void twoproc_open_at(const char *path, int flags, int fd);
/* read or write exactly @len bytes, or fail naming @what */
void twoproc_read(int fd, void *buf, size_t len, const char *what);
void twoproc_write(int fd, const void *buf, size_t len, const char *what);

#endif
