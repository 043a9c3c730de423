/*
 * Which shared memory objects a lazy restore leaves empty for the
 * lazy-pages daemon (Documentation/lazy-pages.md, "Shared memory").
 *
 * The daemon fills an object when a task faults in a VMA of it, so every
 * way into the object must be a registered VMA: a fault in one that is not
 * registered, or a read(2)/write(2) on a descriptor, would find a hole and
 * put a zero page into the object for everyone.  So an object is lazy only
 *   - with --lazy-pages, on a kernel that registers shmem (MISSING_SHMEM),
 *     with our own daemon (CRIU's answers a fault it has no page for with
 *     a zero page), and with dumped pages to deliver;
 *   - where every VMA of it, in every process, is shared, readable (a later
 *     dump reads a PROT_NONE one only through the object) and not locked
 *     (mapping it would populate it);
 *   - where every dumped page lies in some process's view of it: a page
 *     outside every view would be reached by no fault until a view grows
 *     over it in place (no userfaultfd event says so), and a dump of the
 *     tree meanwhile could not read it through any task;
 *   - for a memfd, where no process holds a descriptor of it (also none in
 *     flight in a socket) and it is not sealed against writes (the daemon
 *     maps it writable).
 * Otherwise it is restored eagerly, with one line saying why.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <linux/userfaultfd.h>
#include <sys/mman.h>

#define LOG_PREFIX ""
#include "common/array.h"
#include "common/log.h"
#include "images/pagemap.h"
#include "images/vma-status.h"
#include "restore/restore.h"
#include "restore/files.h"
#include "restore/shmem.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE	0x0010
#endif

static bool is_memfd_of(const struct rst_images *ri, const FileEntry *fe, uint64_t inode_id)
{
	return fe && fe->type == FD_TYPES__MEMFD && fe->memfd && fe->memfd->inode_id == inode_id;
}

/* Is VMA v of process ri one of object s's? */
static bool maps_object(const struct rst_images *ri, const VmaEntry *v, const struct rst_shmem *s)
{
	if (s->memfd)
		return (v->status & VMA_AREA_MEMFD) && v->shmid <= UINT32_MAX &&
		       is_memfd_of(ri, rst_file_find(ri, (uint32_t)v->shmid), s->memfd->inode_id);
	return (v->status & VMA_ANON_SHARED) && !(v->status & VMA_AREA_SYSVIPC) &&
	       v->shmid == s->shmid;
}

/* Why no VMA or descriptor of process ri may leave s lazy, or NULL. */
static const char *process_refuses(const struct rst_images *ri, const struct rst_shmem *s,
				   uint64_t *at, bool *fd)
{
	for (size_t k = 0; k < ri->mm->n_vmas; k++) {
		const VmaEntry *v = ri->mm->vmas[k];

		if (!maps_object(ri, v, s))
			continue;
		*at = v->start;
		if (v->status & VMA_FILE_PRIVATE)
			return "maps it private";
		if (v->flags & MAP_LOCKED)
			return "maps it locked";
		if (!(v->prot & PROT_READ))
			return "maps it without PROT_READ";
	}
	for (size_t k = 0; s->memfd && k < ri->nr_fds; k++) {
		if (!is_memfd_of(ri, ri->fds[k].fe, s->memfd->inode_id))
			continue;
		*at = (uint64_t)(int64_t)ri->fds[k].fd;
		*fd = true;
		return ri->fds[k].fd < 0 ? "holds it in flight in a socket" : "holds it as an fd";
	}
	return NULL;
}

static int cmp_range(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;

	return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* Does every dumped page of s lie in some process's view of it? */
static bool pages_in_views(struct rst_tree *tree, const struct rst_shmem *s)
{
	uint64_t (*v)[2] = NULL, reach = 0;
	size_t nr = 0, cap = 0, k = 0;
	bool ok = true;

	for (size_t i = 0; i < tree->nr; i++) {
		const struct rst_images *ri = &tree->procs[i].ri;

		if (tree->procs[i].kind != RST_PROC_ALIVE)
			continue;
		for (size_t j = 0; j < ri->mm->n_vmas; j++) {
			const VmaEntry *e = ri->mm->vmas[j];

			if (!maps_object(ri, e, s))
				continue;
			if (ARRAY_GROW(v, cap, nr + 1, 8)) {
				free(v);
				return false;
			}
			v[nr][0] = e->pgoff;
			v[nr][1] = e->pgoff + (e->end - e->start);
			nr++;
		}
	}
	if (nr)	/* no view of it: v is NULL */
		qsort(v, nr, sizeof(*v), cmp_range);
	/* runs are sorted too: one walk, reach = end of the views' union so far */
	for (size_t r = 0; r < s->pi.nr_runs && ok; r++) {
		const struct page_run *run = &s->pi.runs[r];
		uint64_t lo = run->vaddr, hi = lo + run->nr_pages * RST_PAGE_SIZE;

		if (!(run->flags & PE_PRESENT))
			continue;
		while (lo < hi) {
			while (k < nr && v[k][0] <= lo) {
				if (v[k][1] > reach)
					reach = v[k][1];
				k++;
			}
			if (reach <= lo) {
				ok = false;
				break;
			}
			lo = reach;
		}
	}
	free(v);
	return ok;
}

static void say_eager(const struct rst_shmem *s, const char *why, pid_t pid, uint64_t at,
		      bool fd)
{
	char name[96];

	if (s->memfd)
		snprintf(name, sizeof(name), "memfd '%s'", s->memfd->name);
	else
		snprintf(name, sizeof(name), "shared memory %llu", (unsigned long long)s->shmid);
	if (!pid)
		pr_info("%s: restored eagerly, %s", name, why);
	else if (fd)
		pr_info("%s: restored eagerly, task %d %s (%lld)", name, pid, why, (long long)at);
	else
		pr_info("%s: restored eagerly, task %d %s at 0x%llx", name, pid, why,
			(unsigned long long)at);
}

bool rst_shmem_lazy(struct rst_tree *tree, const struct rst_shmem *s, uint64_t features)
{
	bool pages = false;

	if (!tree->o->lazy_pages)
		return false;
	for (size_t r = 0; r < s->pi.nr_runs; r++)
		if (s->pi.runs[r].flags & PE_PRESENT)
			pages = true;
	if (!pages)
		return false;	/* nothing to deliver: made empty either way */
	if (!tree->lazy_daemon_ours) {
		say_eager(s, "the lazy-pages daemon is not criu-lazy's (it would not fill it)",
			  0, 0, false);
		return false;
	}
	if (!(features & UFFD_FEATURE_MISSING_SHMEM)) {
		say_eager(s, "the kernel has no userfaultfd on shmem (UFFD_FEATURE_MISSING_SHMEM)",
			  0, 0, false);
		return false;
	}
	if (s->memfd && (s->memfd->seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE))) {
		say_eager(s, "it is sealed against writes", 0, 0, false);
		return false;
	}
	for (size_t i = 0; i < tree->nr; i++) {
		const struct rst_images *ri = &tree->procs[i].ri;
		const char *why;
		uint64_t at = 0;
		bool fd = false;

		if (tree->procs[i].kind != RST_PROC_ALIVE)
			continue;
		why = process_refuses(ri, s, &at, &fd);
		if (why) {
			say_eager(s, why, tree->procs[i].pid, at, fd);
			return false;
		}
	}
	if (!pages_in_views(tree, s)) {
		say_eager(s, "some of its pages lie outside every view of it", 0, 0, false);
		return false;
	}
	return true;
}
