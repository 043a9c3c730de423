/*
 * The receive queue of a socket, both sides (sk-queues.img): read at dump
 * without being consumed (MSG_PEEK from a peek offset of our own, the
 * task's offset put back afterwards), one sk_packet_entry per datagram or
 * record, boundaries kept; sent again at restore from the socket's peer.
 */
#ifndef CRIU_LAZY_FILES_SK_QUEUE_H
#define CRIU_LAZY_FILES_SK_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dump_ctx;
struct fd_probe;
struct rst_child;
struct rst_images;

struct sk_packet {
	uint32_t len;
	uint8_t *data;
	/* files in flight (SCM_RIGHTS) it carries: at dump our own copies
	 * of them (closed by sk_queue_free), at restore their files.img ids */
	uint32_t nr_scm;
	int *scm_fds;
	uint32_t *scm_ids;
};

#define SK_SCM_MAX 253		/* SCM_MAX_FD: files in flight per message */

struct sk_queue {
	uint32_t id_for;		/* files.img id of the socket it belongs to */
	struct sk_packet *v;
	size_t nr;
	/* dump: called after each packet that carries files in flight, so
	 * that they are resolved (and our duplicate copies closed) before the
	 * next is read; NULL: resolved once the whole queue is */
	int (*got_files)(void *arg);
	void *got_files_arg;
};

/* Dump: the queue of our copy @sk of @p's socket (of @type, or
 * SK_QUEUE_UDP; @rcv_shut: reading it is shut down). */
#define SK_QUEUE_UDP (-1)
int sk_queue_dump(const struct fd_probe *p, int sk, int type, bool rcv_shut, uint32_t id,
		  struct sk_queue *q);
void sk_queue_free(struct sk_queue *q);
/* One more packet of @len bytes at @data (taken on success). */
int sk_queue_add(struct sk_queue *q, uint8_t *data, uint32_t len);
/* sk-queues.img, once per dump, for every socket kind: the queues of the
 * files of type UNIXSK, INETSK and NETLINKSK, whose dump_file.priv starts with their
 * struct sk_queue.  The dump_write_late of one kind (unix sockets): into
 * the image unix_backlog_reserve() opened, if it did. */
int sk_queues_write(struct dump_ctx *ctx);
/* The bytes sk_queues_write() would write now, but for the magic words. */
uint64_t sk_queues_size(const struct dump_ctx *ctx);

/* Restore: every queue of the images, by id_for. */
struct sk_queue_set {
	struct sk_queue *v;
	size_t nr;
};

int sk_queue_load(struct rst_images *ri, struct sk_queue_set **out);
const struct sk_queue *sk_queue_find(const struct sk_queue_set *s, uint32_t id_for);
/* Send @q's packets through @sk (connected to the socket they belong to),
 * their files in flight opened in the task (child_file_get()). */
int sk_queue_fill(struct rst_child *c, int sk, const struct sk_queue *q);
void sk_queue_set_free(void *set);

#endif
