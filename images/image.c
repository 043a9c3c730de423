/*
 * Image files: magic words and length-framed protobuf-c records.
 *
 * Reading goes through a buffer (a restore reads some hundred small images:
 * one read each, not two per record); the descriptor's own offset is ahead
 * of the next record by what is buffered, and img_raw_fd() puts it back
 * right after the last record, so raw data that follows a record can be
 * read straight from the descriptor.  An image whose raw data was read that
 * way is read unbuffered from then on (its records and data alternate).
 * The file size is taken at open, so a record whose length points past the
 * end of the file is reported as truncated before anything is allocated
 * for it.  The buffer is a byte larger than a small file: the one read of
 * it comes back short at that size, which is its end (no second read for
 * the 0 of end of file; a file grown since the open is read on).
 *
 * Writing is image-write.c's.
 *
 * Error lines name the file and the offset and carry no prefix of their
 * own: "restore: mm-4711.img: truncated entry at offset 812".
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "images/image.h"
#include "images/image-priv.h"
#include "images/image-types.h"
#include "images/magic.h"

#define IMG_RBUF_MAX (64u << 10)

/* Read up to @len bytes; fewer only at end of file.  Bytes read or -errno. */
static ssize_t read_full(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, (char *)buf + done, len - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += n;
	}
	return done;
}

/* Up to @len bytes of the image, through its buffer; fewer only at end of
 * file.  Bytes read or -errno. */
static ssize_t img_read(struct cr_img *img, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		size_t have = img->rlen - img->rpos, want = len - done;
		ssize_t n;

		if (have) {
			n = have < want ? have : want;
			memcpy((char *)buf + done, img->rbuf + img->rpos, n);
			img->rpos += n;
			done += n;
			continue;
		}
		if (img->at_eof)
			break;
		if (img->unbuffered || !img->rbuf || want >= img->rcap) {
			n = read_full(img->fd, (char *)buf + done, want);
			if (n > 0)
				img->rdone += n;
			return n < 0 ? n : (ssize_t)(done + n);
		}
		n = read(img->fd, img->rbuf, img->rcap);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		img->rpos = 0;
		img->rlen = n;
		img->rdone += n;
		/* short, and up to the size of a regular file: its end */
		img->at_eof = (size_t)n < img->rcap && img->rdone == img->size;
	}
	return done;
}

/* After raw access through img_raw_fd() the file offset is the caller's. */
int img_sync_offset(struct cr_img *img)
{
	off_t pos;

	if (!img->raw_used)
		return 0;
	pos = lseek(img->fd, 0, SEEK_CUR);
	if (pos < 0) {
		pr_perror("%s: can't get the file offset", img->name);
		return -errno;
	}
	img->off = pos + img->wlen;
	img->raw_used = false;
	return 0;
}

static int img_read_magic(struct cr_img *img, const struct img_type_info *ti)
{
	uint32_t words[2];
	ssize_t n;

	n = img_read(img, &words[0], sizeof(words[0]));
	if (n < 0) {
		errno = -n;
		pr_perror("%s: can't read the magic", img->name);
		return n;
	}
	if (n < (ssize_t)sizeof(words[0])) {
		pr_err("%s: truncated magic at offset 0 (file has %zd bytes)\n", img->name, n);
		return -EBADMSG;
	}
	img->off = sizeof(words[0]);

	/* img_version 1 images carry the type magic alone */
	if (words[0] == ti->magic)
		return 0;
	if (!ti->head_magic || words[0] != ti->head_magic) {
		pr_err("%s: bad magic 0x%08x (expected 0x%08x)\n", img->name, words[0],
		       ti->head_magic ? ti->head_magic : ti->magic);
		return -EBADMSG;
	}

	n = img_read(img, &words[1], sizeof(words[1]));
	if (n < 0) {
		errno = -n;
		pr_perror("%s: can't read the magic", img->name);
		return n;
	}
	if (n < (ssize_t)sizeof(words[1])) {
		pr_err("%s: truncated magic at offset 4\n", img->name);
		return -EBADMSG;
	}
	if (words[1] != ti->magic) {
		pr_err("%s: bad magic 0x%08x (expected 0x%08x)\n", img->name, words[1], ti->magic);
		return -EBADMSG;
	}
	img->off += sizeof(words[1]);
	return 0;
}

