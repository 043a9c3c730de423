#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/signalfd.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LOG_PREFIX "ptrace: "
#include "common/log.h"
#include "common/mono-time.h"
#include "common/proc-maps.h"
#include "common/proc-stat.h"
#include "common/proc-task.h"
#include "common/ptrace-inject.h"

/* sigchld_fd_hold(): the one every wait takes until sigchld_fd_release() */
static int held_fd = -1;
static sigset_t held_old;

static int sigchld_fd_new(sigset_t *old)
{
	sigset_t chld;
	int fd;

	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, old);
	fd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0)
		pr_warn("signalfd for SIGCHLD: %m; waiting by polling");
	return fd;
}

int sigchld_fd_open(sigset_t *old)
{
	if (held_fd >= 0) {
		/* SIGCHLD stays blocked: sigchld_fd_close() leaves the held one
		 * and the mask alone (no query: a syscall per wait) */
		*old = held_old;
		return held_fd;
	}
	return sigchld_fd_new(old);
}

void sigchld_fd_drain(int fd)
{
	struct signalfd_siginfo si;

	while (fd >= 0 && read(fd, &si, sizeof(si)) == sizeof(si))
		;
}

void sigchld_fd_close(int fd, const sigset_t *old)
{
	if (fd >= 0 && fd == held_fd)
		return;		/* a wait drains what woke it; the next looks first */
	if (fd >= 0) {
		sigchld_fd_drain(fd);
		close(fd);
	}
	sigprocmask(SIG_SETMASK, old, NULL);
}

void sigchld_fd_hold(void)
{
	if (held_fd < 0)
		held_fd = sigchld_fd_new(&held_old);
}

void sigchld_fd_release(void)
{
	int fd = held_fd;

	if (fd < 0)
		return;
	held_fd = -1;
	sigchld_fd_close(fd, &held_old);
}

/*
 * Why a tracee did not stop: ptrace's interrupt and a signal wake a task
 * from an interruptible sleep only, so one in uninterruptible sleep (D: a
 * vfork parent until its child execs or exits, a fault waiting on a
 * userfaultfd from inside the kernel, a hung NFS or FUSE request) stops
 * only once it leaves it.  Its state letter and wait channel say so.
 */
static void log_not_stopped(pid_t tid, int timeout_ms)
{
	char wchan[64] = "";

	if (proc_stat_state(tid) != 'D') {
		pr_err("task %d did not stop within %d ms", tid, timeout_ms);
		return;
	}
	proc_task_read(tid, 0, "wchan", wchan, sizeof(wchan));
	pr_err("task %d did not stop within %d ms: it is in uninterruptible sleep (state D%s%s), "
	       "where ptrace cannot stop it", tid, timeout_ms,
	       wchan[0] && strcmp(wchan, "0") ? ", in " : "",
	       wchan[0] && strcmp(wchan, "0") ? wchan : "");
}

/*
 * A stop of a tracee sends us SIGCHLD: the wait sleeps in poll() on it and
 * wakes the moment the stop happens (a sleep-and-retry loop overshot each
 * of the thousands of stops of a tree's restore or dump by up to 1 ms).
 */
int ptrace_wait_stop(pid_t tid, int timeout_ms, int *status)
{
	int64_t deadline;
	sigset_t old;
	int chld, ret = 0;

	/* without a held signalfd, a stop that came already costs one
	 * waitpid, not the six syscalls of a signalfd around it (the loop
	 * looks again once SIGCHLD is blocked: a stop in between is not
	 * missed); with one, the loop's first waitpid is that look */
	if (held_fd < 0 && waitpid(tid, status, WNOHANG | __WALL) == tid)
		return 0;
	deadline = mono_ms() + timeout_ms;
	chld = sigchld_fd_open(&old);

	for (;;) {
		pid_t r = waitpid(tid, status, WNOHANG | __WALL);
		struct pollfd p = { .fd = chld, .events = POLLIN };
		int64_t left = deadline - mono_ms();

		if (r == tid)
			break;
		if (r < 0) {
			pr_perror("wait for task %d", tid);
			ret = -errno;
			break;
		}
		if (left <= 0) {
			log_not_stopped(tid, timeout_ms);
			ret = -ETIMEDOUT;
			break;
		}
		/* without a signalfd: look again every millisecond */
		if (chld < 0)
			poll(NULL, 0, 1);
		else if (poll(&p, 1, left) > 0)
			sigchld_fd_drain(chld);
	}
	sigchld_fd_close(chld, &old);
	return ret;
}

/* One pass: reap those of @tids that are gone.  How many are left. */
static size_t reap_pass(pid_t *tids, size_t n)
{
	size_t left = 0;

	for (size_t i = 0; i < n; i++) {
		int status;
		pid_t r;

		if (!tids[i])
			continue;
		r = waitpid(tids[i], &status, WNOHANG | __WALL);
		if (r < 0 || (r == tids[i] && (WIFEXITED(status) || WIFSIGNALED(status))))
			tids[i] = 0;
		else
			left++;
	}
	return left;
}

