/*
 * Lazy shared memory (MAP_SHARED|MAP_ANONYMOUS, /dev/zero, memfds): one
 * model per shmem object, not per task.
 *
 * The restore made each lazy object with its size and no page, and every
 * task registered all its VMAs of it with its userfaultfd in MISSING mode
 * (restore/shmem.c).  A shmem page is either in the object's page cache,
 * then every task that maps it just maps it (no userfault), or not, then a
 * task touching it raises a MISSING fault.  So the object is filled once,
 * here, whichever task faulted:
 *
 *   - we map the object ourselves (/proc/PID/map_files of the first task
 *     that maps it) and register that mapping with a userfaultfd of our own,
 *     MISSING mode; UFFDIO_COPY into it puts a whole page into the page
 *     cache atomically (no task ever sees half a page), and a page already
 *     there fails with EEXIST instead of being overwritten;
 *   - a task's fault at a page still to come: its fault-around window is
 *     copied into our mapping, then the task is woken (UFFDIO_WAKE) and its
 *     access, retried, finds the page in the cache;
 *   - a fault at a page that was never dumped gets a zero page, the same
 *     way; at a page already delivered (for another task, or by the
 *     background, while this fault was queued) just the wake;
 *   - background delivery fills the rest into our mapping, in chunks.
 *
 * Minor faults (UFFDIO_REGISTER_MODE_MINOR, UFFDIO_CONTINUE) are for
 * memory whose page cache is already there and only the page tables are
 * missing (the page cache filled by another way): with the cache empty, as
 * here, only MISSING faults happen, and MINOR registration would make every
 * task fault once more on every page the others or the background had
 * already filled.
 *
 * The counts of an object's pages go to the first process that maps it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LOG_PREFIX "shmem: "
#include "common/evloop.h"
#include "common/log.h"
#include "images/image.h"
#include "images/pagemap.h"
#include "images/vma-status.h"
#include "lazy/lazy-daemon.h"
#include "lazy/lazy-shmem.h"
#include "lazy/uffd.h"
#include "fdinfo.pb-c.h"
#include "memfd.pb-c.h"
#include "mm.pb-c.h"

#define PS		((uint64_t)LAZY_PAGE_SIZE)
#define BG_PAGES	256	/* a background chunk: 1 MiB */

struct lazy_shm_obj {
	uint64_t shmid;
	uint64_t nr_pages;		/* the object's size */
	uint8_t *map;			/* our mapping, registered with uffd */
	int fd, uffd;
	uint64_t *pending;		/* dumped pages not in the object yet */
	uint64_t nr_pending;
	struct pagemap_index pi;	/* pagemap-shmem-<shmid>.img */
	uint8_t *pages;			/* its pages file, mapped */
	long stats_idx;			/* counted with the first process mapping it */
	uint64_t cursor;		/* background: where to look next */
	struct lazy_shm_obj *next;
};

static bool is_pending(const struct lazy_shm_obj *o, uint64_t p)
{
	return p < o->nr_pages && (o->pending[p / 64] >> (p % 64)) & 1;
}

static void count(struct lazy_daemon *d, const struct lazy_shm_obj *o, uint64_t n, bool bg)
{
	struct lazy_proc_stats *ps = lazy_stats_proc(&d->stats, o->stats_idx);

	if (bg) {
		d->stats.pages_background += n;
		ps->pages_background += n;
	} else {
		d->stats.pages_fault += n;
		ps->pages_fault += n;
	}
	d->stats.bytes += n * PS;
	ps->last_ns = evloop_now_ns();
}

/*
 * Fill the pending pages [p, p + n) of the object (all pending, in one run
 * of the pagemap) from the pages file into the page cache.
 */
