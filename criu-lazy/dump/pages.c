/*
 * Private memory: which pages to save, read in large batches, written to
 * pagemap-PID.img + pages-N.img.
 *
 * /proc/PID/pagemap tells, per page, present (bit 63), swapped (62), and
 * whether the page is file-backed or shared (61).  We save a page of a
 * private VMA when it is present or swapped, except the kernel's zero page
 * (compared by PFN, visible to root) and, in private file mappings, pages
 * still backed by the file (never written, so the file restores them).
 * vDSO pages are always saved.  Guard regions (guards.c) never are: a
 * guard page shows as swapped, and reading it fails.
 *
 * The PAGEMAP_SCAN ioctl (6.7+) first finds the runs of a VMA that hold
 * present or swapped pages; only their pagemap entries are read, for the
 * file and PFN bits.  The kernel walks only the page tables that exist, so
 * a 16 TiB MAP_NORESERVE reservation with a few pages costs a few entries
 * instead of 4 Gi of them (32 GiB of pagemap).  Without the ioctl (EINVAL,
 * ENOTTY) each VMA's whole pagemap is read, as the runs are the same.
 *
 * Pages are gathered into batches of up to 4 MiB and as many runs as one
 * process_vm_readv takes (IOV_MAX): one syscall reads the whole batch into
 * our buffer, then each run goes to the pagemap writer.  VMAs without
 * PROT_READ can't be read that way; their batches go through
 * /proc/PID/mem, which may read them (FOLL_FORCE).
 *
 * With --lazy-pages (a migration from the live task) the lazy pages are
 * not read at all: their entries are PE_LAZY alone, and the runs are kept
 * for the dump to serve later from the frozen task (lazy-migrate.c).
 *
 * Pages of VMAs without PROT_READ are never lazy: process_vm_readv could
 * not serve them in a migration, and in a task restored lazily a later
 * dump could not read them through /proc/PID/mem while they still wait
 * for the daemon (a forced read of a page missing in a userfaultfd-
 * registered VMA fails with EIO).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/kernel-abi.h"
#include "common/log.h"
#include "common/mono-time.h"
#include "dump/dump.h"
#include "images/vma-status.h"

#define PAGE_SZ		4096ULL
#define PM_PRESENT	(1ULL << 63)
#define PM_SWAP		(1ULL << 62)
#define PM_FILE		(1ULL << 61)
#define KPF_ZERO_PAGE_BIT	(1ULL << 24)	/* /proc/kpageflags: KPF_ZERO_PAGE */
#define PM_PFN_MASK	((1ULL << 55) - 1)

#define BATCH_PAGES	1024		/* 4 MiB */
#define BATCH_RUNS	1024		/* IOV_MAX */
#define PM_CHUNK	65536		/* pagemap entries per pread (512 KiB) */
#define SCAN_REGIONS	256		/* page_region runs per PAGEMAP_SCAN */

struct page_batch {
	struct dump_ctx *ctx;
	struct dump_task *t;
	struct pagemap_writer *w;
	int mem_fd;			/* /proc/PID/mem, opened on first need */
	uint8_t *buf;
	struct iovec runs[BATCH_RUNS];	/* remote address, length */
	struct page_region regions[SCAN_REGIONS];
	uint32_t flags[BATCH_RUNS];
	int nr_runs;
	uint64_t nr_pages;
	bool via_mem;
};

/* Read the batch's pages into b->buf, one process_vm_readv or preads. */
static int batch_read(struct page_batch *b)
{
	struct dump_task *t = b->t;
	uint64_t len = b->nr_pages * PAGE_SZ;
	struct iovec local = { b->buf, len };
	ssize_t n;

	if (!b->via_mem) {
		n = process_vm_readv(t->pid, &local, 1, b->runs, b->nr_runs, 0);
		if (n == (ssize_t)len)
			return 0;
		if (n >= 0)
			errno = EFAULT;
		return dump_task_error(t, -errno, "can't read %llu pages of task %d (first at %p): %m",
				       (unsigned long long)b->nr_pages, t->pid, b->runs[0].iov_base);
	}

	if (b->mem_fd < 0) {
		char path[64];

		snprintf(path, sizeof(path), "/proc/%d/mem", t->pid);
		b->mem_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (b->mem_fd < 0)
			return dump_task_error(t, -errno, "can't open %s: %m", path);
	}
	for (int i = 0, off = 0; i < b->nr_runs; off += b->runs[i].iov_len, i++) {
		size_t done = 0;

		while (done < b->runs[i].iov_len) {
			n = pread(b->mem_fd, b->buf + off + done, b->runs[i].iov_len - done,
				  (off_t)(uintptr_t)b->runs[i].iov_base + done);
			if (n <= 0) {
				uint64_t at = (uintptr_t)b->runs[i].iov_base + done;

				if (n == 0)
					errno = EFAULT;
				return dump_task_error(t, -errno, "can't read the page at %#llx of task %d: %m",
						       (unsigned long long)at, t->pid);
			}
			done += n;
		}
	}
	return 0;
}

