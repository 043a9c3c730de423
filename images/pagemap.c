/*
 * The pagemap index: one pass over pagemap-N.img into a sorted array of
 * runs, each with its offset in the pages file (spec 1.3).
 *
 * Read compatibility: the page count is nr_pages (field 5) if present,
 * else compat_nr_pages (field 2); in_parent means PE_PARENT; an entry
 * without flags is PE_PRESENT.  Runs must be non-empty, page-aligned,
 * ascending and non-overlapping.  Incremental dumps (PE_PARENT) are refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/array.h"
#include "common/log.h"
#include "images/image.h"
#include "images/pagemap.h"

#include "pagemap.pb-c.h"

#define PE_KNOWN_FLAGS (PE_PARENT | PE_LAZY | PE_PRESENT)

void pages_file_name(uint32_t pages_id, char *buf, size_t size)
{
	snprintf(buf, size, "pages-%u.img", pages_id);
}

static int pagemap_read_head(struct cr_img *img, uint32_t *pages_id)
{
	ProtobufCMessage *msg;
	int ret;

	ret = img_read_entry(img, &pagemap_head__descriptor, &msg);
	if (ret < 0)
		return ret;
	if (ret == 0) {
		pr_err("%s: no pagemap_head\n", img_name(img));
		return -EBADMSG;
	}
	*pages_id = ((PagemapHead *)msg)->pages_id;
	protobuf_c_message_free_unpacked(msg, NULL);
	return 0;
}

/* Decode entry @idx into @run, check it against the run before it. */
static int pagemap_decode_entry(struct cr_img *img, size_t idx, const PagemapEntry *pe,
				const struct page_run *prev, uint64_t pages_off,
				struct page_run *run)
{
	const char *name = img_name(img);

	run->vaddr = pe->vaddr;
	run->nr_pages = pe->has_nr_pages ? pe->nr_pages : pe->compat_nr_pages;
	if (pe->has_in_parent && pe->in_parent)
		run->flags = PE_PARENT;
	else
		run->flags = pe->has_flags ? pe->flags : PE_PRESENT;
	run->pages_off = pages_off;

	if (run->flags & ~PE_KNOWN_FLAGS) {
		pr_err("%s: entry %zu has unknown flags 0x%x\n", name, idx, run->flags);
		return -EBADMSG;
	}
	if (run->flags & PE_PARENT) {
		pr_err("%s: entry %zu (0x%llx) is in the parent dump: incremental dumps are not supported\n",
		       name, idx, (unsigned long long)run->vaddr);
		return -EOPNOTSUPP;
	}
	if (!run->nr_pages) {
		pr_err("%s: entry %zu (0x%llx) has no pages\n", name, idx,
		       (unsigned long long)run->vaddr);
		return -EBADMSG;
	}
	if (run->vaddr % PAGEMAP_PAGE_SIZE) {
		pr_err("%s: entry %zu: address 0x%llx is not page-aligned\n", name, idx,
		       (unsigned long long)run->vaddr);
		return -EBADMSG;
	}
	if (run->nr_pages > (UINT64_MAX - run->vaddr) / PAGEMAP_PAGE_SIZE) {
		pr_err("%s: entry %zu: 0x%llx + %llu pages wraps around\n", name, idx,
		       (unsigned long long)run->vaddr, (unsigned long long)run->nr_pages);
		return -EBADMSG;
	}
	if (prev && run->vaddr < prev->vaddr + prev->nr_pages * PAGEMAP_PAGE_SIZE) {
		pr_err("%s: entry %zu (0x%llx) is below the end of entry %zu (0x%llx)\n",
		       name, idx, (unsigned long long)run->vaddr, idx - 1,
		       (unsigned long long)(prev->vaddr + prev->nr_pages * PAGEMAP_PAGE_SIZE));
		return -EBADMSG;
	}
	if ((run->flags & PE_PRESENT) &&
	    run->nr_pages * PAGEMAP_PAGE_SIZE > UINT64_MAX - pages_off) {
		pr_err("%s: entry %zu: offset in the pages file wraps around\n", name, idx);
		return -EBADMSG;
	}
	return 0;
}

static int pagemap_add_run(struct pagemap_index *pi, size_t *cap, const struct page_run *run)
{
	if (ARRAY_GROW(pi->runs, *cap, pi->nr_runs + 1, 64)) {
		pr_err("pagemap-%lu: out of memory for %zu runs\n", pi->id, pi->nr_runs + 1);
		return -ENOMEM;
	}
	pi->runs[pi->nr_runs++] = *run;
	return 0;
}

