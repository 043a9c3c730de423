/*
 * Running a syscall inside a stopped tracee.
 *
 * The tracee's registers are pointed at a `syscall` instruction (in its
 * vdso, or any address the caller knows holds one), with orig_ax = -1 so
 * the kernel does not restart whatever syscall the task was stopped in,
 * and resumed with PTRACE_SYSCALL up to the syscall's entry and exit stops.
 * (Single-stepping would raise a SIGTRAP, and a forced SIGTRAP that is
 * blocked resets the task's SIGTRAP handler.)  Every signal is blocked in
 * the tracee meanwhile so no asynchronous signal is dequeued and lost.
 * Registers and the signal mask are put back afterwards.
 *
 * The tracee then sits in a syscall-exit stop.  A task that will go on
 * from the registers it was seized with must first be parked in a signal
 * stop again (ptrace_park_in_signal_stop), or the kernel would not restart
 * the syscall it was interrupted in.
 */
#ifndef CRIU_LAZY_COMMON_PTRACE_INJECT_H
#define CRIU_LAZY_COMMON_PTRACE_INJECT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#define PTRACE_WAIT_TIMEOUT_MS 10000

/*
 * Wait for a ptrace stop (or the end) of tid.  0 with *status filled, or
 * -ETIMEDOUT / -ECHILD (logged).
 */
int ptrace_wait_stop(pid_t tid, int timeout_ms, int *status);

/*
 * Reap the traced tasks of @tids that are gone (killed, or exiting), each
 * set to 0 once reaped (0s are skipped), all of them at once and again on
 * every SIGCHLD, until none is left or the clock reaches @deadline_ms
 * (mono_ms(): one deadline for the whole set).  How many are left, or a negative
 * errno (logged) if the wait itself failed.  A task no longer ours
 * (waitpid's ECHILD) counts as gone.
 */
int ptrace_reap_gone(pid_t *tids, size_t n, int64_t deadline_ms);

/*
 * SIGCHLD blocked and readable from a signalfd (-1 if there is none: wait
 * by polling then): every stop of a tracee sends its tracer one, so a wait
 * can sleep until it comes.  Close puts the mask back as it was.
 */
int sigchld_fd_open(sigset_t *old);
void sigchld_fd_drain(int fd);
void sigchld_fd_close(int fd, const sigset_t *old);
/*
 * Between these, every sigchld_fd_open() gets one signalfd, opened and
 * blocked once, and sigchld_fd_close() leaves it: a stretch of many
 * ptrace stops (a tree's uffd handovers; its final stops: every thread's
 * interrupt, each injected syscall's two stops) pays the wait's own
 * syscalls (a waitpid, at most a poll and a read) and none around them.
 * SIGCHLD stays blocked meanwhile: nothing may fork in between.
 */
void sigchld_fd_hold(void);
void sigchld_fd_release(void);

/* Address of a `syscall` instruction in the tracee's [vdso]; -ESRCH (not logged)
 * if the tracee is gone or exiting. */
int inject_find_syscall_ip(pid_t pid, unsigned long *ip);

/*
 * @regs set to run syscall @nr with @args at @syscall_ip, orig_ax -1 (no
 * restart of the syscall the task was stopped in); the other registers
 * are left as they are.
 */
void inject_set_regs(struct user_regs_struct *regs, unsigned long syscall_ip, long nr,
		     const unsigned long args[6]);

/*
 * Run syscall nr with args in the stopped tracee tid.  *result gets the raw
 * return value (a negative errno on the syscall's failure).  Returns 0, or
 * -ESRCH if the task died, other negative errnos for ptrace failures
 * (logged).
 */
int inject_syscall(pid_t tid, unsigned long syscall_ip, long nr,
		   const unsigned long args[6], long *result);

/*
 * The same for a tracee whose registers and signal mask the caller sets
 * right after anyway: the syscall runs from @base (valid segment
 * registers) with every signal blocked already, and nothing is saved or
 * put back (five ptrace calls fewer).
 */
int inject_syscall_from(pid_t tid, const struct user_regs_struct *base,
			unsigned long syscall_ip, long nr, const unsigned long args[6],
			long *result);

/* Is @status (a waitpid()'s) a PTRACE_EVENT_STOP: the stop of a
 * PTRACE_INTERRUPT, or a group-stop or listen of a seized tracee? */
bool ptrace_interrupt_stop(int status);

/*
 * Move a stopped tracee into a PTRACE_EVENT_STOP (inside the kernel's
 * signal handling), so that on detach an interrupted syscall is restarted
 * as if the task had never been stopped.
 */
int ptrace_park_in_signal_stop(pid_t tid);

#endif
