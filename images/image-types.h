/*
 * Private to images/: what the library knows about each image type.
 */
#ifndef CRIU_LAZY_IMAGES_IMAGE_TYPES_H
#define CRIU_LAZY_IMAGES_IMAGE_TYPES_H

#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "images/image.h"

struct img_type_info {
	const char *pattern;		/* file name, "%lu" (or "%lx") where the id goes */
	uint32_t head_magic;		/* IMG_COMMON/SERVICE_MAGIC, 0 = none */
	uint32_t magic;			/* the type's own magic */
	const char *magic_name;		/* crit's name for the magic */
	const ProtobufCMessageDescriptor *desc;	/* record message */
};

const struct img_type_info *img_type_info(enum img_type type);

#endif
