/*
 * Unit tests of common/pm-scan.c: the runs that are there, from this
 * process's own pagemap through PAGEMAP_SCAN (more runs than one ioctl's
 * vector holds, runs at both ends of the range), and through the pread
 * fallback, driven by a memfd of made-up pagemap entries (PAGEMAP_SCAN on
 * a plain file fails with ENOTTY, as on a kernel without it); a callback's
 * error stops the scan.  Prints "ok - NAME" or "FAIL - NAME" per case.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/pm-scan.h"
#include "unit.h"

#define PG 4096ULL
#define NPAGES 1024	/* 4 MiB */

struct runs {
	uint64_t s[NPAGES], e[NPAGES];
	int nr;
	int stop_after;	/* > 0: -EINTR once this many came */
};

static int collect(uint64_t start, uint64_t end, void *arg)
{
	struct runs *r = arg;

	/* adjacent pieces (a run cut by a full vector) are one run */
	if (r->nr && r->e[r->nr - 1] == start) {
		r->e[r->nr - 1] = end;
	} else {
		r->s[r->nr] = start;
		r->e[r->nr++] = end;
	}
	return r->stop_after && r->nr >= r->stop_after ? -EINTR : 0;
}

/* Pages there: every third one, and a run of 8 at each end. */
static int there(unsigned int i)
{
	return i % 3 == 0 || i < 8 || i >= NPAGES - 8;
}

/* The runs there() makes over [0, NPAGES), as page indexes. */
static int check_runs(const struct runs *r, uint64_t base)
{
	int k = 0;

	for (unsigned int i = 0; i < NPAGES;) {
		unsigned int j = i;

		if (!there(i)) {
			i++;
			continue;
		}
		while (j < NPAGES && there(j))
			j++;
		CHECK(k < r->nr && r->s[k] == base + i * PG && r->e[k] == base + j * PG,
		      "run %d: pages %u-%u", k, i, j);
		k++;
		i = j;
	}
	CHECK(k == r->nr, "%d runs expected, %d came", k, r->nr);
	return 0;
}

static int test_own_pagemap(void)
{
	char *m = mmap(NULL, NPAGES * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	struct runs *r = calloc(1, sizeof(*r));
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC), ret;

	CHECK(m != MAP_FAILED && r && fd >= 0, "");
	madvise(m, NPAGES * PG, MADV_NOHUGEPAGE);	/* no huge page fills the gaps */
	for (unsigned int i = 0; i < NPAGES; i++)
		if (there(i))
			m[i * PG] = 1;
	ret = pm_scan_present(fd, (uintptr_t)m, (uintptr_t)m + NPAGES * PG, collect, r);
	CHECK(!ret, "%d", ret);
	ret = check_runs(r, (uintptr_t)m);
	close(fd);
	munmap(m, NPAGES * PG);
	free(r);
	return ret;
}

/* A memfd of pagemap entries for pages 0..NPAGES-1, at the offset of
 * address @base; bit 63 (present) or 62 (swapped) where there() says. */
static int fake_pagemap(uint64_t base)
{
	uint64_t e[NPAGES];
	int fd = memfd_create("pagemap", MFD_CLOEXEC);

	for (unsigned int i = 0; i < NPAGES; i++)
		e[i] = !there(i) ? 0 : (i % 2 ? 1ULL << 63 : 1ULL << 62);
	if (fd < 0 || pwrite(fd, e, sizeof(e), base / PG * 8) != sizeof(e)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int test_pread_fallback(void)
{
	uint64_t base = 0x40000000;
	struct runs *r = calloc(1, sizeof(*r));
	int fd = fake_pagemap(base), ret;

	CHECK(r && fd >= 0, "");
	ret = pm_scan_present(fd, base, base + NPAGES * PG, collect, r);
	CHECK(!ret, "%d", ret);
	ret = check_runs(r, base);
	/* past the end of the file: a short read, -EIO */
	CHECK(pm_scan_present(fd, base, base + 2 * NPAGES * PG, collect, r) == -EIO, "");
	close(fd);
	free(r);
	return ret;
}

static int test_callback_stops(void)
{
	uint64_t base = 0x40000000;
	struct runs *r = calloc(1, sizeof(*r));
	int fd = fake_pagemap(base);

	CHECK(r && fd >= 0, "");
	r->stop_after = 3;
	CHECK(pm_scan_present(fd, base, base + NPAGES * PG, collect, r) == -EINTR && r->nr == 3,
	      "%d runs", r->nr);
	close(fd);
	free(r);
	return 0;
}

int main(void)
{
	static const struct unit_case cases[] = {
		{ "runs of our own pagemap (PAGEMAP_SCAN)", test_own_pagemap },
		{ "runs through the pread fallback", test_pread_fallback },
		{ "a callback's error stops the scan", test_callback_stops },
	};

	return unit_run(cases, sizeof(cases) / sizeof(cases[0]));
}
