/*
 * Unit tests of the pagemap index and writer (images/pagemap*.c): the
 * offset rule, merging, CRIU's read-compatibility rules, invalid entries,
 * a pages file shorter than its pagemap, and the binary search.
 */
#include "images/image.h"
#include "images/pagemap.h"

#include "pagemap.pb-c.h"

#include "test_images.h"

static void fill_pages(unsigned char *buf, uint64_t vaddr, uint64_t nr)
{
	for (uint64_t i = 0; i < nr; i++)
		memset(buf + i * PAGE, (int)(((vaddr / PAGE) + i) & 0xff), PAGE);
}

/* The writer's entries, the offset rule and the data through the map. */
static int test_pagemap_offsets(int dirfd)
{
	static unsigned char data[16 * 4096];
	struct pagemap_writer *w;
	struct pagemap_index pi;
	const struct page_run *r;
	unsigned char *map;
	struct iovec iov[3];
	struct capture c;
	int ret;

	CHECK(pagemap_writer_open(dirfd, IMG_PAGEMAP, 4711, 1, &w) == 0, "");
	/* run 0: 0x10000, 2 + 1 pages merged (present) */
	fill_pages(data, 0x10000, 3);
	CHECK(pagemap_writer_add(w, 0x10000, 2, PE_PRESENT, data) == 0, "");
	CHECK(pagemap_writer_add(w, 0x12000, 1, PE_PRESENT, data + 2 * PAGE) == 0, "");
	/* run 1: lazy only, no data */
	CHECK(pagemap_writer_add(w, 0x13000, 4, PE_LAZY, NULL) == 0, "");
	/* run 2: lazy|present after a hole, from three buffers */
	fill_pages(data, 0x20000, 5);
	iov[0] = (struct iovec){ data, PAGE };
	iov[1] = (struct iovec){ data + PAGE, 0 };
	iov[2] = (struct iovec){ data + PAGE, 4 * PAGE };
	CHECK(pagemap_writer_add_iov(w, 0x20000, 5, PE_LAZY | PE_PRESENT, iov, 3) == 0, "");
	/* run 3: present again, adjacent to run 2 but other flags */
	fill_pages(data, 0x25000, 1);
	CHECK(pagemap_writer_add(w, 0x25000, 1, PE_PRESENT, data) == 0, "");
	capture_start(&c);
	ret = pagemap_writer_add(w, 0x24000, 1, PE_PRESENT, data);
	CHECK(ret == -EINVAL && strstr(capture_end(&c),
		"pagemap-4711.img: run 0x24000 added below the end of the previous one (0x26000)"),
	      "ret %d, said '%s'", ret, c.text);
	CHECK(pagemap_writer_close(w) == 0, "");

	CHECK(file_size(dirfd, "pages-1.img") == (off_t)(9 * PAGE), "");
	CHECK(pagemap_index_load(dirfd, IMG_PAGEMAP, 4711, true, &pi) == 0, "");
	CHECK(pi.pages_id == 1 && pi.nr_runs == 4, "%zu runs", pi.nr_runs);
	CHECK(pi.nr_pages_total == 13 && pi.nr_pages_lazy == 9, "");
	CHECK(pi.runs[0].vaddr == 0x10000 && pi.runs[0].nr_pages == 3 &&
	      pi.runs[0].flags == PE_PRESENT && pi.runs[0].pages_off == 0, "");
	CHECK(pi.runs[1].flags == PE_LAZY && pi.runs[1].nr_pages == 4, "");
	CHECK(pi.runs[2].vaddr == 0x20000 && pi.runs[2].pages_off == 3 * PAGE, "");
	CHECK(pi.runs[3].vaddr == 0x25000 && pi.runs[3].pages_off == 8 * PAGE, "");

	CHECK(pages_file_map(&pi, (void **)&map) == 0 && map, "");
	for (uint64_t a = 0x10000; a < 0x26000; a += PAGE) {
		r = pagemap_index_find(&pi, a + 100);
		if (!r || !(r->flags & PE_PRESENT))
			continue;
		CHECK(map[r->pages_off + (a - r->vaddr)] == ((a / PAGE) & 0xff), "0x%llx",
		      (unsigned long long)a);
	}
	pages_file_unmap(&pi, map);
	pagemap_index_free(&pi);
	return 0;
}

