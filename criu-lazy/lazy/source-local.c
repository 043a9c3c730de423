/*
 * Pages from the local image files.  The pages file is mmap'ed once per
 * image and UFFDIO_COPY reads straight from the mapping: no bounce buffer,
 * the page cache is the only copy.  The pagemap is indexed once and looked
 * up by binary search.
 */
#include <stdlib.h>
#include <sys/mman.h>

#include "common/log.h"
#include "images/image.h"
#include "images/pagemap.h"
#include "lazy/page-source.h"

struct local_image {
	struct pagemap_index pi;
	void *pages;		/* the mapped pages file (NULL if empty) */
};

static int local_attach(struct page_source *src, struct lazy_task *t)
{
	struct local_image *img = calloc(1, sizeof(*img));
	int ret;

	if (!img)
		return -ENOMEM;
	ret = pagemap_index_load(src->d->dirfd, IMG_PAGEMAP, t->pid, true, &img->pi);
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
	t->img->src_priv = img;
	return 0;
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
	pages_file_unmap(&img->pi, img->pages);
	pagemap_index_free(&img->pi);
	free(img);
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