int img_open_regular(int dirfd, const char *name, struct stat *st)
{
	/* O_NONBLOCK: opening a FIFO must not wait for a writer (it stays: a
	 * regular file reads the same with it, and saves an fcntl a file) */
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY), err;

	if (fd < 0) {
		err = errno;
		if (err != ENOENT)
			pr_perror("%s: can't open", name);
		return -err;
	}
	if (fstat(fd, st)) {
		err = errno;
		pr_perror("%s: can't stat", name);
		close(fd);
		return -err;
	}
	if (!S_ISREG(st->st_mode)) {
		pr_err("%s: not a regular file\n", name);
		close(fd);
		return -EINVAL;
	}
	return fd;
}

static int img_open_read(struct cr_img *img, int dirfd, const struct img_type_info *ti)
{
	struct stat st;

	img->fd = img_open_regular(dirfd, img->name, &st);
	if (img->fd < 0)
		return img->fd;
	img->size = st.st_size;
	/* a byte more than the file: its one read comes back short, at its end */
	img->rcap = st.st_size < IMG_RBUF_MAX ? (st.st_size < 511 ? 512 : st.st_size + 1) :
		    IMG_RBUF_MAX;
	img->rbuf = malloc(img->rcap);	/* without it: unbuffered */
	return img_read_magic(img, ti);
}

int img_open(int dirfd, enum img_type type, unsigned long id, int flags, struct cr_img **out)
{
	const struct img_type_info *ti = img_type_info(type);
	struct cr_img *img;
	int ret;

	if (!ti || (flags != O_RDONLY && flags != O_WRONLY)) {
		pr_err("img_open: bad image type %d or flags %#x\n", type, flags);
		return -EINVAL;
	}
	img = calloc(1, sizeof(*img));
	if (!img) {
		pr_err("img_open: out of memory\n");
		return -ENOMEM;
	}
	img->fd = -1;
	img->type = type;
	ret = img_format_name(type, id, img->name, sizeof(img->name));
	if (ret) {
		pr_err("img_open: image name too long\n");
		goto err_free;
	}

	if (flags == O_RDONLY)
		ret = img_open_read(img, dirfd, ti);
	else
		ret = img_open_write(img, dirfd, ti);
	if (ret)
		goto err_close;

	*out = img;
	return 0;

err_close:
	if (img->fd >= 0)
		close(img->fd);
err_free:
	free(img->wbuf);
	free(img->rbuf);
	free(img);
	return ret;
}

int img_open_existing(int dirfd, enum img_type type, unsigned long id, struct cr_img **out)
{
	char name[IMG_NAME_MAX];
	int ret;

	ret = img_open(dirfd, type, id, O_RDONLY, out);
	if (ret == -ENOENT) {
		img_format_name(type, id, name, sizeof(name));
		pr_err("%s: missing\n", name);
	}
	return ret;
}

int img_read_entry(struct cr_img *img, const ProtobufCMessageDescriptor *desc,
		   ProtobufCMessage **out)
{
	ProtobufCMessage *msg;
	uint8_t *buf;
	uint32_t len;
	off_t start;
	ssize_t n;
	int ret;

	if (img->writing) {
		pr_err("%s: reading an image opened for writing\n", img->name);
		return -EINVAL;
	}
	ret = img_sync_offset(img);
	if (ret)
		return ret;
	start = img->off;

	n = img_read(img, &len, sizeof(len));
	if (n < 0)
		goto err_read;
	if (n == 0)
		return 0;
	if (n < (ssize_t)sizeof(len) ||
	    (uint64_t)start + sizeof(len) + len > (uint64_t)img->size)
		goto err_truncated;

	buf = malloc(len ? len : 1);
	if (!buf) {
		pr_err("%s: out of memory for an entry of %u bytes at offset %lld\n",
		       img->name, len, (long long)start);
		return -ENOMEM;
	}
	n = img_read(img, buf, len);
	if (n < 0 || n < (ssize_t)len) {
		free(buf);
		if (n < 0)
			goto err_read;
		goto err_truncated;
	}
	img->off = start + sizeof(len) + len;

	msg = protobuf_c_message_unpack(desc, NULL, len, buf);
	free(buf);
	if (!msg) {
		pr_err("%s: corrupted entry at offset %lld\n", img->name, (long long)start);
		return -EBADMSG;
	}
	*out = msg;
	return 1;

err_read:
	errno = -n;
	pr_perror("%s: can't read the entry at offset %lld", img->name, (long long)start);
	return n;
err_truncated:
	pr_err("%s: truncated entry at offset %lld\n", img->name, (long long)start);
	return -EBADMSG;
}