/*
 * All of them at once, pass after pass: the last live thread of a pid
 * namespace's init waits in zap_pid_ns_processes() until every other pid
 * of the namespace is freed, its traced zombie sibling threads' too, so a
 * wait for it alone never ends.  Each traced task's exit sends us SIGCHLD:
 * the wait sleeps on it (1 ms sleeps took ~9 ms each under load).
 */
int ptrace_reap_gone(pid_t *tids, size_t n, int64_t deadline_ms)
{
	sigset_t old;
	int chld, ret;

	/* most are gone already: then no signalfd is opened at all */
	if (!reap_pass(tids, n))
		return 0;
	chld = sigchld_fd_open(&old);
	for (;;) {
		struct pollfd p = { .fd = chld, .events = POLLIN };
		int64_t left;
		int r;

		/* look again once SIGCHLD is blocked: an exit in between
		 * would have sent it to nobody */
		ret = (int)reap_pass(tids, n);
		left = deadline_ms - mono_ms();
		if (!ret || left <= 0)
			break;
		/* without a signalfd: look again every millisecond */
		r = chld < 0 ? poll(NULL, 0, 1) : poll(&p, 1, (int)left);
		if (r < 0 && errno != EINTR) {
			pr_perror("wait for the exit of %d traced task%s", ret, ret > 1 ? "s" : "");
			ret = -errno;
			break;
		}
		if (r > 0)
			sigchld_fd_drain(chld);
	}
	sigchld_fd_close(chld, &old);
	return ret;
}

int inject_find_syscall_ip(pid_t pid, unsigned long *ip)
{
	struct proc_vma *vmas, *vdso = NULL;
	struct iovec local, remote;
	unsigned char *buf = NULL;
	size_t nr, i, len;
	int ret;

	ret = proc_maps_read(pid, &vmas, &nr);
	if (ret)
		return ret;
	/* no mapping at all: it is exiting (killed while we hold it) */
	if (!nr) {
		ret = -ESRCH;
		goto out;
	}
	for (i = 0; i < nr; i++)
		if (!strcmp(vmas[i].path, "[vdso]"))
			vdso = &vmas[i];
	if (!vdso) {
		pr_err("task %d has no [vdso]: cannot run syscalls inside it", pid);
		ret = -ENOENT;
		goto out;
	}

	len = vdso->end - vdso->start;
	buf = malloc(len);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	local = (struct iovec){ buf, len };
	remote = (struct iovec){ (void *)vdso->start, len };
	if (process_vm_readv(pid, &local, 1, &remote, 1, 0) != (ssize_t)len) {
		ret = errno == ESRCH ? -ESRCH : -EIO;
		if (ret != -ESRCH)
			pr_perror("read the vdso of task %d", pid);
		goto out;
	}
	ret = -ENOENT;
	for (i = 0; i + 1 < len; i++) {
		if (buf[i] == 0x0f && buf[i + 1] == 0x05) {
			*ip = vdso->start + i;
			ret = 0;
			break;
		}
	}
	if (ret)
		pr_err("no syscall instruction in the vdso of task %d", pid);
out:
	free(buf);
	proc_maps_free(vmas, nr);
	return ret;
}

static int task_gone(pid_t tid, int status)
{
	if (WIFEXITED(status) || WIFSIGNALED(status)) {
		pr_err("task %d exited while a syscall ran inside it", tid);
		return -ESRCH;
	}
	return 0;
}

/*
 * A ptrace request on our stopped tracee failed: ESRCH there means it was
 * killed meanwhile (a SIGKILL takes a tracee out of its stop at once), which
 * is said as its exit, the way a wait that sees it end says it.
 */
static int request_failed(pid_t tid, const char *what, const char *after)
{
	int err = errno;

	if (err == ESRCH)
		pr_err("task %d exited while a syscall ran inside it", tid);
	else
		pr_perror("%s task %d%s", what, tid, after);
	return -err;
}

static bool is_syscall_stop(int status)
{
	/* SIGTRAP | 0x80 with PTRACE_O_TRACESYSGOOD, plain SIGTRAP without
	 * (but not a PTRACE_EVENT_*, which carries a SIGTRAP too) */
	return WIFSTOPPED(status) && !(status >> 16) &&
	       (WSTOPSIG(status) == (SIGTRAP | 0x80) || WSTOPSIG(status) == SIGTRAP);
}

bool ptrace_interrupt_stop(int status)
{
	return WIFSTOPPED(status) && status >> 16 == PTRACE_EVENT_STOP;
}

/* Wait for tid's next stop; -ESRCH (logged) if it ended instead. */
static int wait_next_stop(pid_t tid, int *status)
{
	int ret = ptrace_wait_stop(tid, PTRACE_WAIT_TIMEOUT_MS, status);

	return ret ?: task_gone(tid, *status);
}

