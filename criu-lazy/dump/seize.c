/*
 * Freezing a task with ptrace, checking that we can dump it, and letting it
 * go at the end: killed after a successful dump, or running (-R) or stopped
 * (-s) again, with the registers it had.
 *
 * PTRACE_SEIZE does not stop the task; PTRACE_INTERRUPT does, and the task
 * reports a PTRACE_EVENT_STOP.  What comes between (signals, a group-stop)
 * is dump_freeze_stop()'s, which freezes each thread (threads.c) the same
 * way.
 */
#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/env-number.h"
#include "common/log.h"
#include "common/mono-time.h"
#include "common/proc-stat.h"
#include "common/ptrace-inject.h"
#include "dump/dump.h"

#define PF_EXITING		0x00000004	/* the kernel's task flag (/proc/PID/stat field 9) */
#define SEIZE_TIMEOUT_MS	10000
#define KILL_TIMEOUT_MS		10000
#define STOP_TIMEOUT_MS		10000

bool dump_task_is_zombie(pid_t pid)
{
	char st = proc_stat_state(pid);

	return st == 'Z' || st == 'X';
}

bool dump_task_exited(struct dump_task *t)
{
	unsigned int flags = 0;
	char buf[512], st;
	const char *f;
	int status;

	if (t->exited)
		return true;
	if (t->seized) {
		pid_t r = waitpid(t->pid, &status, WNOHANG | __WALL);

		if (r == t->pid && (WIFEXITED(status) || WIFSIGNALED(status)))
			return true;
	}
	if (kill(t->pid, 0) && errno == ESRCH)
		return true;
	/* gone only if /proc says so: a failure of ours to read it (EMFILE)
	 * is not the task's exit, whose cleanup would then be skipped */
	f = proc_stat_fields(t->pid, 0, buf, sizeof(buf));
	if (!f)
		return errno == ENOENT || errno == ESRCH;
	/* killed and on its way out, not a zombie yet: its memory may be gone
	 * already (a short process_vm_readv), and nothing else makes it so */
	if (sscanf(f, "%c %*d %*d %*d %*d %*d %u", &st, &flags) == 2 && (flags & PF_EXITING))
		return true;
	return f[0] == 'Z' || f[0] == 'X';
}

int dump_task_error(struct dump_task *t, int err, const char *fmt, ...)
{
	int saved_errno = errno;
	char msg[1024];
	va_list args;

	if (t->exited)
		return -ESRCH;
	/*
	 * ESRCH from ptrace or process_vm_readv on a task we hold frozen, or
	 * ENOENT from its /proc directory, only happen when it was killed.
	 */
	if (err == -ESRCH || (err == -ENOENT && kill(t->pid, 0) && errno == ESRCH) ||
	    dump_task_exited(t)) {
		t->exited = true;
		if (!t->may_vanish)
			pr_err("task %d exited during dump", t->pid);
		return -ESRCH;
	}
	errno = err < 0 ? -err : saved_errno;	/* for %m in fmt */
	va_start(args, fmt);
	vsnprintf(msg, sizeof(msg), fmt, args);
	va_end(args);
	pr_err("%s", msg);
	return err < 0 ? err : -EIO;
}

static int check_seizable(struct dump_task *t)
{
	char buf[16384];
	const char *v;
	int ret;

	if (kill(t->pid, 0) && errno == ESRCH) {
		if (!t->may_vanish)
			pr_err("no process with pid %d", t->pid);
		return -ESRCH;
	}
	ret = dump_proc_read(t, "status", buf, sizeof(buf));
	if (ret < 0) {
		if (t->exited) {
			/* gone between kill() and here: still "no process" to the user */
			return -ESRCH;
		}
		return ret;
	}
	v = proc_status_field(buf, "Tgid");
	if (v && atoi(v) != t->pid) {
		pr_err("%d is a thread of process %d: dump the process", t->pid, atoi(v));
		return -EINVAL;
	}
	v = proc_status_field(buf, "State");
	if (v && (*v == 'Z' || *v == 'X') && t->may_vanish)
		return -ESRCH;
	if (v && (*v == 'Z' || *v == 'X')) {
		pr_err("task %d is a zombie: nothing to dump", t->pid);
		return -EINVAL;
	}
	v = proc_status_field(buf, "TracerPid");
	if (v && atoi(v) != 0) {
		pr_err("task %d is traced by %d: it can't be seized", t->pid, atoi(v));
		return -EBUSY;
	}
	return 0;
}

