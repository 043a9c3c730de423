/*
 * pm_scan_present(): see pm-scan.h.  The walk asks PAGEMAP_SCAN for the
 * pages in either category (present, swapped) and has it return those
 * categories, so a run that is there comes back as one or a few regions
 * and a missing GiB costs one ioctl, not 512 entries of 8 bytes per 2 MiB.
 */
#include <errno.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/kernel-abi.h"
#include "common/pm-scan.h"

#define PM_PAGE		4096ULL
#define PM_SCAN_VEC	128		/* regions per PAGEMAP_SCAN */
#define PM_BATCH	512		/* entries per pread of the fallback */
#define PM_THERE	(3ULL << 62)	/* pagemap: present | swapped */

/* 1 if the kernel has no PAGEMAP_SCAN (nothing reported yet), else as
 * pm_scan_present(). */
static int scan_ioctl(int pm_fd, uint64_t start, uint64_t end, pm_run_fn fn, void *arg)
{
	struct page_region regs[PM_SCAN_VEC];
	uint64_t addr = start;
	bool first = true;

	while (addr < end) {
		struct pm_scan_arg a = {
			.size = sizeof(a),
			.start = addr,
			.end = end,
			.vec = (uintptr_t)regs,
			.vec_len = PM_SCAN_VEC,
			.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
			.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		};
		int n = ioctl(pm_fd, PAGEMAP_SCAN, &a);

		if (n < 0)
			return first && (errno == ENOTTY || errno == EINVAL) ? 1 : -errno;
		first = false;
		for (int i = 0; i < n; i++) {
			int ret = fn(regs[i].start, regs[i].end, arg);

			if (ret)
				return ret;
		}
		/* the vector filled: go on where the walk stopped */
		if (a.walk_end <= addr || a.walk_end > end)
			break;
		addr = a.walk_end;
	}
	return 0;
}

static int scan_pread(int pm_fd, uint64_t start, uint64_t end, pm_run_fn fn, void *arg)
{
	uint64_t pm[PM_BATCH], run = 0;
	bool in_run = false;

	for (uint64_t addr = start; addr < end;) {
		uint64_t n = (end - addr) / PM_PAGE;
		ssize_t got;

		if (!n)
			break;	/* less than a page left: start or end unaligned */
		n = n < PM_BATCH ? n : PM_BATCH;
		got = pread(pm_fd, pm, n * sizeof(pm[0]), (off_t)(addr / PM_PAGE * sizeof(pm[0])));
		if (got < 0)
			return -errno;
		if (got != (ssize_t)(n * sizeof(pm[0])))
			return -EIO;
		for (uint64_t k = 0; k < n; k++, addr += PM_PAGE) {
			bool there = pm[k] & PM_THERE;
			int ret;

			if (there && !in_run)
				run = addr;
			if (!there && in_run && (ret = fn(run, addr, arg)))
				return ret;
			in_run = there;
		}
	}
	return in_run ? fn(run, end, arg) : 0;
}

int pm_scan_present(int pm_fd, uint64_t start, uint64_t end, pm_run_fn fn, void *arg)
{
	int ret = scan_ioctl(pm_fd, start, end, fn, arg);

	return ret == 1 ? scan_pread(pm_fd, start, end, fn, arg) : ret;
}