/* Entries as CRIU wrote them over the years: compat count, no flags, in_parent. */
static int test_pagemap_compat(int dirfd)
{
	PagemapHead head = PAGEMAP_HEAD__INIT;
	PagemapEntry e = PAGEMAP_ENTRY__INIT;
	struct pagemap_index pi;
	struct cr_img *img;
	struct capture c;
	int ret;

	head.pages_id = 3;
	CHECK(img_open(dirfd, IMG_PAGEMAP, 5, O_WRONLY, &img) == 0, "");
	CHECK(img_write_entry(img, &head.base) == 0, "");
	e.vaddr = 0x400000;
	e.compat_nr_pages = 2;		/* no flags, no nr_pages: present */
	CHECK(img_write_entry(img, &e.base) == 0, "");
	e.vaddr = 0x500000;
	e.compat_nr_pages = 7;		/* nr_pages wins */
	e.has_nr_pages = true;
	e.nr_pages = 1;
	e.has_flags = true;
	e.flags = PE_LAZY;
	CHECK(img_write_entry(img, &e.base) == 0, "");
	CHECK(img_close(img) == 0, "");

	CHECK(pagemap_index_load(dirfd, IMG_PAGEMAP, 5, false, &pi) == 0, "");
	CHECK(pi.pages_id == 3 && pi.nr_runs == 2 && pi.pages_fd == -1, "");
	CHECK(pi.runs[0].flags == PE_PRESENT && pi.runs[0].nr_pages == 2, "");
	CHECK(pi.runs[1].flags == PE_LAZY && pi.runs[1].nr_pages == 1, "");
	pagemap_index_free(&pi);

	/* the pages file is needed and missing */
	capture_start(&c);
	ret = pagemap_index_load(dirfd, IMG_PAGEMAP, 5, true, &pi);
	CHECK(ret == -ENOENT && strstr(capture_end(&c), "pagemap-5.img: can't open pages-3.img"),
	      "ret %d, said '%s'", ret, c.text);

	/* in_parent: refused */
	CHECK(img_open(dirfd, IMG_PAGEMAP, 6, O_WRONLY, &img) == 0, "");
	CHECK(img_write_entry(img, &head.base) == 0, "");
	pagemap_entry__init(&e);
	e.vaddr = 0x400000;
	e.compat_nr_pages = 1;
	e.has_in_parent = true;
	e.in_parent = true;
	CHECK(img_write_entry(img, &e.base) == 0, "");
	CHECK(img_close(img) == 0, "");
	capture_start(&c);
	ret = pagemap_index_load(dirfd, IMG_PAGEMAP, 6, false, &pi);
	CHECK(ret == -EOPNOTSUPP && pi.runs == NULL &&
	      strstr(capture_end(&c), "pagemap-6.img: entry 0 (0x400000) is in the parent dump"),
	      "ret %d, said '%s'", ret, c.text);
	return 0;
}

/* Write a pagemap of raw entries {vaddr, nr_pages, flags} and load it. */
static int load_entries(int dirfd, const uint64_t (*ents)[3], size_t n, const char *expect)
{
	PagemapHead head = PAGEMAP_HEAD__INIT;
	struct pagemap_index pi;
	struct cr_img *img;
	struct capture c;
	int ret;

	head.pages_id = 1;
	CHECK(img_open(dirfd, IMG_PAGEMAP, 8, O_WRONLY, &img) == 0, "");
	CHECK(img_write_entry(img, &head.base) == 0, "");
	for (size_t i = 0; i < n; i++) {
		PagemapEntry e = PAGEMAP_ENTRY__INIT;

		e.vaddr = ents[i][0];
		e.has_nr_pages = true;
		e.nr_pages = ents[i][1];
		e.has_flags = true;
		e.flags = ents[i][2];
		CHECK(img_write_entry(img, &e.base) == 0, "");
	}
	CHECK(img_close(img) == 0, "");

	capture_start(&c);
	ret = pagemap_index_load(dirfd, IMG_PAGEMAP, 8, false, &pi);
	CHECK(ret == -EBADMSG && strstr(capture_end(&c), expect), "ret %d, said '%s'", ret, c.text);
	return 0;
}

static int test_pagemap_invalid(int dirfd)
{
	static const uint64_t overlap[][3] = { { 0x10000, 2, 4 }, { 0x11000, 1, 4 } };
	static const uint64_t empty[][3] = { { 0x10000, 2, 4 }, { 0x20000, 0, 4 } };
	static const uint64_t unaligned[][3] = { { 0x10010, 1, 4 } };
	static const uint64_t wrap[][3] = { { 0xfffffffffffff000ULL, 2, 4 } };
	static const uint64_t flags[][3] = { { 0x10000, 1, 0x14 } };

	CHECK(load_entries(dirfd, overlap, 2,
			   "pagemap-8.img: entry 1 (0x11000) is below the end of entry 0 (0x12000)") == 0, "");
	CHECK(load_entries(dirfd, empty, 2, "pagemap-8.img: entry 1 (0x20000) has no pages") == 0, "");
	CHECK(load_entries(dirfd, unaligned, 1,
			   "pagemap-8.img: entry 0: address 0x10010 is not page-aligned") == 0, "");
	CHECK(load_entries(dirfd, wrap, 1, "pagemap-8.img: entry 0: 0xfffffffffffff000 + 2 pages wraps around") == 0, "");
	CHECK(load_entries(dirfd, flags, 1, "pagemap-8.img: entry 0 has unknown flags 0x14") == 0, "");
	return 0;
}

