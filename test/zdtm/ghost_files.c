/*
 * Deleted files still held (ghost files) and a deleted working directory:
 *   fd 20  "ghost-small", 5000 bytes (written raw in the images), O_RDWR,
 *          offset 100, mode 0640, owner 1234:5678, mtime set in the past
 *   fd 21  the same file opened again O_WRONLY|O_APPEND, FD_CLOEXEC (one
 *          inode, two open file descriptions)
 *   fd 22  "ghost-sparse", 512 KiB with data only in pages 0 and 10 and
 *          the last 100 bytes (written in chunks; the rest stay holes),
 *          O_RDONLY, offset 4096
 *   fd 23  "ghost-shared", 4 pages, O_RDWR, also mapped MAP_SHARED and
 *          written through the mapping after the unlink
 *   a MAP_PRIVATE mapping of "ghost-private" (8 pages, no fd left), pages
 *          1 and 5 written (copy-on-write), the others the file's
 *   cwd    "ghost-cwd", removed while it is the working directory
 *   fd 26  "ghost-cwd/inner", 6 bytes, deleted with its directory, the cwd
 *   fd 25  "ghost-gone/inner", 10 bytes, whose directory was removed too
 *          (the restore makes the directory again, and removes it)
 *   --big SIZE: fd 24, a deleted file of SIZE bytes (for --ghost-limit)
 *   --child: a child inherits all of it; after the restore it checks fd 20
 *          and the shared mapping, and moves the offset of fd 20, which the
 *          parent must see (one open file of one deleted file for both)
 * After SIGTERM: every fd's link, flags, offset, inode sharing, nlink 0,
 * mode, owner, size, mtime; contents byte for byte, holes still holes;
 * both mappings' contents, and the shared one still the file's; cwd
 * still the deleted directory.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "lib/waiter.h"
#include "lib/zdtmtst.h"

#define SMALL_SIZE	5000
#define SPARSE_SIZE	(128 * PAGE_SIZE)
#define SHARED_PAGES	4
#define PRIV_PAGES	8
#define SEED_SMALL	0x67686f7374ULL
#define SEED_SPARSE	0x7370617273ULL
#define SEED_SHARED	0x7368617265ULL
#define SEED_PRIV	0x7072697661ULL
#define SEED_COW	0x636f77ULL
#define SEED_BIG	0x626967ULL
#define MTIME		1234567890

static uint8_t buf[SPARSE_SIZE + 16], want[SPARSE_SIZE];
static struct fd_snapshot before[7];
static char cwd_link[256];
static size_t big_size;
static int with_child;

/* The child, after the restore: 0 if what it holds is right. */
static int child_check(void *arg)
{
	const uint8_t *shared = arg;

	pattern_fill(want, SMALL_SIZE, SEED_SMALL);
	if (pread(20, buf, SMALL_SIZE, 0) != SMALL_SIZE || memcmp(buf, want, SMALL_SIZE))
		return 3;
	pattern_fill(want, SHARED_PAGES * PAGE_SIZE, SEED_SHARED);
	pattern_fill(want + PAGE_SIZE, PAGE_SIZE, SEED_SHARED + 1000);
	if (memcmp(shared, want, SHARED_PAGES * PAGE_SIZE))
		return 4;
	if (lseek(20, 4321, SEEK_SET) != 4321)
		return 5;
	return 0;
}

static struct stat st_of(int fd)
{
	struct stat st;

	if (fstat(fd, &st))
		fail("fstat %d: %m", fd);
	return st;
}

/* A new empty file, read-write, to be filled and unlinked. */
static int make_deleted(const char *name)
{
	int fd = open(name, O_RDWR | O_CREAT | O_TRUNC, 0600);

	if (fd < 0)
		fail("creating %s: %m", name);
	return fd;
}

static void write_at(int fd, const void *data, size_t len, off_t off, const char *what)
{
	if (pwrite(fd, data, len, off) != (ssize_t)len)
		fail("writing %s: %m", what);
}

/* The sparse file: data at pages 0 and 10 and the last 100 bytes. */
static void sparse_want(void)
{
	memset(want, 0, sizeof(want));
	pattern_fill(want, PAGE_SIZE, SEED_SPARSE);
	pattern_fill(want + 10 * PAGE_SIZE, PAGE_SIZE, SEED_SPARSE + 10);
	pattern_fill(want + SPARSE_SIZE - 100, 100, SEED_SPARSE + 99);
}

static void check_holes(int fd)
{
	off_t data = lseek(fd, 0, SEEK_DATA), hole = lseek(fd, 0, SEEK_HOLE);

	if (data != 0 || hole != PAGE_SIZE)
		fail("fd 22: first data %lld, first hole %lld: expected 0 and %lu", (long long)data,
		     (long long)hole, PAGE_SIZE);
	data = lseek(fd, PAGE_SIZE, SEEK_DATA);
	if (data != 10 * PAGE_SIZE)
		fail("fd 22: data after page 0 starts at %lld, expected page 10 (%lu): the "
		     "holes were filled", (long long)data, 10 * PAGE_SIZE);
	data = lseek(fd, 11 * PAGE_SIZE, SEEK_DATA);
	if (data != (off_t)(SPARSE_SIZE - PAGE_SIZE))
		fail("fd 22: data after page 10 starts at %lld, expected the last page",
		     (long long)data);
}

