/*
 * Seccomp filters inherited across fork: the parent installs F1 (uname ->
 * ENOMSG) and forks; the child inherits it and installs F2 on top
 * (getpriority -> EXDEV, uname -> ENOTTY), so its chain starts with the
 * parent's filter (one seccomp.img entry for both).  After the restore
 * each checks its own: the parent one filter, the child both, in their
 * order (of two ERRNO results the newer filter's wins: uname gives
 * ENOTTY).  The child waits and reports through a shared page.
 */
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#include "lib/sc.h"
#include "lib/zdtmtst.h"

static volatile int expect_child_getpriority = EXDEV;

struct shared {
	volatile char report;
	volatile int go;
};

static void sleep_ms(void)
{
	struct timespec ms = { 0, 1000000 };

	nanosleep(&ms, NULL);
}

static int child_main(struct shared *sh)
{
	const struct sc_rule f2[] = { { SYS_getpriority, SECCOMP_RET_ERRNO | EXDEV },
				      { SYS_uname, SECCOMP_RET_ERRNO | ENOTTY }, { 0, 0 } };
	char c = 'P', buf[100];

	if (sc_install(f2, 0))
		c = 'I';
	sh->report = c;
	while (!sh->go)
		sleep_ms();
	if (sc_check_status(2, 2, buf, sizeof(buf)))
		c = 'N';
	else if (sc_uname_errno() != ENOTTY)
		c = 'U';
	else if (sc_getpriority_errno() != expect_child_getpriority)
		c = 'G';
	else
		c = 'P';
	sh->report = c;
	return 0;
}

static char read_report(struct shared *sh)
{
	for (int i = 0; i < 5000 && !sh->report; i++)
		sleep_ms();
	if (!sh->report)
		fail("no report from the child");
	return sh->report;
}

static void check_report(char c, const char *when)
{
	switch (c) {
	case 'P':
		return;
	case 'I':
		fail("%s: the child could not install its filter", when);
	case 'N':
		fail("%s: the child does not have 2 filters", when);
	case 'U':
		fail("%s: the child's uname is not refused by its newer filter", when);
	case 'G':
		fail("%s: the child's getpriority is not refused as expected", when);
	default:
		fail("%s: the child reported %#x", when, c);
	}
}

int main(int argc, char **argv)
{
	const struct sc_rule f1[] = { { SYS_uname, SECCOMP_RET_ERRNO | ENOMSG }, { 0, 0 } };
	struct shared *sh;
	int status, ret;
	char buf[100];
	pid_t child;

	test_init(argc, argv, NULL);
	test_kill_tree_at_exit();
	sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		fail("mmap: %m");
	ret = sc_install(f1, 0);
	if (ret)
		fail("seccomp: %s", strerror(-ret));
	child = fork();
	if (child < 0)
		fail("fork: %m");
	if (child == 0)
		_exit(child_main(sh));
	check_report(read_report(sh), "before the checkpoint");
	sh->report = 0;

	test_msg("the child's expected getpriority errno at %p",
		 (void *)&expect_child_getpriority);
	test_daemon();
	test_waitsig();

	if (sc_check_status(2, 1, buf, sizeof(buf)))
		fail("the parent: %s", buf);
	if (sc_uname_errno() != ENOMSG || sc_getpriority_errno())
		fail("the parent is not filtered as before");
	sh->go = 1;
	check_report(read_report(sh), "after SIGTERM");
	alarm(10);
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
		fail("the child ended with status %#x", status);
	pass();
}
