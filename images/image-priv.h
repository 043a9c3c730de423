/*
 * What image.c (opening, reading, closing) and image-write.c share: the
 * image object itself.  Private to images/.
 */
#ifndef CRIU_LAZY_IMAGES_IMAGE_PRIV_H
#define CRIU_LAZY_IMAGES_IMAGE_PRIV_H

#include <stdbool.h>
#include <sys/types.h>

#include <protobuf-c/protobuf-c.h>

#include "images/image.h"
#include "images/image-types.h"

struct cr_img {
	int fd;
	enum img_type type;
	bool writing;
	bool raw_used;		/* the caller may have moved the file offset */
	bool unbuffered;	/* reading: raw data was read, no read-ahead */
	bool at_eof;		/* reading, buffered: a short read ended at size */
	off_t off;		/* offset of the next record (buffered bytes included) */
	off_t size;		/* the file's size at open (writing: an older file's) */
	int err;		/* writing: first error, already logged */
	off_t reserved;		/* writing: img_reserve() holds the file up to here */
	ProtobufCBuffer sink;	/* protobuf-c packs into wbuf through this */
	unsigned char *wbuf;
	size_t wlen;
	unsigned char *rbuf;	/* reading: bytes [rpos, rlen) come next */
	size_t rpos, rlen, rcap;
	off_t rdone;		/* reading, buffered: bytes read from the descriptor */
	char name[IMG_NAME_MAX];
};

/* image.c: the file offset back in img->off after raw access.  0 or -errno. */
int img_sync_offset(struct cr_img *img);

/* image-write.c */
int img_open_write(struct cr_img *img, int dirfd, const struct img_type_info *ti);
/* Write out what is buffered: 0, or the first write error (logged once). */
int img_flush(struct cr_img *img);
/* At close: flush, then cut the file at the end written (at 0 after an
 * error).  0, or the first error (logged once). */
int img_end_write(struct cr_img *img);

/* reserve.c: what img_reserve() took past @end, where the file was cut,
 * given back.  0 or -errno, logged. */
int img_unreserve(struct cr_img *img, off_t end);

#endif
