/* A child that checks its side after the parent's (waiter.h). */
#include <sys/wait.h>
#include <unistd.h>

#include "waiter.h"
#include "zdtmtst.h"

void waiter_fork(struct waiter *w, int (*check)(void *arg), void *arg)
{
	int ctl[2];

	test_kill_tree_at_exit();
	if (pipe(ctl))
		fail("pipe: %m");
	w->pid = fork();
	if (w->pid < 0)
		fail("fork: %m");
	if (w->pid == 0) {
		char c;

		close(ctl[1]);
		if (read(ctl[0], &c, 1) != 1)
			_exit(2);
		_exit(check(arg));
	}
	close(ctl[0]);
	w->wake = ctl[1];
}

void waiter_wake(struct waiter *w, const char *codes)
{
	int status;

	if (write(w->wake, "w", 1) != 1)
		fail("waking the child: %m");
	if (waitpid(w->pid, &status, 0) != w->pid || !WIFEXITED(status) || WEXITSTATUS(status))
		fail("the child ended with status %#x (2: it was not woken%s%s)", status,
		     codes ? ", " : "", codes ? codes : "");
}
