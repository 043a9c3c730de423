/* The restore's records on the lazy-pages socket: see lazy-socket.h. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "common/lazy-socket.h"

/* A short send on a stream socket to a daemon that went away. */
static int sent(ssize_t n, size_t want)
{
	if (n < 0)
		return -errno;
	return (size_t)n == want ? 0 : -EPIPE;
}

int lazy_sock_send_task(int sock, int32_t pid, int uffd)
{
	char byte = 0, control[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &byte, 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control, .msg_controllen = sizeof(control),
	};
	struct cmsghdr *cmsg;
	int ret = sent(send(sock, &pid, sizeof(pid), MSG_NOSIGNAL), sizeof(pid));

	if (ret || uffd < 0)
		return ret;
	memset(control, 0, sizeof(control));
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &uffd, sizeof(int));
	return sent(sendmsg(sock, &msg, MSG_NOSIGNAL), 1);
}

int lazy_sock_send_finished(int sock)
{
	uint32_t word = LAZY_RESTORE_FINISHED;

	return sent(send(sock, &word, sizeof(word), MSG_NOSIGNAL), sizeof(word));
}
