/*
 * Where a lazy page server's pages come from: a small interface with two
 * implementations.
 *
 *   ps-store-images.c  the lazy pages of an image directory, straight from
 *                      the mmap'ed pages files (`page-server --lazy-pages`);
 *   ps-store-live.c    the lazy pages of frozen tasks, read from their
 *                      memory with process_vm_readv (`dump --lazy-pages`).
 *
 * A GET {pid, vaddr, nr_pages} is looked up with ps_store_find(), which
 * clamps the count (1 <= result <= asked) to the end of the lazy run that
 * holds vaddr.  A store whose pages are mapped gives a pointer to them; a
 * store that must read them returns data = NULL, and the session reads the
 * data of many replies at once with ps_store_read() before it sends them.
 * pid is always the pid of the images (GET's dst_id).
 */
#ifndef CRIU_LAZY_PAGESERVER_PS_STORE_H
#define CRIU_LAZY_PAGESERVER_PS_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

enum ps_lookup {
	PS_FOUND = 0,
	PS_NO_TASK,		/* no process with that pid */
	PS_NOT_LAZY,		/* no lazy page at vaddr */
	PS_NOT_PRESENT,		/* lazy, but its data is not in the pages file */
};

struct ps_store;

struct ps_store_ops {
	enum ps_lookup (*find)(const struct ps_store *s, pid_t pid, uint64_t vaddr,
			       uint64_t *nr_pages, const void **data);
	/*
	 * Read the pages of task pid at remote[i] into local[i] (i < n,
	 * remote[i].iov_len == local[i].iov_len, each found by find()).
	 * 0 or a negative errno; *why gets a line saying what failed.
	 */
	int (*read)(const struct ps_store *s, pid_t pid, const struct iovec *local,
		    const struct iovec *remote, int n, char *why, size_t why_len);
	void (*free)(struct ps_store *s);
	/*
	 * The dumped pages of shared memory object shmid at offset off, the
	 * count clamped to the end of their run; data always points to them.
	 * PS_NO_TASK: no such object; PS_NOT_PRESENT: no dumped page there.
	 * NULL: the store serves no shared memory (FEATURES says so).
	 */
	enum ps_lookup (*find_shmem)(const struct ps_store *s, uint64_t shmid, uint64_t off,
				     uint64_t *nr_pages, const void **data);
};

struct ps_store {
	const struct ps_store_ops *ops;
	size_t nr_tasks;		/* processes it has pages of */
};

static inline enum ps_lookup ps_store_find(const struct ps_store *s, pid_t pid, uint64_t vaddr,
					   uint64_t *nr_pages, const void **data)
{
	return s->ops->find(s, pid, vaddr, nr_pages, data);
}

static inline int ps_store_read(const struct ps_store *s, pid_t pid, const struct iovec *local,
				const struct iovec *remote, int n, char *why, size_t why_len)
{
	return s->ops->read(s, pid, local, remote, n, why, why_len);
}

static inline void ps_store_free(struct ps_store *s)
{
	if (s)
		s->ops->free(s);
}

/* ps-store-images.c: pstree.img and, per process, its lazy and present
 * pages (pagemap index + mapped pages file); the shared memory objects'
 * pagemap-shmem images (ps-store-shmem.c). */
int ps_store_images_load(int dirfd, struct ps_store **out);

/* ps-store-live.c: frozen tasks, each with its lazy runs. */
/*
 * A run of lazy pages contiguous in memory (for an image store, also in its
 * pages file, from data_off on).  Both stores keep them sorted by vaddr.
 */
struct ps_run {
	uint64_t vaddr, nr_pages;
	uint64_t data_off;
};

/* The run of runs[0..nr) holding vaddr, by binary search, or NULL. */
const struct ps_run *ps_runs_find(const struct ps_run *runs, size_t nr, uint64_t vaddr);

/*
 * The runs of @pi whose flags hold every bit of @flags, those that
 * continue each other in memory and in the pages file merged: *runs
 * (calloc'ed, the caller frees it), *nr, and their pages added to
 * *nr_pages if given.  0 or -ENOMEM.
 */
struct pagemap_index;
int ps_runs_index(const struct pagemap_index *pi, uint32_t flags, struct ps_run **runs,
		  size_t *nr, uint64_t *nr_pages);


int ps_store_live_new(struct ps_store **out);

/* ps-store-shmem.c: the pagemap-shmem images of a directory (for a store). */
struct ps_shm;
struct ps_shmem_set {
	struct ps_shm *objs;
	size_t nr, cap;
};

int ps_shmem_load(int dirfd, struct ps_shmem_set *set);
enum ps_lookup ps_shmem_find(const struct ps_shmem_set *set, uint64_t shmid, uint64_t off,
			     uint64_t *nr_pages, const void **data);
void ps_shmem_free(struct ps_shmem_set *set);

/*
 * Serve task @id of the images (its pid there) from the memory of the
 * process @real (its pid here), which must stay frozen while the store is
 * used.  @runs: ascending, non-overlapping; the store takes them over.
 */
int ps_store_live_add(struct ps_store *s, pid_t id, pid_t real, struct ps_run *runs,
		      size_t nr_runs);

#endif
