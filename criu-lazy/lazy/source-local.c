/*
 * Pages from the local image files.  The pages file is mmap'ed once per
 * image and UFFDIO_COPY reads straight from the mapping: no bounce buffer,
 * the page cache is the only copy.  The pagemap is indexed once and looked
 * up by binary search.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/log.h"
#include "images/image.h"
#include "images/pagemap.h"
#include "lazy/page-source.h"

struct local_image {
	struct pagemap_index pi;
	void *pages;		/* the mapped pages file (NULL if empty) */
};

/*
 * Scattered single pages (a working set's prefetch, a fault with its
 * neighbours delivered) are read with pread into a buffer of our own
 * rather than through the mapping: each first touch of the mapping is a
 * fault that maps the 16 pages of the file around it, nearly all of them
 * for nothing when the pages are scattered, and setting page table entries
 * is what costs most in a VM (scripts/bench prefetch).  Runs are copied
 * straight from the mapping.
 */
#define PREAD_MAX_PAGES	2

static int deliver_pread(struct page_source *src, struct lazy_task *t, struct local_image *img,
			 const struct page_run *run, uint64_t addr, uint64_t n)
{
	static char buf[PREAD_MAX_PAGES * LAZY_PAGE_SIZE] __attribute__((aligned(4096)));
	off_t off = run->pages_off + (addr - run->vaddr);
	ssize_t got = pread(img->pi.pages_fd, buf, n * LAZY_PAGE_SIZE, off);

	if (got != (ssize_t)(n * LAZY_PAGE_SIZE)) {
		pr_err("task %d: read %llu pages at offset %lld of pages-%u.img: %s", t->pid,
		       (unsigned long long)n, (long long)off, img->pi.pages_id,
		       got < 0 ? strerror(errno) : "short read");
		return got < 0 ? -errno : -EIO;
	}
	return lazy_deliver(src->d, t, addr, n, buf);
}

static int local_preload(struct page_source *src, pid_t pid, void **priv)
{
	struct local_image *img = calloc(1, sizeof(*img));
	int ret;

	if (!img)
		return -ENOMEM;
	ret = pagemap_index_load(src->d->dirfd, IMG_PAGEMAP, pid, true, &img->pi);
	if (ret) {
		free(img);
		return ret;
	}
	ret = pages_file_map(&img->pi, &img->pages);
	if (ret) {
		pagemap_index_free(&img->pi);
		free(img);
		return ret;
	}
	/* background delivery reads it front to back */
	if (img->pages)
		madvise(img->pages, img->pi.pages_size, MADV_SEQUENTIAL);
	*priv = img;
	return 0;
}

static int local_attach(struct page_source *src, struct lazy_task *t)
{
	return local_preload(src, t->pid, &t->img->src_priv);
}

static void local_drop(struct page_source *src, void *priv)
{
	struct local_image *img = priv;

	pages_file_unmap(&img->pi, img->pages);
	pagemap_index_free(&img->pi);
	free(img);
}

/* Deliver span piece by piece, one pagemap run at a time. */
static int local_request(struct page_source *src, struct lazy_task *t,
			 const struct lazy_span *span, bool urgent)
{
	struct local_image *img = t->img->src_priv;
	uint64_t addr = span->img_start, end = span->img_start + span->nr_pages * LAZY_PAGE_SIZE;
	int ret = 0;

	while (addr < end && !ret) {
		const struct page_run *run = pagemap_index_find(&img->pi, addr);
		uint64_t run_end, n;

		if (!run || !(run->flags & PE_PRESENT)) {
			pr_err("task %d: page 0x%llx is lazy but not in pages-%u.img",
			       t->pid, (unsigned long long)addr, img->pi.pages_id);
			ret = -EIO;
			break;
		}
		run_end = run->vaddr + run->nr_pages * LAZY_PAGE_SIZE;
		n = ((run_end < end ? run_end : end) - addr) / LAZY_PAGE_SIZE;
		if (n <= PREAD_MAX_PAGES && img->pi.pages_fd >= 0)
			ret = deliver_pread(src, t, img, run, addr, n);
		else
			ret = lazy_deliver(src->d, t, addr, n,
					   (char *)img->pages + run->pages_off + (addr - run->vaddr));
		addr += n * LAZY_PAGE_SIZE;
	}
	return lazy_request_done(src->d, t, span->img_start, span->nr_pages) ?: ret;
}

static bool local_can_prefetch(struct page_source *src, struct lazy_task *t)
{
	return true;
}

static void local_release(struct page_source *src, struct lazy_task *t)
{
	struct local_image *img = t->img->src_priv;

	if (!img || t->img->users)
		return;
	local_drop(src, img);
	t->img->src_priv = NULL;
}

/* every task is released by then */
static int local_finish(struct page_source *src)
{
	free(src);
	return 0;
}

static const struct page_source_ops local_ops = {
	.name = "images",
	.attach = local_attach,
	.preload = local_preload,
	.drop = local_drop,
	.request = local_request,
	.can_prefetch = local_can_prefetch,
	.release = local_release,
	.finish = local_finish,
};

struct page_source *page_source_local_new(struct lazy_daemon *d)
{
	struct page_source *src = calloc(1, sizeof(*src));

	if (!src)
		return NULL;
	src->ops = &local_ops;
	src->d = d;
	return src;
}