static int batch_flush(struct page_batch *b)
{
	struct dump_stats *st = &b->ctx->st;
	uint64_t t0, t1, off = 0;
	int ret;

	if (!b->nr_runs)
		return 0;
	t0 = mono_us();
	ret = batch_read(b);
	t1 = mono_us();
	st->memdump_us += t1 - t0;
	if (ret)
		return ret;
	for (int i = 0; i < b->nr_runs && !ret; i++) {
		uint64_t nr = b->runs[i].iov_len / PAGE_SZ;

		ret = pagemap_writer_add(b->w, (uintptr_t)b->runs[i].iov_base, nr, b->flags[i],
					 b->buf + off);
		off += b->runs[i].iov_len;
		st->pages_written += nr;
		if (b->flags[i] & PE_LAZY)
			st->pages_lazy += nr;
	}
	st->memwrite_us += mono_us() - t1;
	b->nr_runs = 0;
	b->nr_pages = 0;
	return ret;
}

static int batch_add(struct page_batch *b, uint64_t addr, uint64_t nr, uint32_t flags,
		     bool via_mem)
{
	int ret;

	if (b->nr_runs && b->via_mem != via_mem) {
		ret = batch_flush(b);
		if (ret)
			return ret;
	}
	b->via_mem = via_mem;
	while (nr) {
		struct iovec *last = b->nr_runs ? &b->runs[b->nr_runs - 1] : NULL;
		uint64_t take;

		if (b->nr_pages == BATCH_PAGES) {
			ret = batch_flush(b);
			if (ret)
				return ret;
			last = NULL;
		}
		take = BATCH_PAGES - b->nr_pages;
		if (take > nr)
			take = nr;
		if (last && b->flags[b->nr_runs - 1] == flags &&
		    (uintptr_t)last->iov_base + last->iov_len == addr) {
			last->iov_len += take * PAGE_SZ;
		} else {
			if (b->nr_runs == BATCH_RUNS) {
				ret = batch_flush(b);
				if (ret)
					return ret;
			}
			b->runs[b->nr_runs].iov_base = (void *)(uintptr_t)addr;
			b->runs[b->nr_runs].iov_len = take * PAGE_SZ;
			b->flags[b->nr_runs] = flags;
			b->nr_runs++;
		}
		b->nr_pages += take;
		addr += take * PAGE_SZ;
		nr -= take;
	}
	return 0;
}

/*
 * Pages never left lazy, though their VMA is: the argv/environ area, which
 * others read through /proc/PID/cmdline and environ (a read from another
 * process cannot wait for a lazy page: it would see nothing), the page at
 * each thread's stack pointer, the first one it touches, and the page of
 * each thread's rseq area: the kernel writes it when the blob registers it
 * again, so lazy it cost each thread of a restore a round trip to the
 * daemon before the restore could return.
 */
static bool page_eager(const struct dump_task *t, uint64_t addr)
{
	const MmEntry *mm = &t->mm.mm;

	for (size_t i = 0; i < t->nr_threads; i++) {
		const struct task_core *c = t->threads[i].core;

		if (addr == (t->threads[i].regs.rsp & ~(PAGE_SZ - 1)))
			return true;
		if (c && c->rseq.rseq_abi_pointer &&
		    addr + PAGE_SZ > c->rseq.rseq_abi_pointer &&
		    addr < c->rseq.rseq_abi_pointer + (c->rseq.rseq_abi_size ?: 32))
			return true;
	}
	return addr + PAGE_SZ > mm->mm_arg_start && addr < mm->mm_env_end;
}

/* A lazy run of a migration: an entry without data, a run to serve later. */
static int add_lazy(struct page_batch *b, uint64_t addr, uint64_t nr)
{
	/* what the batch holds lies below: write it first, entries ascend */
	int ret = batch_flush(b);

	if (!ret)
		ret = pagemap_writer_add(b->w, addr, nr, PE_LAZY, NULL);
	if (!ret)
		ret = dump_lazy_add_run(b->t, addr, nr);
	b->ctx->st.pages_lazy += nr;
	return ret;
}

