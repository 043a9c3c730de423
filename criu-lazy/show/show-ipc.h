#ifndef CRIU_LAZY_SHOW_IPC_H
#define CRIU_LAZY_SHOW_IPC_H

#include <protobuf-c/protobuf-c.h>

#include "images/image.h"

/* After a record of an ipcns-msg/sem/shm image: step over its data
 * (show-ipc.c).  0 for any other type. */
int show_ipc_skip(struct cr_img *img, enum img_type type, const ProtobufCMessage *msg);

#endif
