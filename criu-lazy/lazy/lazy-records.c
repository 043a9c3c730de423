/*
 * The restore's records on the lazy-pages socket, read one way for the
 * daemon (lazy-handshake.c) and for its guardian, which takes those still
 * queued when the daemon is killed (guardian-handshake.c): who may
 * connect, a uffd's message, and the records already queued.
 *
 * Per process of the tree an int32 pid, then the process's userfaultfd as
 * SCM_RIGHTS with a one-byte payload (a zombie sends -pid and no fd); at
 * the end the 32-bit word "restore finished".  Our restore adds
 * credentials naming the process to the uffd's message (lazy-socket.h).
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "lazy/lazy-handshake.h"

/* The descriptors of an SCM_RIGHTS we do not take: closed. */
static void close_rights(const struct cmsghdr *cmsg)
{
	if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
		return;
	for (size_t i = 0; CMSG_LEN((i + 1) * sizeof(int)) <= cmsg->cmsg_len; i++) {
		int fd;

		memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
		close(fd);
	}
}

/* The buffers of one record's uffd message: its byte, the uffd and the
 * sender's credentials. */
struct uffd_msg {
	char byte;
	struct iovec iov;
	struct msghdr msg;
	/* last: clang takes CMSG_SPACE() for a variable size in a struct */
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
};

static struct msghdr *uffd_msg_init(struct uffd_msg *m)
{
	m->iov = (struct iovec){ &m->byte, 1 };
	m->msg = (struct msghdr){
		.msg_iov = &m->iov, .msg_iovlen = 1,
		.msg_control = m->control.buf, .msg_controllen = sizeof(m->control.buf),
	};
	return &m->msg;
}

int lazy_recv_uffd(int conn, int32_t pid, int *uffd, pid_t *cred_pid, int flags)
{
	struct uffd_msg m;
	struct msghdr *msg = uffd_msg_init(&m);
	struct cmsghdr *cmsg;
	bool bad = false;
	ssize_t n = recvmsg(conn, msg, MSG_CMSG_CLOEXEC | flags);

	if (n < 0) {
		pr_perror("receive the userfaultfd of task %d", pid);
		return -errno;
	}
	*uffd = -1;
	*cred_pid = 0;
	for (cmsg = CMSG_FIRSTHDR(msg); cmsg; cmsg = CMSG_NXTHDR(msg, cmsg)) {
		if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS &&
		    cmsg->cmsg_len == CMSG_LEN(sizeof(int)) && *uffd < 0) {
			memcpy(uffd, CMSG_DATA(cmsg), sizeof(int));
		} else if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_CREDENTIALS &&
			   cmsg->cmsg_len == CMSG_LEN(sizeof(struct ucred))) {
			struct ucred cred;

			memcpy(&cred, CMSG_DATA(cmsg), sizeof(cred));
			*cred_pid = cred.pid;
		} else {
			close_rights(cmsg);
			bad = true;
		}
	}
	if (n != 1 || *uffd < 0 || bad || (msg->msg_flags & MSG_CTRUNC)) {
		pr_err("task %d: the restore sent no userfaultfd", pid);
		if (*uffd >= 0)
			close(*uffd);
		*uffd = -1;
		return -EBADMSG;
	}
	return 0;
}

void lazy_consume_uffd(int conn)
{
	struct uffd_msg m;
	struct msghdr *msg = uffd_msg_init(&m);

	/* peeked whole before: it is there, and its descriptor is a copy of ours */
	if (recvmsg(conn, msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT) < 0)
		return;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c))
		close_rights(c);
}

/*
 * Is the peer root or our own uid?  Else it is closed with one line (the
 * daemon keeps waiting for the real restore).  *peer_pid: the peer's.
 */
static bool peer_allowed(int fd, pid_t *peer_pid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len)) {
		pr_perror("refused a connection to the lazy-pages socket: no peer credentials");
		return false;
	}
	*peer_pid = cred.pid;
	if (cred.uid == 0 || cred.uid == geteuid())
		return true;
	pr_warn("refused a connection to the lazy-pages socket from pid %d uid %u: "
		"only root or uid %u may restore through this daemon", cred.pid, cred.uid,
		geteuid());
	return false;
}

/*
 * Ask for every message's credentials before the first is read: the
 * restore's name each task's process by its pid (host-pid.c).  Not fatal:
 * without them the process is looked for in /proc.
 */
static void pass_credentials(int fd)
{
	int one = 1;

	if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)))
		pr_warn("SO_PASSCRED on the restore's connection: %s: each task's pid here "
			"is looked for in /proc", strerror(errno));
}

int lazy_take_connection(int listen_fd, pid_t *peer_pid)
{
	int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0) {
		if (errno == ECONNABORTED || errno == EINTR || errno == EAGAIN)
			return -EAGAIN;
		pr_perror("accept the restore's connection");
		return -errno;
	}
	if (peer_allowed(fd, peer_pid)) {
		pass_credentials(fd);
		return fd;
	}
	close(fd);
	return -EAGAIN;
}

/* Is the restore's next record there within DRAIN_WAIT_MS? */
#define DRAIN_WAIT_MS	100

static bool drain_ready(int conn)
{
	struct pollfd p = { .fd = conn, .events = POLLIN };

	return poll(&p, 1, DRAIN_WAIT_MS) == 1;
}

/*
 * The next pid on conn (1), a uffd's message where a pid should be (0,
 * *pid 0: its pid was read already), or nothing to take (-1).  Peeked
 * first: a plain read of four bytes would take a uffd's message whole and
 * drop its descriptor; and how->next() hears of the pid before it is read.
 */
static int next_pid(int conn, const struct lazy_drain *how, int32_t *pid)
{
	ssize_t n;

	*pid = 0;
	if (!drain_ready(conn))
		return -1;
	n = recv(conn, pid, sizeof(*pid), MSG_DONTWAIT | MSG_PEEK);
	if (n == 1) {
		*pid = 0;
		return 0;
	}
	if (n != sizeof(*pid))
		return -1;
	if (*pid > 0 && *pid != (int32_t)LAZY_RESTORE_FINISHED && how->next)
		how->next(how->arg, *pid);
	if (recv(conn, pid, sizeof(*pid), MSG_DONTWAIT) != sizeof(*pid))
		return -1;
	return 1;
}

void lazy_drain_records(int conn, size_t max, int32_t lone_pid, const struct lazy_drain *how)
{
	for (size_t i = 0; i <= max; i++) {
		int32_t pid;
		pid_t cred_pid;
		int uffd, got = next_pid(conn, how, &pid);

		if (got < 0 || (got && (pid == 0 || pid == (int32_t)LAZY_RESTORE_FINISHED)))
			return;
		if (pid < 0)
			continue;	/* a zombie */
		if (!got)
			pid = i ? 0 : lone_pid;
		/* left queued until take() has it: a guardian's copy may be on its way */
		if (!drain_ready(conn) || lazy_recv_uffd(conn, pid, &uffd, &cred_pid, MSG_PEEK))
			return;
		how->take(how->arg, pid, uffd, cred_pid);
		lazy_consume_uffd(conn);
	}
}
