/*
 * Reserved space of an image being written (img_reserve()): taken from
 * the file system ahead of the writes that fill it, so that they cannot
 * fail for want of space (a dump's last images, written after a step it
 * cannot undo).
 *
 * fallocate(FALLOC_FL_KEEP_SIZE) gives a file blocks (on tmpfs, pages)
 * past its end that later writes use without asking the file system
 * again; the size stays, so a reader sees nothing of them.  Where the file
 * system has no fallocate, zeros written past the end hold the space
 * instead, for the writes to overwrite.  Cutting the file at the end
 * written (ftruncate in img_end_write(), which on tmpfs frees what lies
 * past the size even when the size does not change) and punching the rest
 * (ext4 and xfs keep blocks past the size otherwise) gives back what was
 * not used.  A copy-on-write file system (btrfs) keeps the promise only
 * for the first write of each block, which is the only one an image gets.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

#include "common/log.h"
#include "images/image-priv.h"

#define RESERVE_BLOCK 4096

/* to the end of its block: taken anyway, room for a little more */
static off_t block_end(off_t end)
{
	return (end + RESERVE_BLOCK - 1) / RESERVE_BLOCK * RESERVE_BLOCK;
}

/* Bytes [0, @end) of @fd held, zeros written from @from where no fallocate. */
static int file_reserve(int fd, off_t from, off_t end)
{
	static const char zeros[4096];

	if (!fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, end))
		return 0;
	if (errno != EOPNOTSUPP)
		return -errno;
	while (from < end) {
		size_t len = end - from < (off_t)sizeof(zeros) ? (size_t)(end - from) : sizeof(zeros);
		ssize_t n = pwrite(fd, zeros, len, from);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		from += n;
	}
	return 0;
}

int img_reserve(struct cr_img *img, uint64_t bytes)
{
	off_t end = block_end(img->off + bytes);
	int ret;

	if (!img->writing || img->err)
		return img->err ? img->err : -EINVAL;
	if (end <= img->reserved)
		return 0;
	ret = file_reserve(img->fd, img->off, end);
	if (!ret)
		img->reserved = end;
	return ret;
}

int img_unreserve(struct cr_img *img, off_t end)
{
	if (img->reserved <= end)
		return 0;
	if (fallocate(img->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, end,
		      img->reserved - end) && errno != EOPNOTSUPP) {
		pr_perror("%s: can't give back the space reserved past its %lld bytes", img->name,
			  (long long)end);
		return -errno;
	}
	return 0;
}
