/*
 * Premap (runs in the new task): map every VMA of the target at its slot in
 * the premap region (which the parent reserved PROT_NONE before the clone)
 * and read its dumped pages into it straight from the pages file with
 * preadv(): no bounce buffer, and one call for up to 64 runs adjacent in
 * the file (FILL_IOV).
 *
 *   private anonymous   MAP_PRIVATE | MAP_ANONYMOUS (| GROWSDOWN ...)
 *   private file        the file, MAP_PRIVATE at its offset
 *   shared file         the file, MAP_SHARED (nothing to fill: the file is
 *                       the content)
 *   shared anonymous    one shmem object per shmid for the whole tree,
 *                       made and filled by the restore process (shmem.c),
 *                       each VMA mapped from it through
 *                       /proc/self/map_files at its offset
 *   SysV attachment     shmat() of the segment (ipc-ns.c made it), its
 *                       part moved to the slot (child_premap_sysv)
 *
 * Each at its slot, or at its own address where the plan says so
 * (premap-place.c) and nothing is there now (MAP_FIXED_NOREPLACE; else the
 * slot after all): vp->at says where it went.  VMAs with pages to fill are
 * mapped read-write here; the blob sets the dumped protection after moving
 * them (those in place stay).  A private VMA the parent premapped the same
 * way is not mapped again: the fork gave it to us, pages shared
 * copy-on-write, and premap-cow.c makes it ours.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/uio.h>
#include <unistd.h>

#include "images/vma-status.h"
#include "restore/restore.h"
#include "restore/child.h"
#include "restore/plan.h"

#define PREADV_MAX_BYTES (1ull << 30)	/* per call, well below MAX_RW_COUNT */

/*
 * Runs read in one preadv() at most: a small array, as the stack of a new
 * task is its parent's, shared copy-on-write, and every page of it touched
 * first (IOV_MAX entries went 16 KiB deep) cost a fault and a trip to the
 * hypervisor in each task.  Few fills have more runs contiguous in the file.
 */
#define FILL_IOV	64

/* Read @total bytes at @off of pages file @pages_id (open as @fd) into
 * @iov (which this consumes).  The file's name is made only for an error:
 * the first printf of a new task (its code, its stack) is a run of faults
 * of its own. */
int child_pages_read(struct rst_child *c, int fd, uint32_t pages_id, struct iovec *iov,
		     int iovcnt, uint64_t off, uint64_t total)
{
	while (total) {
		ssize_t n = preadv(fd, iov, iovcnt, off);
		char file[32];

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int err = n ? errno : EIO;

			pages_file_name(pages_id, file, sizeof(file));
			return child_err(c, err,
					 "%s: cannot read %llu bytes at offset %llu into 0x%llx: %s (task %d)",
					 file, (unsigned long long)total, (unsigned long long)off,
					 (unsigned long long)(uintptr_t)iov->iov_base,
					 n ? strerror(err) : "unexpected end of file",
					 c->ri->pid);
		}
		off += n;
		total -= n;
		while (n && iovcnt) {
			if ((size_t)n >= iov->iov_len) {
				n -= iov->iov_len;
				iov++;
				iovcnt--;
			} else {
				iov->iov_base = (char *)iov->iov_base + n;
				iov->iov_len -= n;
				n = 0;
			}
		}
	}
	return 0;
}

/*
 * A fill's pages allocated in one call before the read writes them: faulted
 * in one by one by preadv(), each first touch was a trap (to the hypervisor,
 * in a VM with shadow page tables).  Only the fill's own range: a page no
 * fill writes must stay missing (lazy, or dropped after the fork) and a
 * compared one shared with the parent.  A kernel without it (before 5.14)
 * says EINVAL, and the read faults the pages in as before.
 */
static void populate(void *addr, size_t len)
{
	madvise(addr, len, MADV_POPULATE_WRITE);
}

