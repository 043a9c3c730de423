/*
 * Lazy shared memory: finding the objects a task maps (its VMAs the
 * restore registered, "um" in smaps' VmFlags), opening each once (through
 * /proc/PID/map_files of the first task that maps it) and mapping it with
 * a userfaultfd of our own; the pages each still lacks come from its
 * pagemap-shmem image.  The filling is lazy-shmem.c's.
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
#include "common/array.h"
#include "common/log.h"
#include "images/image.h"
#include "images/vma-status.h"
#include "lazy/lazy-daemon.h"
#include "lazy/lazy-shmem-int.h"
#include "lazy/page-source.h"
#include "lazy/uffd.h"
#include "fdinfo.pb-c.h"
#include "memfd.pb-c.h"
#include "mm.pb-c.h"

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
	free(o->inflight);
	free(o->pf);
	free(o->pf_fill);
	free(o->waiters);
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

/*
 * The pages still to deliver: every present run of the pagemap.  From a
 * page source that serves shared memory, only the pagemap is read: the
 * pages come over the network, the pages file need not be here.
 */
static int obj_load_pages(struct lazy_daemon *d, struct lazy_shm_obj *o)
{
	int ret;

	o->remote = d->src->shmem;
	ret = pagemap_index_load(d->dirfd, IMG_PAGEMAP_SHMEM, o->shmid, !o->remote, &o->pi);
	if (ret)
		return ret;
	if (!o->remote) {
		ret = pages_file_map(&o->pi, (void **)&o->pages);
		if (ret)
			return ret;
	}
	o->pending = calloc(o->nr_pages / 64 + 1, sizeof(uint64_t));
	o->inflight = calloc(o->nr_pages / 64 + 1, sizeof(uint64_t));
	o->pf = calloc(o->nr_pages / 64 + 1, sizeof(uint64_t));
	o->pf_fill = calloc(o->nr_pages / 64 + 1, sizeof(uint64_t));
	if (!o->pending || !o->inflight || !o->pf || !o->pf_fill)
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
	snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, t->host_pid,
		 start, end);
	ret = obj_map(o, path) ?: obj_load_pages(d, o);
	if (ret) {
		obj_free(o);
		return ret;
	}
	o->next = d->shm_objs;
	d->shm_objs = o;
	LAZY_COUNT(d, t, pages_lazy, o->nr_pending);
	LAZY_COUNT(d, t, pages_shmem, o->nr_pending);
	pr_info("shared memory %" PRIu64 ": %" PRIu64 " lazy pages of %" PRIu64 "%s", shmid,
		o->nr_pending, o->nr_pages, o->remote ? ", from the page server" : "");
	*out = o;
	return 0;
}

/*
 * Before we fill anything, the object must lack every page still to come
 * (lazy-task.c's check for private memory): a page in its page cache is
 * mapped by every task without a fault, and our copy would meet EEXIST and
 * leave it as it is.  So one that is there (SEEK_DATA: in the cache or
 * swapped) got its contents elsewhere: named with its address in the task
 * whose handover opened the object (view v), taken out of the pending
 * pages and counted lost; the daemon then exits 1.
 */
static void obj_check_missing(struct lazy_daemon *d, struct lazy_task *t,
			      struct lazy_shm_obj *o, const VmaEntry *v)
{
	off_t pos = 0, size = (off_t)(o->nr_pages * PS);

	while (pos < size) {
		off_t data = lseek(o->fd, pos, SEEK_DATA), hole;

		if (data < 0) {
			if (errno != ENXIO)	/* ENXIO: no data past pos */
				pr_warn("shared memory %" PRIu64 ": SEEK_DATA: %m: its lazy pages "
					"not checked missing", o->shmid);
			return;
		}
		hole = lseek(o->fd, data, SEEK_HOLE);
		if (hole < 0 || hole > size)
			hole = size;
		for (uint64_t p = (uint64_t)data / PS; p * PS < (uint64_t)hole; p++) {
			uint64_t off = p * PS, addr = v->start + off - v->pgoff;

			if (!is_pending(o, p))
				continue;
			bit_clear(o->pending, p);
			o->nr_pending--;
			LAZY_COUNT(d, t, pages_lost, 1);
			if (off < v->pgoff || addr >= v->end)
				addr = 0;	/* outside this view: the offset says where */
			if (d->stats.pages_lost <= LAZY_LOST_LINES)
				pr_err("task %d: lazy page 0x%" PRIx64 " (shared memory %" PRIu64
				       ", offset 0x%" PRIx64 ") was present before we delivered "
				       "anything (a write during the restore filled it): lost",
				       t->pid, addr, o->shmid, off);
			else
				pr_warn("task %d: lazy page 0x%" PRIx64 " (shared memory %" PRIu64
					", offset 0x%" PRIx64 ") present before any delivery: lost",
					t->pid, addr, o->shmid, off);
		}
		pos = hole;
	}
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
		/* gone already: its exit is seen through its uffd */
		pr_info("task %d: %s: %m: its shared memory is not served", pid, path);
		return 0;
	}
	while (getline(&line, &len, f) > 0) {
		uint64_t s, e;

		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " ", &s, &e) == 2 && strchr(line, ' ') &&
		    strchr(line, '-') < strchr(line, ' ')) {
			start = s;
			end = e;
		} else if (!strncmp(line, "VmFlags:", 8) && strstr(line, " um")) {
			if (ARRAY_GROW(*out, cap, *nr + 1, 16)) {
				free(line);
				fclose(f);
				return -ENOMEM;
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
	/* SysV segments come filled (restore/ipc-ns.c) */
	return ((v->status & VMA_ANON_SHARED) && !(v->status & VMA_AREA_SYSVIPC)) ||
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
	ret = read_registered(t->host_pid, &reg, &nr_reg);
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
		if (!o) {
			ret = obj_open(d, t, shmid, r->start, r->end, &o);
			if (!ret)
				obj_check_missing(d, t, o, v);
		}
		if (!ret)
			ret = lazy_shm_add(&t->shm, &(struct lazy_shm_vma){
				.start = v->start, .end = v->end, .pgoff = v->pgoff,
				.img_start = v->start, .obj = o });
	}
	free(reg);
	return ret;
}