static int fill_span(struct lazy_daemon *d, struct lazy_shm_obj *o, uint64_t p, uint64_t n,
		     const struct page_run *run, bool bg)
{
	const uint8_t *src = o->pages + run->pages_off + (p * PS - run->vaddr);
	uint64_t done;
	int ret = uffd_fill(o->uffd, UFFD_FILL_COPY, (uint64_t)(uintptr_t)(o->map + p * PS), src,
			    n * PS, &done);

	if (ret != UFFD_DONE) {
		pr_err("shared memory %" PRIu64 ": cannot fill %" PRIu64 " pages at offset 0x%" PRIx64
		       " (result %d)", o->shmid, n, p * PS, ret);
		return ret < 0 ? ret : -EIO;
	}
	for (uint64_t q = p; q < p + n; q++)
		o->pending[q / 64] &= ~(1ULL << (q % 64));
	o->nr_pending -= n;
	count(d, o, n, bg);
	return 0;
}

/* Fill every pending page of [lo, hi), in spans that stay inside one run. */
static int fill_range(struct lazy_daemon *d, struct lazy_shm_obj *o, uint64_t lo, uint64_t hi,
		      bool bg)
{
	if (hi > o->nr_pages)
		hi = o->nr_pages;
	for (uint64_t p = lo; p < hi; p++) {
		const struct page_run *run;
		uint64_t n = 1, run_end;
		int ret;

		if (!is_pending(o, p))
			continue;
		run = pagemap_index_find(&o->pi, p * PS);
		if (!run) {	/* pending pages come from present runs only */
			pr_err("shared memory %" PRIu64 ": no pages for offset 0x%" PRIx64,
			       o->shmid, p * PS);
			return -EIO;
		}
		run_end = run->vaddr / PS + run->nr_pages;
		while (p + n < hi && p + n < run_end && is_pending(o, p + n))
			n++;
		ret = fill_span(d, o, p, n, run, bg);
		if (ret)
			return ret;
		p += n - 1;
	}
	return 0;
}

int lazy_shmem_fault(struct lazy_daemon *d, struct lazy_task *t, uint64_t addr)
{
	const struct lazy_shm_vma *v = lazy_shm_find(&t->shm, addr);
	struct lazy_shm_obj *o;
	uint64_t p, w, done;
	int ret;

	if (!v)
		return 1;
	o = v->obj;
	addr &= ~(PS - 1);
	p = (v->pgoff + (addr - v->start)) / PS;
	w = p & ~(uint64_t)(LAZY_FAULT_WINDOW_PAGES - 1);
	ret = fill_range(d, o, w, w + LAZY_FAULT_WINDOW_PAGES, false);
	if (ret)
		return ret;
	/* never dumped (or filled since: EEXIST is success here) */
	if (p < o->nr_pages) {
		ret = uffd_fill(o->uffd, UFFD_FILL_ZERO, (uint64_t)(uintptr_t)(o->map + p * PS),
				NULL, PS, &done);
		if (ret != UFFD_DONE) {
			pr_err("shared memory %" PRIu64 ": no zero page at offset 0x%" PRIx64,
			       o->shmid, p * PS);
			return ret < 0 ? ret : -EIO;
		}
	}
	/* the page is in the object: the task's retried access maps it */
	ret = uffd_wake(t->uffd, addr, PS);
	if (ret == UFFD_GONE_TASK) {
		lazy_task_close(d, t, "exited");
		return 0;
	}
	return ret < 0 ? -EIO : 0;
}

int lazy_shmem_remove(struct lazy_daemon *d, struct lazy_task *t, uint64_t start, uint64_t end)
{
	for (size_t i = 0; i < t->shm.nr; i++) {
		const struct lazy_shm_vma *v = &t->shm.vmas[i];
		uint64_t lo = v->start > start ? v->start : start;
		uint64_t hi = v->end < end ? v->end : end;
		int ret;

		if (lo >= hi)
			continue;
		ret = fill_range(d, v->obj, (v->pgoff + lo - v->start) / PS,
				 (v->pgoff + hi - v->start + PS - 1) / PS, false);
		if (ret)
			return ret;
	}
	return 0;
}

bool lazy_shmem_task_done(const struct lazy_task *t)
{
	for (size_t i = 0; i < t->shm.nr; i++)
		if (t->shm.vmas[i].obj->nr_pending)
			return false;
	return true;
}

