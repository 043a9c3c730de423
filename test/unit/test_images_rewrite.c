/*
 * Unit tests of an image written where one is already (images/image-write.c):
 * the file is written over, not truncated at open, and cut at the end
 * written when it is closed; after an error or a discard nothing of the
 * older image is left.  Prints "ok - NAME" or "FAIL - NAME" per case; the
 * exit status is the number of failures.
 */
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "test_images.h"

/* The entries of pstree.img, or -errno. */
static int count_entries(int dirfd)
{
	ProtobufCMessage *msg;
	struct cr_img *img;
	int n = 0, ret;

	ret = img_open(dirfd, IMG_PSTREE, 0, O_RDONLY, &img);
	if (ret)
		return ret;
	while ((ret = img_read_entry(img, &pstree_entry__descriptor, &msg)) == 1) {
		CHECK(((PstreeEntry *)msg)->pid == 100 + (unsigned)n, "entry %d", n);
		protobuf_c_message_free_unpacked(msg, NULL);
		n++;
	}
	img_close(img);
	return ret ? ret : n;
}

static ino_t inode_of(int dirfd, const char *name)
{
	struct stat st;

	return fstatat(dirfd, name, &st, 0) ? 0 : st.st_ino;
}

/* A shorter image over a longer one: the same file, cut at its end. */
static int test_shorter_over_longer(int dirfd)
{
	off_t small;
	ino_t ino;

	CHECK(write_pstree(dirfd, 3, 0) == 0, "");
	small = file_size(dirfd, "pstree.img");
	CHECK(write_pstree(dirfd, 30000, 0) == 0, "");
	CHECK(file_size(dirfd, "pstree.img") > (256 << 10), "more than one buffer");
	ino = inode_of(dirfd, "pstree.img");
	CHECK(write_pstree(dirfd, 3, 0) == 0, "");
	CHECK(file_size(dirfd, "pstree.img") == small, "%lld bytes, not %lld",
	      (long long)file_size(dirfd, "pstree.img"), (long long)small);
	CHECK(inode_of(dirfd, "pstree.img") == ino, "written over, not replaced");
	CHECK(count_entries(dirfd) == 3, "%d entries", count_entries(dirfd));
	return 0;
}

/* A longer image over a shorter one, and one as long: read back whole. */
static int test_longer_and_same(int dirfd)
{
	off_t size;

	CHECK(write_pstree(dirfd, 5, 0) == 0, "");
	CHECK(write_pstree(dirfd, 500, 0) == 0, "");
	CHECK(count_entries(dirfd) == 500, "%d entries", count_entries(dirfd));
	size = file_size(dirfd, "pstree.img");
	CHECK(write_pstree(dirfd, 500, 0) == 0, "");
	CHECK(file_size(dirfd, "pstree.img") == size, "");
	CHECK(count_entries(dirfd) == 500, "%d entries", count_entries(dirfd));
	return 0;
}

/* Discarded over an older image: empty, as with O_TRUNC and nothing
 * flushed, never the older image under a new name's promise. */
static int test_discard_over_older(int dirfd)
{
	PstreeEntry e = PSTREE_ENTRY__INIT;
	struct cr_img *img;

	CHECK(write_pstree(dirfd, 1000, 0) == 0, "");
	CHECK(img_open(dirfd, IMG_PSTREE, 0, O_WRONLY, &img) == 0, "");
	CHECK(img_write_entry(img, &e.base) == 0, "");
	img_discard(img);
	CHECK(file_size(dirfd, "pstree.img") == 0, "%lld bytes left",
	      (long long)file_size(dirfd, "pstree.img"));
	return 0;
}

/* Space reserved past what is written over an older, longer image: the
 * file ends where the writes did, the entries read back. */
static int test_reserve_over_older(int dirfd)
{
	PstreeEntry e = PSTREE_ENTRY__INIT;
	struct cr_img *img;
	off_t one;

	CHECK(write_pstree(dirfd, 1, 0) == 0, "");
	one = file_size(dirfd, "pstree.img");
	CHECK(write_pstree(dirfd, 2000, 0) == 0, "");
	CHECK(img_open(dirfd, IMG_PSTREE, 0, O_WRONLY, &img) == 0, "");
	CHECK(img_reserve(img, 1 << 20) == 0, "");
	e.pid = e.pgid = e.sid = 100;	/* write_pstree()'s first entry */
	CHECK(img_write_entry(img, &e.base) == 0, "");
	CHECK(img_close(img) == 0, "");
	CHECK(file_size(dirfd, "pstree.img") == one, "%lld bytes, not %lld",
	      (long long)file_size(dirfd, "pstree.img"), (long long)one);
	CHECK(count_entries(dirfd) == 1, "");
	return 0;
}

/* A write that fails over an older image (the file size limit): one error
 * line, and nothing of either image left. */
static int test_error_over_older(int dirfd)
{
	struct rlimit old, lim = { 64 << 10, 64 << 10 };
	struct capture c;
	int ret;

	CHECK(write_pstree(dirfd, 30000, 0) == 0, "");
	CHECK(file_size(dirfd, "pstree.img") > (128 << 10), "");
	CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0, "");
	lim.rlim_max = old.rlim_max;
	signal(SIGXFSZ, SIG_IGN);
	CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0, "");
	capture_start(&c);
	ret = write_pstree(dirfd, 30000, 0);
	capture_end(&c);
	setrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, SIG_DFL);
	CHECK(ret == -EFBIG && strstr(c.text, "pstree.img: can't write"),
	      "ret %d, said '%s'", ret, c.text);
	CHECK(!strstr(strstr(c.text, "can't write") + 1, "can't"), "logged twice: '%s'", c.text);
	CHECK(file_size(dirfd, "pstree.img") == 0, "%lld bytes left",
	      (long long)file_size(dirfd, "pstree.img"));
	return 0;
}

static const struct test_case cases[] = {
	{ "shorter image over a longer one",	test_shorter_over_longer },
	{ "longer and as long",			test_longer_and_same },
	{ "discarded over an older image",	test_discard_over_older },
	{ "reserved space over an older image",	test_reserve_over_older },
	{ "write error over an older image",	test_error_over_older },
};

int main(void)
{
	return run_cases("test_images_rewrite", cases, sizeof(cases) / sizeof(cases[0]));
}
