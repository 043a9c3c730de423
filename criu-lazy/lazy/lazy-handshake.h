/* The lazy-pages socket, daemon side. */
#ifndef CRIU_LAZY_LAZY_HANDSHAKE_H
#define CRIU_LAZY_LAZY_HANDSHAKE_H

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

#endif
