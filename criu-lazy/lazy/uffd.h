/*
 * The daemon's side of userfaultfd: the ioctls that resolve faults and the
 * reading of event messages.  Kernel races are reported as such (see the
 * return values) so the event loop can treat them as the normal events
 * they are, not as errors.
 */
#ifndef CRIU_LAZY_LAZY_UFFD_H
#define CRIU_LAZY_LAZY_UFFD_H

#include <linux/userfaultfd.h>
#include <stdbool.h>
#include <stdint.h>

enum uffd_result {
	UFFD_DONE = 0,		/* the range is filled (by us or already there) */
	UFFD_RETRY,		/* events are pending (EAGAIN): read them, then retry */
	UFFD_GONE_RANGE,	/* one page is in no VMA registered with this uffd (ENOENT) */
	UFFD_GONE_TASK,		/* the task has exited (ESRCH, ENOSPC) */
};

/* After UFFD_RETRY: so many reads of the events, 1 ms apart, at the most
 * (an event is queued right after its change). */
#define UFFD_EVENT_WAIT_TRIES	1000

enum uffd_fill_op {
	UFFD_FILL_COPY,		/* UFFDIO_COPY from src */
	UFFD_FILL_ZERO,		/* UFFDIO_ZEROPAGE */
	UFFD_FILL_POISON,	/* UFFDIO_POISON (kernels with it) */
};

/*
 * Fill [dst, dst+len) in the task, waking the threads that wait there.
 * A span may cross VMA boundaries the daemon was never told about (mprotect,
 * mlock, madvise split a VMA without any event), and the kernel refuses a
 * fill that crosses one (ENOENT): the span is then bisected and its parts
 * filled separately, down to single pages.  Pages already there (EEXIST)
 * are stepped over.
 *
 * *done gets how far from dst the range is settled (filled, or found
 * there).  The result says what stopped it at dst + *done: UFFD_DONE (all
 * of it), UFFD_RETRY (events pending), UFFD_GONE_RANGE (that one page is in
 * no VMA registered with this uffd), UFFD_GONE_TASK, or a negative errno
 * for a real failure (logged).  src is only read for UFFD_FILL_COPY.
 */
int uffd_fill(int uffd, enum uffd_fill_op op, uint64_t dst, const void *src, uint64_t len,
	      uint64_t *done);

/* The same, and how many pages were there already (the first at *first_existed). */
int uffd_fill_counted(int uffd, enum uffd_fill_op op, uint64_t dst, const void *src,
		      uint64_t len, uint64_t *done, uint64_t *existed, uint64_t *first_existed);

/* Are messages (faults or events) waiting to be read from this uffd? */
bool uffd_has_msgs(int uffd);

/* Wake threads waiting on [start, start+len). */
int uffd_wake(int uffd, uint64_t start, uint64_t len);

/* Stop receiving faults for [start, start+len) (after MADV_DONTNEED);
 * UFFD_GONE_RANGE if no VMA is left there. */
int uffd_unregister(int uffd, uint64_t start, uint64_t len);

/* Is the task behind this uffd still alive?  addr must be in no region. */
bool uffd_task_alive(int uffd, uint64_t addr);

/*
 * Read every queued message (non-blocking) into msgs (up to max).  Returns
 * how many, 0 when none, or a negative errno.
 */
int uffd_read_msgs(int uffd, struct uffd_msg *msgs, int max);

#endif
