/*
 * Creating the new task and waiting until its blob is done.
 *
 * clone3() with set_tid gives it the dumped pid.  A task dumped as the init
 * of its own pid namespace gets a new one (CLONE_NEWPID, set_tid {1}): it
 * is pid 1 there, and has another pid here, which is the one this process,
 * the pidfile and the log use; what runs inside the task (the blob, the
 * syscalls finalize.c injects) uses the pid of the images.
 *
 * The parent reserves the premap + blob region first (the child inherits
 * the reservation, so no allocation of ours can land there meanwhile) and
 * blocks every signal
 * across the clone, so the child starts with all of them blocked.  We
 * PTRACE_SEIZE it at once (PTRACE_O_EXITKILL kills it if we die) while it
 * goes on with its premap: a seize does not stop it, and it reaches its
 * blob only at stage 6, long after every task is seized (tree.c).
 *
 * The child reports an error as one line on the error pipe and exits; the
 * blob closes the pipe (with the other helper fds) and stops at int3 with
 * its outcome in the args.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "common/mono-time.h"
#include "common/ptrace-inject.h"
#include "restore/restore.h"
#include "restore/threads.h"
#include "restore/tree.h"

#define BLOB_STOP_TIMEOUT_MS	10000	/* from the pipe's EOF to the int3 */
#define KILL_TIMEOUT_MS		5000

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int reserve_region(const struct rst_plan *plan)
{
	uint64_t len = plan->blob_end - plan->premap_start;
	void *p = mmap((void *)(uintptr_t)plan->premap_start, len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);

	if (p == MAP_FAILED || p != (void *)(uintptr_t)plan->premap_start) {
		pr_perror("cannot reserve 0x%llx-0x%llx for the premap",
			  (unsigned long long)plan->premap_start,
			  (unsigned long long)plan->blob_end);
		if (p != MAP_FAILED)
			munmap(p, len);
		return -ENOMEM;
	}
	return 0;
}

pid_t rst_clone_with_pid(pid_t pid, uint64_t flags)
{
	pid_t tid = pid;
	struct clone_args ca;

	memset(&ca, 0, sizeof(ca));
	ca.flags = flags;
	ca.exit_signal = SIGCHLD;
	ca.set_tid = (uint64_t)(uintptr_t)&tid;
	ca.set_tid_size = 1;
	return syscall(SYS_clone3, &ca, sizeof(ca));
}

/* (the caller says why it failed: rst_tree_seize()) */
int rst_task_seize(struct rst_task *t)
{
	if (ptrace(PTRACE_SEIZE, t->pid, NULL,
		   (void *)(long)(PTRACE_O_EXITKILL | PTRACE_O_TRACESYSGOOD)))
		return -errno;
	t->seized = true;
	return 0;
}

/* The tasks' ends of every pipe: ours to close once the root has them. */
static void close_task_ends(struct rst_tree *tree)
{
	for (size_t i = 0; i < tree->nr; i++) {
		close_fd(&tree->procs[i].t.sync_r);
		close_fd(&tree->procs[i].t.err_w);
		close_fd(&tree->procs[i].t.uffd_tx);
	}
	close_fd(&tree->ev_w);
}

/*
 * The root of the tree: every other task is forked by its parent task
 * (tree.c), which is how each gets its parent right.
 */
int rst_task_create(struct rst_tree *tree, struct rst_proc *root)
{
	struct rst_task *t = &root->t;
	const struct rst_plan *plan = &root->plan;
	const struct rst_images *ri = &root->ri;
	sigset_t all, old;
	uint64_t t0;
	pid_t pid;
	int ret, err;

	ret = reserve_region(plan);
	if (ret)
		return ret;

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	t0 = mono_us();
	pid = rst_clone_with_pid(ri->pid, ri->new_pid_ns ? CLONE_NEWPID : 0);
	if (pid == 0)
		rst_proc_main(tree, 0);
	err = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	munmap((void *)(uintptr_t)plan->premap_start, plan->blob_end - plan->premap_start);
	close_task_ends(tree);

	if (pid < 0) {
		if (err == EEXIST)
			pr_err("pid %d is already in use", ri->pid);
		else
			pr_err("cannot create task %d (clone3 with set_tid%s): %s", ri->pid,
			       ri->new_pid_ns ? " in a new pid namespace" : "", strerror(err));
		return -err;
	}
	t->pid = pid;
	tree->created = 1;
	ret = rst_tree_seize(tree, root);
	if (ret)
		return ret;	/* the caller kills it */
	t->fork_us = mono_us() - t0;
	if (ri->new_pid_ns)
		pr_info("task %d created as pid 1 of a new pid namespace and seized in %llu us",
			pid, (unsigned long long)t->fork_us);
	else
		pr_info("task %d created and seized in %llu us", pid,
			(unsigned long long)t->fork_us);
	return 0;
}

