/*
 * Open regular files at offsets, with every access mode, O_APPEND,
 * O_NONBLOCK, FD_CLOEXEC, a dup() sharing an offset, and /dev/null, at
 * chosen fd numbers with gaps (3..9 stay closed).  After SIGTERM: the set
 * of open fds and what they point to (/proc/self/fd) is the same, each fd
 * has the same status flags (F_GETFL), fd flags (F_GETFD), offset, inode;
 * reading and writing continue where they were; the dup still shares its
 * offset with the original; the files were not changed by the restore.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define RO_SEED 0x726f
#define RW_SEED 0x7277
#define WO_SEED 0x776f
#define DATA_SIZE (64 << 10)

enum { F_RO, F_RW, F_DUP, F_APP, F_WO, F_NULL, F_CLOEXEC, F_NONBLOCK, NFDS };

struct fdesc {
	int fd;
	const char *what;
	int getfl, getfd;
	off_t pos;
	dev_t dev;
	ino_t ino;
};

static struct fdesc fds[NFDS] = {
	[F_RO] = { 10, "ro.data O_RDONLY", 0, 0, 0, 0, 0 },
	[F_RW] = { 11, "rw.data O_RDWR", 0, 0, 0, 0, 0 },
	[F_DUP] = { 12, "dup of fd 11", 0, 0, 0, 0, 0 },
	[F_APP] = { 20, "app.data O_WRONLY|O_APPEND", 0, 0, 0, 0, 0 },
	[F_WO] = { 33, "wo.data O_WRONLY", 0, 0, 0, 0, 0 },
	[F_NULL] = { 100, "/dev/null O_RDWR", 0, 0, 0, 0, 0 },
	[F_CLOEXEC] = { 200, "ro.data O_RDONLY|O_CLOEXEC", 0, 0, 0, 0, 0 },
	[F_NONBLOCK] = { 500, "rw.data O_RDONLY|O_NONBLOCK", 0, 0, 0, 0, 0 },
};

static uint8_t ro_data[DATA_SIZE], rw_data[DATA_SIZE], wo_data[16 << 10];
static char fd_list_before[16384], fd_list_after[16384];

static void place(int idx, int fd)
{
	int flags = fcntl(fd, F_GETFD);

	if (fd == fds[idx].fd)
		return;
	if (dup3(fd, fds[idx].fd, flags & FD_CLOEXEC ? O_CLOEXEC : 0) < 0)
		fail("dup3 to %d: %m", fds[idx].fd);
	close(fd);
}

static int open_at(int idx, const char *path, int flags)
{
	int fd = open(path, flags);

	if (fd < 0)
		fail("open %s: %m", path);
	place(idx, fd);
	return fds[idx].fd;
}

static void seek(int idx, off_t off)
{
	if (lseek(fds[idx].fd, off, SEEK_SET) != off)
		fail("lseek %s: %m", fds[idx].what);
}

static void record(struct fdesc *d)
{
	struct stat st;

	d->getfl = fcntl(d->fd, F_GETFL);
	d->getfd = fcntl(d->fd, F_GETFD);
	d->pos = lseek(d->fd, 0, SEEK_CUR);
	if (d->getfl < 0 || d->getfd < 0 || fstat(d->fd, &st))
		fail("fd %d (%s): %m", d->fd, d->what);
	d->dev = st.st_dev;
	d->ino = st.st_ino;
}

/* "fd -> target" for every open fd, sorted by fd number (readdir order). */
static void list_fds(char *out, size_t size)
{
	int nums[1024], n = 0, i, j;
	struct dirent *de;
	size_t used = 0;
	DIR *d;

	d = opendir("/proc/self/fd");
	if (!d)
		fail("opendir /proc/self/fd: %m");
	while ((de = readdir(d)) && n < 1024)
		if (de->d_name[0] != '.' && atoi(de->d_name) != dirfd(d))
			nums[n++] = atoi(de->d_name);
	closedir(d);
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && nums[j - 1] > nums[j]; j--) {
			int t = nums[j];

			nums[j] = nums[j - 1];
			nums[j - 1] = t;
		}
	out[0] = '\0';
	for (i = 0; i < n; i++) {
		char path[64], target[512];
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", nums[i]);
		len = readlink(path, target, sizeof(target) - 1);
		if (len < 0)
			fail("readlink %s: %m", path);
		target[len] = '\0';
		used += (size_t)snprintf(out + used, size - used, "%d -> %s\n", nums[i], target);
		if (used >= size)
			fail("too many fds to list");
	}
}

static void expect_read(int idx, const uint8_t *data, size_t off, size_t len)
{
	uint8_t buf[256];

	if (read(fds[idx].fd, buf, len) != (ssize_t)len)
		fail("read %zu bytes from %s at %zu: %m", len, fds[idx].what, off);
	if (memcmp(buf, data + off, len))
		fail("%s: bytes read at offset %zu are not the file's", fds[idx].what, off);
}

static void expect_file(const char *path, const void *data, size_t len)
{
	static uint8_t buf[DATA_SIZE + 1];

	if (read_file(path, (char *)buf, sizeof(buf)) != len || memcmp(buf, data, len))
		fail("%s does not hold what was written to it", path);
}

