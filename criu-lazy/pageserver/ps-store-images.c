/*
 * The images behind a lazy page server (see ps-store.h).
 *
 * Per process, the PE_LAZY|PE_PRESENT runs of its pagemap are merged where
 * they are contiguous both in memory and in the pages file (CRIU splits
 * runs at page-pipe buffer limits, and a GET may span such a split), and a
 * lookup is a binary search that clamps the request at the end of the run.
 * Replies point into the mapping: nothing is copied before the send --
 * except GETs of one or two pages, read with pread: scattered pages (a
 * working set's prefetch) would each cost a fault of the mapping that maps
 * the 16 pages of the file around it, nearly all for nothing, and setting
 * page table entries is what costs most in a VM.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "images/image.h"
#include "images/pagemap.h"
#include "pageserver/ps-store.h"
#include "pstree.pb-c.h"

#define LAZY_PRESENT (PE_LAZY | PE_PRESENT)
#define PREAD_MAX_PAGES 2

struct ps_task {
	pid_t pid;
	struct pagemap_index pi;
	void *pages;			/* mapped pages file (NULL if empty) */
	struct ps_run *runs;		/* lazy and present, merged, ascending */
	size_t nr_runs;
	uint64_t nr_pages;		/* pages it can serve */
};

struct images_store {
	struct ps_store s;		/* first */
	struct ps_task *tasks;
	struct ps_shmem_set shm;	/* shared memory objects */
};

static const struct ps_store_ops images_ops;

static const struct images_store *to_images(const struct ps_store *s)
{
	return (const struct images_store *)s;
}

static int read_pids(int dirfd, pid_t **pids, size_t *nr)
{
	struct cr_img *img;
	PstreeEntry *e;
	int ret;

	ret = img_open(dirfd, IMG_PSTREE, 0, O_RDONLY, &img);
	if (ret) {
		if (ret == -ENOENT)
			pr_err("pstree.img: No such file or directory");
		return ret;
	}
	*pids = NULL;
	*nr = 0;
	while ((ret = img_read_entry(img, &pstree_entry__descriptor, (ProtobufCMessage **)&e)) == 1) {
		pid_t *grown = realloc(*pids, (*nr + 1) * sizeof(pid_t));

		if (!grown) {
			pstree_entry__free_unpacked(e, NULL);
			ret = -ENOMEM;
			break;
		}
		*pids = grown;
		(*pids)[(*nr)++] = e->pid;
		pstree_entry__free_unpacked(e, NULL);
	}
	img_close(img);
	if (!ret && !*nr) {
		pr_err("pstree.img: no processes");
		ret = -EINVAL;
	}
	if (ret < 0) {
		free(*pids);
		return ret;
	}
	return 0;
}

static int load_task(int dirfd, pid_t pid, struct ps_task *t)
{
	int ret;

	t->pid = pid;
	ret = pagemap_index_load(dirfd, IMG_PAGEMAP, pid, true, &t->pi);
	if (ret)
		return ret;
	ret = pages_file_map(&t->pi, &t->pages);
	if (ret)
		return ret;
	ret = ps_runs_index(&t->pi, LAZY_PRESENT, &t->runs, &t->nr_runs, &t->nr_pages);
	if (ret)
		return ret;
	pr_info("task %d: %llu lazy pages in %zu runs (pages-%u.img)", pid,
		(unsigned long long)t->nr_pages, t->nr_runs, t->pi.pages_id);
	return 0;
}

static bool has_pagemap(int dirfd, pid_t pid)
{
	char name[IMG_NAME_MAX];

	img_format_name(IMG_PAGEMAP, pid, name, sizeof(name));
	return faccessat(dirfd, name, F_OK, 0) == 0;
}

static void images_free(struct ps_store *store)
{
	struct images_store *s = (struct images_store *)store;

	for (size_t i = 0; i < s->s.nr_tasks; i++) {
		struct ps_task *t = &s->tasks[i];

		if (t->pages)
			pages_file_unmap(&t->pi, t->pages);
		pagemap_index_free(&t->pi);
		free(t->runs);
	}
	free(s->tasks);
	ps_shmem_free(&s->shm);
	free(s);
}

