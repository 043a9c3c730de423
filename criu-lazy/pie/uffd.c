/*
 * Lazy restore, inside the restored task (spec 3.4).
 *
 *   rst_uffd_open()      before the VMAs move: userfaultfd(O_CLOEXEC |
 *                        O_NONBLOCK) and UFFDIO_API with api 0xAA and the
 *                        features the restore process found the kernel has
 *                        (fork, remap, remove, unmap events);
 *   rst_uffd_register()  right after each lazy VMA reached its address:
 *                        UFFDIO_REGISTER of the whole VMA, mode MISSING;
 *   the uffd stays open, its number in the args: after the blob's int3
 *                        the restore process takes a copy (pidfd_getfd),
 *                        sends it with the pid to the daemon, one process
 *                        of the tree after the other on one connection,
 *                        and closes the task's copy (restore/lazy.c).
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
