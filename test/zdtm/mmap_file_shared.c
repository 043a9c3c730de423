/*
 * Shared file mappings that were written: a read-write MAP_SHARED mapping
 * of a 32-page file whose even pages were overwritten through the mapping
 * (no msync), and a read-only MAP_SHARED mapping of the same file opened
 * O_RDONLY.  The fds are closed before the checkpoint.
 *
 * After SIGTERM: the mapping shows the writes, the file holds them, and
 * both mappings are still shared with the file in both directions.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define NPAGES 32
#define SEED_FILE 0x7368617265ULL
#define SEED_WRITE 0x6d61707772ULL
#define FILE_NAME "shared.data"

static uint8_t file_data[NPAGES * PAGE_SIZE];
static uint8_t buf[NPAGES * PAGE_SIZE + 1];

static void expect_page(const char *what, const uint8_t *p, size_t i)
{
	char name[96];

	snprintf(name, sizeof(name), "%s page %zu", what, i);
	if (i % 2 == 0)
		pattern_expect(name, p, PAGE_SIZE, SEED_WRITE + i);
	else if (memcmp(p, file_data + i * PAGE_SIZE, PAGE_SIZE))
		fail("%s: differs from the original file content", name);
}

int main(int argc, char **argv)
{
	static char maps[1 << 20], rw_before[512], ro_before[512], line[512];
	uint8_t *rw, *ro;
	size_t i;
	int fd;

	test_init(argc, argv, NULL);

	pattern_fill(file_data, sizeof(file_data), SEED_FILE);
	write_file(FILE_NAME, file_data, sizeof(file_data));

	fd = open(FILE_NAME, O_RDWR);
	if (fd < 0)
		fail("open %s: %m", FILE_NAME);
	rw = mmap(NULL, sizeof(file_data), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (rw == MAP_FAILED)
		fail("mmap %s shared: %m", FILE_NAME);
	close(fd);
	fd = open(FILE_NAME, O_RDONLY);
	if (fd < 0)
		fail("open %s: %m", FILE_NAME);
	ro = mmap(NULL, sizeof(file_data), PROT_READ, MAP_SHARED, fd, 0);
	if (ro == MAP_FAILED)
		fail("mmap %s shared read-only: %m", FILE_NAME);
	close(fd);

	for (i = 0; i < NPAGES; i += 2)
		pattern_fill(rw + i * PAGE_SIZE, PAGE_SIZE, SEED_WRITE + i);
	test_msg("shared mapping %p read-only mapping %p pages %d",
		 (void *)rw, (void *)ro, NPAGES);

	read_file("/proc/self/maps", maps, sizeof(maps));
	if (maps_line_at(maps, (unsigned long)rw, rw_before, sizeof(rw_before)) ||
	    maps_line_at(maps, (unsigned long)ro, ro_before, sizeof(ro_before)))
		fail("no maps lines for the mappings");

	test_daemon();
	test_waitsig();

	read_file("/proc/self/maps", maps, sizeof(maps));
	if (maps_line_at(maps, (unsigned long)rw, line, sizeof(line)) ||
	    strcmp(line, rw_before))
		fail("maps line of the shared mapping changed: before '%s' after '%s'",
		     rw_before, line);
	if (maps_line_at(maps, (unsigned long)ro, line, sizeof(line)) ||
	    strcmp(line, ro_before))
		fail("maps line of the read-only mapping changed: before '%s' after '%s'",
		     ro_before, line);

	for (i = 0; i < NPAGES; i++) {
		expect_page("shared mapping", rw + i * PAGE_SIZE, i);
		expect_page("read-only mapping", ro + i * PAGE_SIZE, i);
	}
	if (read_file(FILE_NAME, (char *)buf, sizeof(buf)) != sizeof(file_data))
		fail("%s changed size", FILE_NAME);
	for (i = 0; i < NPAGES; i++)
		expect_page(FILE_NAME " on disk", buf + i * PAGE_SIZE, i);

	/* Mapping -> file. */
	pattern_fill(rw + PAGE_SIZE, PAGE_SIZE, 0xc0ffee);
	fd = open(FILE_NAME, O_RDWR);
	if (fd < 0)
		fail("open %s: %m", FILE_NAME);
	if (pread(fd, buf, PAGE_SIZE, PAGE_SIZE) != (ssize_t)PAGE_SIZE)
		fail("pread %s: %m", FILE_NAME);
	pattern_expect("file page 1 after writing it through the mapping", buf,
		       PAGE_SIZE, 0xc0ffee);
	pattern_expect("read-only mapping page 1 after writing it through the other",
		       ro + PAGE_SIZE, PAGE_SIZE, 0xc0ffee);
	/* File -> mappings. */
	pattern_fill(buf, PAGE_SIZE, 0xbeef);
	if (pwrite(fd, buf, PAGE_SIZE, 3 * PAGE_SIZE) != (ssize_t)PAGE_SIZE)
		fail("pwrite %s: %m", FILE_NAME);
	close(fd);
	pattern_expect("shared mapping page 3 after writing the file", rw + 3 * PAGE_SIZE,
		       PAGE_SIZE, 0xbeef);
	pattern_expect("read-only mapping page 3 after writing the file",
		       ro + 3 * PAGE_SIZE, PAGE_SIZE, 0xbeef);
	pass();
}
