/*
 * Which pages of a range are there in a task, from its /proc/PID/pagemap:
 * PAGEMAP_SCAN (6.7+) walks the page tables once and returns only the runs
 * that are there; without it, the pagemap's 8-byte entries are read in
 * batches.  Used where a handful of pages are there in ranges of GiB (the
 * lazy daemon's check at a handover, the guardian's takeover).
 */
#ifndef CRIU_LAZY_COMMON_PM_SCAN_H
#define CRIU_LAZY_COMMON_PM_SCAN_H

#include <stdint.h>

/* Called per run [start, end) that is there; non-zero stops the scan. */
typedef int (*pm_run_fn)(uint64_t start, uint64_t end, void *arg);

/*
 * @fn for every run of [@start, @end) whose pages are present or swapped
 * (a poison marker counts as swapped), in ascending order; @pm_fd is an
 * open /proc/PID/pagemap.  0, @fn's first non-zero return, or -errno if
 * the pagemap cannot be read (the task is gone: -ESRCH or a short read,
 * -EIO).  Logs nothing.
 */
int pm_scan_present(int pm_fd, uint64_t start, uint64_t end, pm_run_fn fn, void *arg);

#endif
