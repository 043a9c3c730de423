/*
 * Processes sharing one descriptor table (clone with CLONE_FILES, no
 * CLONE_THREAD): the restore must clone the child with CLONE_FILES again,
 * and the table must be the dumped one, once, with nothing of the
 * restore's left in it.
 *
 * Before the dump: the root opens fdt.data at fd 40, then clones the
 * child with CLONE_FILES; the root opens fdt.late at fd 41 and the child a
 * pipe at fds 42 and 43 (each sees the other's only through the shared
 * table).  After the restore: the root and the child must be one table
 * (kcmp KCMP_FILES) holding all four; the root opens fdt.after at fd 50 and
 * writes "ping" into the pipe; the child must see fd 50 (that very file)
 * and read "ping" from fd 42; it opens fdt.child at fd 51 and closes fd
 * 41; once the child is gone the root must hold fd 51 and no fd 41: what
 * one opens or closes, the other sees.
 *
 * --fs: CLONE_FS too.  --chain: the child clones a grandchild with
 * CLONE_FILES too (three sharers of one table; the grandchild must be one
 * table with the root).
 * Refused by the dump (test_tree.py): --vm (CLONE_VM | CLONE_FILES: CRIU
 * too restores no memory shared between processes) and --not-parent (the
 * child clones a grandchild with CLONE_FILES, then leaves the table with
 * unshare: the root and the grandchild share it, the grandchild's parent
 * does not).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/twoproc.h"
#include "lib/zdtmtst.h"

#define FD_DATA		40
#define FD_LATE		41
#define FD_PIPE_R	42
#define FD_PIPE_W	43
#define FD_AFTER	50
#define FD_CHILD	51

static int chain, not_parent;
static pid_t grandchild;

static void expect_file(int fd, const char *path, const char *who)
{
	struct stat a, b;

	if (fstat(fd, &a))
		twoproc_fail("%s: fd %d (%s) is not open: %m", who, fd, path);
	if (stat(path, &b))
		twoproc_fail("%s: stat %s: %m", who, path);
	if (a.st_dev != b.st_dev || a.st_ino != b.st_ino)
		twoproc_fail("%s: fd %d is not %s", who, fd, path);
}

static void expect_closed(int fd, const char *who)
{
	if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
		twoproc_fail("%s: fd %d is still open", who, fd);
}

static pid_t clone_files(unsigned long flags)
{
	return syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, 0);
}

static void root_setup(void)
{
	twoproc_open_at("fdt.late", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, FD_LATE);
}

static void child_setup(void)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) || dup2(p[0], FD_PIPE_R) < 0 || dup2(p[1], FD_PIPE_W) < 0)
		twoproc_child_fail("a pipe at fds %d and %d: %m", FD_PIPE_R, FD_PIPE_W);
	close(p[0]);
	close(p[1]);
	if (chain || not_parent) {
		pid_t g = clone_files(CLONE_FILES);

		if (g == 0)
			for (;;)
				pause();	/* the child kills it before it exits */
		grandchild = g;
		if (g < 0 || (not_parent && unshare(CLONE_FILES)))
			twoproc_child_fail("a grandchild sharing the table: %m");
	}
}

static pid_t child_of(pid_t pid)
{
	char path[64], buf[64] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", pid, pid);
	f = fopen(path, "re");
	if (!f || !fgets(buf, sizeof(buf), f))
		fail("%s: no child: %m", path);
	fclose(f);
	return atoi(buf);
}

static void expect_one_table(pid_t a, pid_t b, const char *what)
{
	long r = syscall(SYS_kcmp, a, b, KCMP_FILES, 0, 0);

	if (r)
		fail("%s: tasks %d and %d are not one descriptor table any more (kcmp: %s)",
		     what, a, b, r < 0 ? strerror(errno) : "different");
}

static void root_check(pid_t child)
{
	expect_one_table(getpid(), child, "the root and the child");
	if (chain)
		expect_one_table(getpid(), child_of(child), "the root and the grandchild");
	expect_file(FD_DATA, "fdt.data", "root");
	expect_file(FD_LATE, "fdt.late", "root");
	if (fcntl(FD_PIPE_R, F_GETFD) < 0 || fcntl(FD_PIPE_W, F_GETFD) < 0)
		fail("root: the child's pipe (fds %d, %d) is not in its table: %m", FD_PIPE_R,
		     FD_PIPE_W);
	twoproc_open_at("fdt.after", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, FD_AFTER);
	twoproc_write(FD_PIPE_W, "ping", 4, "root: the child's pipe");
}

static void kill_grandchild(void)
{
	if (grandchild > 0) {
		kill(grandchild, SIGKILL);
		waitpid(grandchild, NULL, 0);
	}
}

static void child_check(void)
{
	char buf[4];

	kill_grandchild();
	expect_file(FD_AFTER, "fdt.after", "child: the file the root opened after the restore");
	expect_file(FD_DATA, "fdt.data", "child");
	twoproc_read(FD_PIPE_R, buf, sizeof(buf), "child: its pipe");
	if (memcmp(buf, "ping", 4))
		twoproc_child_fail("child: read %.4s from its pipe, not ping", buf);
	twoproc_open_at("fdt.child", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, FD_CHILD);
	if (close(FD_LATE))
		twoproc_child_fail("child: close fd %d: %m", FD_LATE);
}

static void root_after(pid_t child)
{
	(void)child;
	expect_file(FD_CHILD, "fdt.child", "root: the file the child opened");
	expect_closed(FD_LATE, "root, after the child closed it");
}

/* --vm: a child with a stack of its own, in our memory, that only waits. */
static int vm_child(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return 0;
}

static void __attribute__((noreturn)) run_vm(void)
{
	static char stack[64 << 10] __attribute__((aligned(16)));
	pid_t child;

	test_kill_tree_at_exit();
	child = clone(vm_child, stack + sizeof(stack), CLONE_VM | CLONE_FILES | SIGCHLD, NULL);
	if (child < 0)
		fail("clone(CLONE_VM | CLONE_FILES): %m");
	test_daemon();
	test_waitsig();
	expect_one_table(getpid(), child, "the root and its CLONE_VM child");
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	pass();
}

int main(int argc, char **argv)
{
	static struct twoproc tp = {
		.clone_flags = CLONE_FILES, .root_setup = root_setup, .child_setup = child_setup,
		.root_check = root_check, .child_check = child_check, .root_after = root_after,
	};
	static int fs, vm;
	static const struct test_opt opts[] = {
		{ "fs", TEST_OPT_FLAG, &fs, 0, "share cwd, root and umask too (CLONE_FS)" },
		{ "chain", TEST_OPT_FLAG, &chain, 0, "a grandchild shares the table too" },
		{ "vm", TEST_OPT_FLAG, &vm, 0, "the child shares our memory too (CLONE_VM)" },
		{ "not-parent", TEST_OPT_FLAG, &not_parent, 0,
		  "a grandchild shares the root's table, its parent not" },
		{ NULL },
	};

	test_init(argc, argv, opts);
	twoproc_open_at("fdt.data", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, FD_DATA);
	if (vm)
		run_vm();
	if (fs)
		tp.clone_flags |= CLONE_FS;
	if (not_parent) {	/* the child left the table: its moves no longer show */
		tp.root_check = NULL;
		tp.child_check = kill_grandchild;
		tp.root_after = NULL;
	}
	twoproc_run(&tp);
}
