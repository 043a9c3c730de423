/*
 * Files whose name is gone while another link keeps them (--link-remap):
 *   fd 20  "lr-orig", 3000 bytes, O_RDWR, offset 123; "lr-keep" is a hard
 *          link of it, then "lr-orig" is unlinked (nlink 1)
 *   fd 21  the same file opened again O_RDONLY, FD_CLOEXEC (a second open
 *          file description: a second link of the dump)
 *   a MAP_SHARED mapping of "lr-map" (2 pages, no fd), linked as
 *          "lr-map-keep", "lr-map" unlinked
 *   fd 22  "lr-dir/inner", 10 bytes, linked as "lr-inner-keep"; "inner"
 *          unlinked and "lr-dir" removed (the dump links it in the
 *          directory above, the restore makes "lr-dir" again and removes it)
 * After SIGTERM: each fd's link ("... (deleted)"), flags, offset; each one
 * the very inode of its other name, with no other link (so the names the
 * dump and the restore made are gone), a write through it seen by the
 * other name; the mapping's contents and still the file's; no
 * "link_remap.*", "lr-orig", "lr-dir" left in the directory.
 *   --dir D: all of it in the new directory D (a test mounts it read-only)
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define ORIG_SIZE	3000
#define MAP_PAGES	2
#define SEED_ORIG	0x6c726f726967ULL
#define SEED_MAP	0x6c726d6170ULL

static uint8_t buf[MAP_PAGES * PAGE_SIZE], want[MAP_PAGES * PAGE_SIZE];
static struct fd_snapshot before[3];
static char map_link[256];
static const char *const keep[3] = { "lr-keep", "lr-keep", "lr-inner-keep" };
static const char *dir;

/* @name, filled with @len bytes of @data, and its second name @other */
static int make_linked(const char *name, const char *other, const void *data, size_t len)
{
	int fd = open(name, O_RDWR | O_CREAT | O_TRUNC, 0640);

	if (fd < 0 || pwrite(fd, data, len, 0) != (ssize_t)len || link(name, other))
		fail("making %s and %s: %m", name, other);
	return fd;
}

/* @fd is the inode named @other, which has no other name. */
static void same_inode(int fd, const char *other, const char *what)
{
	struct stat a, b;

	if (fstat(fd, &a) || stat(other, &b))
		fail("%s: stat: %m", what);
	if (a.st_dev != b.st_dev || a.st_ino != b.st_ino)
		fail("%s is inode %lu, not %s's (%lu): not the same file", what,
		     (unsigned long)a.st_ino, other, (unsigned long)b.st_ino);
	if (a.st_nlink != 1)
		fail("%s: the file has %lu links, expected only %s", what,
		     (unsigned long)a.st_nlink, other);
}

static void nothing_left(void)
{
	DIR *d = opendir(".");
	struct dirent *e;

	if (!d)
		fail("opendir: %m");
	while ((e = readdir(d))) {
		/* the dump's links: "link_remap.<id>" (not our own link_remap.pid) */
		if ((!strncmp(e->d_name, "link_remap.", 11) && e->d_name[11] >= '0' &&
		     e->d_name[11] <= '9') || !strncmp(e->d_name, "lr-orig", 7) ||
		    !strcmp(e->d_name, "lr-dir") || !strcmp(e->d_name, "lr-map") ||
		    strstr(e->d_name, ".cr_link")) {
			closedir(d);
			fail("%s is left in the directory", e->d_name);
		}
	}
	closedir(d);
}

