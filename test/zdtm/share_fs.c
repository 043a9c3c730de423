/*
 * Processes sharing their cwd, root and umask (clone with CLONE_FS): the
 * restore must clone the child with CLONE_FS again.
 *
 * Before the dump: the root makes share-d1 and share-d2, enters share-d1
 * with umask 027 and clones the child with CLONE_FS; the child moves into
 * share-d2, so the root is there too.  After the restore: the root must be
 * in share-d2 with umask 027 and be one fs with the child (kcmp); the child
 * moves into share-d1 and sets umask 077; then the root must be in
 * share-d1 with umask 077: what one changes, the other sees.
 *
 * --not-parent: the child clones a grandchild with CLONE_FS, then leaves
 * the fs it shared (unshare): the root and the grandchild still share
 * theirs, but the grandchild's parent does not, which the dump refuses;
 * without a restore, the child's moves no longer show in the root.
 */
#include <errno.h>
#include <limits.h>
#include <linux/kcmp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/twoproc.h"
#include "lib/zdtmtst.h"

static char top[PATH_MAX];
static volatile mode_t want_mask = 027;	/* the umask both must have */

static void expect_fs(const char *dir, mode_t mask, const char *who)
{
	char cwd[PATH_MAX], want[PATH_MAX + 16];
	mode_t got = umask(mask);

	umask(got);
	snprintf(want, sizeof(want), "%s/%s", top, dir);
	if (!getcwd(cwd, sizeof(cwd)) || strcmp(cwd, want))
		twoproc_fail("%s: cwd is %s, expected %s", who, cwd, want);
	if (got != mask)
		twoproc_fail("%s: umask is %#o, expected %#o", who, got, mask);
}

static int not_parent;
static pid_t grandchild;

static void child_setup(void)
{
	if (chdir("../share-d2"))
		twoproc_child_fail("chdir share-d2: %m");
	if (not_parent) {
		pid_t g = syscall(SYS_clone, CLONE_FS | SIGCHLD, NULL, NULL, NULL, 0);

		if (g == 0)
			for (;;)
				pause();	/* the child kills it before it exits */
		grandchild = g;
		if (g < 0 || unshare(CLONE_FS))
			twoproc_child_fail("a grandchild sharing the root's fs: %m");
	}
}

static void root_check(pid_t child)
{
	long r = syscall(SYS_kcmp, getpid(), child, KCMP_FS, 0, 0);

	expect_fs("share-d2", want_mask, "root after the restore");
	if (not_parent)
		r = !r;		/* the child left it */
	if (r)
		fail("the root and the child do not share their fs_struct any more (kcmp: %s)",
		     r < 0 ? strerror(errno) : "different");
}

static void child_check(void)
{
	if (grandchild > 0) {
		kill(grandchild, SIGKILL);
		waitpid(grandchild, NULL, 0);
	}
	expect_fs("share-d2", 027, "child after the restore");
	if (chdir("../share-d1"))
		twoproc_child_fail("chdir share-d1: %m");
	umask(077);
}

static void root_after(pid_t child)
{
	(void)child;
	expect_fs(not_parent ? "share-d2" : "share-d1", not_parent ? 027 : 077,
		  "root after the child moved");
	if (chdir(top))
		fail("chdir %s: %m", top);
}

int main(int argc, char **argv)
{
	static struct twoproc tp = {
		.clone_flags = CLONE_FS, .child_setup = child_setup,
		.root_check = root_check, .child_check = child_check, .root_after = root_after,
	};
	static const struct test_opt opts[] = {
		{ "not-parent", TEST_OPT_FLAG, &not_parent, 0,
		  "a grandchild shares the root's fs, its parent not" },
		{ NULL },
	};

	test_init(argc, argv, opts);
	if (!getcwd(top, sizeof(top)))
		fail("getcwd: %m");
	if ((mkdir("share-d1", 0755) && errno != EEXIST) ||
	    (mkdir("share-d2", 0755) && errno != EEXIST) || chdir("share-d1"))
		fail("share-d1, share-d2: %m");
	umask(027);
	test_msg("expected umask at %p", (void *)&want_mask);
	twoproc_run(&tp);
}