static int pagemap_read_runs(struct cr_img *img, struct pagemap_index *pi)
{
	uint64_t pages_off = 0;
	struct page_run run;
	ProtobufCMessage *msg;
	size_t cap = 0;
	int ret;

	while ((ret = img_read_entry(img, &pagemap_entry__descriptor, &msg)) > 0) {
		ret = pagemap_decode_entry(img, pi->nr_runs, (PagemapEntry *)msg,
					   pi->nr_runs ? &pi->runs[pi->nr_runs - 1] : NULL,
					   pages_off, &run);
		protobuf_c_message_free_unpacked(msg, NULL);
		if (ret)
			return ret;
		ret = pagemap_add_run(pi, &cap, &run);
		if (ret)
			return ret;

		if (run.flags & PE_PRESENT)
			pages_off += run.nr_pages * PAGEMAP_PAGE_SIZE;
		if (run.flags & PE_LAZY)
			pi->nr_pages_lazy += run.nr_pages;
		pi->nr_pages_total += run.nr_pages;
	}
	return ret;
}

/* Open the pages file and check that every present run lies inside it. */
static int pagemap_open_pages(int dirfd, const char *pagemap_name, struct pagemap_index *pi)
{
	char name[IMG_NAME_MAX];
	struct stat st;

	pages_file_name(pi->pages_id, name, sizeof(name));
	pi->pages_fd = img_open_regular(dirfd, name, &st);
	if (pi->pages_fd < 0) {
		int err = -pi->pages_fd;

		if (err == ENOENT) {
			errno = err;
			pr_perror("%s: can't open %s", pagemap_name, name);
		}
		pi->pages_fd = -1;
		return -err;
	}
	pi->pages_size = st.st_size;

	for (size_t i = 0; i < pi->nr_runs; i++) {
		const struct page_run *r = &pi->runs[i];
		uint64_t len = r->nr_pages * PAGEMAP_PAGE_SIZE;

		if (!(r->flags & PE_PRESENT))
			continue;
		if (r->pages_off + len > pi->pages_size) {
			pr_err("%s: entry %zu points past the end of %s (needs %llu bytes at offset %llu, file has %llu)\n",
			       pagemap_name, i, name, (unsigned long long)len,
			       (unsigned long long)r->pages_off,
			       (unsigned long long)pi->pages_size);
			return -EBADMSG;
		}
	}
	return 0;
}

int pagemap_index_load(int dirfd, enum img_type type, unsigned long id,
		       bool need_pages_file, struct pagemap_index *pi)
{
	struct cr_img *img;
	int ret;

	memset(pi, 0, sizeof(*pi));
	pi->id = id;
	pi->pages_fd = -1;

	if (type != IMG_PAGEMAP && type != IMG_PAGEMAP_SHMEM) {
		pr_err("pagemap_index_load: image type %d is not a pagemap\n", type);
		return -EINVAL;
	}
	ret = img_open_existing(dirfd, type, id, &img);
	if (ret)
		return ret;

	ret = pagemap_read_head(img, &pi->pages_id);
	if (!ret)
		ret = pagemap_read_runs(img, pi);
	if (!ret && need_pages_file)
		ret = pagemap_open_pages(dirfd, img_name(img), pi);
	img_close(img);
	if (ret)
		pagemap_index_free(pi);
	return ret;
}

const struct page_run *pagemap_index_find(const struct pagemap_index *pi, uint64_t addr)
{
	size_t lo = 0, hi = pi->nr_runs;

	/* first run whose end is above addr */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct page_run *r = &pi->runs[mid];

		if (r->vaddr + r->nr_pages * PAGEMAP_PAGE_SIZE <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < pi->nr_runs && pi->runs[lo].vaddr <= addr)
		return &pi->runs[lo];
	return NULL;
}

void pagemap_index_free(struct pagemap_index *pi)
{
	free(pi->runs);
	if (pi->pages_fd >= 0)
		close(pi->pages_fd);
	memset(pi, 0, sizeof(*pi));
	pi->pages_fd = -1;
}

int pages_file_map(struct pagemap_index *pi, void **addr)
{
	char name[IMG_NAME_MAX];
	void *p;

	*addr = NULL;
	pages_file_name(pi->pages_id, name, sizeof(name));
	if (pi->pages_fd < 0) {
		pr_err("%s: not opened (pagemap-%lu loaded without its pages file)\n",
		       name, pi->id);
		return -EBADF;
	}
	if (!pi->pages_size)
		return 0;
	if (pi->pages_size > SIZE_MAX) {
		pr_err("%s: too large to map\n", name);
		return -EFBIG;
	}
	p = mmap(NULL, pi->pages_size, PROT_READ, MAP_PRIVATE, pi->pages_fd, 0);
	if (p == MAP_FAILED) {
		pr_perror("%s: can't map %llu bytes", name, (unsigned long long)pi->pages_size);
		return -errno;
	}
	*addr = p;
	return 0;
}

void pages_file_unmap(struct pagemap_index *pi, void *addr)
{
	if (addr)
		munmap(addr, pi->pages_size);
}
