/*
 * A thread's seccomp state, installed before its creds (installing a
 * filter needs CAP_SYS_ADMIN unless no_new_privs is set, and the creds may
 * drop both).  Whatever runs after it in the blob is not filtered: the
 * restore process traces every thread of such a task with
 * PTRACE_O_SUSPEND_SECCOMP from before this point until it lets the task
 * go (restore/threads.c), so the filters act from the task's first own
 * instruction on.
 *
 * Filters shared by every thread are installed once by the leader with
 * SECCOMP_FILTER_FLAG_TSYNC, so they are shared again; a thread with a
 * chain of its own installs it itself.
 */
#include <stdint.h>

#include "restorer.h"
#include "syscalls.h"

#define PR_SET_SECCOMP			22
#define SECCOMP_MODE_STRICT		1
#define SECCOMP_MODE_FILTER		2
#define SECCOMP_SET_MODE_FILTER		1
#define SECCOMP_FILTER_FLAG_TSYNC	1

int rst_restore_seccomp(struct rst_thread_args *t)
{
	const struct rst_seccomp *sc = &t->seccomp;
	const struct rst_seccomp_filter *f = (const void *)(uintptr_t)sc->filters;
	long ret;

	if (sc->mode == SECCOMP_MODE_STRICT) {
		ret = sys_prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0);
		if (ret)
			return rst_thread_fail(t, RST_STEP_SECCOMP, ret, 0);
		return 0;
	}
	if (sc->mode != SECCOMP_MODE_FILTER)
		return 0;
	for (uint32_t i = 0; i < sc->nr_filters; i++) {
		unsigned long flags = f[i].flags | (sc->tsync ? SECCOMP_FILTER_FLAG_TSYNC : 0);

		/* TSYNC returns the id of a thread it could not sync, > 0 */
		ret = sys_call3(__NR_seccomp, SECCOMP_SET_MODE_FILTER, flags, SYS_A(&f[i]));
		if (ret)
			return rst_thread_fail(t, RST_STEP_SECCOMP, ret > 0 ? -3 /* ESRCH */ : ret,
					       i);
	}
	return 0;
}