/* Does a live task still map @o? */
static bool obj_wanted(const struct lazy_daemon *d, const struct lazy_shm_obj *o)
{
	if (!o->nr_pending)
		return false;
	for (const struct lazy_task *t = d->tasks; t; t = t->next)
		for (size_t i = 0; !t->gone && i < t->shm.nr; i++)
			if (t->shm.vmas[i].obj == o)
				return true;
	return false;
}

bool lazy_shmem_background_wanted(struct lazy_daemon *d)
{
	for (const struct lazy_shm_obj *o = d->shm_objs; o; o = o->next)
		if (obj_wanted(d, o))
			return true;
	return false;
}

int lazy_shmem_background_step(struct lazy_daemon *d)
{
	for (struct lazy_shm_obj *o = d->shm_objs; o; o = o->next) {
		uint64_t p;

		if (!obj_wanted(d, o))
			continue;
		for (p = o->cursor; p < o->nr_pages && !is_pending(o, p); p++)
			;
		if (p == o->nr_pages) {		/* wrapped: from the start */
			for (p = 0; p < o->nr_pages && !is_pending(o, p); p++)
				;
		}
		o->cursor = p + BG_PAGES;
		return fill_range(d, o, p, p + BG_PAGES, true) ?: 1;
	}
	return 0;
}

void lazy_shmem_poison(struct lazy_daemon *d)
{
	for (struct lazy_task *t = d->tasks; t; t = t->next) {
		uint64_t poisoned = 0;

		for (size_t i = 0; !t->gone && i < t->shm.nr; i++) {
			const struct lazy_shm_vma *v = &t->shm.vmas[i];

			for (uint64_t a = v->start; a < v->end; a += PS) {
				uint64_t done;

				if (!is_pending(v->obj, (v->pgoff + a - v->start) / PS))
					continue;
				if (uffd_fill(t->uffd, UFFD_FILL_POISON, a, NULL, PS, &done) ==
				    UFFD_DONE)
					poisoned++;
			}
		}
		if (poisoned)
			pr_warn("task %d: %" PRIu64 " pages of shared memory that can no longer "
				"arrive will raise SIGBUS", t->pid, poisoned);
	}
}

void lazy_shmem_finish(struct lazy_daemon *d)
{
	for (struct lazy_shm_obj *o = d->shm_objs; o; o = o->next) {
		if (!o->nr_pending)
			continue;
		pr_info("shared memory %" PRIu64 ": %" PRIu64 " pages no task maps any more",
			o->shmid, o->nr_pending);
		d->stats.pages_dropped_exit += o->nr_pending;
		lazy_stats_proc(&d->stats, o->stats_idx)->pages_dropped_exit += o->nr_pending;
		o->nr_pending = 0;
	}
}

static void obj_free(struct lazy_shm_obj *o)
{
	if (o->map)
		munmap(o->map, o->nr_pages * PS);
	if (o->uffd >= 0)
		close(o->uffd);
	if (o->fd >= 0)
		close(o->fd);
	if (o->pages)
		pages_file_unmap(&o->pi, o->pages);
	pagemap_index_free(&o->pi);
	free(o->pending);
	free(o);
}

void lazy_shmem_free_all(struct lazy_daemon *d)
{
	while (d->shm_objs) {
		struct lazy_shm_obj *o = d->shm_objs;

		d->shm_objs = o->next;
		obj_free(o);
	}
}

/* Our mapping of the object, registered MISSING with a uffd of our own. */
static int obj_map(struct lazy_shm_obj *o, const char *path)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct stat st;

	o->fd = open(path, O_RDWR | O_CLOEXEC);
	if (o->fd < 0 || fstat(o->fd, &st)) {
		pr_perror("shared memory %" PRIu64 ": %s", o->shmid, path);
		return -errno;
	}
	o->nr_pages = ((uint64_t)st.st_size + PS - 1) / PS;
	o->map = mmap(NULL, o->nr_pages * PS, PROT_READ | PROT_WRITE, MAP_SHARED, o->fd, 0);
	if (o->map == MAP_FAILED) {
		o->map = NULL;
		pr_perror("shared memory %" PRIu64 ": mmap of %s", o->shmid, path);
		return -errno;
	}
	o->uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (o->uffd < 0 || ioctl(o->uffd, UFFDIO_API, &api)) {
		pr_perror("shared memory %" PRIu64 ": a userfaultfd of our own", o->shmid);
		return -errno;
	}
	reg.range.start = (uint64_t)(uintptr_t)o->map;
	reg.range.len = o->nr_pages * PS;
	if (ioctl(o->uffd, UFFDIO_REGISTER, &reg)) {
		pr_perror("shared memory %" PRIu64 ": UFFDIO_REGISTER of our mapping", o->shmid);
		return -errno;
	}
	return 0;
}

