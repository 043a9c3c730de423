/*
 * Established and closing TCP connections (--tcp-established), through the
 * kernel's TCP_REPAIR mode, as CRIU does: the dump puts the task's socket
 * in repair mode (after locking its packets, net-lock.h) and reads its
 * sequence numbers, both queues, MSS, window scales, SACK, timestamps and
 * window (tcp-stream-<ino>.img); the socket stays in repair mode, so the
 * killed task's connection ends silently, or leaves it again when the task
 * goes on running (dump -R, a failed dump).  The restore makes a socket in
 * repair mode with all of that, and it leaves repair mode in the last
 * stage before the tasks resume, when the lock goes.
 *
 * Half-closed states: a FIN we sent is put back with shutdown(SHUT_WR) in
 * repair mode (as sent, and acknowledged where it was), a FIN we received
 * by a raw TCP segment to the socket carrying the lock's mark (tcp-fin.c).
 */
#ifndef CRIU_LAZY_FILES_TCP_STREAM_H
#define CRIU_LAZY_FILES_TCP_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "files/net-lock.h"

#include "sk-inet.pb-c.h"
#include "tcp-stream.pb-c.h"

struct dump_ctx;
struct fd_probe;
struct rst_child;

/* Dump: one connection. */
struct tcp_conn_dump {
	int fd;				/* our copy of the socket, -1 once released */
	bool locked, repair;
	int reuseaddr;			/* repair off clears SO_REUSEADDR */
	struct net_conn conn;
	TcpStreamEntry tse;
	TcpOptsEntry opts;
	uint8_t *inq, *outq;		/* malloc'ed queue bytes */
	uint32_t ino;
};

/* Is @state one --tcp-established takes? */
bool tcp_conn_state_ok(unsigned int state);
/* "ESTABLISHED", "CLOSE_WAIT", ... */
const char *tcp_state_name(unsigned int state);

/* @sk is our copy of @p's socket, described by @ie (addresses, state):
 * lock it, put it in repair mode, read it into @td (ie->tcp_opts points
 * into @td).  -errno logged; what was done is in @td for
 * tcp_conn_release(). */
int tcp_conn_dump(struct net_lock *nl, const struct fd_probe *p, int sk, InetSkEntry *ie,
		  struct tcp_conn_dump *td);
/* tcp-stream-<ino>.img */
int tcp_conn_write(struct dump_ctx *ctx, struct tcp_conn_dump *td);
/* The dump is over: @resume (the task goes on running) takes the socket
 * out of repair mode and unlocks it; otherwise it stays locked and in
 * repair.  Closes our copy.  Errors are logged, the first returned. */
int tcp_conn_release(struct net_lock *nl, struct tcp_conn_dump *td, bool resume);
void tcp_conn_dump_free(struct tcp_conn_dump *td);

/* Restore: one connection's image, read by the restore process. */
struct tcp_conn_rst {
	uint32_t id;			/* the file's */
	TcpStreamEntry *tse;
	uint8_t *inq, *outq;
};

int tcp_conn_load(int dirfd, const InetSkEntry *ie, struct tcp_conn_rst *r);
void tcp_conn_rst_free(struct tcp_conn_rst *r);
/* In the new task: @sk (options set) becomes the connection, in repair
 * mode.  -errno after child_err(). */
int tcp_conn_restore(struct rst_child *c, int sk, const InetSkEntry *ie,
		     const struct tcp_conn_rst *r);
/* In the restore process, on our copy of the restored socket: out of
 * repair mode, SO_REUSEADDR as it was.  -errno logged, naming @pid. */
int tcp_conn_repair_off(int sk, const InetSkEntry *ie, int pid);

/* tcp-fin.c: a FIN from the peer into @sk's receive queue: a raw segment
 * from dst to src with sequence @seq, acknowledging @ack, window @win. */
int tcp_fin_inject(const InetSkEntry *ie, uint32_t seq, uint32_t ack, uint16_t win,
		   bool fin, char *why, size_t why_size);

#endif
