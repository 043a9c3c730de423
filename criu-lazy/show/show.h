#ifndef CRIU_LAZY_SHOW_SHOW_H
#define CRIU_LAZY_SHOW_SHOW_H

#include <stdint.h>

#include "images/image.h"

/* Step over @bytes of raw data that follow a record (pipes-data,
 * sk-queues, tcp-stream, the ipcns images): -EBADMSG, logged, when the
 * file ends first (show.c). */
int show_skip_raw(struct cr_img *img, uint64_t bytes);

#endif