/* The private fills: runs contiguous in the file go in one preadv(). */
static int fill_private(struct rst_child *c)
{
	const struct rst_plan *plan = c->plan;
	struct iovec iov[FILL_IOV];
	size_t i = 0, vma = 0;

	while (i < plan->nr_fills) {
		uint64_t off = plan->fills[i].file_off, total = 0;
		int n = 0;

		if (plan->fills[i].cmp) {
			if (child_fill_compare(c, &plan->fills[i],
					       rst_fill_at(plan, &vma, &plan->fills[i])))
				return -EIO;
			i++;
			continue;
		}
		do {
			iov[n].iov_base = (void *)(uintptr_t)rst_fill_at(plan, &vma, &plan->fills[i]);
			iov[n].iov_len = plan->fills[i].len;
			populate(iov[n].iov_base, iov[n].iov_len);
			total += plan->fills[i].len;
			n++;
			i++;
		} while (i < plan->nr_fills && n < FILL_IOV && total < PREADV_MAX_BYTES &&
			 plan->fills[i].file_off == off + total && !plan->fills[i].cmp);
		if (child_pages_read(c, c->ri->pi.pages_fd, c->ri->pi.pages_id, iov, n, off, total))
			return -EIO;
	}
	return 0;
}

/* A VMA in place takes its early advice at once (premap-place.c). */
static int advise_early(struct rst_child *c, const struct rst_vma_plan *vp)
{
	uint64_t advice = rst_vma_early_advice(vp->vma);

	for (int adv = 0; advice; adv++, advice >>= 1) {
		if (!(advice & 1) ||
		    !madvise((void *)(uintptr_t)vp->vma->start, vp->vma->end - vp->vma->start, adv))
			continue;
		return child_err(c, errno, "task %d: madvise(%d) of 0x%llx-0x%llx: %s",
				 c->ri->pid, adv, (unsigned long long)vp->vma->start,
				 (unsigned long long)vp->vma->end, strerror(errno));
	}
	return 0;
}

/* At its own address if the plan says so and it is free now, else at its
 * slot; vp->at says where. */
static int map_fixed(struct rst_child *c, struct rst_vma_plan *vp, int prot, int flags,
		     int fd, uint64_t off, const char *what)
{
	uint64_t len = vp->vma->end - vp->vma->start;
	void *p;

	if (vp->in_place) {
		p = mmap((void *)(uintptr_t)vp->vma->start, len, prot,
			 flags | MAP_FIXED_NOREPLACE, fd, off);
		if (p == (void *)(uintptr_t)vp->vma->start) {
			vp->at = vp->vma->start;
			return advise_early(c, vp);
		}
		if (p != MAP_FAILED)	/* a kernel without NOREPLACE put it elsewhere */
			munmap(p, len);
	}
	p = mmap((void *)(uintptr_t)vp->premap, len, prot, flags | MAP_FIXED, fd, off);
	if (p == MAP_FAILED)
		return child_err(c, errno, "task %d: cannot premap %s 0x%llx-0x%llx: %s",
				 c->ri->pid, what, (unsigned long long)vp->vma->start,
				 (unsigned long long)vp->vma->end, strerror(errno));
	vp->at = vp->premap;
	return 0;
}

/*
 * The file the last file VMA was mapped from, still open: a binary or a
 * library is four or five VMAs in a row, and each open() and close() of
 * its path cost the task some 3 us (the bench tree's processes ten each).
 */
struct mapped_file {
	const RegFileEntry *file;	/* vp->file */
	int oflags;
	int fd;
};

static void mapped_file_close(struct mapped_file *m)
{
	if (m->fd >= 0)
		close(m->fd);
	*m = (struct mapped_file){ .fd = -1 };
}

static int premap_file(struct rst_child *c, struct rst_vma_plan *vp, struct mapped_file *last)
{
	const VmaEntry *v = vp->vma;
	bool shared = v->status & VMA_FILE_SHARED;
	int oflags = O_RDONLY;

	/* opened for writing at the dump (fdflags): mprotect(PROT_WRITE) must
	 * still work, even if the mapping is read-only now */
	if (shared && ((v->prot & PROT_WRITE) ||
		       (v->has_fdflags && (v->fdflags & O_ACCMODE) == O_RDWR)))
		oflags = O_RDWR;
	if (last->fd < 0 || last->file != vp->file || last->oflags != oflags) {
		mapped_file_close(last);
		last->fd = open(vp->file->name, oflags | O_CLOEXEC);
		if (last->fd < 0)
			return child_err(c, errno, "%s: %s (mapped at 0x%llx by task %d)",
					 vp->file->name, strerror(errno),
					 (unsigned long long)v->start, c->ri->pid);
		last->file = vp->file;
		last->oflags = oflags;
	}
	return map_fixed(c, vp, vp->premap_prot,
			 (shared ? MAP_SHARED : MAP_PRIVATE) | (v->flags & (MAP_NORESERVE | MAP_LOCKED)),
			 last->fd, v->pgoff, vp->file->name);
}

