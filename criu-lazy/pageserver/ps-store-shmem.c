/*
 * The shared memory objects of an image directory, for GET_SHMEM (our own
 * command, ps-proto.h): every pagemap-shmem-<shmid>.img with its pages
 * file mapped.  A shmem pagemap addresses pages by their offset in the
 * object and flags them PE_PRESENT only (the dump writes shared memory
 * whole, never lazy), so every present run can be asked for; runs that
 * continue each other in the object and in the file are merged, as for a
 * process.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/array.h"
#include "common/log.h"
#include "images/image.h"
#include "images/pagemap.h"
#include "pageserver/ps-store.h"

struct ps_shm {
	uint64_t shmid;
	struct pagemap_index pi;
	void *pages;			/* mapped pages file (NULL if empty) */
	struct ps_run *runs;		/* present, merged, ascending */
	size_t nr_runs;
};

static int load_one(int dirfd, uint64_t shmid, struct ps_shm *o)
{
	int ret;

	o->shmid = shmid;
	o->pi.pages_fd = -1;
	ret = pagemap_index_load(dirfd, IMG_PAGEMAP_SHMEM, shmid, true, &o->pi);
	ret = ret ?: pages_file_map(&o->pi, &o->pages);
	ret = ret ?: ps_runs_index(&o->pi, PE_PRESENT, &o->runs, &o->nr_runs, NULL);
	if (!ret)
		pr_info("shared memory %llu: %zu runs of pages (pages-%u.img)",
			(unsigned long long)shmid, o->nr_runs, o->pi.pages_id);
	return ret;
}

void ps_shmem_free(struct ps_shmem_set *set)
{
	for (size_t i = 0; i < set->nr; i++) {
		struct ps_shm *o = &set->objs[i];

		if (o->pages)
			pages_file_unmap(&o->pi, o->pages);
		pagemap_index_free(&o->pi);
		free(o->runs);
	}
	free(set->objs);
	set->objs = NULL;
	set->nr = set->cap = 0;
}

int ps_shmem_load(int dirfd, struct ps_shmem_set *set)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	int ret = 0;

	set->objs = NULL;
	set->nr = set->cap = 0;
	if (!dir) {
		ret = -errno;
		pr_perror("the images directory");
		if (fd >= 0)
			close(fd);
		return ret;
	}
	while (!ret && (de = readdir(dir))) {
		unsigned long long shmid;
		char tail;

		if (sscanf(de->d_name, "pagemap-shmem-%llu.im%c", &shmid, &tail) != 2 ||
		    tail != 'g' || strlen(strrchr(de->d_name, '.')) != 4)
			continue;
		if (ARRAY_GROW(set->objs, set->cap, set->nr + 1, 8)) {
			ret = -ENOMEM;
			break;
		}
		memset(&set->objs[set->nr], 0, sizeof(set->objs[0]));
		ret = load_one(dirfd, shmid, &set->objs[set->nr]);
		set->nr++;
	}
	closedir(dir);
	if (ret)
		ps_shmem_free(set);
	return ret;
}

enum ps_lookup ps_shmem_find(const struct ps_shmem_set *set, uint64_t shmid, uint64_t off,
			     uint64_t *nr_pages, const void **data)
{
	const struct ps_shm *o = NULL;
	const struct ps_run *r;
	uint64_t left;

	for (size_t i = 0; i < set->nr && !o; i++)
		if (set->objs[i].shmid == shmid)
			o = &set->objs[i];
	if (!o)
		return PS_NO_TASK;
	r = ps_runs_find(o->runs, o->nr_runs, off);
	if (!r)
		return PS_NOT_PRESENT;
	left = (r->vaddr + r->nr_pages * PAGEMAP_PAGE_SIZE - off) / PAGEMAP_PAGE_SIZE;
	if (*nr_pages > left)
		*nr_pages = left;
	*data = (const char *)o->pages + r->data_off + (off - r->vaddr);
	return PS_FOUND;
}
