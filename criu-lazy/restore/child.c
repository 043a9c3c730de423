/*
 * The new task's C part: it is a fork of the restore process (clone3 with
 * the dumped pid) and turns itself into the dumped task as far as plain C
 * can, then jumps into the restorer blob, which finishes the job.
 *
 * Order matters:
 *   - signals stay blocked from the clone on (the parent blocked them), so
 *     no handler installed here ever runs before the registers are back;
 *   - tree.c ran first: seized, memory premapped and filled (premap.c,
 *     before the children fork, so they share it copy-on-write; and while
 *     our fds and cwd are still ours), children forked, session and group
 *     set;
 *   - then descriptors, the task attributes of the CHILD stage
 *     (attrs/: /proc/self is still ours), cwd/root/umask, the blob's
 *     args (the BLOB stage), and the CHILD_LAST stage (personality: it
 *     changes how mmap() behaves);
 *   - unregister glibc's rseq area (the blob is about to unmap it) and go.
 *
 * Errors go to the error pipe as one line (the parent prints it and kills
 * us).  Debug lines may go to the log: its fd, and the dup of our stderr
 * it writes to, live above the task's fds (log_move_above()), so they
 * never land in a descriptor of the task.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "attrs/task-attr.h"
#include "common/log.h"
#include "files/pty.h"
#include "restore/restore.h"
#include "restore/child.h"
#include "restore/files.h"

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

/* The mm's prctl flag (the task attributes do the rest, attrs/). */
static int child_mm_flags(struct rst_child *c)
{
	const MmEntry *mm = c->ri->mm;

	if (mm->has_thp_disabled && mm->thp_disabled && prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0))
		return child_err(c, errno, "task %d: PR_SET_THP_DISABLE: %s", c->ri->pid,
				 strerror(errno));
	return 0;
}

static int child_attrs(struct rst_child *c, enum attr_rst_stage stage)
{
	struct attr_rst r = {
		.ri = c->ri, .core = c->ri->core, .pid = c->ri->pid, .tid = c->ri->pid,
		.child = c,
	};

	return attrs_restore(&r, stage, ATTR_PROCESS | ATTR_THREAD);
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

/* The tree exists (tree.c: sessions and groups are set): rebuild the rest. */
_Noreturn void rst_child_main(struct rst_child *c)
{
	struct restorer_args *args;

	/* a sharer of another's table: its helpers are apart and the owner has
	 * restored the table (fdt.c) */
	if (!c->fdt_sharer && (child_fds_prepare(c) || child_fds_restore(c) ||
			       child_fdt_done(c)))
		_exit(1);
	/* the log lives above the task's fds now (child_fds_prepare) */
	pr_debug("task %d: its %zu fds are in place", c->ri->pid, c->ri->nr_fds);
	if (child_file_locks(c) || pty_ctty_restore(c) ||
	    child_mm_flags(c) || child_attrs(c, ATTR_RST_CHILD))
		_exit(1);
	/* after this, paths resolve in the task's root */
	if (child_fs_restore(c) || child_blob_prepare(c, &args) ||
	    child_attrs(c, ATTR_RST_CHILD_LAST))
		_exit(1);
	if (child_rseq_unregister(c))
		_exit(1);
	child_blob_jump(c->plan, args);
}