int main(int argc, char **argv)
{
	static const struct test_opt opts[] = {
		{ "dir", TEST_OPT_STR, &dir, 0, "make the files there (a directory made for it)" },
		{ NULL },
	};
	uint8_t *map;
	int fd;

	test_init(argc, argv, opts);
	if (dir && (mkdir(dir, 0755) || chdir(dir)))
		fail("a directory %s: %m", dir);

	pattern_fill(want, ORIG_SIZE, SEED_ORIG);
	fd_place(make_linked("lr-orig", "lr-keep", want, ORIG_SIZE), 20, 0);
	fd_place(open("lr-orig", O_RDONLY), 21, 1);
	lseek(20, 123, SEEK_SET);

	pattern_fill(want, MAP_PAGES * PAGE_SIZE, SEED_MAP);
	fd = make_linked("lr-map", "lr-map-keep", want, MAP_PAGES * PAGE_SIZE);
	map = mmap(NULL, MAP_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		fail("mmap lr-map: %m");
	close(fd);

	if (mkdir("lr-dir", 0700))
		fail("mkdir lr-dir: %m");
	fd_place(make_linked("lr-dir/inner", "lr-inner-keep", "0123456789", 10), 22, 0);

	if (unlink("lr-orig") || unlink("lr-map") || unlink("lr-dir/inner") || rmdir("lr-dir"))
		fail("unlink: %m");
	/* after the unlink: the mapping writes to the file */
	pattern_fill(map + PAGE_SIZE, PAGE_SIZE, SEED_MAP + 1000);

	for (int i = 0; i < 3; i++) {
		fd_snapshot_take(20 + i, &before[i]);
	}
	snprintf((char *)buf, sizeof(buf), "/proc/self/map_files/%lx-%lx", (unsigned long)map,
		 (unsigned long)map + MAP_PAGES * PAGE_SIZE);
	link_read((char *)buf, map_link, sizeof(map_link));
	test_msg("fd 20 is %s, the mapping %s\n", before[0].link, map_link);

	test_daemon();
	test_waitsig();

	for (int i = 0; i < 3; i++) {
		char what[32];

		fd_snapshot_expect(20 + i, &before[i]);
		snprintf(what, sizeof(what), "fd %d", 20 + i);
		same_inode(20 + i, keep[i], what);
	}
	if (pread(21, buf, ORIG_SIZE + 10, 0) != ORIG_SIZE)
		fail("fd 21: not %d bytes", ORIG_SIZE);
	pattern_expect("fd 21: contents", buf, ORIG_SIZE, SEED_ORIG);
	if (pread(22, buf, 20, 0) != 10 || memcmp(buf, "0123456789", 10))
		fail("fd 22: contents differ");

	/* one file under both names: a write through fd 20 shows in lr-keep */
	fd = open("lr-keep", O_RDONLY);
	if (fd < 0 || pwrite(20, "W", 1, 77) != 1 || pread(fd, buf, 1, 77) != 1 || buf[0] != 'W')
		fail("a write through fd 20 is not seen through lr-keep");
	close(fd);

	pattern_fill(want, MAP_PAGES * PAGE_SIZE, SEED_MAP);
	pattern_fill(want + PAGE_SIZE, PAGE_SIZE, SEED_MAP + 1000);
	if (memcmp(map, want, MAP_PAGES * PAGE_SIZE))
		fail("the shared mapping of lr-map differs");
	snprintf((char *)buf, sizeof(buf), "/proc/self/map_files/%lx-%lx", (unsigned long)map,
		 (unsigned long)map + MAP_PAGES * PAGE_SIZE);
	{
		char now[256];

		link_read((char *)buf, now, sizeof(now));
		if (strcmp(now, map_link))
			fail("the mapping is %s, expected %s", now, map_link);
		fd = open((char *)buf, O_RDONLY);
		if (fd < 0)
			fail("open %s: %m", (char *)buf);
		same_inode(fd, "lr-map-keep", "the mapping");
		close(fd);
	}
	fd = open("lr-map-keep", O_RDONLY);
	map[PAGE_SIZE + 9] ^= 0xff;
	if (fd < 0 || pread(fd, buf, 1, PAGE_SIZE + 9) != 1 || buf[0] != map[PAGE_SIZE + 9])
		fail("the mapping and lr-map-keep are no longer the same file");
	close(fd);

	nothing_left();
	pass();
}
