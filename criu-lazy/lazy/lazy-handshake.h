/* The lazy-pages socket, daemon side. */
#ifndef CRIU_LAZY_LAZY_HANDSHAKE_H
#define CRIU_LAZY_LAZY_HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/lazy-socket.h"	/* LAZY_SOCKET_NAME, the bytes */
#include "lazy/lazy-daemon.h"

/* The processes of the dumped tree (pstree.img), in image order. */
struct lazy_tree {
	pid_t *pids;
	size_t nr_pids;
};

/* Accept the restore's connection and one record per process. */
int lazy_accept_tasks(struct lazy_daemon *d, const struct lazy_tree *tree, int listen_fd);

/* The connection is readable: the "restore finished" word, or its end. */
int lazy_read_restore_word(struct lazy_daemon *d);

/*
 * lazy-records.c: the restore's records, read the one way by the daemon
 * and by its guardian at a takeover (guardian-handshake.c).
 */

/*
 * The next connection waiting on listen_fd from an allowed peer (root or
 * our uid), SO_PASSCRED set: its fd, -EAGAIN if none now (a peer refused
 * is closed with one line), or -errno (logged).  *peer_pid: the peer's.
 */
int lazy_take_connection(int listen_fd, pid_t *peer_pid);

/*
 * A uffd's message on conn (waited for by the caller): *uffd, and the pid
 * here its credentials name (*cred_pid: 0 if none came; SO_PASSCRED is
 * set, so without the restore's own the kernel gives its sender's pid).
 * flags: MSG_PEEK leaves the message queued (*uffd is a copy of its
 * descriptor; lazy_consume_uffd() takes it off later).  0 or -errno
 * (logged).
 */
int lazy_recv_uffd(int conn, int32_t pid, int *uffd, pid_t *cred_pid, int flags);
void lazy_consume_uffd(int conn);

struct lazy_drain {
	/* pid's record is about to be taken off the connection, or NULL */
	void (*next)(void *arg, int32_t pid);
	/* owns uffd (the message is taken off once it returns); pid 0: a uffd
	 * whose pid was read already (by a daemon killed since) */
	void (*take)(void *arg, int32_t pid, int uffd, pid_t cred_pid);
	void *arg;
};

/*
 * Take the records already queued on conn, each waited for 100 ms at most
 * (a restore that sends nothing more keeps us no longer), at most max + 1,
 * until it is empty, closed, or holds something that is not a record (the
 * "restore finished" word ends it too).  lone_pid: the pid of a uffd's
 * message that comes first without its pid (read already), or 0.
 */
void lazy_drain_records(int conn, size_t max, int32_t lone_pid, const struct lazy_drain *how);

#endif
