/*
 * Shared anonymous memory of the tree (MAP_SHARED | MAP_ANONYMOUS): one
 * shmem object per shmid, whichever processes map it, as CRIU does.  A
 * memfd (files/memfd.c) is such an object too, made by memfd_create with
 * its name, owner and seals, and held by descriptors as well as mappings.
 *
 * The dump wrote each object once (pagemap-shmem-<shmid>.img and its
 * pages file).  Here, before any task exists and before the memory is
 * planned, the restore process creates every object of the tree, fills it
 * from its pages, and keeps it mapped: every task starts as a fork of us,
 * so it inherits the mapping at the same address, and premap.c maps each
 * of its VMAs from it through /proc/self/map_files.  Two processes that
 * shared an object share it again.  The blob's unmap of the old address
 * space drops the inherited mapping in each task; we drop ours when the
 * tree is done.
 *
 * In a lazy restore, shared memory is left to the lazy-pages daemon where
 * it can be (shmem-lazy.c): the object is made with its size
 * but no page, every VMA of it is registered with its task's userfaultfd
 * (MISSING mode; blob-setup.c), and the daemon fills the object itself
 * (lazy/lazy-shmem.c, Documentation/lazy-pages.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "images/image.h"
#include "images/pagemap.h"
#include "restore/restore.h"
#include "restore/shmem.h"
#include "restore/tree.h"



int rst_shmem_fill(const struct pagemap_index *pi, uint64_t shmid, void *addr)
{
	char file[32];

	pages_file_name(pi->pages_id, file, sizeof(file));
	for (size_t r = 0; r < pi->nr_runs; r++) {
		const struct page_run *run = &pi->runs[r];
		uint64_t len = run->nr_pages * RST_PAGE_SIZE, done = 0;

		if (!(run->flags & PE_PRESENT))
			continue;
		/*
		 * The run's pages allocated in one call first: faulted in one by
		 * one by the read, each was a trap (to the hypervisor, in a VM
		 * with shadow page tables), half of a 1 GiB object's fill.  A
		 * kernel without it (before 5.14) says EINVAL, and the read
		 * faults them in as before.
		 */
		madvise((char *)addr + run->vaddr, len, MADV_POPULATE_WRITE);
		while (done < len) {
			ssize_t n = pread(pi->pages_fd, (char *)addr + run->vaddr + done,
					  len - done, run->pages_off + done);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				pr_err("%s: cannot read %llu bytes at offset %llu for shared memory "
				       "%llu: %s", file, (unsigned long long)(len - done),
				       (unsigned long long)(run->pages_off + done),
				       (unsigned long long)shmid,
				       n ? strerror(errno) : "unexpected end of file");
				return n ? -errno : -EIO;
			}
			done += n;
		}
	}
	return 0;
}

/* The object of @shmid if a process before procs[upto] has it already
 * (within one process each shmid is there once: images-load.c). */
static const struct rst_shmem *find_object(struct rst_tree *tree, size_t upto, uint64_t shmid)
{
	for (size_t i = 0; i < upto; i++) {
		const struct rst_images *ri = &tree->procs[i].ri;

		if (tree->procs[i].kind != RST_PROC_ALIVE)
			continue;
		for (size_t k = 0; k < ri->nr_shmems; k++)
			if (ri->shmems[k].shmid == shmid && ri->shmems[k].obj)
				return &ri->shmems[k];
	}
	return NULL;
}

/* The largest size any process maps of @shmid. */
static uint64_t object_size(struct rst_tree *tree, uint64_t shmid)
{
	uint64_t size = 0;

	for (size_t i = 0; i < tree->nr; i++) {
		const struct rst_images *ri = &tree->procs[i].ri;

		if (tree->procs[i].kind != RST_PROC_ALIVE)
			continue;
		for (size_t k = 0; k < ri->nr_shmems; k++)
			if (ri->shmems[k].shmid == shmid && ri->shmems[k].size > size)
				size = ri->shmems[k].size;
	}
	return size;
}

/*
 * A memfd: made, filled through a writable mapping, then mapped again
 * read-only through a read-only file (a writable shared mapping would keep
 * F_SEAL_WRITE out), owned and sealed.  Returns the address or MAP_FAILED.
 */
