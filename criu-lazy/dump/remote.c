/*
 * What has no outside interface is read by running the syscall inside the
 * frozen task (common/ptrace-inject).  Syscalls that return data through a
 * pointer get our scratch page: an anonymous page mapped into the task
 * first and unmapped at the end, so the task's own memory is never written.
 * We read it back with process_vm_readv.
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "common/log.h"
#include "common/ptrace-inject.h"
#include "dump/dump.h"

int dump_remote_syscall(struct dump_task *t, long nr, const unsigned long args[6], long *res)
{
	int ret;

	if (t->exited)
		return -ESRCH;
	ret = inject_syscall(t->pid, t->syscall_ip, nr, args, res);
	if (ret == -ESRCH)
		t->exited = true;	/* inject_syscall said so already */
	return ret;
}

/*
 * Run a syscall of up to four arguments; a failure of the syscall itself
 * (a negative result) is logged as "@what in task N failed".
 */
int dump_remote_call(struct dump_task *t, const char *what, long nr, unsigned long a0,
		     unsigned long a1, unsigned long a2, unsigned long a3, long *res)
{
	unsigned long args[6] = { a0, a1, a2, a3, 0, 0 };
	int ret;

	ret = dump_remote_syscall(t, nr, args, res);
	if (ret)
		return ret;
	if (*res < 0 && *res > -4096)
		return dump_task_error(t, (int)*res, "%s in task %d failed: %s", what, t->pid,
				       strerror((int)-*res));
	return 0;
}

int dump_remote_read(struct dump_task *t, unsigned long addr, void *buf, size_t len)
{
	struct iovec local = { buf, len }, remote = { (void *)addr, len };
	ssize_t n;

	n = process_vm_readv(t->pid, &local, 1, &remote, 1, 0);
	if (n == (ssize_t)len)
		return 0;
	if (n >= 0)
		errno = EFAULT;
	return dump_task_error(t, -errno, "can't read %zu bytes at %#lx of task %d: %m",
			       len, addr, t->pid);
}

int dump_scratch_map(struct dump_task *t)
{
	unsigned long args[6] = { 0, 4096, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, (unsigned long)-1, 0 };
	long res;
	int ret;

	ret = dump_remote_syscall(t, __NR_mmap, args, &res);
	if (ret)
		return ret;
	if (res < 0 && res > -4096)
		return dump_task_error(t, (int)res, "can't map a scratch page in task %d: %s",
				       t->pid, strerror((int)-res));
	t->scratch = (unsigned long)res;
	pr_debug("task %d: scratch page at %#lx", t->pid, t->scratch);
	return 0;
}

int dump_scratch_unmap(struct dump_task *t)
{
	long res;
	int ret;

	if (!t->scratch || t->exited)
		return 0;
	ret = dump_remote_call(t, "munmap of the scratch page", __NR_munmap, t->scratch, 4096,
			       0, 0, &res);
	if (!ret)
		t->scratch = 0;
	return ret;
}

/* prctl(@op, scratch) that stores an int. */
int dump_remote_prctl_int(struct dump_task *t, const char *what, int op, int *val)
{
	long res;
	int ret;

	ret = dump_remote_call(t, what, __NR_prctl, op, t->scratch, 0, 0, &res);
	if (!ret)
		ret = dump_remote_read(t, t->scratch, val, sizeof(*val));
	return ret;
}