void rst_task_kill(struct rst_task *t)
{
	int64_t deadline = mono_us() + KILL_TIMEOUT_MS * 1000ll;
	int status;

	close_fd(&t->sync_w);
	close_fd(&t->err_r);
	if (t->pid <= 0)
		return;
	kill(t->pid, SIGKILL);
	if (!t->seized) {
		/* not ours to reap (its parent is a task of the tree, dying too) */
		t->pid = 0;
		return;
	}
	rst_threads_reap(t);
	for (;;) {
		pid_t r = waitpid(t->pid, &status, WNOHANG | __WALL);

		if (r < 0 || (r == t->pid && (WIFEXITED(status) || WIFSIGNALED(status))))
			break;
		if (mono_us() > deadline) {
			pr_warn("task %d did not die within %d ms of SIGKILL", t->pid,
				KILL_TIMEOUT_MS);
			break;
		}
		usleep(1000);
	}
	t->pid = 0;
}

static const char *step_name(int step)
{
	static const char *const names[RST_STEP_NR] = {
		[RST_STEP_START] = "checking its arguments",
		[RST_STEP_UNMAP] = "unmapping the old address space at 0x%llx",
		[RST_STEP_VDSO] = "moving the vdso part at 0x%llx",
		[RST_STEP_UFFD_OPEN] = "creating the userfaultfd",
		[RST_STEP_MREMAP] = "moving the VMA at 0x%llx into place",
		[RST_STEP_UFFD_REGISTER] = "registering the VMA at 0x%llx with the userfaultfd",
		[RST_STEP_UNMAP_PREMAP] = "unmapping the premap region at 0x%llx",
		[RST_STEP_MPROTECT] = "setting the protection of the VMA at 0x%llx",
		[RST_STEP_MADVISE] = "madvise on the VMA at 0x%llx",
		[RST_STEP_GUARDS] = "MADV_GUARD_INSTALL on the guard region at 0x%llx",
		[RST_STEP_MM_MAP] = "setting the mm fields (prctl PR_SET_MM_MAP)",
		[RST_STEP_CLOSE_FDS] = "closing the restore's descriptors from %llu",
		[RST_STEP_THREADS] = "creating thread %llu (clone3 with set_tid)",
		[RST_STEP_SIGNALS] = "queueing pending signal %llu",
		[RST_STEP_SECCOMP] = "installing seccomp filter %llu (oldest first) or strict mode",
		[RST_STEP_RLIMITS] = "setting rlimit %llu",
		[RST_STEP_CREDS] = "restoring credentials (step %llu)",
		[RST_STEP_RSEQ] = "registering rseq at 0x%llx",
		[RST_STEP_ROBUST_LIST] = "setting the robust futex list 0x%llx",
		[RST_STEP_TID_ADDRESS] = "setting the clear-tid address",
		[RST_STEP_SIGALTSTACK] = "setting the signal stack at 0x%llx",
		[RST_STEP_PRCTL] = "prctl %llu",
		[RST_STEP_SCHED] = "setting the scheduling policy or nice value (%lld)",
		[RST_STEP_ITIMERS] = "setting itimer %llu",
		[RST_STEP_POSIX_TIMERS] = "restoring POSIX timer %llu",
		[RST_STEP_UFFD_SEND] = "sending the userfaultfd to the restore process",
	};

	return step >= 0 && step < RST_STEP_NR && names[step] ? names[step] : "step %llu";
}

static int read_args(pid_t pid, const struct rst_plan *plan, struct restorer_args *a)
{
	struct iovec local = { a, sizeof(*a) };
	struct iovec remote = { (void *)(uintptr_t)(plan->blob_start + plan->args_off),
				sizeof(*a) };

	if (process_vm_readv(pid, &local, 1, &remote, 1, 0) != (ssize_t)sizeof(*a)) {
		pr_perror("cannot read the restorer's outcome from task %d", pid);
		return -EIO;
	}
	return 0;
}