int ps_store_images_load(int dirfd, struct ps_store **out)
{
	struct images_store *s;
	pid_t *pids;
	size_t nr;
	int ret;

	ret = read_pids(dirfd, &pids, &nr);
	if (ret)
		return ret;
	s = calloc(1, sizeof(*s));
	if (s)
		s->tasks = calloc(nr, sizeof(*s->tasks));
	if (!s || !s->tasks) {
		free(s);
		free(pids);
		return -ENOMEM;
	}
	s->s.ops = &images_ops;
	for (size_t i = 0; i < nr && !ret; i++) {
		/* a zombie has no memory and no pagemap */
		if (!has_pagemap(dirfd, pids[i])) {
			pr_info("task %d has no pagemap: nothing to serve for it", pids[i]);
			continue;
		}
		s->tasks[s->s.nr_tasks].pi.pages_fd = -1;
		ret = load_task(dirfd, pids[i], &s->tasks[s->s.nr_tasks]);
		s->s.nr_tasks++;
	}
	free(pids);
	if (!ret)
		ret = ps_shmem_load(dirfd, &s->shm);
	if (ret) {
		images_free(&s->s);
		return ret;
	}
	*out = &s->s;
	return 0;
}

static const struct ps_task *find_task(const struct images_store *s, pid_t pid)
{
	for (size_t i = 0; i < s->s.nr_tasks; i++)
		if (s->tasks[i].pid == pid)
			return &s->tasks[i];
	return NULL;
}

static enum ps_lookup images_find(const struct ps_store *s, pid_t pid, uint64_t vaddr,
				  uint64_t *nr_pages, const void **data)
{
	const struct ps_task *t = find_task(to_images(s), pid);
	const struct ps_run *r;
	uint64_t left;

	if (!t)
		return PS_NO_TASK;
	r = ps_runs_find(t->runs, t->nr_runs, vaddr);
	if (!r) {
		const struct page_run *pr = pagemap_index_find(&t->pi, vaddr);

		return pr && (pr->flags & PE_LAZY) ? PS_NOT_PRESENT : PS_NOT_LAZY;
	}
	left = (r->vaddr + r->nr_pages * PAGEMAP_PAGE_SIZE - vaddr) / PAGEMAP_PAGE_SIZE;
	if (*nr_pages > left)
		*nr_pages = left;
	*data = *nr_pages <= PREAD_MAX_PAGES ? NULL :
		(const char *)t->pages + r->data_off + (vaddr - r->vaddr);
	return PS_FOUND;
}

/* The small GETs images_find() left without data (each inside one run). */
static int images_read(const struct ps_store *s, pid_t pid, const struct iovec *local,
		       const struct iovec *remote, int n, char *why, size_t why_len)
{
	const struct ps_task *t = find_task(to_images(s), pid);

	for (int i = 0; i < n; i++) {
		uint64_t vaddr = (uint64_t)(uintptr_t)remote[i].iov_base;
		const struct ps_run *r = t ? ps_runs_find(t->runs, t->nr_runs, vaddr) : NULL;
		off_t off;
		ssize_t got;

		if (!r) {
			snprintf(why, why_len, "task %d: no lazy run at 0x%llx to read", pid,
				 (unsigned long long)vaddr);
			return -EINVAL;
		}
		off = r->data_off + (vaddr - r->vaddr);
		got = pread(t->pi.pages_fd, local[i].iov_base, local[i].iov_len, off);
		if (got != (ssize_t)local[i].iov_len) {
			snprintf(why, why_len, "task %d: read %zu bytes at offset %lld of "
				 "pages-%u.img: %s", pid, local[i].iov_len, (long long)off,
				 t->pi.pages_id, got < 0 ? strerror(errno) : "short read");
			return got < 0 ? -errno : -EIO;
		}
	}
	return 0;
}

static enum ps_lookup images_find_shmem(const struct ps_store *s, uint64_t shmid, uint64_t off,
					uint64_t *nr_pages, const void **data)
{
	return ps_shmem_find(&to_images(s)->shm, shmid, off, nr_pages, data);
}

static const struct ps_store_ops images_ops = {
	.find = images_find,
	.read = images_read,
	.free = images_free,
	.find_shmem = images_find_shmem,
};
