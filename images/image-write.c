/*
 * Writing an image goes through a buffer: messages are packed straight
 * into it by a ProtobufCBuffer sink, and it is written out with full-write
 * loops when it fills, before raw access and at close.  The first write
 * error is logged and remembered; every later call returns it without
 * logging again.
 *
 * An image is written over the file of its name, if there is one, and the
 * file cut at the end written when it is closed (img_end_write()), not
 * truncated when it is opened: truncating an old image that has data (the
 * stats a restore writes each time, images dumped again into the same
 * directory) made ext4 free its blocks, wait for a write-back still running
 * from the last time the file was written, and write the new file out at
 * its close, 0.2 - 1.4 ms of a restore's return on the test VM.  Cut at
 * close, a file as long as before costs nothing more.
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

#define IMG_WBUF_SIZE (256u << 10)

/* Write all of @data to @fd; *@done says how much went, also on failure.
 * 0 or a negative errno (not logged). */
static int write_all(int fd, const void *data, size_t len, size_t *done)
{
	*done = 0;
	while (*done < len) {
		ssize_t n = write(fd, (const char *)data + *done, len - *done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		*done += n;
	}
	return 0;
}

/* Write all of @data at the current file offset (flushed offset @at). */
static int img_write_full(struct cr_img *img, const void *data, size_t len, off_t at)
{
	size_t done;
	int ret = write_all(img->fd, data, len, &done);

	if (ret) {
		errno = -ret;
		pr_perror("%s: can't write %zu bytes at offset %lld",
			  img->name, len - done, (long long)(at + done));
		img->err = ret;
	}
	return ret;
}

int img_flush(struct cr_img *img)
{
	size_t len = img->wlen;

	if (img->err || !len)
		return img->err;
	img->wlen = 0;
	return img_write_full(img, img->wbuf, len, img->off - len);
}

static void img_append(struct cr_img *img, const void *data, size_t len)
{
	if (img->err)
		return;
	if (img->wlen + len > IMG_WBUF_SIZE && img_flush(img))
		return;
	if (len >= IMG_WBUF_SIZE) {
		img->off += len;
		img_write_full(img, data, len, img->off - len);
		return;
	}
	memcpy(img->wbuf + img->wlen, data, len);
	img->wlen += len;
	img->off += len;
}

static void img_sink_append(ProtobufCBuffer *sink, size_t len, const uint8_t *data)
{
	struct cr_img *img = (struct cr_img *)((char *)sink - offsetof(struct cr_img, sink));

	img_append(img, data, len);
}

int img_open_write(struct cr_img *img, int dirfd, const struct img_type_info *ti)
{
	struct stat st;

	img->writing = true;
	img->sink.append = img_sink_append;
	img->wbuf = malloc(IMG_WBUF_SIZE);
	if (!img->wbuf) {
		pr_err("%s: out of memory\n", img->name);
		return -ENOMEM;
	}
	img->fd = openat(dirfd, img->name, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (img->fd < 0) {
		pr_perror("%s: can't create", img->name);
		return -errno;
	}
	if (fstat(img->fd, &st)) {
		pr_perror("%s: can't stat", img->name);
		return -errno;
	}
	img->size = S_ISREG(st.st_mode) ? st.st_size : 0;	/* an older file's bytes */
	if (ti->head_magic)
		img_append(img, &ti->head_magic, sizeof(ti->head_magic));
	img_append(img, &ti->magic, sizeof(ti->magic));
	return 0;
}

/*
 * The end of writing: what is buffered written out, the file cut at the end
 * written (an older file's bytes past it, space reserved and not used), or
 * at 0 after an error or img_discard(), as O_TRUNC would have left it with
 * nothing flushed.  0, or the first error (logged once).
 */
int img_end_write(struct cr_img *img)
{
	int ret = img_flush(img), err;
	off_t end = 0;

	if (!ret)
		ret = img_sync_offset(img);
	if (!ret)
		end = img->off;
	if ((img->size > end || img->reserved > end) && ftruncate(img->fd, end)) {
		err = -errno;
		pr_perror("%s: can't cut the file at its %lld bytes", img->name, (long long)end);
		return ret ? ret : err;
	}
	err = img_unreserve(img, end);	/* after an error too: the space back */
	return ret ? ret : err;
}

int img_write_entry(struct cr_img *img, const ProtobufCMessage *msg)
{
	size_t size;
	uint32_t len;
	int ret;

	if (!img->writing) {
		pr_err("%s: writing an image opened for reading\n", img->name);
		return -EINVAL;
	}
	if (img->err)
		return img->err;
	ret = img_sync_offset(img);
	if (ret)
		return ret;

	if (!protobuf_c_message_check(msg)) {
		pr_err("%s: %s entry at offset %lld lacks a required field\n",
		       img->name, msg->descriptor->name, (long long)img->off);
		return -EINVAL;
	}
	size = protobuf_c_message_get_packed_size(msg);
	if (size > UINT32_MAX) {
		pr_err("%s: %s entry at offset %lld is too large (%zu bytes)\n",
		       img->name, msg->descriptor->name, (long long)img->off, size);
		return -EFBIG;
	}
	len = size;
	img_append(img, &len, sizeof(len));
	protobuf_c_message_pack_to_buffer(msg, &img->sink);
	return img->err;
}

int img_write_one(int dirfd, enum img_type type, unsigned long id, const ProtobufCMessage *msg)
{
	struct cr_img *img;
	int ret, ret2;

	ret = img_open(dirfd, type, id, O_WRONLY, &img);
	if (ret)
		return ret;
	ret = img_write_entry(img, msg);
	ret2 = img_close(img);
	return ret ? ret : ret2;
}

int img_write_raw(struct cr_img *img, const void *data, size_t len)
{
	size_t done;
	int fd = img_raw_fd(img);

	return fd < 0 ? fd : write_all(fd, data, len, &done);
}