/* One shmem object (the restore process made it, shmem.c, and we inherited
 * its mapping): map our VMAs of it through /proc/self/map_files. */
static int premap_shmem(struct rst_child *c, const struct rst_shmem *s)
{
	const struct rst_plan *plan = c->plan;
	char path[80];
	int fd, ret = 0;

	snprintf(path, sizeof(path), "/proc/self/map_files/%llx-%llx",
		 (unsigned long long)s->obj, (unsigned long long)(s->obj + s->obj_size));
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return child_err(c, errno, "task %d: cannot reopen shared memory %llu (%s): %s",
				 c->ri->pid, (unsigned long long)s->shmid, path, strerror(errno));
	for (size_t i = 0; i < plan->nr_vmas && !ret; i++) {
		struct rst_vma_plan *vp = &plan->vmas[i];

		/* a memfd may be mapped private (and come with the fork) */
		if (vp->shm == s && !vp->inherit)
			ret = map_fixed(c, vp, vp->premap_prot,
					(vp->vma->status & VMA_FILE_PRIVATE ? MAP_PRIVATE : MAP_SHARED) |
					(vp->vma->flags & (MAP_NORESERVE | MAP_LOCKED)),
					fd, vp->vma->pgoff, s->memfd ? "a memfd" : "shared memory");
	}
	close(fd);
	return ret;
}

/* The address a SysV VMA's shmat() returned: its start less its offset. */
static uint64_t sysv_base(const VmaEntry *v)
{
	return v->start - v->pgoff;
}

static bool same_attach(const VmaEntry *a, const VmaEntry *b)
{
	return (a->status & VMA_AREA_SYSVIPC) && (b->status & VMA_AREA_SYSVIPC) &&
	       a->shmid == b->shmid && sysv_base(a) == sysv_base(b);
}

/*
 * A SysV attach (the segment exists: the restore process made it in the
 * tree's IPC namespace, ours, ipc-ns.c).  One shmat() may have become
 * several VMAs (mprotect splits, munmap holes): they are one attach only
 * if they share its struct file, which shmdt() goes by.  So the attach is
 * made once, for the first of its VMAs, anywhere, then each VMA's part of
 * it (pgoff, length) is moved to that VMA's slot, and what is left of it
 * (holes, tail) unmapped.  Each VMA counts as one attach in shm_nattch, as
 * it did.  Read-only if the dumped attach was (fdflags), executable if a
 * VMA of it is.
 */
