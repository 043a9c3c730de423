#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LOG_PREFIX "ptrace: "
#include "common/log.h"
#include "common/proc-maps.h"
#include "common/ptrace-inject.h"

static void sleep_us(long us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

int ptrace_wait_stop(pid_t tid, int timeout_ms, int *status)
{
	struct timespec start, now;
	long backoff_us = 1;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		pid_t ret = waitpid(tid, status, WNOHANG | __WALL);

		if (ret == tid)
			return 0;
		if (ret < 0) {
			pr_perror("wait for task %d", tid);
			return -errno;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - start.tv_sec) * 1000 +
		    (now.tv_nsec - start.tv_nsec) / 1000000 >= timeout_ms) {
			pr_err("task %d did not stop within %d ms", tid, timeout_ms);
			return -ETIMEDOUT;
		}
		/* Single steps take microseconds: poll fast first, then back off. */
		sleep_us(backoff_us);
		if (backoff_us < 1000)
			backoff_us *= 2;
	}
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
		pr_perror("read the vdso of task %d", pid);
		ret = -EIO;
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
	free(vmas);
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

static bool is_syscall_stop(int status)
{
	/* SIGTRAP | 0x80 with PTRACE_O_TRACESYSGOOD, plain SIGTRAP without */
	return WIFSTOPPED(status) &&
	       (WSTOPSIG(status) == (SIGTRAP | 0x80) || WSTOPSIG(status) == SIGTRAP);
}

/* Wait for tid's next stop; -ESRCH (logged) if it ended instead. */
static int wait_next_stop(pid_t tid, int *status)
{
	int ret = ptrace_wait_stop(tid, PTRACE_WAIT_TIMEOUT_MS, status);

	return ret ?: task_gone(tid, *status);
}

static int resume_to_syscall_stop(pid_t tid)
{
	int status, ret;

	if (ptrace(PTRACE_SYSCALL, tid, NULL, NULL)) {
		pr_perror("resume task %d to a syscall stop", tid);
		return -errno;
	}
	ret = wait_next_stop(tid, &status);
	if (ret)
		return ret;
	if (!is_syscall_stop(status)) {
		pr_err("task %d stopped with signal %d instead of at a syscall", tid,
		       WIFSTOPPED(status) ? WSTOPSIG(status) : -1);
		return -EIO;
	}
	return 0;
}

int inject_syscall(pid_t tid, unsigned long syscall_ip, long nr,
		   const unsigned long args[6], long *result)
{
	struct user_regs_struct saved, regs;
	uint64_t saved_mask, all_blocked = ~0ULL;
	int ret;

	if (ptrace(PTRACE_GETREGS, tid, NULL, &saved)) {
		pr_perror("get registers of task %d", tid);
		return -errno;
	}
	if (ptrace(PTRACE_GETSIGMASK, tid, sizeof(saved_mask), &saved_mask)) {
		pr_perror("get signal mask of task %d", tid);
		return -errno;
	}
	if (ptrace(PTRACE_SETSIGMASK, tid, sizeof(all_blocked), &all_blocked)) {
		pr_perror("block signals of task %d", tid);
		return -errno;
	}

	regs = saved;
	regs.rip = syscall_ip;
	regs.rax = nr;
	regs.orig_rax = -1;
	regs.rdi = args[0];
	regs.rsi = args[1];
	regs.rdx = args[2];
	regs.r10 = args[3];
	regs.r8 = args[4];
	regs.r9 = args[5];

	if (ptrace(PTRACE_SETREGS, tid, NULL, &regs)) {
		pr_perror("set registers of task %d", tid);
		ret = -errno;
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
		pr_perror("get registers of task %d", tid);
		ret = -errno;
		goto restore;
	}
	*result = (long)regs.rax;
	pr_debug("task %d: syscall %ld = %ld", tid, nr, *result);
	ret = 0;

restore:
	if (ptrace(PTRACE_SETREGS, tid, NULL, &saved) ||
	    ptrace(PTRACE_SETSIGMASK, tid, sizeof(saved_mask), &saved_mask)) {
		pr_perror("put back the registers of task %d", tid);
		if (!ret)
			ret = -errno;
	}
	return ret;
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
	if (!WIFSTOPPED(status) || status >> 16 != PTRACE_EVENT_STOP) {
		pr_err("task %d stopped with status %#x instead of an interrupt stop", tid, status);
		return -EIO;
	}
	return 0;
}
