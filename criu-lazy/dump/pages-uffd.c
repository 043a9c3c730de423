/*
 * The pages of a VMA registered with a userfaultfd: a task restored lazily
 * whose pages are still arriving, dumped again.
 *
 * A page missing there is either one the lazy-pages daemon still has to
 * deliver, or a hole: a page the images never had.  pagemap cannot tell
 * them apart and the daemon, which can, is out of our reach.  So every
 * page is read first (dump_uffd_touch): a missing one faults, and the
 * daemon answers for it, with its data (UFFDIO_COPY: a page of its own) or,
 * for a hole, with UFFDIO_ZEROPAGE, which maps the kernel's zero page.
 * Then the VMA is scanned like any other and the pages that map the zero
 * page are left out: holes stay holes, as in the dump of a task restored
 * eagerly.  Before, every page read was saved: the holes came back as
 * zero-filled pages, each then taking memory of its own.
 *
 * The zero page's PFN is found here by UFFDIO_ZEROPAGE on two pages of our
 * own (dump_uffd_zero_pfn): the same call the daemon makes, so the same
 * page, even on kernels (this project's test VM) where a read fault gives
 * a page of its own and dump_find_zero_pfn() finds none.  Only the same PFN
 * behind both, and KPF_ZERO_PAGE where /proc/kpageflags is readable,
 * proves it; without a proof the holes are saved as zero pages, as before.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define LOG_PREFIX "dump: uffd: "
#include "common/log.h"
#include "dump/dump.h"

#define PAGE_SZ		4096ULL
#define PM_PRESENT	(1ULL << 63)
#define PM_PFN_MASK	((1ULL << 55) - 1)
#define KPF_ZERO_PAGE_BIT	(1ULL << 24)

static uint64_t own_pfn(int pm_fd, const void *p)
{
	uint64_t pme = 0;

	if (pread(pm_fd, &pme, sizeof(pme), ((uintptr_t)p / PAGE_SZ) * sizeof(pme)) != sizeof(pme) ||
	    !(pme & PM_PRESENT))
		return 0;
	return pme & PM_PFN_MASK;
}

static uint64_t find_zero_pfn(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	uint64_t pfn[2] = { 0, 0 }, kflags = 0;
	int uffd, fd;
	uint8_t *p;

	uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		return 0;
	p = mmap(NULL, 2 * PAGE_SZ, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p != MAP_FAILED && !ioctl(uffd, UFFDIO_API, &api)) {
		struct uffdio_register reg = {
			.range = { (uintptr_t)p, 2 * PAGE_SZ },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};
		struct uffdio_zeropage zp = { .range = { (uintptr_t)p, 2 * PAGE_SZ } };

		fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && !ioctl(uffd, UFFDIO_REGISTER, &reg) &&
		    !ioctl(uffd, UFFDIO_ZEROPAGE, &zp)) {
			pfn[0] = own_pfn(fd, p);
			pfn[1] = own_pfn(fd, p + PAGE_SZ);
		}
		if (fd >= 0)
			close(fd);
	}
	if (p != MAP_FAILED)
		munmap(p, 2 * PAGE_SZ);
	close(uffd);
	if (!pfn[0] || pfn[0] != pfn[1])
		return 0;
	fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		bool no = pread(fd, &kflags, sizeof(kflags), pfn[0] * sizeof(kflags)) ==
			  sizeof(kflags) && !(kflags & KPF_ZERO_PAGE_BIT);

		close(fd);
		if (no)
			return 0;
	}
	return pfn[0];
}

uint64_t dump_uffd_zero_pfn(struct dump_ctx *ctx)
{
	if (!ctx->uffd_zero_tried) {
		ctx->uffd_zero_tried = true;
		ctx->uffd_zero_pfn = find_zero_pfn();
		if (ctx->uffd_zero_pfn)
			pr_debug("the zero page of UFFDIO_ZEROPAGE is pfn %#llx",
				 (unsigned long long)ctx->uffd_zero_pfn);
		else
			pr_warn("the zero page of UFFDIO_ZEROPAGE cannot be told here: the holes of VMAs still registered with a userfaultfd are saved as zero pages");
	}
	return ctx->uffd_zero_pfn;
}

/* Read [start, end) but its guard regions into @buf, @size bytes at a time. */
int dump_uffd_touch(struct dump_task *t, uint64_t start, uint64_t end, uint8_t *buf,
		    size_t size)
{
	while (start < end) {
		uint64_t next;
		bool guard = dump_guard_at(&t->mm, start, &next);

		if (next > end)
			next = end;
		for (uint64_t at = start; !guard && at < next;) {
			size_t len = next - at < size ? next - at : size;
			struct iovec local = { buf, len }, remote = { (void *)(uintptr_t)at, len };
			ssize_t n = process_vm_readv(t->pid, &local, 1, &remote, 1, 0);

			if (n != (ssize_t)len) {
				if (n >= 0)
					errno = EFAULT;
				return dump_task_error(t, -errno,
						       "can't read the pages at %#llx of task %d, still arriving from the lazy-pages daemon: %m",
						       (unsigned long long)at, t->pid);
			}
			at += len;
		}
		start = next;
	}
	return 0;
}
