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
	UFFD_GONE_RANGE,	/* the range is no longer registered (ENOENT) */
	UFFD_GONE_TASK,		/* the task has exited (ESRCH, ENOSPC) */
};

/*
 * Copy len bytes from src to dst in the task, waking its faulting threads.
 * Pages that are already there (EEXIST) are skipped and the rest copied.
 * Returns an enum uffd_result, or a negative errno for a real failure
 * (logged).  *copied gets how far from dst the range is done (filled by
 * this call or found already there); on UFFD_RETRY the rest is not.
 */
int uffd_copy(int uffd, uint64_t dst, const void *src, uint64_t len, uint64_t *copied);

/* Map zero pages at [dst, dst+len) (a fault outside the model). */
int uffd_zeropage(int uffd, uint64_t dst, uint64_t len);

/* Wake threads waiting on [start, start+len). */
int uffd_wake(int uffd, uint64_t start, uint64_t len);

/* Stop receiving faults for [start, start+len) (after MADV_DONTNEED). */
int uffd_unregister(int uffd, uint64_t start, uint64_t len);

/* Make [start, start+len) raise SIGBUS when touched (kernels with POISON). */
int uffd_poison(int uffd, uint64_t start, uint64_t len);

/* Is the task behind this uffd still alive?  addr must be in no region. */
bool uffd_task_alive(int uffd, uint64_t addr);

/*
 * Read every queued message (non-blocking) into msgs (up to max).  Returns
 * how many, 0 when none, or a negative errno.
 */
int uffd_read_msgs(int uffd, struct uffd_msg *msgs, int max);

#endif
