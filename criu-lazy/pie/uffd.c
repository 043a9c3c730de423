/*
 * Lazy restore, inside the restored task (spec 3.4).
 *
 *   rst_uffd_open()      before the VMAs move: userfaultfd(O_CLOEXEC |
 *                        O_NONBLOCK) and UFFDIO_API with api 0xAA and the
 *                        features the restore process found the kernel has
 *                        (fork, remap, remove, unmap events);
 *   rst_uffd_register()  right after each lazy VMA reached its address:
 *                        UFFDIO_REGISTER of the whole VMA, mode MISSING;
 *   rst_uffd_send()      once every lazy VMA is registered: the uffd goes to
 *                        the restore process on the task's own SOCK_SEQPACKET
 *                        socket (SCM_RIGHTS; the message is the pid), which
 *                        hands it to the daemon (restore/lazy.c: one sender
 *                        on one connection, so the records of a tree never
 *                        interleave); our copy and the socket are closed and
 *                        the blob goes on at once.
 *
 * The uffd must be created here, by the task: a userfaultfd registers the
 * memory of the process that created it.
 */
#include <stdint.h>

#include "restorer.h"
#include "syscalls.h"

#define O_NONBLOCK_	04000
#define O_CLOEXEC_	02000000
#define UFFD_API_	0xAAULL
#define UFFDIO_API_	0xc018aa3fUL
#define UFFDIO_REGISTER_ 0xc020aa00UL
#define UFFDIO_REGISTER_MODE_MISSING_ 1ULL
#define SOL_SOCKET_	1
#define SCM_RIGHTS_	1
#define MSG_NOSIGNAL_	0x4000

struct uffdio_api_ {
	uint64_t api, features, ioctls;
};

struct uffdio_register_ {
	uint64_t start, len, mode, ioctls;
};

int rst_uffd_open(struct restorer_args *a)
{
	struct uffdio_api_ api = { .api = UFFD_API_, .features = a->lazy.features };
	long fd, ret;

	if (!a->lazy.enabled)
		return 0;
	fd = sys_call1(__NR_userfaultfd, O_CLOEXEC_ | O_NONBLOCK_);
	if (fd < 0)
		return rst_fail(a, RST_STEP_UFFD_OPEN, fd, 0);
	ret = sys_call3(__NR_ioctl, fd, UFFDIO_API_, SYS_A(&api));
	if (ret < 0) {
		sys_close(fd);
		return rst_fail(a, RST_STEP_UFFD_OPEN, ret, 0);
	}
	a->lazy.uffd = fd;
	return 0;
}

int rst_uffd_register(struct restorer_args *a, const struct rst_vma *v)
{
	struct uffdio_register_ reg = {
		.start = v->start,
		.len = v->end - v->start,
		.mode = UFFDIO_REGISTER_MODE_MISSING_,
	};
	long ret;

	if (!a->lazy.enabled || !v->lazy)
		return 0;
	ret = sys_call3(__NR_ioctl, a->lazy.uffd, UFFDIO_REGISTER_, SYS_A(&reg));
	if (ret < 0)
		return rst_fail(a, RST_STEP_UFFD_REGISTER, ret, v->start);
	return 0;
}

struct iovec_ {
	void *base;
	uint64_t len;
};

struct msghdr_ {
	void *name;
	int32_t namelen;
	struct iovec_ *iov;
	uint64_t iovlen;
	void *control;
	uint64_t controllen;
	int32_t flags;
};

/* struct cmsghdr with one int: CMSG_SPACE(sizeof(int)) on x86_64 */
struct cmsg_fd_ {
	uint64_t len;
	int32_t level, type;
	int32_t fd;
	int32_t pad;
};

int rst_uffd_send(struct restorer_args *a)
{
	struct iovec_ iov = { &a->lazy.pid, sizeof(a->lazy.pid) };
	struct cmsg_fd_ cm = { .len = 20, .level = SOL_SOCKET_, .type = SCM_RIGHTS_,
			       .fd = a->lazy.uffd };
	struct msghdr_ msg = { .iov = &iov, .iovlen = 1, .control = &cm,
			       .controllen = sizeof(cm) };
	long ret;

	if (!a->lazy.enabled)
		return 0;
	ret = sys_call3(__NR_sendmsg, a->lazy.sock, SYS_A(&msg), MSG_NOSIGNAL_);
	if (ret != (long)sizeof(a->lazy.pid))
		return rst_fail(a, RST_STEP_UFFD_SEND, ret < 0 ? ret : -5 /* EIO */, 0);
	/* in flight, the message holds the uffd: ours goes */
	sys_close(a->lazy.uffd);
	sys_close(a->lazy.sock);
	a->lazy.uffd = a->lazy.sock = -1;
	return 0;
}