/* The blob stopped at its int3: did every step succeed? */
static int check_blob(struct rst_task *t, const struct rst_plan *plan, int status)
{
	struct user_regs_struct regs;
	struct restorer_args a;
	char what[160];
	int ret;

	if (WSTOPSIG(status) != SIGTRAP) {
		ptrace(PTRACE_GETREGS, t->pid, NULL, &regs);
		pr_err("task %d got signal %d (%s) at 0x%llx while it was being restored", t->pid,
		       WSTOPSIG(status), strsignal(WSTOPSIG(status)), (unsigned long long)regs.rip);
		return -EIO;
	}
	ret = read_args(t->pid, plan, &a);
	if (ret)
		return ret;
	if (a.status == RST_STATUS_DONE)
		return 0;
	if (a.status == RST_STATUS_TRACE_THREADS)
		return RST_WAIT_TRACE_THREADS;
	if (a.status == RST_STATUS_FAILED) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		snprintf(what, sizeof(what), step_name(a.fail_step),
			 (unsigned long long)a.fail_addr);
#pragma GCC diagnostic pop
		if (a.fail_tid && a.fail_step != RST_STEP_THREADS)
			pr_err("task %d: restorer: thread %d: %s failed: %s", t->pid, a.fail_tid,
			       what, a.fail_errno ? strerror(a.fail_errno) : "unexpected result");
		else if (a.fail_step == RST_STEP_THREADS && a.fail_errno == EEXIST)
			pr_err("task %d: restorer: thread id %d is already in use", t->pid,
			       a.fail_tid);
		else
			pr_err("task %d: restorer: %s failed: %s", t->pid, what,
			       a.fail_errno ? strerror(a.fail_errno) : "unexpected result");
		return a.fail_errno ? -a.fail_errno : -EIO;
	}
	pr_err("task %d trapped before the restorer finished", t->pid);
	return -EIO;
}

static int wait_blob_stop(struct rst_task *t, const struct rst_plan *plan)
{
	char msg[1024];
	size_t len = 0;
	bool eof = false, waited = false;
	int status = 0, ret, chld;
	sigset_t old;

	/* No timeout while the child premaps (it may read gigabytes): it
	 * either reports, stops (trap, crash) or exits.  A stop wakes the
	 * poll at once (SIGCHLD): the threads' stop comes
	 * before the blob closes the error pipe, and a poll timeout alone
	 * cost up to 100 ms each. */
	chld = sigchld_fd_open(&old);
	for (;;) {
		struct pollfd p[2] = { { .fd = t->err_r, .events = POLLIN },
				       { .fd = chld, .events = POLLIN } };
		pid_t r;

		/* after SIGCHLD is blocked: a stop from now on wakes the poll */
		r = waitpid(t->pid, &status, WNOHANG | __WALL);
		if (r == t->pid) {
			waited = true;
			break;
		}
		if (eof)
			break;
		if (poll(p, chld >= 0 ? 2 : 1, 100) <= 0)
			continue;
		if (p[0].revents) {
			ssize_t n = read(t->err_r, msg + len, sizeof(msg) - 1 - len);

			if (n > 0)
				len += n;
			else if (n == 0 || errno != EINTR)
				eof = true;
		}
		if (chld >= 0 && p[1].revents)
			sigchld_fd_drain(chld);
	}
	sigchld_fd_close(chld, &old);
	if (!waited && eof && len) {
		/* it said why it failed and closed its end: that line is the
		 * error, whether or not its exit ever reaches us (the caller
		 * kills it) */
		msg[len] = '\0';
		if (msg[len - 1] == '\n')
			msg[--len] = '\0';
		pr_err("%s", msg);
		return -EIO;
	}
	if (!waited) {
		ret = ptrace_wait_stop(t->pid, BLOB_STOP_TIMEOUT_MS, &status);
		if (ret)
			return ret;
	}
	/* whatever the child still had to say */
	if (!eof) {
		int fl = fcntl(t->err_r, F_GETFL);
		ssize_t n;

		fcntl(t->err_r, F_SETFL, fl | O_NONBLOCK);
		while (len < sizeof(msg) - 1 &&
		       (n = read(t->err_r, msg + len, sizeof(msg) - 1 - len)) > 0)
			len += n;
	}
	msg[len] = '\0';
	if (len && msg[len - 1] == '\n')
		msg[--len] = '\0';

	if (WIFEXITED(status) || WIFSIGNALED(status)) {
		if (len)
			pr_err("%s", msg);
		else if (WIFEXITED(status))
			pr_err("task %d exited with status %d while it was being restored", t->pid,
			       WEXITSTATUS(status));
		else
			pr_err("task %d was killed by signal %d while it was being restored",
			       t->pid, WTERMSIG(status));
		t->pid = 0;	/* reaped */
		return -ECHILD;
	}
	if (len) {
		pr_err("%s", msg);
		return -EIO;
	}
	return check_blob(t, plan, status);
}

/* Seccomp's stop (the threads are seized there) is ours alone. */
int rst_task_wait_blob(struct rst_task *t, const struct rst_plan *plan)
{
	int ret;

	while ((ret = wait_blob_stop(t, plan)) == RST_WAIT_TRACE_THREADS) {
		ret = rst_threads_trace(t);
		if (ret)
			return ret;
		if (ptrace(PTRACE_CONT, t->pid, NULL, NULL)) {
			pr_perror("cannot resume the restorer of task %d", t->pid);
			return -errno;
		}
	}
	return ret;
}