/* batch_add, with the eager pages of a lazy run split off as PE_PRESENT */
static int add_run(struct page_batch *b, uint64_t addr, uint64_t nr, uint32_t flags, bool via_mem)
{
	while (nr) {
		bool eager = (flags & PE_LAZY) && page_eager(b->t, addr);
		uint32_t flags_n;
		uint64_t n = 1;
		int ret;

		if (flags & PE_LAZY)
			while (n < nr && page_eager(b->t, addr + n * PAGE_SZ) == eager)
				n++;
		else
			n = nr;
		flags_n = eager ? (flags & ~PE_LAZY) : flags;
		if ((flags_n & PE_LAZY) && b->ctx->o->lazy_pages)
			ret = add_lazy(b, addr, n);
		else
			ret = batch_add(b, addr, n, flags_n, via_mem);
		if (ret)
			return ret;
		addr += n * PAGE_SZ;
		nr -= n;
	}
	return 0;
}

static bool page_wanted(uint64_t pme, bool file_private, uint64_t zero_pfn)
{
	if (!(pme & (PM_PRESENT | PM_SWAP)) || (pme & PM_GUARD_REGION))
		return false;
	if (file_private && (pme & PM_FILE))
		return false;
	if (zero_pfn && (pme & PM_PRESENT) && (pme & PM_PFN_MASK) == zero_pfn)
		return false;
	return true;
}

/* How the pages of one VMA are saved. */
struct vma_scan {
	uint32_t flags;
	bool via_mem;
	bool file_private;
	uint64_t zero_pfn;		/* pages mapping it are not saved; 0 none */
};

/* The wanted pages of [addr, end) by their pagemap entries, as runs. */
static int scan_entries(struct page_batch *b, int pm_fd, uint64_t *pm, const struct vma_scan *s,
			uint64_t addr, uint64_t end)
{
	struct dump_task *t = b->t;
	uint64_t zero_pfn = s->zero_pfn;
	int ret;

	while (addr < end) {
		uint64_t n = (end - addr) / PAGE_SZ, run_start = 0, run_len = 0;
		size_t want, got = 0;
		uint64_t t0 = mono_us();

		if (n > PM_CHUNK)
			n = PM_CHUNK;
		want = n * sizeof(uint64_t);
		while (got < want) {
			ssize_t r = pread(pm_fd, (char *)pm + got, want - got,
					  (addr / PAGE_SZ) * sizeof(uint64_t) + got);

			if (r <= 0) {
				if (r == 0)
					errno = EIO;
				return dump_task_error(t, -errno,
						       "can't read the pagemap of task %d at %#llx: %m",
						       t->pid, (unsigned long long)addr);
			}
			got += r;
		}
		b->ctx->st.memdump_us += mono_us() - t0;

		for (uint64_t i = 0; i < n; i++) {
			if (page_wanted(pm[i], s->file_private, zero_pfn)) {
				if (!run_len)
					run_start = addr + i * PAGE_SZ;
				run_len++;
				continue;
			}
			if (run_len) {
				ret = add_run(b, run_start, run_len, s->flags, s->via_mem);
				if (ret)
					return ret;
				run_len = 0;
			}
		}
		if (run_len) {
			ret = add_run(b, run_start, run_len, s->flags, s->via_mem);
			if (ret)
				return ret;
		}
		addr += n * PAGE_SZ;
	}
	return 0;
}

/*
 * scan_entries over the present or swapped runs of [start, end) only, as
 * PAGEMAP_SCAN finds them.  1 if the kernel has no PAGEMAP_SCAN (nothing
 * done yet: the caller reads the whole pagemap).  The runs it returns end
 * where a full vec stopped the walk or the category changes; the pagemap
 * writer joins what is contiguous again.
 */
