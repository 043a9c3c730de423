/*
 * One NETLINK_SOCK_DIAG request through libnl: the socket, the send and the
 * replies, for the unix and inet lookups alike.
 */
#ifndef CRIU_LAZY_FILES_SOCK_DIAG_H
#define CRIU_LAZY_FILES_SOCK_DIAG_H

#include <stdbool.h>
#include <stddef.h>

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

#endif
