/*
 * test_page_server_images DIR [BIG_PAGES] [--lazy-not-present]: write the
 * image set of the page-server tests (layout in test_page_server_layout.h).
 *
 * Tasks 100 and 200, and 300, a zombie (no mm, no pagemap).  Task 100:
 *   file VMA   4 present pages, not lazy
 *   small VMA  two adjacent lazy entries of 8 pages (+0, +8), a hole of 8,
 *              4 lazy pages at +24; with --lazy-not-present also 4 pages at
 *              +40 flagged lazy but without data (dump --lazy-pages style)
 *   big VMA    BIG_PAGES lazy pages (default 4096) in entries of 256
 * Task 200: 32 lazy pages.  Pagemap entries are written one by one, never
 * merged, as CRIU does at its page-pipe limits.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "images/image.h"
#include "images/pagemap.h"
#include "images/vma-status.h"
#include "inventory.pb-c.h"
#include "mm.pb-c.h"
#include "pagemap.pb-c.h"
#include "pstree.pb-c.h"
#include "test_page_server_layout.h"

struct pm_writer {
	uint32_t pid;
	struct cr_img *img;
	int pages_fd;
};

static int pm_open(int dirfd, uint32_t pid, uint32_t pages_id, struct pm_writer *w)
{
	PagemapHead head = PAGEMAP_HEAD__INIT;
	char name[32];
	int ret;

	w->pid = pid;
	ret = img_open(dirfd, IMG_PAGEMAP, pid, O_WRONLY, &w->img);
	if (ret)
		return ret;
	head.pages_id = pages_id;
	ret = img_write_entry(w->img, &head.base);
	if (ret)
		return ret;
	pages_file_name(pages_id, name, sizeof(name));
	w->pages_fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	return w->pages_fd < 0 ? -errno : 0;
}

/* One entry; data (the pid/address pattern) follows iff PE_PRESENT. */
static int pm_add(struct pm_writer *w, uint64_t vaddr, uint64_t nr, uint32_t flags)
{
	PagemapEntry pe = PAGEMAP_ENTRY__INIT;
	int ret;

	pe.vaddr = vaddr;
	pe.has_flags = pe.has_nr_pages = true;
	pe.flags = flags;
	pe.nr_pages = nr;
	ret = img_write_entry(w->img, &pe.base);
	if (ret || !(flags & PE_PRESENT))
		return ret;
	for (uint64_t p = 0; p < nr; p++) {
		uint64_t page[PST_PAGE / 8];

		for (size_t i = 0; i < PST_PAGE / 8; i++)
			page[i] = pst_word(w->pid, vaddr + p * PST_PAGE + i * 8);
		if (write(w->pages_fd, page, sizeof(page)) != sizeof(page))
			return -EIO;
	}
	return 0;
}

static int pm_close(struct pm_writer *w)
{
	int ret = img_close(w->img);

	if (close(w->pages_fd) && !ret)
		ret = -errno;
	return ret;
}

static int write_mm(int dirfd, uint32_t pid, const uint64_t (*vmas)[3], size_t nr)
{
	MmEntry mm = MM_ENTRY__INIT;
	VmaEntry v[4], *ptrs[4];

	for (size_t i = 0; i < nr; i++) {
		vma_entry__init(&v[i]);
		v[i].start = vmas[i][0];
		v[i].end = vmas[i][0] + vmas[i][1] * PST_PAGE;
		v[i].prot = PROT_READ | PROT_WRITE;
		v[i].fd = -1;
		if (vmas[i][2]) {
			v[i].flags = MAP_PRIVATE | MAP_ANONYMOUS;
			v[i].status = VMA_AREA_REGULAR | VMA_ANON_PRIVATE;
		} else {
			v[i].flags = MAP_PRIVATE;
			v[i].status = VMA_AREA_REGULAR | VMA_FILE_PRIVATE;
		}
		ptrs[i] = &v[i];
	}
	mm.n_vmas = nr;
	mm.vmas = ptrs;
	return img_write_one(dirfd, IMG_MM, pid, &mm.base);
}