/* The next stop of @tid while it is frozen: 0, or DUMP_FREEZE_EXITED. */
static int freeze_wait(pid_t tid, const char *who, int *status)
{
	int ret = ptrace_wait_stop(tid, SEIZE_TIMEOUT_MS, status);

	if (ret)
		return ret;
	if (WIFEXITED(*status) || WIFSIGNALED(*status))
		return DUMP_FREEZE_EXITED;
	if (!WIFSTOPPED(*status)) {
		pr_err("%s: unexpected wait status %#x while freezing", who, *status);
		return -EIO;
	}
	return 0;
}

/*
 * The part of a freeze that a task and each of its threads share, once
 * @tid is seized and interrupted.  A signal that comes before the
 * interrupt shows up as a signal-delivery-stop: it is passed on and the
 * thread interrupted again, since any ptrace stop clears a pending
 * PTRACE_INTERRUPT (the kernel's ptrace_stop()), and without a new one a
 * task whose timers signal it every 10 ms only ever stopped for the next
 * signal (a dump that never ended).  One in a group-stop is resumed once,
 * as CRIU does, so that the pending interrupt traps it; it stays in its
 * group-stop for the kernel (detaching leaves it stopped again).
 *
 * A ptrace call that fails with ESRCH on a thread we hold means it was
 * killed: the next wait reports its exit.  @who names it in messages.
 */
int dump_freeze_stop(pid_t tid, const char *who, int *stop_sig, struct user_regs_struct *regs)
{
	int64_t deadline = mono_ms() + SEIZE_TIMEOUT_MS;
	int status, sig, ret;

	for (;;) {
		ret = freeze_wait(tid, who, &status);
		if (ret)
			return ret;
		sig = WSTOPSIG(status);
		if (ptrace_interrupt_stop(status))
			break;
		pr_debug("%s: passing signal %d on while freezing", who, sig);
		if (mono_ms() > deadline) {
			pr_err("%s: not frozen after %d s: it kept taking signals (the last %d)", who,
			       SEIZE_TIMEOUT_MS / 1000, sig);
			return -ETIMEDOUT;
		}
		if ((ptrace(PTRACE_CONT, tid, NULL, (void *)(long)sig) ||
		     ptrace(PTRACE_INTERRUPT, tid, NULL, NULL)) && errno != ESRCH) {
			pr_perror("can't pass signal %d on to %s", sig, who);
			return -errno;
		}
	}
	*stop_sig = sig;
	if (sig != SIGTRAP) {
		if (ptrace(PTRACE_CONT, tid, NULL, NULL) && errno != ESRCH) {
			pr_perror("can't resume %s", who);
			return -errno;
		}
		ret = freeze_wait(tid, who, &status);
		if (ret)
			return ret;
		if (!ptrace_interrupt_stop(status)) {
			pr_err("%s did not trap after leaving its group-stop (status %#x)", who, status);
			return -EIO;
		}
	}
	if (ptrace(PTRACE_GETREGS, tid, NULL, regs)) {
		int err = errno;

		if (err == ESRCH && freeze_wait(tid, who, &status) == DUMP_FREEZE_EXITED)
			return DUMP_FREEZE_EXITED;
		errno = err;
		pr_perror("can't get the registers of %s", who);
		return -err;
	}
	return 0;
}

