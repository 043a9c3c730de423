/*
 * Fuzz target: the lazy-pages daemon's side of the lazy-pages socket, as
 * the restore (ours or CRIU's) talks to it: per process an int32 pid and a
 * one-byte message carrying its userfaultfd, then the word "restore
 * finished".  The daemon serves the small dump of fuzz-util.c (process
 * FUZZ_PID) from its images.
 *
 * Input: the bytes the restore sends.  Before each message that follows
 * a non-negative pid, one input byte says whether it carries a real
 * userfaultfd (odd) or no descriptor (even).  The restore then closes.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "lazy/lazy-daemon.h"
#include "lazy/lazy-handshake.h"
#include "lazy/page-source.h"
#include "options.h"
#include "fuzz-util.h"

static void send_fd_msg(int sk, int fd)
{
	char byte = 0, control[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { &byte, 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cmsg;

	if (fd >= 0) {
		msg.msg_control = control;
		msg.msg_controllen = sizeof(control);
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	}
	sendmsg(sk, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* The restore's side: everything goes into the socket before the daemon
 * reads (a unix socket holds far more than one input). */
static void play_restore(int sk, const uint8_t *data, size_t size)
{
	while (size >= 4) {
		int32_t pid;

		memcpy(&pid, data, 4);
		send(sk, data, 4, MSG_DONTWAIT | MSG_NOSIGNAL);
		data += 4;
		size -= 4;
		if (pid < 0 || !size)
			continue;
		if (data[0] & 1) {
			int uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

			send_fd_msg(sk, uffd);
			if (uffd >= 0)
				close(uffd);
		} else {
			send_fd_msg(sk, -1);
		}
		data++;
		size--;
	}
	if (size)
		send(sk, data, size, MSG_DONTWAIT | MSG_NOSIGNAL);
}

int fuzz_one_input(const uint8_t *data, size_t size)
{
	static pid_t pids[1] = { FUZZ_PID };
	static bool dumped;
	struct lazy_tree tree = { .pids = pids, .nr_pids = 1 };
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct opts o = { .command = "lazy-pages", .status_fd = -1 };
	struct lazy_daemon d = { .o = &o, .epfd = -1, .conn_fd = -1 };
	int lsk, csk;

	if (!dumped && fuzz_write_small_dump())
		__builtin_trap();
	dumped = true;
	d.dirfd = fuzz_dir_fd();
	/* the stop-signal fd the handshake also waits on: never readable */
	d.signal_fd = eventfd(0, EFD_CLOEXEC);
	lsk = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	csk = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* an abstract name of our own */
	snprintf(addr.sun_path + 1, sizeof(addr.sun_path) - 1, "criu-lazy-fuzz-%d", getpid());
	if (lsk < 0 || csk < 0 || bind(lsk, (struct sockaddr *)&addr, sizeof(addr)) ||
	    listen(lsk, 1) || connect(csk, (struct sockaddr *)&addr, sizeof(addr)))
		goto out;
	play_restore(csk, data, size);
	shutdown(csk, SHUT_WR);
	d.src = page_source_local_new(&d);
	if (!d.src)
		goto out;
	if (!lazy_accept_tasks(&d, &tree, lsk))
		for (int i = 0; i < 4 && d.conn_fd >= 0; i++)
			if (lazy_read_restore_word(&d))
				break;
	lazy_task_free_all(&d);
	d.src->ops->finish(d.src);
	lazy_stats_free(&d.stats);
out:
	if (d.conn_fd >= 0)
		close(d.conn_fd);
	if (d.signal_fd >= 0)
		close(d.signal_fd);
	if (lsk >= 0)
		close(lsk);
	if (csk >= 0)
		close(csk);
	return 0;
}