static int test_pages_file_short(int dirfd)
{
	static unsigned char data[16 * 4096];
	struct pagemap_writer *w;
	struct pagemap_index pi;
	struct capture c;
	int ret;

	CHECK(pagemap_writer_open(dirfd, IMG_PAGEMAP, 4711, 1, &w) == 0, "");
	CHECK(pagemap_writer_add(w, 0x100000, 2, PE_PRESENT, data) == 0, "");
	CHECK(pagemap_writer_add(w, 0x200000, 3, PE_LAZY, NULL) == 0, "");
	CHECK(pagemap_writer_add(w, 0x300000, 16, PE_PRESENT | PE_LAZY, data) == 0, "");
	CHECK(pagemap_writer_close(w) == 0, "");
	CHECK(truncate_file(dirfd, "pages-1.img", PAGE) == 0, "");

	capture_start(&c);
	ret = pagemap_index_load(dirfd, IMG_PAGEMAP, 4711, true, &pi);
	CHECK(ret == -EBADMSG && pi.runs == NULL && pi.pages_fd == -1 &&
	      strstr(capture_end(&c),
		     "pagemap-4711.img: entry 0 points past the end of pages-1.img "
		     "(needs 8192 bytes at offset 0, file has 4096)"),
	      "ret %d, said '%s'", ret, c.text);

	CHECK(truncate_file(dirfd, "pages-1.img", 17 * PAGE) == 0, "");
	capture_start(&c);
	ret = pagemap_index_load(dirfd, IMG_PAGEMAP, 4711, true, &pi);
	CHECK(ret == -EBADMSG &&
	      strstr(capture_end(&c),
		     "pagemap-4711.img: entry 2 points past the end of pages-1.img "
		     "(needs 65536 bytes at offset 8192, file has 69632)"),
	      "ret %d, said '%s'", ret, c.text);

	/* without the pages file the index loads */
	CHECK(pagemap_index_load(dirfd, IMG_PAGEMAP, 4711, false, &pi) == 0, "");
	pagemap_index_free(&pi);
	return 0;
}

/* Binary search over many runs, against a linear scan. */
static int test_pagemap_find(int dirfd)
{
	const size_t nr = 5000;
	struct pagemap_writer *w;
	struct pagemap_index pi;
	uint64_t vaddr = 0x7f0000000000ULL;

	CHECK(pagemap_writer_open(dirfd, IMG_PAGEMAP, 2, 1, &w) == 0, "");
	for (size_t i = 0; i < nr; i++) {
		uint64_t n = 1 + i % 7, gap = i % 3;

		/* alternate flags so that adjacent runs do not merge */
		CHECK(pagemap_writer_add(w, vaddr, n, i % 2 ? PE_LAZY : 0, NULL) == 0, "");
		vaddr += (n + gap) * PAGE;
	}
	CHECK(pagemap_writer_close(w) == 0, "");
	CHECK(pagemap_index_load(dirfd, IMG_PAGEMAP, 2, true, &pi) == 0, "");
	CHECK(pi.nr_runs == nr && pi.pages_size == 0, "%zu runs", pi.nr_runs);

	CHECK(!pagemap_index_find(&pi, 0), "");
	CHECK(!pagemap_index_find(&pi, pi.runs[0].vaddr - 1), "");
	CHECK(!pagemap_index_find(&pi, vaddr), "");
	CHECK(!pagemap_index_find(&pi, UINT64_MAX), "");
	for (size_t i = 0; i < nr; i++) {
		const struct page_run *r = &pi.runs[i];
		uint64_t end = r->vaddr + r->nr_pages * PAGE;

		CHECK(pagemap_index_find(&pi, r->vaddr) == r, "run %zu start", i);
		CHECK(pagemap_index_find(&pi, end - 1) == r, "run %zu end", i);
		CHECK(pagemap_index_find(&pi, r->vaddr + (end - r->vaddr) / 2) == r, "");
		if (i + 1 < nr && pi.runs[i + 1].vaddr > end)
			CHECK(!pagemap_index_find(&pi, end), "gap after run %zu", i);
	}
	pagemap_index_free(&pi);
	return 0;
}

static const struct test_case cases[] = {
	{ "pagemap offset rule and merging",	test_pagemap_offsets },
	{ "pagemap read compatibility",		test_pagemap_compat },
	{ "pagemap invalid entries",		test_pagemap_invalid },
	{ "pages file shorter than pagemap",	test_pages_file_short },
	{ "pagemap binary search",		test_pagemap_find },
};

int main(void)
{
	return run_cases("test_images_pagemap", cases, sizeof(cases) / sizeof(cases[0]));
}