/* The pages still to deliver: every present run of the pagemap. */
static int obj_load_pages(struct lazy_daemon *d, struct lazy_shm_obj *o)
{
	int ret = pagemap_index_load(d->dirfd, IMG_PAGEMAP_SHMEM, o->shmid, true, &o->pi);

	if (ret)
		return ret;
	ret = pages_file_map(&o->pi, (void **)&o->pages);
	if (ret)
		return ret;
	o->pending = calloc(o->nr_pages / 64 + 1, sizeof(uint64_t));
	if (!o->pending)
		return -ENOMEM;
	for (size_t r = 0; r < o->pi.nr_runs; r++) {
		const struct page_run *run = &o->pi.runs[r];

		if (!(run->flags & PE_PRESENT))
			continue;
		if (run->vaddr / PS + run->nr_pages > o->nr_pages) {
			pr_err("pagemap-shmem-%" PRIu64 ".img: pages at offset 0x%" PRIx64
			       " lie past the object's %" PRIu64 " bytes", o->shmid, run->vaddr,
			       o->nr_pages * PS);
			return -EINVAL;
		}
		for (uint64_t p = run->vaddr / PS; p < run->vaddr / PS + run->nr_pages; p++)
			o->pending[p / 64] |= 1ULL << (p % 64);
		o->nr_pending += run->nr_pages;
	}
	return 0;
}

static int obj_open(struct lazy_daemon *d, struct lazy_task *t, uint64_t shmid,
		    uint64_t start, uint64_t end, struct lazy_shm_obj **out)
{
	struct lazy_shm_obj *o = calloc(1, sizeof(*o));
	char path[96];
	int ret;

	if (!o)
		return -ENOMEM;
	o->shmid = shmid;
	o->fd = o->uffd = -1;
	o->pi.pages_fd = -1;
	o->stats_idx = t->img->stats_idx;
	snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, t->pid, start, end);
	ret = obj_map(o, path) ?: obj_load_pages(d, o);
	if (ret) {
		obj_free(o);
		return ret;
	}
	o->next = d->shm_objs;
	d->shm_objs = o;
	LAZY_COUNT(d, t, pages_lazy, o->nr_pending);
	LAZY_COUNT(d, t, pages_shmem, o->nr_pending);
	pr_info("shared memory %" PRIu64 ": %" PRIu64 " lazy pages of %" PRIu64, shmid,
		o->nr_pending, o->nr_pages);
	*out = o;
	return 0;
}

/* The task's VMAs registered in MISSING mode ("um" in smaps' VmFlags). */
struct reg_range {
	uint64_t start, end;
};

static int read_registered(pid_t pid, struct reg_range **out, size_t *nr)
{
	char path[64], *line = NULL;
	size_t len = 0, cap = 0;
	uint64_t start = 0, end = 0;
	FILE *f;

	*out = NULL;
	*nr = 0;
	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	f = fopen(path, "re");
	if (!f) {
		/* not ours to read: a tree in a pid namespace of its own, where
		 * the restore leaves shared memory eager (restore/shmem.c) */
		pr_info("task %d: %s: %m: its shared memory is not lazy", pid, path);
		return 0;
	}
	while (getline(&line, &len, f) > 0) {
		uint64_t s, e;

		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " ", &s, &e) == 2 && strchr(line, ' ') &&
		    strchr(line, '-') < strchr(line, ' ')) {
			start = s;
			end = e;
		} else if (!strncmp(line, "VmFlags:", 8) && strstr(line, " um")) {
			if (*nr == cap) {
				struct reg_range *grown;

				cap = cap ? cap * 2 : 16;
				grown = realloc(*out, cap * sizeof(**out));
				if (!grown) {
					free(line);
					fclose(f);
					return -ENOMEM;
				}
				*out = grown;
			}
			(*out)[(*nr)++] = (struct reg_range){ start, end };
		}
	}
	free(line);
	fclose(f);
	return 0;
}