static const struct {
	const char *env, *what;
} test_delays[DUMP_NR_DELAYS] = {
	[DUMP_DELAY_SEIZE] = { "CRIU_LAZY_TEST_DELAY_SEIZE_MS",
			       "each list of children or threads waits that long before its seizes" },
	[DUMP_DELAY_INTERRUPT] = { "CRIU_LAZY_TEST_DELAY_INTERRUPT_MS",
				   "each seize waits that long before its interrupt" },
};

void dump_test_delay(enum dump_test_delay which)
{
	static int64_t delay_ms[DUMP_NR_DELAYS] = { -1, -1 };

	if (delay_ms[which] < 0) {
		delay_ms[which] = (int64_t)env_number(test_delays[which].env, 60000);
		if (delay_ms[which])
			pr_warn("test hook %s=%lld: %s", test_delays[which].env,
				(long long)delay_ms[which], test_delays[which].what);
	}
	if (delay_ms[which])
		mono_sleep_ms((uint32_t)delay_ms[which]);
}

int dump_seize(struct dump_task *t)
{
	char who[32];
	int sig, ret;

	ret = check_seizable(t);
	if (ret)
		return ret;

	/* TRACESYSGOOD: syscall stops (injection) report SIGTRAP | 0x80 */
	if (ptrace(PTRACE_SEIZE, t->pid, NULL, (void *)PTRACE_O_TRACESYSGOOD)) {
		if (errno == ESRCH || (t->may_vanish && dump_task_is_zombie(t->pid))) {
			if (!t->may_vanish)
				pr_err("no process with pid %d", t->pid);
			return -ESRCH;
		}
		pr_perror("can't seize task %d", t->pid);
		return -errno;
	}
	t->seized = true;
	dump_test_delay(DUMP_DELAY_INTERRUPT);
	if (ptrace(PTRACE_INTERRUPT, t->pid, NULL, NULL))
		return dump_task_error(t, -errno, "can't interrupt task %d: %m", t->pid);

	snprintf(who, sizeof(who), "task %d", t->pid);
	ret = dump_freeze_stop(t->pid, who, &sig, &t->regs);
	if (ret == DUMP_FREEZE_EXITED) {
		t->exited = true;
		if (!t->may_vanish)
			pr_err("task %d exited during dump", t->pid);
		return -ESRCH;
	}
	if (ret)
		return ret;
	t->regs_valid = true;
	t->state = sig == SIGTRAP ? TASK_STATE_ALIVE : TASK_STATE_STOPPED;
	t->stop_signo = sig == SIGTRAP ? 0 : sig;
	pr_info("task %d frozen (%s%s)", t->pid,
		t->state == TASK_STATE_ALIVE ? "was running" : "was stopped by signal ",
		t->state == TASK_STATE_ALIVE ? "" : strsignal(t->stop_signo));
	return 0;
}

int dump_check_task(struct dump_ctx *ctx, struct dump_task *t)
{
	char status[16384];
	struct proc_stat st;
	int ret;

	ret = dump_proc_read(t, "status", status, sizeof(status));
	if (ret < 0)
		return ret;
	ret = dump_proc_stat(t, &st);
	if (ret)
		return ret;
	t->ppid = st.f[4];
	t->pgid = st.f[5];
	t->sid = st.f[6];
	/* in a pid namespace of the tree's own: its pids as it sees them */
	ret = dump_pid_ns(t, status, t == ctx->root);
	if (ret)
		return ret;
	/* the other tasks' sessions are checked with the whole tree (tree-check.c) */
	if (t == ctx->root && t->sid != t->vpid && !ctx->o->shell_job) {
		if (t->in_pidns)
			pr_err("the session of task %d (pid %d in its pid namespace) is %s; "
			       "use --shell-job", t->pid, t->vpid,
			       t->sid ? "led by another task" : "outside its pid namespace");
		else
			pr_err("the session leader %d of task %d is outside the dumped tree; "
			       "use --shell-job", t->sid, t->pid);
		return -EOPNOTSUPP;
	}
	pr_debug("task %d: pid %d in the images, ppid %d pgid %d sid %d", t->pid, t->vpid,
		 t->ppid, t->pgid, t->sid);
	return 0;
}