static int write_tree(int dirfd)
{
	InventoryEntry inv = INVENTORY_ENTRY__INIT;
	uint32_t pids[] = { 100, 200, 300 };
	struct cr_img *img;
	int ret;

	inv.img_version = 2;
	ret = img_write_one(dirfd, IMG_INVENTORY, 0, &inv.base);
	if (ret)
		return ret;
	ret = img_open(dirfd, IMG_PSTREE, 0, O_WRONLY, &img);
	if (ret)
		return ret;
	for (size_t i = 0; i < 3 && !ret; i++) {
		PstreeEntry e = PSTREE_ENTRY__INIT;
		uint32_t tid = pids[i];

		e.pid = e.pgid = e.sid = pids[i];
		e.ppid = i ? 100 : 1;
		e.n_threads = 1;
		e.threads = &tid;
		ret = img_write_entry(img, &e.base);
	}
	return img_close(img) ?: ret;
}

static int write_task100(int dirfd, uint64_t big_pages, bool lazy_not_present)
{
	const uint64_t vmas[][3] = {
		{ PST_FILE_VMA, 16, 0 },
		{ PST_SMALL_VMA, 64, 1 },
		{ PST_BIG_VMA, big_pages, 1 },
	};
	const uint32_t lp = PE_LAZY | PE_PRESENT;
	struct pm_writer w;
	int ret;

	ret = write_mm(dirfd, 100, vmas, 3);
	ret = ret ?: pm_open(dirfd, 100, 1, &w);
	if (ret)
		return ret;
	ret = pm_add(&w, PST_FILE_VMA, 4, PE_PRESENT);
	ret = ret ?: pm_add(&w, PST_SMALL_VMA, 8, lp);
	ret = ret ?: pm_add(&w, PST_SMALL_VMA + 8 * PST_PAGE, 8, lp);
	ret = ret ?: pm_add(&w, PST_SMALL_VMA + 24 * PST_PAGE, 4, lp);
	if (lazy_not_present)
		ret = ret ?: pm_add(&w, PST_SMALL_VMA + 40 * PST_PAGE, 4, PE_LAZY);
	for (uint64_t p = 0; p < big_pages && !ret; p += PST_BIG_ENTRY_PAGES) {
		uint64_t n = big_pages - p < PST_BIG_ENTRY_PAGES ? big_pages - p : PST_BIG_ENTRY_PAGES;

		ret = pm_add(&w, PST_BIG_VMA + p * PST_PAGE, n, lp);
	}
	return pm_close(&w) ?: ret;
}

static int write_task200(int dirfd)
{
	const uint64_t vmas[][3] = { { PST_T2_VMA, 32, 1 } };
	struct pm_writer w;
	int ret;

	ret = write_mm(dirfd, 200, vmas, 1);
	ret = ret ?: pm_open(dirfd, 200, 2, &w);
	if (ret)
		return ret;
	ret = pm_add(&w, PST_T2_VMA, 32, PE_LAZY | PE_PRESENT);
	return pm_close(&w) ?: ret;
}

int main(int argc, char **argv)
{
	bool lazy_not_present = false;
	uint64_t big_pages = 4096;
	const char *dir = NULL;
	int dirfd, ret;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--lazy-not-present"))
			lazy_not_present = true;
		else if (!dir)
			dir = argv[i];
		else
			big_pages = strtoull(argv[i], NULL, 0);
	}
	if (!dir || !big_pages) {
		fprintf(stderr, "usage: %s DIR [BIG_PAGES] [--lazy-not-present]\n", argv[0]);
		return 2;
	}
	log_init("test_page_server_images", LOG_WARN, NULL);
	mkdir(dir, 0700);
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		perror(dir);
		return 1;
	}
	ret = write_tree(dirfd);
	ret = ret ?: write_task100(dirfd, big_pages, lazy_not_present);
	ret = ret ?: write_task200(dirfd);
	close(dirfd);
	if (ret)
		fprintf(stderr, "%s: %s\n", dir, strerror(-ret));
	return ret ? 1 : 0;
}
