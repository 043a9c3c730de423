/*
 * A private file mapping that was written: pages 0, 3, 6, ... hold a new
 * pattern (copied-on-write), page 4 differs from the file in one byte, the
 * other pages were never written and still show the file.  A second,
 * read-only private mapping starts at a file offset.  Both fds are closed
 * before the checkpoint, so only the mappings refer to the file.
 *
 * After SIGTERM: the written pages hold what was written, the others show
 * the file, the file itself is unchanged, and the mapping is still a
 * private mapping *of the file*: a write to the file shows through pages
 * never written, but not through pages that were.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define NPAGES 64
#define FILE_SIZE (NPAGES * PAGE_SIZE + 100)
#define MAP_PAGES (NPAGES + 1)
#define OFF_PAGE 8		/* the second mapping: file pages 8..15 */
#define OFF_NPAGES 8
#define SEED_FILE 0x66696c65ULL
#define SEED_WRITE 0x77726974ULL
#define FILE_NAME "private.data"

static uint8_t file_data[FILE_SIZE];
static uint8_t check_buf[FILE_SIZE + 1];

static int written(size_t i)
{
	return i % 3 == 0 && i < NPAGES;
}

static void check_page(const uint8_t *map, size_t i)
{
	char what[80];
	size_t len = PAGE_SIZE;

	if (i == NPAGES)
		len = FILE_SIZE - NPAGES * PAGE_SIZE;
	snprintf(what, sizeof(what), "mapping page %zu (%s)", i,
		 written(i) ? "written" : i == 4 ? "one byte written" : "never written");
	if (written(i)) {
		pattern_expect(what, map + i * PAGE_SIZE, PAGE_SIZE, SEED_WRITE + i);
		return;
	}
	if (i == 4) {
		uint8_t want = (uint8_t)(file_data[4 * PAGE_SIZE + 17] ^ 0xff);

		if (map[4 * PAGE_SIZE + 17] != want)
			fail("%s: byte 17 is %#x, expected %#x", what,
			     map[4 * PAGE_SIZE + 17], want);
		if (memcmp(map + 4 * PAGE_SIZE, file_data + 4 * PAGE_SIZE, 17) ||
		    memcmp(map + 4 * PAGE_SIZE + 18, file_data + 4 * PAGE_SIZE + 18,
			   PAGE_SIZE - 18))
			fail("%s: differs from the file outside byte 17", what);
		return;
	}
	if (memcmp(map + i * PAGE_SIZE, file_data + i * PAGE_SIZE, len))
		fail("%s: differs from the file", what);
	if (i == NPAGES)
		zero_expect("mapping past the end of the file", map + FILE_SIZE,
			    MAP_PAGES * PAGE_SIZE - FILE_SIZE);
}

int main(int argc, char **argv)
{
	static char maps[1 << 20], l1_before[512], l2_before[512], line[512];
	uint8_t *map, *map2, probe[8];
	size_t i;
	int fd;

	test_init(argc, argv, NULL);

	pattern_fill(file_data, FILE_SIZE, SEED_FILE);
	write_file(FILE_NAME, file_data, FILE_SIZE);

	fd = open(FILE_NAME, O_RDWR);
	if (fd < 0)
		fail("open %s: %m", FILE_NAME);
	map = mmap(NULL, MAP_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED)
		fail("mmap %s private: %m", FILE_NAME);
	map2 = mmap(NULL, OFF_NPAGES * PAGE_SIZE, PROT_READ, MAP_PRIVATE, fd,
		    OFF_PAGE * PAGE_SIZE);
	if (map2 == MAP_FAILED)
		fail("mmap %s at an offset: %m", FILE_NAME);
	close(fd);

	for (i = 0; i < NPAGES; i++)
		if (written(i))
			pattern_fill(map + i * PAGE_SIZE, PAGE_SIZE, SEED_WRITE + i);
	map[4 * PAGE_SIZE + 17] ^= 0xff;
	/* read the rest so that it is really mapped, not just reserved */
	for (i = 0; i < MAP_PAGES; i++)
		probe[i % 8] += map[i * PAGE_SIZE + 5];
	test_msg("mapping %p pages %d, offset mapping %p", (void *)map, MAP_PAGES,
		 (void *)map2);

	read_file("/proc/self/maps", maps, sizeof(maps));
	if (maps_line_at(maps, (unsigned long)map, l1_before, sizeof(l1_before)) ||
	    maps_line_at(maps, (unsigned long)map2, l2_before, sizeof(l2_before)))
		fail("no maps lines for the mappings");

	test_daemon();
	test_waitsig();
	(void)probe;

	read_file("/proc/self/maps", maps, sizeof(maps));
	if (maps_line_at(maps, (unsigned long)map, line, sizeof(line)) ||
	    strcmp(line, l1_before))
		fail("maps line of the mapping changed: before '%s' after '%s'",
		     l1_before, line);
	if (maps_line_at(maps, (unsigned long)map2, line, sizeof(line)) ||
	    strcmp(line, l2_before))
		fail("maps line of the offset mapping changed: before '%s' after '%s'",
		     l2_before, line);

	for (i = 0; i < MAP_PAGES; i++)
		check_page(map, i);
	if (memcmp(map2, file_data + OFF_PAGE * PAGE_SIZE, OFF_NPAGES * PAGE_SIZE))
		fail("the mapping at file offset %#lx does not show the file there",
		     OFF_PAGE * PAGE_SIZE);

	/* The file did not see any of the private writes. */
	if (read_file(FILE_NAME, (char *)check_buf, sizeof(check_buf)) != FILE_SIZE ||
	    memcmp(check_buf, file_data, FILE_SIZE))
		fail("%s changed on disk: private writes leaked into it", FILE_NAME);

	/* Still backed by the file: a write to the file shows through page 2
	 * (never written) and through the offset mapping, not through page 3. */
	fd = open(FILE_NAME, O_WRONLY);
	if (fd < 0)
		fail("open %s: %m", FILE_NAME);
	memset(check_buf, 0xab, PAGE_SIZE);
	if (pwrite(fd, check_buf, PAGE_SIZE, 2 * PAGE_SIZE) != (ssize_t)PAGE_SIZE ||
	    pwrite(fd, check_buf, PAGE_SIZE, 3 * PAGE_SIZE) != (ssize_t)PAGE_SIZE ||
	    pwrite(fd, check_buf, PAGE_SIZE, (OFF_PAGE + 1) * PAGE_SIZE) != (ssize_t)PAGE_SIZE)
		fail("pwrite %s: %m", FILE_NAME);
	close(fd);
	if (memcmp(map + 2 * PAGE_SIZE, check_buf, PAGE_SIZE))
		fail("page 2 (never written) no longer shows the file: it is not a file mapping any more");
	if (memcmp(map2 + PAGE_SIZE, check_buf, PAGE_SIZE))
		fail("the offset mapping no longer shows the file");
	pattern_expect("page 3 (written) after the file changed", map + 3 * PAGE_SIZE,
		       PAGE_SIZE, SEED_WRITE + 3);
	pass();
}