static int scan_present(struct page_batch *b, int pm_fd, uint64_t *pm, const struct vma_scan *s,
			uint64_t start, uint64_t end)
{
	struct dump_task *t = b->t;
	uint64_t addr = start;
	int ret;

	while (addr < end) {
		struct pm_scan_arg arg = {
			.size = sizeof(arg),
			.start = addr,
			.end = end,
			.vec = (uintptr_t)b->regions,
			.vec_len = SCAN_REGIONS,
			.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
			/* a guard page is "swapped" too (guards.c) */
			.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED |
				       (b->ctx->no_scan_guard ? 0 : PAGE_IS_GUARD),
		};
		uint64_t t0 = mono_us();
		int n = ioctl(pm_fd, PAGEMAP_SCAN, &arg);

		b->ctx->st.memdump_us += mono_us() - t0;
		if (n < 0 && (errno == EINVAL || errno == ENOTTY) && addr == start) {
			pr_info("PAGEMAP_SCAN on the pagemap of task %d: %m; reading whole pagemaps",
				t->pid);
			return 1;
		}
		if (n < 0)
			return dump_task_error(t, -errno,
					       "can't scan the pagemap of task %d at %#llx: %m",
					       t->pid, (unsigned long long)addr);
		for (int i = 0; i < n; i++) {
			if (b->regions[i].categories & PAGE_IS_GUARD)
				continue;
			ret = scan_entries(b, pm_fd, pm, s, b->regions[i].start, b->regions[i].end);
			if (ret)
				return ret;
		}
		if (arg.walk_end <= addr || arg.walk_end > end)
			return dump_task_error(t, -EIO,
					       "the pagemap scan of task %d stopped at %#llx, in [%#llx, %#llx)",
					       t->pid, (unsigned long long)arg.walk_end,
					       (unsigned long long)addr, (unsigned long long)end);
		addr = arg.walk_end;
	}
	return 0;
}

/* Every page of [start, end) but the guard regions (guards.c). */
static int add_unguarded(struct page_batch *b, uint64_t start, uint64_t end, uint32_t flags,
			 bool via_mem)
{
	while (start < end) {
		uint64_t next;
		bool guard = dump_guard_at(&b->t->mm, start, &next);
		int ret;

		if (next > end)
			next = end;
		if (!guard) {
			ret = add_run(b, start, (next - start) / PAGE_SZ, flags, via_mem);
			if (ret)
				return ret;
		}
		start = next;
	}
	return 0;
}

/*
 * uffd_missing: the VMA is registered with a userfaultfd, as in a task
 * restored lazily whose pages are still arriving.  A page that is not there
 * yet may be one the lazy-pages daemon still has to deliver, so every page
 * is read first: the read faults it in through the daemon, which maps the
 * zero page for a hole; those pages are then left out (pages-uffd.c).
 */
static int dump_vma_pages(struct page_batch *b, int pm_fd, uint64_t *pm, const VmaEntry *v,
			  bool uffd_missing)
{
	bool via_mem = !(v->prot & PROT_READ);
	bool lazy = vma_is_lazy_capable(v) && !via_mem;
	struct vma_scan s = {
		.flags = lazy ? (PE_PRESENT | PE_LAZY) : PE_PRESENT,
		.via_mem = via_mem,
		.file_private = v->status & VMA_FILE_PRIVATE,
		.zero_pfn = b->ctx->zero_pfn,
	};
	/*
	 * Through /proc/PID/mem a missing page fails with EIO: such a VMA is
	 * never lazy, every page is read as it is.  dump --lazy-pages reads
	 * no lazy page now: the whole VMA is served from the task when asked,
	 * each page then faulting in through the daemon (reading a 16 TiB
	 * sparse VMA here would take hours).
	 */
	bool serve_later = (s.flags & PE_LAZY) && b->ctx->o->lazy_pages;
	bool all = (v->status & VMA_AREA_VDSO) || (uffd_missing && (via_mem || serve_later));
	int ret;

	b->ctx->st.pages_scanned += (v->end - v->start) / PAGE_SZ;
	if (uffd_missing && !all) {
		uint64_t t0 = mono_us();

		ret = dump_uffd_touch(b->t, v->start, v->end, b->buf, BATCH_PAGES * PAGE_SZ);
		b->ctx->st.memdump_us += mono_us() - t0;
		if (ret)
			return ret;
		s.zero_pfn = dump_uffd_zero_pfn(b->ctx);
	}
	if (all)
		return add_unguarded(b, v->start, v->end, s.flags, via_mem);
	if (!b->ctx->no_pagemap_scan) {
		ret = scan_present(b, pm_fd, pm, &s, v->start, v->end);
		if (ret <= 0)
			return ret;
		b->ctx->no_pagemap_scan = true;
	}
	return scan_entries(b, pm_fd, pm, &s, v->start, v->end);
}

