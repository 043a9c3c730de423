/*
 * Shared by the inet kind's files: inet-sk.c (the table, UDP and TCP
 * sockets that are not connections) and inet-tcp.c (what TCP connections
 * need around tcp-stream.c: their images, the lock, the last stage).
 */
#ifndef CRIU_LAZY_FILES_INET_SK_H
#define CRIU_LAZY_FILES_INET_SK_H

#include <stdbool.h>
#include <stddef.h>

#include "files/net-lock.h"
#include "files/sk-queue.h"
#include "files/tcp-stream.h"

#include "sk-inet.pb-c.h"

struct dump_ctx;
struct opts;
struct rst_images;
struct rst_tree;

/* dump_file.priv of an inet socket */
struct inet_dump {
	struct sk_queue q;		/* first: sk_queues_write() finds it there */
	InetSkEntry ie;
	SkOptsEntry opts;
	IpOptsEntry ipo;
	uint32_t src[4], dst[4];
	bool has_tcp;			/* a TCP connection: */
	struct tcp_conn_dump tcp;
};

/* rst_images.kind_state[] of the inet kind, one per process */
struct inet_rst_state {
	struct sk_queue_set *queues;	/* UDP datagrams */
	struct tcp_conn_rst *conns;	/* TCP connections, by file id */
	size_t nr_conns;
};

/* A TCP socket with a peer: what --tcp-established is about. */
static inline bool inet_is_tcp_conn(const InetSkEntry *ie)
{
	return ie->proto == 6 /* IPPROTO_TCP */ && ie->dst_port;
}

/* inet-tcp.c */
int inet_tcp_check(const struct opts *o, struct rst_images *ri, struct inet_rst_state *st,
		   const InetSkEntry *ie);
const struct tcp_conn_rst *inet_tcp_find(const struct inet_rst_state *st, uint32_t id);
void inet_rst_state_free(void *state);
int inet_tcp_dump_write(struct dump_ctx *ctx);
int inet_tcp_finish(struct rst_tree *tree);
/* The network lock of every connection, in the tree's new netns. */
int inet_tcp_lock_new_netns(struct rst_tree *tree);

#endif
