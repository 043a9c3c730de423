/*
 * The bytes buffered in a pipe or a FIFO, both sides: copied at dump
 * without being consumed, written as (pipe_data_entry + raw bytes)* into
 * pipes-data.img or fifo-data.img, read back before any task exists, and
 * poured into the new pipe at restore.  Used by pipe.c and fifo.c.
 */
#ifndef CRIU_LAZY_FILES_PIPE_DATA_H
#define CRIU_LAZY_FILES_PIPE_DATA_H

#include <stdbool.h>
#include <stdint.h>

#include "images/image.h"

struct dump_ctx;
struct fd_kind_ops;
struct fd_probe;
struct rst_child;
struct rst_images;

/* Dump: the first member of the kind's dump_file.priv. */
struct pipe_data_dump {
	bool has_data;			/* this end carries its pipe's data */
	uint32_t pipe_id;
	uint32_t size;			/* F_GETPIPE_SZ */
	uint32_t bytes;
	uint8_t *data;
};

/* Collect the data of @p's pipe into @pd unless an earlier file of @ops
 * has it (every end of a pipe shares it). */
int pipe_data_dump(struct dump_ctx *ctx, const struct fd_kind_ops *ops,
		   const struct fd_probe *p, struct pipe_data_dump *pd);
/* One entry per pipe of @ops's files that carries data. */
int pipe_data_write(struct dump_ctx *ctx, const struct fd_kind_ops *ops, enum img_type type);
void pipe_data_dump_free(struct pipe_data_dump *pd);

/* Restore: every pipe's data, from one image. */
struct pipe_data {
	uint32_t pipe_id, bytes, size;	/* size 0: the default */
	uint8_t *data;
};

struct pipe_data_set {
	struct pipe_data *v;
	size_t nr;
	unsigned int max_size;		/* fs.pipe-max-size */
};

int pipe_data_load(struct rst_images *ri, enum img_type type, struct pipe_data_set **out);
const struct pipe_data *pipe_data_find(const struct pipe_data_set *s, uint32_t pipe_id);
/* Size the pipe of @wfd and refill it (in the new task). */
int pipe_data_fill(struct rst_child *c, int wfd, const char *what, const struct pipe_data *d);
void pipe_data_set_free(void *set);

#endif