int main(int argc, char **argv)
{
	uint8_t chunk[100];
	int i;

	test_init(argc, argv, NULL);

	pattern_fill(ro_data, sizeof(ro_data), RO_SEED);
	pattern_fill(rw_data, sizeof(rw_data), RW_SEED);
	pattern_fill(wo_data, sizeof(wo_data), WO_SEED);
	write_file("ro.data", ro_data, sizeof(ro_data));
	write_file("rw.data", rw_data, sizeof(rw_data));
	write_file("wo.data", wo_data, sizeof(wo_data));
	write_file("app.data", "line1\n", 6);

	open_at(F_RO, "ro.data", O_RDONLY);
	seek(F_RO, 1000);
	open_at(F_RW, "rw.data", O_RDWR);
	seek(F_RW, 5000);
	pattern_fill(chunk, sizeof(chunk), 0xd00d);
	if (write(fds[F_RW].fd, chunk, sizeof(chunk)) != sizeof(chunk))
		fail("write rw.data: %m");
	memcpy(rw_data + 5000, chunk, sizeof(chunk));
	if (dup2(fds[F_RW].fd, fds[F_DUP].fd) < 0)
		fail("dup2: %m");
	open_at(F_APP, "app.data", O_WRONLY | O_APPEND);
	open_at(F_WO, "wo.data", O_WRONLY);
	seek(F_WO, 12345);
	open_at(F_NULL, "/dev/null", O_RDWR);
	open_at(F_CLOEXEC, "ro.data", O_RDONLY | O_CLOEXEC);
	seek(F_CLOEXEC, 7777);
	open_at(F_NONBLOCK, "rw.data", O_RDONLY | O_NONBLOCK);
	seek(F_NONBLOCK, 60000);
	for (i = 3; i < 10; i++)
		close(i);

	for (i = 0; i < NFDS; i++)
		record(&fds[i]);
	if (!(fds[F_CLOEXEC].getfd & FD_CLOEXEC) || (fds[F_RO].getfd & FD_CLOEXEC))
		fail("FD_CLOEXEC setup went wrong");
	list_fds(fd_list_before, sizeof(fd_list_before));

	test_daemon();
	test_waitsig();

	list_fds(fd_list_after, sizeof(fd_list_after));
	if (strcmp(fd_list_before, fd_list_after))
		fail("open fds changed:\n--- before\n%s--- after\n%s",
		     fd_list_before, fd_list_after);
	for (i = 0; i < NFDS; i++) {
		struct fdesc now = fds[i];

		record(&now);
		if (now.getfl != fds[i].getfl)
			fail("fd %d (%s): F_GETFL %#o, expected %#o", now.fd, now.what,
			     now.getfl, fds[i].getfl);
		if (now.getfd != fds[i].getfd)
			fail("fd %d (%s): F_GETFD %#x, expected %#x", now.fd, now.what,
			     now.getfd, fds[i].getfd);
		if (now.pos != fds[i].pos)
			fail("fd %d (%s): offset %lld, expected %lld", now.fd, now.what,
			     (long long)now.pos, (long long)fds[i].pos);
		if (now.dev != fds[i].dev || now.ino != fds[i].ino)
			fail("fd %d (%s): another file (inode %llu, expected %llu)",
			     now.fd, now.what, (unsigned long long)now.ino,
			     (unsigned long long)fds[i].ino);
	}

	/* The files are as they were left. */
	expect_file("ro.data", ro_data, sizeof(ro_data));
	expect_file("rw.data", rw_data, sizeof(rw_data));
	expect_file("wo.data", wo_data, sizeof(wo_data));
	expect_file("app.data", "line1\n", 6);

	/* Reading and writing continue where they were. */
	expect_read(F_RO, ro_data, 1000, 100);
	expect_read(F_RW, rw_data, 5100, 100);
	if (lseek(fds[F_DUP].fd, 0, SEEK_CUR) != 5200)
		fail("the dup of fd 11 no longer shares its offset (%lld, expected 5200)",
		     (long long)lseek(fds[F_DUP].fd, 0, SEEK_CUR));
	expect_read(F_DUP, rw_data, 5200, 50);
	if (lseek(fds[F_RW].fd, 0, SEEK_CUR) != 5250)
		fail("fd 11 no longer shares its offset with its dup");
	expect_read(F_CLOEXEC, ro_data, 7777, 100);
	expect_read(F_NONBLOCK, rw_data, 60000, 100);

	if (write(fds[F_WO].fd, "XYZ", 3) != 3)
		fail("write wo.data: %m");
	memcpy(wo_data + 12345, "XYZ", 3);
	expect_file("wo.data", wo_data, sizeof(wo_data));
	seek(F_APP, 0);		/* O_APPEND must ignore this */
	if (write(fds[F_APP].fd, "line2\n", 6) != 6)
		fail("write app.data: %m");
	expect_file("app.data", "line1\nline2\n", 12);

	if (read(fds[F_NULL].fd, chunk, sizeof(chunk)) != 0 ||
	    write(fds[F_NULL].fd, chunk, sizeof(chunk)) != sizeof(chunk))
		fail("/dev/null does not behave like /dev/null");
	if (read(fds[F_WO].fd, chunk, 1) != -1 || write(fds[F_RO].fd, chunk, 1) != -1)
		fail("access modes are not enforced any more");
	pass();
}