static void *create_memfd(const struct rst_shmem *s)
{
	const MemfdInodeEntry *ie = s->memfd;
	int fd = memfd_create(ie->name, MFD_CLOEXEC | MFD_ALLOW_SEALING), ro = -1;
	const char *what = "memfd_create";
	void *rw = MAP_FAILED, *addr = MAP_FAILED;
	char path[64];

	if (fd < 0)
		goto err;
	what = "ftruncate";
	if (ftruncate(fd, ie->size))
		goto err;
	what = "mmap";
	rw = mmap(NULL, s->obj_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (rw == MAP_FAILED)
		goto err;
	if (!s->lazy && rst_shmem_fill(&s->pi, s->shmid, rw)) {
		munmap(rw, s->obj_size);
		goto out;
	}
	munmap(rw, s->obj_size);
	what = "fchown";
	if ((ie->uid != getuid() || ie->gid != getgid()) && fchown(fd, ie->uid, ie->gid))
		goto err;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	what = "a read-only reopen";
	ro = open(path, O_RDONLY | O_CLOEXEC);
	if (ro < 0)
		goto err;
	what = "mmap";
	addr = mmap(NULL, s->obj_size, PROT_READ, MAP_SHARED, ro, 0);
	if (addr == MAP_FAILED)
		goto err;
	what = "F_ADD_SEALS";
	if (ie->seals && fcntl(fd, F_ADD_SEALS, ie->seals)) {
		munmap(addr, s->obj_size);
		addr = MAP_FAILED;
		goto err;
	}
	goto out;
err:
	pr_perror("memfd '%s' (inode %llu): %s", ie->name, (unsigned long long)ie->inode_id, what);
out:
	if (ro >= 0)
		close(ro);
	if (fd >= 0)
		close(fd);
	return addr;
}

int rst_shmem_create(struct rst_tree *tree)
{
	uint64_t features = tree->o->lazy_pages ? rst_lazy_kernel_features() : 0;

	for (size_t i = 0; i < tree->nr; i++) {
		struct rst_images *ri = &tree->procs[i].ri;

		if (tree->procs[i].kind != RST_PROC_ALIVE)
			continue;
		for (size_t k = 0; k < ri->nr_shmems; k++) {
			struct rst_shmem *s = &ri->shmems[k];
			const struct rst_shmem *first = find_object(tree, i, s->shmid);
			void *addr;
			int ret;

			if (first) {
				s->obj = first->obj;
				s->obj_size = first->obj_size;
				s->lazy = first->lazy;
				continue;
			}
			s->obj_size = object_size(tree, s->shmid);
			if (s->memfd) {
				s->lazy = rst_shmem_lazy(tree, s, features);
				addr = create_memfd(s);
				if (addr == MAP_FAILED)
					return -EIO;
				s->obj = (uint64_t)(uintptr_t)addr;
				continue;
			}
			addr = mmap(NULL, s->obj_size, PROT_READ | PROT_WRITE,
				    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
			if (addr == MAP_FAILED) {
				pr_perror("cannot create shared memory %llu (%llu bytes)",
					  (unsigned long long)s->shmid,
					  (unsigned long long)s->obj_size);
				return -errno;
			}
			s->obj = (uint64_t)(uintptr_t)addr;
			s->lazy = rst_shmem_lazy(tree, s, features);
			ret = s->lazy ? 0 : rst_shmem_fill(&s->pi, s->shmid, addr);
			if (ret)
				return ret;
			pr_debug("shared memory %llu: %llu bytes at 0x%llx%s",
				 (unsigned long long)s->shmid, (unsigned long long)s->obj_size,
				 (unsigned long long)s->obj, s->lazy ? ", lazy" : "");
		}
	}
	return 0;
}

void rst_shmem_release(struct rst_tree *tree)
{
	for (size_t i = 0; i < tree->nr; i++) {
		struct rst_images *ri = &tree->procs[i].ri;

		if (tree->procs[i].kind != RST_PROC_ALIVE)
			continue;
		for (size_t k = 0; k < ri->nr_shmems; k++) {
			struct rst_shmem *s = &ri->shmems[k];

			/* each object once: by the first process that maps it */
			if (s->obj && !find_object(tree, i, s->shmid))
				munmap((void *)(uintptr_t)s->obj, s->obj_size);
		}
	}
	for (size_t i = 0; i < tree->nr; i++)
		for (size_t k = 0; tree->procs[i].kind == RST_PROC_ALIVE &&
				   k < tree->procs[i].ri.nr_shmems; k++)
			tree->procs[i].ri.shmems[k].obj = 0;
}
