/*
 * Memory images: pagemap-N.img (which pages were saved, and how) and the
 * raw pages-M.img it points into.
 *
 * The pages file is the concatenation, in pagemap entry order, of the data
 * of every PE_PRESENT entry; other entries take no space in it.  The index
 * reads a pagemap once, applies CRIU's read-compatibility rules, checks it,
 * and gives every run its byte offset in the pages file; lookups are binary
 * searches.  The writer produces both files the way CRIU 4.2 does.
 */
#ifndef CRIU_LAZY_IMAGES_PAGEMAP_H
#define CRIU_LAZY_IMAGES_PAGEMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "images/image.h"

#define PE_PARENT	0x1	/* data in the parent dump (not supported) */
#define PE_LAZY		0x2	/* may be restored on demand */
#define PE_PRESENT	0x4	/* data in pages-<pages_id>.img */

#define PAGEMAP_PAGE_SIZE 4096ULL

struct page_run {
	uint64_t vaddr;
	uint64_t nr_pages;
	uint32_t flags;		/* PE_* */
	uint64_t pages_off;	/* byte offset in the pages file, valid iff PE_PRESENT */
};

struct pagemap_index {
	unsigned long id;	/* PID, or shmid for IMG_PAGEMAP_SHMEM */
	uint32_t pages_id;	/* N of pages-N.img */
	struct page_run *runs;	/* ascending, non-overlapping */
	size_t nr_runs;
	int pages_fd;		/* -1 unless loaded with need_pages_file */
	uint64_t pages_size;	/* size of the pages file (0 without it) */
	uint64_t nr_pages_total;
	uint64_t nr_pages_lazy;	/* pages of PE_LAZY runs */
};

/*
 * Load pagemap-<id>.img (or pagemap-shmem-<id>.img).  With @need_pages_file
 * also open pages-<pages_id>.img and check that it holds every present run.
 * A missing pagemap is an error (logged).  On error *pi is left empty
 * (pagemap_index_free() is harmless on it).
 */
int pagemap_index_load(int dirfd, enum img_type type, unsigned long id,
		       bool need_pages_file, struct pagemap_index *pi);

/* The run covering @addr, or NULL. */
const struct page_run *pagemap_index_find(const struct pagemap_index *pi, uint64_t addr);

void pagemap_index_free(struct pagemap_index *pi);

/*
 * mmap the whole pages file read-only (*addr = NULL if it is empty).
 * Data of run r at page address a is at
 *   *addr + r->pages_off + (a - r->vaddr).
 */
int pages_file_map(struct pagemap_index *pi, void **addr);
void pages_file_unmap(struct pagemap_index *pi, void *addr);

/* The name of a pages file: "pages-1.img". */
void pages_file_name(uint32_t pages_id, char *buf, size_t size);

struct pagemap_writer;

/* Create pagemap-<id>.img (or -shmem-) with its pagemap_head, and
 * pages-<pages_id>.img. */
int pagemap_writer_open(int dirfd, enum img_type type, unsigned long id, uint32_t pages_id,
			struct pagemap_writer **out);

/*
 * Add @nr_pages pages at @vaddr (page-aligned, above everything added
 * before).  @data holds nr_pages * 4096 bytes iff @flags has PE_PRESENT
 * (else it is ignored and may be NULL).  A run contiguous with the previous
 * one and with the same flags extends its entry.
 */
int pagemap_writer_add(struct pagemap_writer *w, uint64_t vaddr, uint64_t nr_pages,
		       uint32_t flags, const void *data);

/* The same with the data in @iovcnt buffers totalling nr_pages * 4096 bytes
 * (written with one writev where the kernel takes it all). */
int pagemap_writer_add_iov(struct pagemap_writer *w, uint64_t vaddr, uint64_t nr_pages,
			   uint32_t flags, const struct iovec *iov, int iovcnt);

/* Write the last entry, close both files and free.  Returns the first error. */
int pagemap_writer_close(struct pagemap_writer *w);

#endif
