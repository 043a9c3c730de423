/*
 * Running a syscall inside a stopped tracee.
 *
 * The tracee's registers are pointed at a `syscall` instruction (in its
 * vdso, or any address the caller knows holds one), with orig_ax = -1 so
 * the kernel does not restart whatever syscall the task was stopped in,
 * and single-stepped once.  Every signal is blocked in the tracee around
 * the step so no asynchronous signal is dequeued (and lost) meanwhile.
 * Registers and the signal mask are put back afterwards.
 */
#ifndef CRIU_LAZY_COMMON_PTRACE_INJECT_H
#define CRIU_LAZY_COMMON_PTRACE_INJECT_H

#include <sys/types.h>

#define PTRACE_WAIT_TIMEOUT_MS 10000

/*
 * Wait for a ptrace stop (or the end) of tid.  0 with *status filled, or
 * -ETIMEDOUT / -ECHILD (logged).
 */
int ptrace_wait_stop(pid_t tid, int timeout_ms, int *status);

/* Address of a `syscall` instruction in the tracee's [vdso]. */
int inject_find_syscall_ip(pid_t pid, unsigned long *ip);

/*
 * Run syscall nr with args in the stopped tracee tid.  *result gets the raw
 * return value (a negative errno on the syscall's failure).  Returns 0, or
 * -ESRCH if the task died, other negative errnos for ptrace failures
 * (logged).
 */
int inject_syscall(pid_t tid, unsigned long syscall_ip, long nr,
		   const unsigned long args[6], long *result);

#endif
