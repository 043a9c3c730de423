/*
 * Guard regions (madvise MADV_GUARD_INSTALL, 6.13+; glibc 2.42 puts one
 * under every thread stack): pages of a VMA that fault on any access.
 * They are markers in the page tables, not VMAs, and /proc/PID/pagemap
 * shows them as swapped (bit 62) with bit 58 set; reading one fails with
 * EFAULT.  So the dump finds them before it reads any page, with
 * PAGEMAP_SCAN's PAGE_IS_GUARD category (6.14+), which walks only the page
 * tables that exist; pages.c leaves them out, and they are written as
 * CRIU writes them: one vma_entry per run with status VMA_AREA_GUARD (the
 * prot and flags of the VMA holding it), after every real VMA.  The
 * restorer installs them again once the VMAs are in place.
 *
 * A kernel without PAGE_IS_GUARD (EINVAL) has no guard regions, or only
 * 6.13's: then a guard page fails the read of the pages, naming its address.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/array.h"
#include "common/kernel-abi.h"
#include "common/log.h"
#include "dump/dump.h"
#include "images/vma-status.h"

#define SCAN_REGIONS	64

static int add_guard(struct task_mm *mm, const VmaEntry *v, uint64_t start, uint64_t end)
{
	VmaEntry *g;

	/* the scan cuts its runs where its buffer is full: join them again */
	if (mm->nr_guards && mm->guards[mm->nr_guards - 1].end == start && start != v->start) {
		mm->guards[mm->nr_guards - 1].end = end;
		return 0;
	}
	if (ARRAY_GROW(mm->guards, mm->cap_guards, mm->nr_guards + 1, 16))
		return -ENOMEM;
	g = &mm->guards[mm->nr_guards++];
	vma_entry__init(g);
	g->start = start;
	g->end = end;
	g->prot = v->prot;
	g->flags = v->flags;
	g->fd = -1;
	g->status = VMA_AREA_GUARD;
	return 0;
}

static int scan_vma(struct dump_ctx *ctx, struct dump_task *t, int pm_fd, const VmaEntry *v)
{
	struct page_region regions[SCAN_REGIONS];
	uint64_t addr = v->start;

	while (addr < v->end && !ctx->no_scan_guard) {
		struct pm_scan_arg arg = {
			.size = sizeof(arg),
			.start = addr,
			.end = v->end,
			.vec = (uintptr_t)regions,
			.vec_len = SCAN_REGIONS,
			.category_anyof_mask = PAGE_IS_GUARD,
			.return_mask = PAGE_IS_GUARD,
		};
		int n = ioctl(pm_fd, PAGEMAP_SCAN, &arg);

		if (n < 0 && (errno == EINVAL || errno == ENOTTY)) {
			pr_info("PAGEMAP_SCAN knows no guard regions here (%m): none looked for");
			ctx->no_scan_guard = true;
			return 0;
		}
		if (n < 0)
			return dump_task_error(t, -errno, "can't scan task %d for guard regions at "
					       "%#llx: %m", t->pid, (unsigned long long)addr);
		for (int i = 0; i < n; i++) {
			int ret = add_guard(&t->mm, v, regions[i].start, regions[i].end);

			if (ret)
				return ret;
			pr_debug("task %d: guard region %#llx-%#llx", t->pid,
				 (unsigned long long)regions[i].start,
				 (unsigned long long)regions[i].end);
		}
		if (arg.walk_end <= addr || arg.walk_end > v->end)
			return dump_task_error(t, -EIO, "the guard scan of task %d stopped at %#llx",
					       t->pid, (unsigned long long)arg.walk_end);
		addr = arg.walk_end;
	}
	return 0;
}

int dump_guards(struct dump_ctx *ctx, struct dump_task *t)
{
	struct task_mm *mm = &t->mm;
	char path[64];
	int pm_fd, ret = 0;

	if (ctx->no_scan_guard || ctx->no_pagemap_scan)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", t->pid);
	pm_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (pm_fd < 0)
		return dump_task_error(t, -errno, "can't open %s: %m", path);
	for (size_t i = 0; i < mm->nr_vmas && !ret; i++) {
		const VmaEntry *v = &mm->vmas[i];

		if (!(v->status & (VMA_AREA_VDSO | VMA_AREA_VVAR | VMA_AREA_VSYSCALL)))
			ret = scan_vma(ctx, t, pm_fd, v);
	}
	close(pm_fd);
	return ret;
}

/*
 * Is addr in a guard region?  *end: where that region ends, or else where
 * the next one starts (UINT64_MAX: none).
 */
bool dump_guard_at(const struct task_mm *mm, uint64_t addr, uint64_t *end)
{
	size_t lo = 0, hi = mm->nr_guards;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (mm->guards[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == mm->nr_guards) {
		*end = UINT64_MAX;
		return false;
	}
	if (mm->guards[lo].start <= addr) {
		*end = mm->guards[lo].end;
		return true;
	}
	*end = mm->guards[lo].start;
	return false;
}
