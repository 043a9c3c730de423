/* The restore's records on the lazy-pages socket: see lazy-socket.h. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/lazy-socket.h"

/* A short send on a stream socket to a daemon that went away. */
static int sent(ssize_t n, size_t want)
{
	if (n < 0)
		return -errno;
	return (size_t)n == want ? 0 : -EPIPE;
}

/* The one-byte message carrying uffd, with credentials naming cred_pid if > 0. */
static int send_uffd(int sock, int uffd, pid_t cred_pid)
{
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct ucred cred = { .pid = cred_pid, .uid = geteuid(), .gid = getegid() };
	char byte = 0;
	struct iovec iov = { &byte, 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control.buf,
		.msg_controllen = CMSG_SPACE(sizeof(int)) +
				  (cred_pid > 0 ? CMSG_SPACE(sizeof(cred)) : 0),
	};
	struct cmsghdr *cmsg;

	memset(&control, 0, sizeof(control));
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &uffd, sizeof(int));
	if (cred_pid > 0) {
		cmsg = CMSG_NXTHDR(&msg, cmsg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_CREDENTIALS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(cred));
		memcpy(CMSG_DATA(cmsg), &cred, sizeof(cred));
	}
	return sent(sendmsg(sock, &msg, MSG_NOSIGNAL), 1);
}

int lazy_sock_send_task(int sock, int32_t pid, int uffd, pid_t cred_pid)
{
	int ret = sent(send(sock, &pid, sizeof(pid), MSG_NOSIGNAL), sizeof(pid));

	if (ret || uffd < 0)
		return ret;
	ret = send_uffd(sock, uffd, cred_pid);
	/* refused before anything was queued: the record goes without them */
	if (ret == -EPERM && cred_pid > 0)
		return send_uffd(sock, uffd, 0) ?: 1;
	return ret;
}

int lazy_sock_send_finished(int sock)
{
	uint32_t word = LAZY_RESTORE_FINISHED;

	return sent(send(sock, &word, sizeof(word), MSG_NOSIGNAL), sizeof(word));
}