int child_premap_sysv(struct rst_child *c, const struct rst_vma_plan *vp)
{
	const struct rst_plan *plan = c->plan;
	const VmaEntry *v = vp->vma;
	int flags = v->has_fdflags && (v->fdflags & O_ACCMODE) == O_RDONLY ? SHM_RDONLY : 0;
	struct shmid_ds ds;
	uint64_t size;
	char *p;

	for (const struct rst_vma_plan *q = plan->vmas; q < vp; q++)
		if (same_attach(q->vma, v))
			return 0;	/* moved with the first VMA of its attach */
	for (const struct rst_vma_plan *q = vp; q < plan->vmas + plan->nr_vmas; q++)
		if (same_attach(q->vma, v) && (q->vma->prot & PROT_EXEC))
			flags |= SHM_EXEC;
	if (shmctl((int)v->shmid, IPC_STAT, &ds))
		return child_err(c, errno, "task %d: SysV segment %llu (mapped at 0x%llx): %s",
				 c->ri->pid, (unsigned long long)v->shmid,
				 (unsigned long long)v->start, strerror(errno));
	size = (ds.shm_segsz + RST_PAGE_SIZE - 1) & ~(uint64_t)(RST_PAGE_SIZE - 1);
	p = shmat((int)v->shmid, NULL, flags);
	if (p == (void *)-1)
		return child_err(c, errno, "task %d: cannot attach SysV segment %llu: %s",
				 c->ri->pid, (unsigned long long)v->shmid, strerror(errno));
	for (const struct rst_vma_plan *q = vp; q < plan->vmas + plan->nr_vmas; q++) {
		uint64_t len = q->vma->end - q->vma->start;

		if (!same_attach(q->vma, v))
			continue;
		if (mremap(p + q->vma->pgoff, len, len, MREMAP_MAYMOVE | MREMAP_FIXED,
			   (void *)(uintptr_t)q->premap) == MAP_FAILED) {
			int err = errno;

			munmap(p, size);
			return child_err(c, err, "task %d: cannot move SysV segment %llu to 0x%llx: %s",
					 c->ri->pid, (unsigned long long)v->shmid,
					 (unsigned long long)q->vma->start, strerror(err));
		}
	}
	munmap(p, size);	/* what no VMA took */
	return 0;
}

/*
 * Lazy: no transparent huge page until the userfaultfd is registered (the
 * blob turns THP on again then, unless the dumped task had it off).  A
 * fill of one page (a thread's stack pointer, the rseq area) in a VMA THP
 * applies to (THP "always", an mTHP size "always", MADV_HUGEPAGE) could
 * get a whole huge page of zeros around it: its lazy neighbours would then
 * be present, never fault, and read as zeros.  Process-wide, so the VMAs
 * keep their dumped VmFlags; our children inherit it and do the same.
 */
static int child_premap_thp_off(struct rst_child *c)
{
	if (c->lazy && prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0))
		return child_err(c, errno, "task %d: PR_SET_THP_DISABLE before the fill: %s",
				 c->ri->pid, strerror(errno));
	return 0;
}

/*
 * Runs before the task forks those of its children that inherit what it
 * maps here (premap-cow.c), after those that inherit nothing; its fill
 * (child_premap_fill()) comes before those that compare with it, after
 * the others (tree-task.c).
 */
int child_premap(struct rst_child *c)
{
	const struct rst_plan *plan = c->plan;
	struct mapped_file last = { .fd = -1 };

	if (child_premap_thp_off(c))
		return -EIO;
	if (child_premap_inherit(c))
		return -EIO;
	for (size_t i = 0; i < plan->nr_vmas; i++) {
		struct rst_vma_plan *vp = &plan->vmas[i];
		const VmaEntry *v = vp->vma;
		int ret = 0;

		if (vp->inherit)
			continue;
		vp->at = vp->premap;	/* unless map_fixed() puts it in place */
		if (v->status & VMA_AREA_SYSVIPC)
			ret = child_premap_sysv(c, vp);
		else if (v->status & VMA_AREA_MEMFD)
			;	/* below, with the shared objects */
		else if (v->status & (VMA_FILE_PRIVATE | VMA_FILE_SHARED))
			ret = premap_file(c, vp, &last);
		else if (v->status & VMA_ANON_PRIVATE)
			ret = map_fixed(c, vp, vp->premap_prot,
					/* droppable is a mapping type of its own */
					(v->flags & MAP_DROPPABLE ? MAP_DROPPABLE : MAP_PRIVATE) |
					MAP_ANONYMOUS |
					(v->flags & (MAP_GROWSDOWN | MAP_NORESERVE | MAP_LOCKED)),
					-1, 0, "anonymous memory");
		/* shared anonymous VMAs: below, per object */
		if (ret) {
			mapped_file_close(&last);
			return ret;
		}
	}
	mapped_file_close(&last);
	for (size_t k = 0; k < c->ri->nr_shmems; k++)
		if (premap_shmem(c, &c->ri->shmems[k]))
			return -EIO;
	return child_premap_drop(c) ? -EIO : 0;
}

int child_premap_fill(struct rst_child *c)
{
	return fill_private(c);
}