int dump_pages(struct dump_ctx *ctx, struct dump_task *t)
{
	struct page_batch *b;
	char path[64];
	uint64_t *pm;
	int pm_fd, ret = 0, ret2;

	b = calloc(1, sizeof(*b));
	pm = malloc(PM_CHUNK * sizeof(*pm));
	if (!b || !pm) {
		free(b);
		free(pm);
		return -ENOMEM;
	}
	b->ctx = ctx;
	b->t = t;
	b->mem_fd = -1;
	b->buf = mmap(NULL, BATCH_PAGES * PAGE_SZ, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b->buf == MAP_FAILED) {
		ret = -ENOMEM;
		goto out_free;
	}

	snprintf(path, sizeof(path), "/proc/%d/pagemap", t->pid);
	pm_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (pm_fd < 0) {
		ret = dump_task_error(t, -errno, "can't open %s: %m", path);
		goto out_unmap;
	}
	ret = dump_pagemap_open(ctx, IMG_PAGEMAP, t->vpid, &b->w);
	if (ret)
		goto out_close;

	for (size_t i = 0; i < t->mm.nr_vmas && !ret; i++)
		if (vma_has_dumped_pages(&t->mm.vmas[i]))
			ret = dump_vma_pages(b, pm_fd, pm, &t->mm.vmas[i], t->mm.uffd_missing[i]);
	if (!ret)
		ret = batch_flush(b);
	ret2 = pagemap_writer_close(b->w);
	if (!ret)
		ret = ret2;
	if (!ret && ctx->o->lazy_pages)
		pr_info("task %d: %llu pages scanned, %llu written, %llu lazy left in the task",
			t->pid, (unsigned long long)ctx->st.pages_scanned,
			(unsigned long long)ctx->st.pages_written,
			(unsigned long long)ctx->st.pages_lazy);
	else if (!ret)
		pr_info("task %d: %llu pages scanned, %llu written (%llu lazy)", t->pid,
			(unsigned long long)ctx->st.pages_scanned,
			(unsigned long long)ctx->st.pages_written,
			(unsigned long long)ctx->st.pages_lazy);
out_close:
	close(pm_fd);
	if (b->mem_fd >= 0)
		close(b->mem_fd);
out_unmap:
	munmap(b->buf, BATCH_PAGES * PAGE_SZ);
out_free:
	free(pm);
	free(b);
	return ret;
}

/* The pagemap entry of one of our own pages, 0 if it cannot be read. */
static uint64_t own_pme(int pm_fd, const volatile void *p)
{
	uint64_t pme = 0;

	if (pread(pm_fd, &pme, sizeof(pme), ((uintptr_t)p / PAGE_SZ) * sizeof(pme)) != sizeof(pme))
		return 0;
	return pme;
}

/*
 * The PFN of the kernel's zero page, 0 when it cannot be told for sure;
 * then zero pages are simply saved.  Two fresh anonymous pages are read,
 * which maps the zero page into both where the kernel uses it for read
 * faults.  Only the same PFN behind both proves it: some kernels (this
 * project's own test VM) give every read fault a page of its own, and
 * taking the PFN of such a page for the zero page would skip whatever page
 * of a dumped task later reuses it: a page lost.  Where /proc/kpageflags is
 * readable, its KPF_ZERO_PAGE bit must agree too.
 */
int dump_find_zero_pfn(struct dump_ctx *ctx)
{
	volatile uint8_t *p;
	uint64_t pme[2], pfn, kflags = 0;
	int fd;

	ctx->zero_pfn = 0;
	p = mmap(NULL, 2 * PAGE_SZ, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 0;
	(void)p[0];
	(void)p[PAGE_SZ];
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	pme[0] = fd >= 0 ? own_pme(fd, p) : 0;
	pme[1] = fd >= 0 ? own_pme(fd, p + PAGE_SZ) : 0;
	if (fd >= 0)
		close(fd);
	munmap((void *)p, 2 * PAGE_SZ);

	pfn = pme[0] & PM_PFN_MASK;
	if (!(pme[0] & PM_PRESENT) || !(pme[1] & PM_PRESENT) || !pfn ||
	    (pme[1] & PM_PFN_MASK) != pfn) {
		pr_debug("no shared zero page for read faults here: zero pages are saved");
		return 0;
	}
	fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (pread(fd, &kflags, sizeof(kflags), pfn * sizeof(kflags)) == sizeof(kflags) &&
		    !(kflags & KPF_ZERO_PAGE_BIT)) {
			close(fd);
			pr_debug("pfn %#llx is behind two read faults but is not the zero page: "
				 "zero pages are saved", (unsigned long long)pfn);
			return 0;
		}
		close(fd);
	}
	ctx->zero_pfn = pfn;
	pr_debug("zero page pfn %#llx", (unsigned long long)ctx->zero_pfn);
	return 0;
}
