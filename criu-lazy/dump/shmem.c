/*
 * Shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS): its pages live in a
 * shmem object, not in any one task, and go to pagemap-shmem-<shmid>.img
 * with their offset in the object as address, and their own pages file.
 *
 * We map the object into our own address space through
 * /proc/PID/map_files and ask the object which ranges hold data
 * (SEEK_DATA/SEEK_HOLE: every page ever written, resident or swapped, also
 * by other processes sharing it), then write those ranges straight from our
 * mapping.  Where the object can't answer, mincore() on our mapping plus
 * the task's pagemap say which pages to take.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mono-time.h"
#include "dump/dump.h"
#include "images/vma-status.h"

#define PAGE_SZ		4096ULL
#define PM_PRESENT	(1ULL << 63)
#define PM_SWAP		(1ULL << 62)

/* Mark in @want the pages of the object the task's own pagemap shows. */
static int mark_from_pagemap(struct dump_task *t, uint64_t shmid, uint8_t *want, uint64_t nr)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", t->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dump_task_error(t, -errno, "can't open %s: %m", path);
	for (size_t i = 0; i < t->mm.nr_vmas; i++) {
		const VmaEntry *v = &t->mm.vmas[i];

		if (!(v->status & VMA_ANON_SHARED) || (v->status & VMA_AREA_SYSVIPC) ||
		    v->shmid != shmid)
			continue;
		for (uint64_t a = v->start; a < v->end; a += PAGE_SZ) {
			uint64_t pme, idx = (v->pgoff + (a - v->start)) / PAGE_SZ;

			if (pread(fd, &pme, sizeof(pme), (a / PAGE_SZ) * sizeof(pme)) != sizeof(pme)) {
				int err = -errno;

				close(fd);
				return dump_task_error(t, err ? err : -EIO, "can't read %s", path);
			}
			if ((pme & (PM_PRESENT | PM_SWAP)) && idx < nr)
				want[idx] = 1;
		}
	}
	close(fd);
	return 0;
}

static int write_range(struct dump_ctx *ctx, struct pagemap_writer *w, const uint8_t *map,
		       uint64_t off, uint64_t len)
{
	uint64_t t0 = mono_us();
	int ret = pagemap_writer_add(w, off, len / PAGE_SZ, PE_PRESENT, map + off);

	ctx->st.memwrite_us += mono_us() - t0;
	ctx->st.shpages_written += len / PAGE_SZ;
	return ret;
}

/*
 * Data ranges by SEEK_DATA/SEEK_HOLE.  Returns 1 if the object can't tell
 * (nothing written yet), 0 when done, a negative errno (logged) on error.
 */
static int write_by_seek(struct dump_ctx *ctx, struct pagemap_writer *w, int fd,
			 const uint8_t *map, uint64_t size)
{
	off_t data, hole;
	int ret;

	data = lseek(fd, 0, SEEK_DATA);
	if (data < 0)
		return errno == ENXIO ? 0 : 1;
	while ((uint64_t)data < size) {
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0) {
			pr_perror("SEEK_HOLE in shared memory at %lld", (long long)data);
			return -errno;
		}
		if ((uint64_t)hole > size)
			hole = size;
		data &= ~(off_t)(PAGE_SZ - 1);
		hole = (hole + PAGE_SZ - 1) & ~(off_t)(PAGE_SZ - 1);
		ret = write_range(ctx, w, map, data, hole - data);
		if (ret)
			return ret;
		data = lseek(fd, hole, SEEK_DATA);
		if (data < 0) {
			if (errno == ENXIO)
				return 0;
			pr_perror("SEEK_DATA in shared memory at %lld", (long long)hole);
			return -errno;
		}
	}
	return 0;
}

static int write_by_mincore(struct dump_ctx *ctx, struct dump_task *t, uint64_t shmid,
			    struct pagemap_writer *w, uint8_t *map, uint64_t size)
{
	uint64_t nr = size / PAGE_SZ, run = 0;
	uint8_t *want;
	int ret;

	want = calloc(nr ? nr : 1, 1);
	if (!want)
		return -ENOMEM;
	if (mincore(map, size, want)) {
		ret = -errno;
		pr_perror("mincore on shared memory %llu of task %d", (unsigned long long)shmid,
			  t->pid);
		goto out;
	}
	for (uint64_t i = 0; i < nr; i++)
		want[i] &= 1;
	ret = mark_from_pagemap(t, shmid, want, nr);
	for (uint64_t i = 0; !ret && i <= nr; i++) {
		if (i < nr && want[i]) {
			run++;
			continue;
		}
		if (run)
			ret = write_range(ctx, w, map, (i - run) * PAGE_SZ, run * PAGE_SZ);
		run = 0;
	}
out:
	free(want);
	return ret;
}

/*
 * A task restored lazily whose shared memory is still arriving: the object
 * lacks the pages the lazy-pages daemon has not filled yet, and our own
 * mapping of it (or a descriptor) is not registered, so it would read them
 * as holes.  Reading every page of the task's registered VMA through the
 * task first makes the daemon fill them (dump/mm.c calls this per VMA).
 */
