/* test_images_sample: the memory map of each process and the pages. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "images/image.h"
#include "images/pagemap.h"

#include "mm.pb-c.h"

#include "sample.h"

/* {start, end, pgoff, shmid, prot, flags, status} */
static const uint64_t sample_vmas[][7] = {
	{ 0x400000, 0x401000, 0, 1, 1, 0x2, 0x41 },
	{ 0x401000, 0x403000, 0x1000, 1, 5, 0x2, 0x41 },
	{ 0x403000, 0x404000, 0x3000, 1, 3, 0x2, 0x41 },
	{ SAMPLE_HEAP, SAMPLE_HEAP + 33 * PAGE, 0, 0, 3, 0x22, 0x221 },
	{ SAMPLE_ANON, SAMPLE_ANON + 64 * PAGE, 0, 0, 3, 0x22, 0x201 },
	{ SAMPLE_STACK, SAMPLE_STACK + 32 * PAGE, 0, 0, 3, 0x122, 0x201 },
	{ SAMPLE_VDSO - 4 * PAGE, SAMPLE_VDSO, 0, 0, 1, 0x22, 0x1201 },
	{ SAMPLE_VDSO, SAMPLE_VDSO + 2 * PAGE, 0, 0, 5, 0x22, 0x209 },
};

int write_mm(int dirfd, unsigned long pid, size_t nr_vmas)
{
	uint64_t auxv[] = { 33, SAMPLE_VDSO, 6, 4096, 25, SAMPLE_STACK + 0x1f000, 0, 0 };
	MmEntry mm = MM_ENTRY__INIT;
	VmaEntry vmas[8], *ptrs[8];

	for (size_t i = 0; i < nr_vmas; i++) {
		vma_entry__init(&vmas[i]);
		vmas[i].start = sample_vmas[i][0];
		vmas[i].end = sample_vmas[i][1];
		vmas[i].pgoff = sample_vmas[i][2];
		vmas[i].shmid = sample_vmas[i][3];
		vmas[i].prot = sample_vmas[i][4];
		vmas[i].flags = sample_vmas[i][5];
		vmas[i].status = sample_vmas[i][6];
		vmas[i].fd = -1;
		if (vmas[i].shmid) {
			vmas[i].has_fdflags = true;
			vmas[i].fdflags = 0;
		}
		ptrs[i] = &vmas[i];
	}
	vmas[4].has_madv = true;
	vmas[4].madv = 1ULL << 14;		/* MADV_HUGEPAGE */

	mm.mm_start_code = 0x401000;
	mm.mm_end_code = 0x402f15;
	mm.mm_start_data = 0x403de8;
	mm.mm_end_data = 0x404000;
	mm.mm_start_stack = SAMPLE_STACK + 0x1f9a0;
	mm.mm_start_brk = SAMPLE_HEAP;
	mm.mm_brk = SAMPLE_HEAP + 33 * PAGE;
	mm.mm_arg_start = SAMPLE_STACK + 0x1fb5a;
	mm.mm_arg_end = SAMPLE_STACK + 0x1fb66;
	mm.mm_env_start = mm.mm_arg_end;
	mm.mm_env_end = SAMPLE_STACK + 0x1ffe0;
	mm.exe_file_id = 1;
	mm.n_mm_saved_auxv = sizeof(auxv) / sizeof(auxv[0]);
	mm.mm_saved_auxv = auxv;
	mm.n_vmas = nr_vmas;
	mm.vmas = ptrs;
	mm.has_dumpable = true;
	mm.dumpable = 1;
	mm.has_thp_disabled = true;
	return img_write_one(dirfd, IMG_MM, pid, &mm.base);
}

/* Page i of the sample holds the byte (vaddr / 4096) & 0xff everywhere. */
static int add_pages(struct pagemap_writer *w, uint64_t vaddr, uint64_t nr, uint32_t flags)
{
	unsigned char *buf = NULL;
	int ret;

	if (flags & PE_PRESENT) {
		buf = malloc(nr * PAGE);
		if (!buf)
			return -ENOMEM;
		for (uint64_t i = 0; i < nr; i++)
			memset(buf + i * PAGE, (int)((vaddr / PAGE + i) & 0xff), PAGE);
	}
	ret = pagemap_writer_add(w, vaddr, nr, flags, buf);
	free(buf);
	return ret;
}

int write_pagemap(int dirfd)
{
	struct pagemap_writer *w;
	int ret;

	ret = pagemap_writer_open(dirfd, IMG_PAGEMAP, 1000, 1, &w);
	if (ret)
		return ret;
	ret = add_pages(w, 0x403000, 1, PE_PRESENT);				/* .data */
	ret = ret ?: add_pages(w, SAMPLE_HEAP, 3, PE_PRESENT | PE_LAZY);
	ret = ret ?: add_pages(w, SAMPLE_HEAP + 8 * PAGE, 2, PE_PRESENT | PE_LAZY);
	ret = ret ?: add_pages(w, SAMPLE_ANON, 16, PE_PRESENT | PE_LAZY);
	ret = ret ?: add_pages(w, SAMPLE_ANON + 16 * PAGE, 16, PE_PRESENT | PE_LAZY);
	ret = ret ?: add_pages(w, SAMPLE_STACK + 30 * PAGE, 2, PE_PRESENT | PE_LAZY);
	ret = ret ?: add_pages(w, SAMPLE_VDSO, 2, PE_PRESENT);
	ret = pagemap_writer_close(w) ?: ret;
	if (ret)
		return ret;

	/* the child: its pages are served remotely (dump --lazy-pages style) */
	ret = pagemap_writer_open(dirfd, IMG_PAGEMAP, 1002, 2, &w);
	if (ret)
		return ret;
	ret = add_pages(w, 0x403000, 1, PE_PRESENT);
	ret = ret ?: add_pages(w, SAMPLE_HEAP, 4, PE_LAZY);
	return pagemap_writer_close(w) ?: ret;
}
