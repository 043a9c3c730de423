/*
 * The new task's C part: it is a fork of the restore process (clone3 with
 * the dumped pid) and turns itself into the dumped task as far as plain C
 * can, then jumps into the restorer blob, which finishes the job.
 *
 * Order matters:
 *   - signals stay blocked from the clone on (the parent blocked them), so
 *     no handler installed here ever runs before the registers are back;
 *   - wait until the parent has seized us, so nothing below runs untraced;
 *   - premap and fill the memory first, while our fds and cwd are ours;
 *   - then session, descriptors, the odd prctls (/proc/self is still
 *     ours), cwd/root/umask, sigactions, personality last (it changes how
 *     mmap() behaves);
 *   - unregister glibc's rseq area (the blob is about to unmap it) and go.
 *
 * Errors go to the error pipe as one line (the parent prints it and kills
 * us); never to the log, our stderr becomes the task's.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "restore/restore.h"

#define NR_SIGACTIONS 62

int child_err(const struct rst_child *c, int err, const char *fmt, ...)
{
	char buf[1024];
	va_list args;
	int len;

	va_start(args, fmt);
	len = vsnprintf(buf, sizeof(buf) - 1, fmt, args);
	va_end(args);
	if (len < 0)
		len = 0;
	if (len > (int)sizeof(buf) - 2)
		len = sizeof(buf) - 2;
	buf[len++] = '\n';
	if (write(c->err_fd, buf, len) < 0) {
		/* the parent is gone: nobody to tell */
	}
	return err > 0 ? -err : (err ? err : -EINVAL);
}

/* Session and process group as dumped (see cr_restore for --shell-job). */
static int child_session(struct rst_child *c)
{
	const PstreeEntry *ps = c->ri->pstree;
	pid_t pid = c->ri->pid;

	if ((pid_t)ps->sid == pid) {
		if (setsid() < 0)
			return child_err(c, errno, "task %d: setsid: %s", pid, strerror(errno));
		return 0;
	}
	if ((pid_t)ps->pgid == pid && setpgid(0, 0))
		return child_err(c, errno, "task %d: setpgid: %s", pid, strerror(errno));
	return 0;
}

/* Signal actions, raw: the kernel's struct, handler and restorer as dumped.
 * SIGTRAP is left for the parent (finalize.c): the blob's final int3 would
 * reset an ignored SIGTRAP. */
static int child_sigactions(struct rst_child *c)
{
	const TaskCoreEntry *tc = c->ri->core->tc;
	struct {
		uint64_t handler, flags, restorer, mask;
	} ksa;
	size_t i = 0;

	for (int sig = 1; sig <= 64; sig++) {
		const SaEntry *sa;

		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		sa = tc->sigactions[i++];
		if (sig == SIGTRAP)
			continue;
		ksa.handler = sa->sigaction;
		ksa.flags = sa->flags;
		ksa.restorer = sa->restorer;
		ksa.mask = sa->mask;
		if (syscall(SYS_rt_sigaction, sig, &ksa, NULL, sizeof(uint64_t)))
			return child_err(c, errno, "task %d: sigaction of signal %d: %s",
					 c->ri->pid, sig, strerror(errno));
	}
	return 0;
}

static int write_proc_self(struct rst_child *c, const char *file, const char *val)
{
	char path[64];
	int fd, ret = 0;

	snprintf(path, sizeof(path), "/proc/self/%s", file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, val, strlen(val)) < 0)
		ret = child_err(c, errno, "task %d: write %s: %s", c->ri->pid, path,
				strerror(errno));
	if (fd >= 0)
		close(fd);
	return ret;
}

/* What is left of the task's state that C can set. */
static int child_misc(struct rst_child *c)
{
	const TaskCoreEntry *tc = c->ri->core->tc;
	const ThreadCoreEntry *th = c->ri->core->thread_core;
	const MmEntry *mm = c->ri->mm;
	pid_t pid = c->ri->pid;
	char buf[32];

	if (tc->has_child_subreaper && tc->child_subreaper &&
	    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
		return child_err(c, errno, "task %d: PR_SET_CHILD_SUBREAPER: %s", pid,
				 strerror(errno));
	if (mm->has_thp_disabled && mm->thp_disabled && prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0))
		return child_err(c, errno, "task %d: PR_SET_THP_DISABLE: %s", pid,
				 strerror(errno));
	if (tc->has_oom_score_adj) {
		snprintf(buf, sizeof(buf), "%d", tc->oom_score_adj);
		if (write_proc_self(c, "oom_score_adj", buf))
			return -EIO;
	}
	if (th->has_sched_nice && setpriority(PRIO_PROCESS, 0, th->sched_nice))
		return child_err(c, errno, "task %d: nice %d: %s", pid, th->sched_nice,
				 strerror(errno));
	if (th->has_sched_policy && th->sched_policy != SCHED_OTHER) {
		struct sched_param sp = { .sched_priority = th->has_sched_prio ? th->sched_prio : 0 };

		if (sched_setscheduler(0, th->sched_policy, &sp))
			return child_err(c, errno, "task %d: scheduling policy %u: %s", pid,
					 th->sched_policy, strerror(errno));
	}
	return 0;
}

/*
 * glibc registered an rseq area in our TLS, which the blob unmaps: the
 * kernel would then fault writing to it.  The length glibc registered is
 * sizeof(struct rseq) or, in newer versions, __rseq_size.  A negative
 * cpu_id in the area means glibc did not register it.
 */
static int child_rseq_unregister(struct rst_child *c)
{
	unsigned int lens[] = { __rseq_size, 32 };
	char *tp, *area;
	int32_t cpu_id;

	if (!__rseq_size)
		return 0;
	__asm__("mov %%fs:0, %0" : "=r"(tp));
	area = tp + __rseq_offset;
	memcpy(&cpu_id, area + 4, sizeof(cpu_id));	/* struct rseq.cpu_id */
	if (cpu_id < 0)
		return 0;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		if (!syscall(SYS_rseq, area, lens[i], 1 /* RSEQ_FLAG_UNREGISTER */, RSEQ_SIG))
			return 0;
		if (errno != EINVAL)
			break;
	}
	return child_err(c, errno, "task %d: cannot unregister our rseq area: %s", c->ri->pid,
			 strerror(errno));
}

_Noreturn void rst_child_main(struct rst_child *c, int sync_r)
{
	struct restorer_args *args;
	char go;

	/* the parent says go once it has seized us; EOF means it failed */
	if (read(sync_r, &go, 1) != 1)
		_exit(1);
	close(sync_r);

	if (child_premap(c))
		_exit(1);
	if (child_session(c) || child_fds_prepare(c) || child_fds_restore(c) || child_misc(c))
		_exit(1);
	/* after this, paths resolve in the task's root */
	if (child_fs_restore(c) || child_sigactions(c) || child_blob_prepare(c, &args))
		_exit(1);
	if (syscall(SYS_personality, c->ri->core->tc->personality) < 0) {
		child_err(c, errno, "task %d: personality 0x%x: %s", c->ri->pid,
			  c->ri->core->tc->personality, strerror(errno));
		_exit(1);
	}
	if (child_rseq_unregister(c))
		_exit(1);
	child_blob_jump(c->plan, args);
}