int img_for_each_entry(int dirfd, enum img_type type, unsigned long id,
		       const ProtobufCMessageDescriptor *desc,
		       int (*fn)(struct cr_img *img, ProtobufCMessage *msg, void *arg), void *arg)
{
	ProtobufCMessage *msg;
	struct cr_img *img;
	int ret;

	ret = img_open(dirfd, type, id, O_RDONLY, &img);
	if (ret == -ENOENT)
		return 0;
	if (ret)
		return ret;
	while ((ret = img_read_entry(img, desc, &msg)) > 0) {
		ret = fn(img, msg, arg);
		protobuf_c_message_free_unpacked(msg, NULL);
		if (ret)
			break;
	}
	img_close(img);
	return ret;
}

int img_read_one(int dirfd, enum img_type type, unsigned long id,
		 const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out)
{
	struct cr_img *img;
	ProtobufCMessage *msg = NULL;
	char extra;
	ssize_t n;
	int ret;

	ret = img_open_existing(dirfd, type, id, &img);
	if (ret)
		return ret;

	ret = img_read_entry(img, desc, &msg);
	if (ret < 0)
		goto out_close;
	if (ret == 0) {
		pr_err("%s: no entry in the image\n", img->name);
		ret = -EBADMSG;
		goto out_close;
	}

	n = img_read(img, &extra, 1);
	if (n != 0) {
		if (n < 0) {
			errno = -n;
			pr_perror("%s: can't read at offset %lld", img->name, (long long)img->off);
			ret = n;
		} else {
			pr_err("%s: more than one entry (another one at offset %lld)\n",
			       img->name, (long long)img->off);
			ret = -EBADMSG;
		}
		goto out_free;
	}

	*out = msg;
	ret = 0;
	goto out_close;

out_free:
	protobuf_c_message_free_unpacked(msg, NULL);
out_close:
	img_close(img);
	return ret;
}

int img_raw_fd(struct cr_img *img)
{
	if (img->writing && img_flush(img))
		return img->err;
	/* the descriptor back right after the last record */
	if (!img->writing && img->rlen > img->rpos &&
	    lseek(img->fd, img->off, SEEK_SET) != img->off) {
		pr_perror("%s: can't seek to offset %lld", img->name, (long long)img->off);
		return -errno;
	}
	img->rpos = img->rlen = 0;
	img->unbuffered = true;
	img->at_eof = false;	/* the offset is the caller's now */
	img->raw_used = true;
	return img->fd;
}

const char *img_name(const struct cr_img *img)
{
	return img->name;
}

off_t img_offset(struct cr_img *img)
{
	int ret = img_sync_offset(img);

	return ret ? ret : img->off;
}

int img_close(struct cr_img *img)
{
	int ret;

	if (!img)
		return 0;
	ret = img->writing ? img_end_write(img) : 0;
	if (close(img->fd) && img->writing && !ret) {
		pr_perror("%s: error when closing", img->name);
		ret = -errno;
	}
	free(img->wbuf);
	free(img->rbuf);
	free(img);
	return ret;
}

void img_discard(struct cr_img *img)
{
	if (img && !img->err)
		img->err = -ECANCELED;	/* nothing flushed, nothing logged */
	img_close(img);
}

int img_close_keep(struct cr_img *img, int err)
{
	int ret;

	if (!img)
		return err;
	ret = img_close(img);
	return err ?: ret;
}