int dump_shmem_fault_in(struct dump_task *t, const VmaEntry *v)
{
	static char buf[1 << 20];

	for (uint64_t a = v->start; a < v->end; a += sizeof(buf)) {
		uint64_t len = v->end - a < sizeof(buf) ? v->end - a : sizeof(buf);
		struct iovec local = { buf, len }, remote = { (void *)(uintptr_t)a, len };

		if (process_vm_readv(t->pid, &local, 1, &remote, 1, 0) != (ssize_t)len)
			return dump_task_error(t, -EIO, "can't read shared memory at 0x%llx through "
					       "the task while its pages are still lazy: %m",
					       (unsigned long long)a);
	}
	return 0;
}

static int dump_one_shmem(struct dump_ctx *ctx, struct dump_task *t, const VmaEntry *v)
{
	struct pagemap_writer *w;
	char path[96];
	struct stat st;
	uint8_t *map = NULL;
	uint64_t size;
	int fd, ret, ret2;

	snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", t->pid,
		 (unsigned long long)v->start, (unsigned long long)v->end);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dump_task_error(t, -errno, "can't open %s: %m", path);
	if (fstat(fd, &st)) {
		ret = dump_task_error(t, -errno, "can't stat %s: %m", path);
		goto out_close;
	}
	size = ((uint64_t)st.st_size + PAGE_SZ - 1) & ~(PAGE_SZ - 1);
	ctx->st.shpages_scanned += size / PAGE_SZ;
	if (size) {
		map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
		if (map == MAP_FAILED) {
			ret = -errno;
			pr_perror("can't map shared memory %llu of task %d",
				  (unsigned long long)v->shmid, t->pid);
			goto out_close;
		}
	}

	ret = dump_pagemap_open(ctx, IMG_PAGEMAP_SHMEM, v->shmid, &w);
	if (ret)
		goto out_unmap;
	if (size) {
		ret = write_by_seek(ctx, w, fd, map, size);
		if (ret == 1)
			ret = write_by_mincore(ctx, t, v->shmid, w, map, size);
	}
	ret2 = pagemap_writer_close(w);
	if (!ret)
		ret = ret2;
	pr_debug("task %d: shared memory %llu, %llu bytes", t->pid, (unsigned long long)v->shmid,
		 (unsigned long long)size);
out_unmap:
	if (map)
		munmap(map, size);
out_close:
	close(fd);
	return ret;
}

int dump_shmem_write_fd(struct dump_ctx *ctx, int fd, uint64_t shmid, uint64_t size)
{
	struct pagemap_writer *w;
	uint8_t *map = NULL;
	int ret, ret2;

	size = (size + PAGE_SZ - 1) & ~(PAGE_SZ - 1);
	ctx->st.shpages_scanned += size / PAGE_SZ;
	if (size) {
		map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
		if (map == MAP_FAILED) {
			pr_perror("can't map shared memory %llu", (unsigned long long)shmid);
			return -errno;
		}
	}
	ret = dump_pagemap_open(ctx, IMG_PAGEMAP_SHMEM, shmid, &w);
	if (!ret) {
		if (size)
			ret = write_by_seek(ctx, w, fd, map, size);
		if (ret == 1)	/* the object can't tell: every page */
			ret = write_range(ctx, w, map, 0, size);
		ret2 = pagemap_writer_close(w);
		if (!ret)
			ret = ret2;
	}
	if (map)
		munmap(map, size);
	return ret;
}

int dump_shmem(struct dump_ctx *ctx, struct dump_task *t)
{
	for (size_t i = 0; i < t->mm.nr_vmas; i++) {
		const VmaEntry *v = &t->mm.vmas[i];
		bool seen = false;
		uint64_t *done;
		int ret;

		/* SysV segments are the IPC namespace's (ipc-ns.c) */
		if (!(v->status & VMA_ANON_SHARED) || (v->status & VMA_AREA_SYSVIPC))
			continue;
		/* both kinds name their pagemap-shmem image by their id (as CRIU does) */
		for (size_t j = 0; j < ctx->nr_sysv_shmids; j++)
			if (ctx->sysv_shmids[j] == v->shmid)
				return dump_task_error(t, -EOPNOTSUPP, "shared memory %llu mapped at "
						       "0x%llx by task %d has the id of a SysV segment: "
						       "both would be pagemap-shmem-%llu.img",
						       (unsigned long long)v->shmid,
						       (unsigned long long)v->start, t->pid,
						       (unsigned long long)v->shmid);
		/* one object, written once, whichever task of the tree maps it */
		for (size_t j = 0; j < ctx->nr_shmids_done; j++)
			if (ctx->shmids_done[j] == v->shmid)
				seen = true;
		if (seen)
			continue;
		ret = dump_one_shmem(ctx, t, v);
		if (ret)
			return ret;
		done = realloc(ctx->shmids_done, (ctx->nr_shmids_done + 1) * sizeof(*done));
		if (!done)
			return -ENOMEM;
		ctx->shmids_done = done;
		done[ctx->nr_shmids_done++] = v->shmid;
	}
	return 0;
}
