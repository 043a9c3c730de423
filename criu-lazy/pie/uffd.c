/*
 * Lazy restore (issue 3) -- THE STEP THAT SLOTS IN HERE.
 *
 * When the restore runs with --lazy-pages, the blob, inside the restored
 * task (spec 3.4):
 *   rst_uffd_open()      before the VMAs move: userfaultfd(O_CLOEXEC |
 *                        O_NONBLOCK), UFFDIO_API with api 0xAA and the
 *                        features in a->lazy.features that the kernel has;
 *   rst_uffd_register()  right after each VMA reached its target address,
 *                        for VMAs with v->lazy: UFFDIO_REGISTER of the whole
 *                        VMA, mode MISSING;
 *   rst_uffd_send()      after every VMA is placed: the int32 virtual pid
 *                        with send(), then a 1-byte sendmsg() carrying the
 *                        uffd as SCM_RIGHTS over a->lazy.sock; then it
 *                        closes its uffd.
 * The restore process skips PE_LAZY pages when it fills the premap, opens
 * a->lazy.sock (>= helper_fd_base, closed with the other helper fds) and
 * fills a->lazy.  Until then a->lazy.sock is -1 and these do nothing.
 */
#include <stdint.h>

#include "restorer.h"
#include "syscalls.h"

#define ENOSYS 38

int rst_uffd_open(struct restorer_args *a)
{
	if (a->lazy.sock < 0)
		return 0;
	return rst_fail(a, RST_STEP_UFFD_OPEN, -ENOSYS, 0);
}

int rst_uffd_register(struct restorer_args *a, const struct rst_vma *v)
{
	if (a->lazy.sock < 0 || !v->lazy)
		return 0;
	return rst_fail(a, RST_STEP_UFFD_REGISTER, -ENOSYS, v->start);
}

int rst_uffd_send(struct restorer_args *a)
{
	if (a->lazy.sock < 0)
		return 0;
	return rst_fail(a, RST_STEP_UFFD_SEND, -ENOSYS, 0);
}