int main(int argc, char **argv)
{
	static const struct test_opt opts[] = {
		{ "big", TEST_OPT_SIZE, &big_size, 0, "a deleted file of this size as fd 24" },
		{ "child", TEST_OPT_FLAG, &with_child, 0, "a child holds it all too" },
		{ NULL },
	};
	struct timeval tv[2] = { { MTIME, 0 }, { MTIME, 0 } };
	uint8_t *shared, *priv;
	struct stat st;
	struct waiter child;
	int fd;

	test_init(argc, argv, opts);

	/* fd 20, 21: small, raw in the images, metadata set */
	fd = make_deleted("ghost-small");
	pattern_fill(want, SMALL_SIZE, SEED_SMALL);
	write_at(fd, want, SMALL_SIZE, 0, "ghost-small");
	if (fchmod(fd, 0640) || fchown(fd, 1234, 5678) || futimes(fd, tv))
		fail("ghost-small: metadata: %m");
	fd_place(fd, 20, 0);
	fd_place(open("ghost-small", O_WRONLY | O_APPEND), 21, 1);
	lseek(20, 100, SEEK_SET);

	/* fd 22: sparse */
	sparse_want();
	fd = make_deleted("ghost-sparse");
	if (ftruncate(fd, SPARSE_SIZE))
		fail("ghost-sparse: ftruncate: %m");
	write_at(fd, want, PAGE_SIZE, 0, "ghost-sparse");
	write_at(fd, want + 10 * PAGE_SIZE, PAGE_SIZE, 10 * PAGE_SIZE, "ghost-sparse");
	write_at(fd, want + SPARSE_SIZE - 100, 100, SPARSE_SIZE - 100, "ghost-sparse");
	close(fd);
	fd_place(open("ghost-sparse", O_RDONLY), 22, 0);
	lseek(22, PAGE_SIZE, SEEK_SET);

	/* fd 23 and its shared mapping */
	fd = make_deleted("ghost-shared");
	pattern_fill(want, SHARED_PAGES * PAGE_SIZE, SEED_SHARED);
	write_at(fd, want, SHARED_PAGES * PAGE_SIZE, 0, "ghost-shared");
	fd_place(fd, 23, 0);
	shared = mmap(NULL, SHARED_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, 23, 0);
	if (shared == MAP_FAILED)
		fail("mmap ghost-shared: %m");

	/* a private mapping, no fd */
	fd = make_deleted("ghost-private");
	pattern_fill(want, PRIV_PAGES * PAGE_SIZE, SEED_PRIV);
	write_at(fd, want, PRIV_PAGES * PAGE_SIZE, 0, "ghost-private");
	priv = mmap(NULL, PRIV_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (priv == MAP_FAILED)
		fail("mmap ghost-private: %m");
	close(fd);

	if (big_size) {
		static uint8_t chunk[1 << 16];

		fd = make_deleted("ghost-big");
		for (size_t off = 0; off < big_size; off += sizeof(chunk)) {
			size_t n = big_size - off < sizeof(chunk) ? big_size - off : sizeof(chunk);

			pattern_fill(chunk, n, SEED_BIG + off);
			write_at(fd, chunk, n, off, "ghost-big");
		}
		fd_place(fd, 24, 0);
	}

	if (unlink("ghost-small") || unlink("ghost-sparse") || unlink("ghost-shared") ||
	    unlink("ghost-private") || (big_size && unlink("ghost-big")))
		fail("unlink: %m");
	/* after the unlink: the mapping writes to the deleted file */
	pattern_fill(shared + PAGE_SIZE, PAGE_SIZE, SEED_SHARED + 1000);
	pattern_fill(priv + PAGE_SIZE, PAGE_SIZE, SEED_COW + 1);
	pattern_fill(priv + 5 * PAGE_SIZE, PAGE_SIZE, SEED_COW + 5);

	if (mkdir("ghost-gone", 0700))
		fail("mkdir ghost-gone: %m");
	fd = make_deleted("ghost-gone/inner");
	write_at(fd, "0123456789", 10, 0, "ghost-gone/inner");
	fd_place(fd, 25, 0);
	if (unlink("ghost-gone/inner") || rmdir("ghost-gone"))
		fail("removing ghost-gone: %m");

	if (mkdir("ghost-cwd", 0700) || chmod("ghost-cwd", 0750) || chdir("ghost-cwd"))
		fail("a deleted cwd: %m");
	fd = make_deleted("inner");
	write_at(fd, "inside", 6, 0, "ghost-cwd/inner");
	fd_place(fd, 26, 0);
	if (unlink("inner") || rmdir("../ghost-cwd"))
		fail("a deleted cwd: %m");

	for (int i = 0; i < 7; i++) {
		if (i == 4 && !big_size)
			continue;
		fd_snapshot_take(20 + i, &before[i]);
	}
	link_read("/proc/self/cwd", cwd_link, sizeof(cwd_link));
	test_msg("fd 20 is %s, cwd %s\n", before[0].link, cwd_link);

	if (with_child)
		waiter_fork(&child, child_check, shared);

	test_daemon();
	test_waitsig();

	for (int i = 0; i < 7; i++) {
		if (i == 4 && !big_size)
			continue;
		fd_snapshot_expect(20 + i, &before[i]);
		if (st_of(20 + i).st_nlink != 0)
			fail("fd %d: the file has %lu links: it is not deleted", 20 + i,
			     (unsigned long)st_of(20 + i).st_nlink);
	}

	if (pread(20, buf, SMALL_SIZE + 10, 0) != SMALL_SIZE)
		fail("fd 20: not %d bytes", SMALL_SIZE);
	pattern_expect("fd 20: contents", buf, SMALL_SIZE, SEED_SMALL);
	st = st_of(20);
	if (st.st_ino != st_of(21).st_ino)
		fail("fds 20 and 21 are not one file any more");
	if ((st.st_mode & 07777) != 0640 || st.st_uid != 1234 || st.st_gid != 5678 ||
	    st.st_size != SMALL_SIZE || st.st_mtime != MTIME)
		fail("fd 20: mode %#o owner %u:%u size %lld mtime %lld, expected 0640 1234:5678 "
		     "%d %d", st.st_mode & 07777, st.st_uid, st.st_gid, (long long)st.st_size,
		     (long long)st.st_mtime, SMALL_SIZE, MTIME);

	if (with_child) {
		waiter_wake(&child, "3: fd 20, 4: the shared mapping, 5: lseek");
		if (lseek(20, 0, SEEK_CUR) != 4321)
			fail("fd 20 is not shared with the child any more: offset %lld",
			     (long long)lseek(20, 0, SEEK_CUR));
		lseek(20, before[0].pos, SEEK_SET);
	}

	sparse_want();
	if (st_of(22).st_size != SPARSE_SIZE ||
	    pread(22, buf, SPARSE_SIZE + 10, 0) != (ssize_t)SPARSE_SIZE)
		fail("fd 22: not %lu bytes", SPARSE_SIZE);
	if (memcmp(buf, want, SPARSE_SIZE))
		fail("fd 22: contents differ");
	check_holes(22);

	pattern_fill(want, SHARED_PAGES * PAGE_SIZE, SEED_SHARED);
	pattern_fill(want + PAGE_SIZE, PAGE_SIZE, SEED_SHARED + 1000);
	if (memcmp(shared, want, SHARED_PAGES * PAGE_SIZE))
		fail("the shared mapping of ghost-shared differs");
	if (pread(23, buf, SHARED_PAGES * PAGE_SIZE, 0) != SHARED_PAGES * PAGE_SIZE ||
	    memcmp(buf, want, SHARED_PAGES * PAGE_SIZE))
		fail("fd 23: contents differ");
	/* still one file: a write through the mapping shows through fd 23 */
	shared[3 * PAGE_SIZE + 7] ^= 0xff;
	if (pread(23, buf, 1, 3 * PAGE_SIZE + 7) != 1 || buf[0] != shared[3 * PAGE_SIZE + 7])
		fail("fd 23 and the shared mapping are no longer the same file");

	pattern_fill(want, PRIV_PAGES * PAGE_SIZE, SEED_PRIV);
	pattern_fill(want + PAGE_SIZE, PAGE_SIZE, SEED_COW + 1);
	pattern_fill(want + 5 * PAGE_SIZE, PAGE_SIZE, SEED_COW + 5);
	for (int i = 0; i < PRIV_PAGES; i++)
		if (memcmp(priv + i * PAGE_SIZE, want + i * PAGE_SIZE, PAGE_SIZE))
			fail("the private mapping of ghost-private: page %d differs", i);

	if (pread(25, buf, 20, 0) != 10 || memcmp(buf, "0123456789", 10))
		fail("fd 25: contents differ");
	if (pread(26, buf, 20, 0) != 6 || memcmp(buf, "inside", 6))
		fail("fd 26: contents differ");

	if (big_size) {
		static uint8_t chunk[1 << 16];

		for (size_t off = 0; off < big_size; off += sizeof(chunk)) {
			size_t n = big_size - off < sizeof(chunk) ? big_size - off : sizeof(chunk);

			if (pread(24, chunk, n, off) != (ssize_t)n)
				fail("fd 24: short read at %zu", off);
			pattern_expect("fd 24: contents", chunk, n, SEED_BIG + off);
		}
	}

	{
		char now[256];

		link_read("/proc/self/cwd", now, sizeof(now));
		if (strcmp(now, cwd_link))
			fail("cwd is %s, expected %s", now, cwd_link);
		if (stat(".", &st) || !S_ISDIR(st.st_mode) || st.st_nlink != 0 ||
		    (st.st_mode & 07777) != 0750)
			fail("cwd: not a deleted directory of mode 0750 (nlink %lu, mode %#o)",
			     (unsigned long)st.st_nlink, st.st_mode);
	}
	pass();
}