/*
 * A PTRACE_INTERRUPT that came while the tracee was already in a ptrace
 * stop (a signal-delivery-stop, while it was being frozen) is not lost: it
 * traps the tracee once more after that stop ends (the kernel's
 * ptrace_request(), "another trap will happen"), and one made again after
 * passing the signal on can then be left over for the next resume.  Such a
 * trap on the way to a syscall stop is only passed through: taken for the
 * syscall's entry, it made the entry's -ENOSYS read as the injected
 * syscall's result (a dump of a task whose timer signal came between its
 * seize and its interrupt failed so).
 */
#define MAX_INTERRUPT_TRAPS 4

static int resume_to_syscall_stop(pid_t tid)
{
	int status, ret;

	for (int traps = 0;; traps++) {
		if (ptrace(PTRACE_SYSCALL, tid, NULL, NULL))
			return request_failed(tid, "resume", " to a syscall stop");
		ret = wait_next_stop(tid, &status);
		if (ret)
			return ret;
		if (is_syscall_stop(status))
			return 0;
		if (!ptrace_interrupt_stop(status) || traps == MAX_INTERRUPT_TRAPS)
			break;
		pr_debug("task %d: an interrupt trap on the way to a syscall stop", tid);
	}
	pr_err("task %d stopped with signal %d (event %d) instead of at a syscall", tid,
	       WIFSTOPPED(status) ? WSTOPSIG(status) : -1, status >> 16);
	return -EIO;
}

void inject_set_regs(struct user_regs_struct *regs, unsigned long syscall_ip, long nr,
		     const unsigned long args[6])
{
	regs->rip = syscall_ip;
	regs->rax = nr;
	regs->orig_rax = -1;
	regs->rdi = args[0];
	regs->rsi = args[1];
	regs->rdx = args[2];
	regs->r10 = args[3];
	regs->r8 = args[4];
	regs->r9 = args[5];
}

int inject_syscall(pid_t tid, unsigned long syscall_ip, long nr,
		   const unsigned long args[6], long *result)
{
	struct user_regs_struct saved, regs;
	uint64_t saved_mask, all_blocked = ~0ULL;
	int ret;

	if (ptrace(PTRACE_GETREGS, tid, NULL, &saved))
		return request_failed(tid, "get registers of", "");
	if (ptrace(PTRACE_GETSIGMASK, tid, sizeof(saved_mask), &saved_mask))
		return request_failed(tid, "get signal mask of", "");
	if (ptrace(PTRACE_SETSIGMASK, tid, sizeof(all_blocked), &all_blocked))
		return request_failed(tid, "block signals of", "");

	regs = saved;
	inject_set_regs(&regs, syscall_ip, nr, args);
	if (ptrace(PTRACE_SETREGS, tid, NULL, &regs)) {
		ret = request_failed(tid, "set registers of", "");
		if (ret == -ESRCH)
			return ret;
		goto restore;
	}
	/* to the syscall's entry stop, then to its exit stop */
	for (int stop = 0; stop < 2; stop++) {
		ret = resume_to_syscall_stop(tid);
		if (ret == -ESRCH)
			return ret;
		if (ret)
			goto restore;
	}
	if (ptrace(PTRACE_GETREGS, tid, NULL, &regs)) {
		ret = request_failed(tid, "get registers of", "");
		if (ret == -ESRCH)
			return ret;
		goto restore;
	}
	*result = (long)regs.rax;
	pr_debug("task %d: syscall %ld = %ld", tid, nr, *result);
	ret = 0;

restore:
	if (ptrace(PTRACE_SETREGS, tid, NULL, &saved) ||
	    ptrace(PTRACE_SETSIGMASK, tid, sizeof(saved_mask), &saved_mask)) {
		int err = request_failed(tid, "put back the registers of", "");

		if (!ret)
			ret = err;
	}
	return ret;
}

int inject_syscall_from(pid_t tid, const struct user_regs_struct *base,
			unsigned long syscall_ip, long nr, const unsigned long args[6],
			long *result)
{
	struct user_regs_struct regs = *base;
	int ret;

	inject_set_regs(&regs, syscall_ip, nr, args);
	if (ptrace(PTRACE_SETREGS, tid, NULL, &regs)) {
		pr_perror("set registers of task %d", tid);
		return -errno;
	}
	for (int stop = 0; stop < 2; stop++) {
		ret = resume_to_syscall_stop(tid);
		if (ret)
			return ret;
	}
	if (ptrace(PTRACE_GETREGS, tid, NULL, &regs)) {
		pr_perror("get registers of task %d", tid);
		return -errno;
	}
	*result = (long)regs.rax;
	pr_debug("task %d: syscall %ld = %ld", tid, nr, *result);
	return 0;
}

int ptrace_park_in_signal_stop(pid_t tid)
{
	int status, ret;

	/* the interrupt stays pending while the tracee is stopped ... */
	if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) || ptrace(PTRACE_CONT, tid, NULL, NULL)) {
		pr_perror("interrupt task %d", tid);
		return -errno;
	}
	/* ... and stops it in its signal handling before it reaches user space */
	ret = wait_next_stop(tid, &status);
	if (ret)
		return ret;
	if (!ptrace_interrupt_stop(status)) {
		pr_err("task %d stopped with status %#x instead of an interrupt stop", tid, status);
		return -EIO;
	}
	return 0;
}