/* Its threads are reaped already (dump_release_threads()): the leader's
 * exit is the last, and sends us SIGCHLD. */
static void wait_killed(struct dump_task *t)
{
	pid_t pid = t->pid;

	if (ptrace_reap_gone(&pid, 1, mono_ms() + KILL_TIMEOUT_MS) > 0)
		pr_warn("task %d did not die within %d ms of SIGKILL", t->pid, KILL_TIMEOUT_MS);
}

/* Left stopped means stopped by the time we exit: it takes SIGSTOP on its own. */
static void wait_stopped(struct dump_task *t)
{
	struct timespec ts = { 0, 1000000 };
	int64_t deadline = mono_ms() + STOP_TIMEOUT_MS;

	/* no longer ours: nothing tells us when it stops, so look every 1 ms,
	 * bounded by the clock (a 1 ms sleep takes far longer under load) */
	do {
		char st = proc_stat_state(t->pid);

		if (st == 'T' || st == 0 || st == 'Z' || st == 'X')
			return;
		nanosleep(&ts, NULL);
	} while (mono_ms() < deadline);
	pr_warn("task %d did not stop within %d ms of SIGSTOP", t->pid, STOP_TIMEOUT_MS);
}

void dump_release(struct dump_task *t, enum task_release_mode mode)
{
	if (!t->seized)
		return;
	/* killed by someone else while we held it (a lazy migration is long) */
	if (!t->exited && dump_task_exited(t))
		t->exited = true;
	t->seized = false;
	if (t->exited) {
		int status;

		dump_release_threads(t, RELEASE_KILL);
		waitpid(t->pid, &status, WNOHANG | __WALL);
		return;
	}

	if (mode == RELEASE_KILL) {
		if (kill(t->pid, SIGKILL)) {
			pr_perror("can't kill task %d", t->pid);
			return;
		}
		/* its traced threads wait for us before the leader can go */
		dump_release_threads(t, RELEASE_KILL);
		wait_killed(t);
		pr_info("task %d killed", t->pid);
		return;
	}

	dump_release_threads(t, mode);

	/*
	 * Seized but never stopped (a task in uninterruptible sleep): ptrace
	 * can't detach a running tracee; it is let go, its pending interrupt
	 * dropped, when we exit.
	 */
	if (!t->regs_valid) {
		pr_info("task %d never stopped: released when the dump exits", t->pid);
		return;
	}

	/* back inside the kernel's signal handling, so an interrupted syscall restarts */
	if (ptrace_park_in_signal_stop(t->pid))
		pr_warn("task %d: an interrupted syscall may return -EINTR", t->pid);
	if (ptrace(PTRACE_SETREGS, t->pid, NULL, &t->regs))
		pr_perror("can't put back the registers of task %d", t->pid);
	/*
	 * -s: from an interrupt stop, DETACH's signal argument is ignored; a
	 * SIGSTOP queued now (as CRIU does) is taken as soon as the task
	 * runs, untraced: it stops for real.  Sent from our pid namespace it
	 * stops a namespace init too.
	 */
	if (mode == RELEASE_STOP && kill(t->pid, SIGSTOP))
		pr_perror("can't stop task %d", t->pid);
	if (ptrace(PTRACE_DETACH, t->pid, NULL, NULL)) {
		pr_perror("can't detach from task %d", t->pid);
		return;
	}
	if (mode == RELEASE_STOP)
		wait_stopped(t);
	pr_info("task %d left %s", t->pid, mode == RELEASE_STOP ? "stopped" : "running");
}