struct memfd_lookup {
	uint64_t key;		/* the file id, then the inode id */
	uint64_t found;
	bool ok;
};

static int file_inode(struct cr_img *img, ProtobufCMessage *msg, void *arg)
{
	const FileEntry *fe = (const FileEntry *)msg;
	struct memfd_lookup *l = arg;

	(void)img;
	if (fe->id != l->key || fe->type != FD_TYPES__MEMFD || !fe->memfd)
		return 0;
	l->found = fe->memfd->inode_id;
	l->ok = true;
	return 1;
}

static int inode_shmid(struct cr_img *img, ProtobufCMessage *msg, void *arg)
{
	const MemfdInodeEntry *ie = (const MemfdInodeEntry *)msg;
	struct memfd_lookup *l = arg;

	(void)img;
	if (ie->inode_id != l->key)
		return 0;
	l->found = ie->shmid;
	l->ok = true;
	return 1;
}

/* A memfd VMA names a file (files.img), whose inode (memfd.img) names the
 * object's pagemap-shmem. */
static int memfd_shmid(struct lazy_daemon *d, const VmaEntry *v, uint64_t *shmid)
{
	struct memfd_lookup l = { .key = v->shmid };
	int ret = img_for_each_entry(d->dirfd, IMG_FILES, 0, &file_entry__descriptor,
				     file_inode, &l);

	if (ret >= 0 && l.ok) {
		l = (struct memfd_lookup){ .key = l.found };
		ret = img_for_each_entry(d->dirfd, IMG_MEMFD_INODE, 0,
					 &memfd_inode_entry__descriptor, inode_shmid, &l);
	}
	if (ret < 0)
		return ret;
	if (!l.ok) {
		pr_err("the memfd mapped at 0x%" PRIx64 " (file %" PRIu64 ") is not in files.img "
		       "and memfd.img", v->start, v->shmid);
		return -EINVAL;
	}
	*shmid = l.found;
	return 0;
}

static bool is_shared_memory(const VmaEntry *v)
{
	return (v->status & VMA_ANON_SHARED) ||
	       ((v->status & VMA_AREA_MEMFD) && (v->status & VMA_FILE_SHARED));
}

int lazy_shmem_load_task(struct lazy_daemon *d, struct lazy_task *t, const MmEntry *mm)
{
	struct reg_range *reg = NULL;
	size_t nr_reg = 0;
	bool any = false;
	int ret = 0;

	for (size_t i = 0; i < mm->n_vmas; i++)
		any |= is_shared_memory(mm->vmas[i]);
	if (!any)
		return 0;
	ret = read_registered(t->pid, &reg, &nr_reg);
	for (size_t i = 0; i < mm->n_vmas && !ret; i++) {
		const VmaEntry *v = mm->vmas[i];
		const struct reg_range *r = NULL;
		uint64_t shmid = v->shmid;
		struct lazy_shm_obj *o;

		if (!is_shared_memory(v))
			continue;
		for (size_t k = 0; k < nr_reg; k++)
			if (v->start >= reg[k].start && v->start < reg[k].end)
				r = &reg[k];
		if (!r)
			continue;	/* restored eagerly (restore/shmem-lazy.c) */
		if ((v->status & VMA_AREA_MEMFD) && (ret = memfd_shmid(d, v, &shmid)))
			break;
		for (o = d->shm_objs; o && o->shmid != shmid; o = o->next)
			;
		if (!o)
			ret = obj_open(d, t, shmid, r->start, r->end, &o);
		if (!ret)
			ret = lazy_shm_add(&t->shm, &(struct lazy_shm_vma){
				.start = v->start, .end = v->end, .pgoff = v->pgoff, .obj = o });
	}
	free(reg);
	return ret;
}
