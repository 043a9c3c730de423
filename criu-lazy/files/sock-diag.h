/*
 * One NETLINK_SOCK_DIAG request through libnl: the socket, the send and the
 * replies, for the unix, inet and netlink lookups alike.
 */
#ifndef CRIU_LAZY_FILES_SOCK_DIAG_H
#define CRIU_LAZY_FILES_SOCK_DIAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netlink/attr.h>
#include <netlink/handlers.h>

/*
 * Send @req (@len bytes) as SOCK_DIAG_BY_FAMILY with @nlflags (NLM_F_REQUEST
 * and maybe NLM_F_DUMP; @ack asks for an acknowledgement too) and hand every
 * reply to @cb.  0 once the replies are read; -ENOMEM or -EPROTONOSUPPORT
 * (logged) when the request could not be made; -EIO when sending or
 * receiving failed, with libnl's error in *@nl_err for the caller to judge
 * and log with what it asked.
 */
int sock_diag_query(const void *req, size_t len, int nlflags, bool ack,
		    nl_recvmsg_msg_cb_t cb, void *arg, int *nl_err);

/* The same on a socket opened ahead (sock_diag_open(), logged; NULL on
 * failure), not acknowledged: for requests that must not need a new
 * socket when they come (after the dump accepted connections,
 * unix-backlog.c), each answered by one reply or an error. */
struct nl_sock *sock_diag_open(void);
void sock_diag_close(struct nl_sock *nl);
int sock_diag_query_on(struct nl_sock *nl, const void *req, size_t len, int nlflags,
		       nl_recvmsg_msg_cb_t cb, void *arg, int *nl_err);

/*
 * For a family with no lookup by inode (INET_DIAG, NETLINK_DIAG): a dump
 * of @req searched for the socket of inode @ino.  Its reply (a message of
 * @msg_size bytes whose u32 inode is at @ino_off, then attributes up to
 * @attr_max) is handed to @take with its attributes parsed (tb[type], NULL
 * where absent).  0 when found, -ENOENT when the dump has no such socket;
 * a failed dump is logged naming @what ("netlink protocol 4") and @ino.
 */
#define SOCK_DIAG_ATTR_MAX 40
struct sock_diag_search {
	size_t msg_size;
	size_t ino_off;
	int attr_max;
	const char *what;
	void (*take)(const void *msg, struct nlattr **tb, void *arg);
	void *arg;
};
int sock_diag_find(const void *req, size_t len, uint32_t ino, const struct sock_diag_search *s);

#endif
