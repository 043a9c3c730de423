/*
 * Shared anonymous memory of the tree (MAP_SHARED | MAP_ANONYMOUS): one
 * shmem object per shmid, whichever processes map it, as CRIU does.
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
 */
#include <errno.h>
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

static int fill_object(const struct rst_shmem *s, void *addr)
{
	char file[32];

	pages_file_name(s->pi.pages_id, file, sizeof(file));
	for (size_t r = 0; r < s->pi.nr_runs; r++) {
		const struct page_run *run = &s->pi.runs[r];
		uint64_t len = run->nr_pages * RST_PAGE_SIZE, done = 0;

		if (!(run->flags & PE_PRESENT))
			continue;
		while (done < len) {
			ssize_t n = pread(s->pi.pages_fd, (char *)addr + run->vaddr + done,
					  len - done, run->pages_off + done);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				pr_err("%s: cannot read %llu bytes at offset %llu for shared memory "
				       "%llu: %s", file, (unsigned long long)(len - done),
				       (unsigned long long)(run->pages_off + done),
				       (unsigned long long)s->shmid,
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

int rst_shmem_create(struct rst_tree *tree)
{
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
				continue;
			}
			s->obj_size = object_size(tree, s->shmid);
			addr = mmap(NULL, s->obj_size, PROT_READ | PROT_WRITE,
				    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
			if (addr == MAP_FAILED) {
				pr_perror("cannot create shared memory %llu (%llu bytes)",
					  (unsigned long long)s->shmid,
					  (unsigned long long)s->obj_size);
				return -errno;
			}
			s->obj = (uint64_t)(uintptr_t)addr;
			ret = fill_object(s, addr);
			if (ret)
				return ret;
			pr_debug("shared memory %llu: %llu bytes at 0x%llx", (unsigned long long)s->shmid,
				 (unsigned long long)s->obj_size, (unsigned long long)s->obj);
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
