/*
 * The guardian's share of the restore's connection.
 *
 * The restore does not wait for the daemon: when the daemon is killed, the
 * records of some processes may still be queued on the connection, or the
 * connection itself in the listening socket's backlog, their uffds in
 * flight.  Dropped with the daemon's copies of both, those uffds would be
 * released, the kernel would unregister their ranges, and their tasks would
 * read zeros.  So we hold a copy of the listening socket until the daemon
 * hands us the connection it accepted (GUARDIAN_CONN), and of that until the
 * end.  At a takeover we take what is left on it (accepting it first if the
 * daemon never did), as the daemon's own failure path does
 * (lazy-handshake.c, drain_queued()): every uffd joins the table and is
 * poisoned like the ones the daemon handed us.
 *
 * The restore may still be sending (it does not know the daemon is gone):
 * a record that came after we took what was there would be queued on our
 * copy, its send a success, and die unread when we close it, the restore
 * gone on to run its tasks over their zeros.  So once nothing more is
 * queued we shut the connection down for reading: from then on the
 * restore's send fails (EPIPE, as with the daemon's socket gone; ours then
 * kills its tasks before they run), and what came before is taken too.
 * We never write to the restore.
 *
 * Which process a uffd registers: the one its message's credentials name
 * (our restore's, lazy-pages.md "Which process here"; CRIU's restore sends
 * each from the task itself, which the kernel then names), else the
 * record's pid (the image's: the host's pid namespace).
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LOG_PREFIX "guardian: "
#include "common/lazy-socket.h"
#include "common/log.h"
#include "lazy/guardian.h"

/*
 * A connection from root or our uid waiting in the backlog, or -1.  The
 * socket blocks (its file is the daemon's too: left as it is), so only
 * what poll says is there is accepted.
 */
static int accept_waiting(int listen_fd)
{
	struct pollfd p = { .fd = listen_fd, .events = POLLIN };
	int one = 1, fd;

	while (poll(&p, 1, 0) == 1 &&
	       (fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
		struct ucred cred;
		socklen_t len = sizeof(cred);

		if (!getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) &&
		    (cred.uid == 0 || cred.uid == geteuid())) {
			setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
			return fd;
		}
		close(fd);
	}
	return -1;
}

static pid_t peer_pid(int conn)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	return getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) ? 0 : cred.pid;
}

/*
 * The next message queued: at most len bytes into buf, the uffd that came
 * with it (*uffd, else -1; any other descriptor closed) and the pid its
 * credentials name (*cred, else 0).  Its byte count; 0 when nothing more
 * is queued (or at EOF), or -errno.
 */
static ssize_t next_msg(int conn, void *buf, size_t len, int *uffd, pid_t *cred)
{
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = { buf, len };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control.buf, .msg_controllen = sizeof(control.buf),
	};
	ssize_t n = recvmsg(conn, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

	*uffd = -1;
	*cred = 0;
	if (n < 0)
		return errno == EAGAIN ? 0 : -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			for (size_t i = 0; CMSG_LEN((i + 1) * sizeof(int)) <= c->cmsg_len; i++) {
				int fd;

				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				if (*uffd < 0)
					*uffd = fd;
				else
					close(fd);
			}
		} else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
			struct ucred u;

			memcpy(&u, CMSG_DATA(c), sizeof(u));
			*cred = u.pid;
		}
	}
	return n;
}

int guardian_take_queued(struct guardian_table *tab, int listen_fd, int conn)
{
	union {
		int32_t pid;
		char b[sizeof(int32_t)];
	} rec;
	size_t have = 0;
	int32_t pid = 0;	/* the record's, once read whole (<= 0: none) */
	int taken = 0, own = -1;
	bool shut = false;
	pid_t restore;

	if (conn < 0 && listen_fd >= 0)
		conn = own = accept_waiting(listen_fd);
	if (conn < 0)
		return 0;
	restore = peer_pid(conn);
	for (;;) {
		int uffd;
		pid_t cred;
		ssize_t n = next_msg(conn, rec.b + have, sizeof(rec) - have, &uffd, &cred);
		struct guardian_entry e = { 0 };

		if (n <= 0) {
			/* nothing more now: refused from here on, then what came before */
			if (n < 0 || shut || shutdown(conn, SHUT_RD))
				break;
			shut = true;
			continue;
		}
		if (uffd < 0) {
			have += n;
			if (have < sizeof(rec))
				continue;
			have = 0;
			if ((uint32_t)rec.pid == LAZY_RESTORE_FINISHED)
				break;
			pid = rec.pid;	/* a zombie's is negative: no uffd follows */
			continue;
		}
		/* the one byte of a uffd's message (its pid perhaps read by the daemon) */
		e.host_pid = cred > 0 && cred != restore ? cred : pid;
		e.pid = pid > 0 ? pid : e.host_pid;
		e.uffd = uffd;
		pid = 0;
		if (e.host_pid <= 0)
			pr_err("a uffd queued for the daemon names no process: its lazy pages cannot "
			       "be poisoned and will read as zeros");
		if (guardian_table_add(tab, &e)) {
			close(uffd);
			taken = -ENOMEM;
			break;
		}
		pr_info("task %d (pid %d here): its uffd was still queued for the daemon", e.pid,
			e.host_pid);
		taken++;
	}
	if (own >= 0)
		close(own);
	return taken;
}
