/*
 * Once a process's blob has ended, what is left of its restore is a chain
 * of ptrace round trips: each other thread interrupted and waited for, the
 * munmap of the blob injected into the leader (finalize.c), and then the
 * detach of every thread (stage_resume()).  Each step wakes the other side
 * and waits for it.  Between two CPUs each wakeup is an IPI; in a VM that is
 * an exit to the hypervisor and, for a halted vCPU, a wait for the host to
 * run it again: on the 2-vCPU test VM a pipe round trip across CPUs takes
 * 50-180 us against 2-3 us on one CPU, and the bench tree's 4 processes of
 * 5 threads make some 40 such trips.  So from the first blob's end until
 * the resume, this process and the threads of each finished process share
 * the CPU this process runs on.  Blobs still running are left where they
 * are: they do real work (unmapping, thread creation) in parallel.
 *
 * Every task inherits the restore process's affinity and nothing restores
 * a dumped one, so rst_pin_end() gives each thread back exactly the mask it
 * had, before the detach: once a task runs, its affinity is its own.  A
 * task that cannot be pinned is only slower; one that cannot get its mask
 * back fails the restore (it would run on one CPU for good).
 */
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "restore/restore.h"
#include "restore/cpu-pin.h"

/* Apply @mask to every thread of @pid; the first failure's -errno. */
static int set_threads(pid_t pid, const cpu_set_t *mask)
{
	char path[64];
	struct dirent *de;
	int ret = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		pid_t tid = atoi(de->d_name);

		if (tid > 0 && sched_setaffinity(tid, sizeof(*mask), mask) && !ret)
			ret = -errno;
	}
	closedir(d);
	return ret;
}

/* Stay on the CPU we are on until rst_pin_end(). */
void rst_pin_start(struct rst_tree *tree)
{
	int cpu = sched_getcpu();
	cpu_set_t one;

	if (cpu < 0 || sched_getaffinity(0, sizeof(tree->pin_self.mask), &tree->pin_self.mask))
		return;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	if (sched_setaffinity(0, sizeof(one), &one)) {
		pr_debug("cannot stay on CPU %d for the last steps: %s", cpu, strerror(errno));
		return;
	}
	tree->pin_self.pinned = true;
	tree->pin_cpu = cpu;
}

/* The threads of @p, its blob ended, join us on our CPU. */
void rst_pin_proc(struct rst_tree *tree, struct rst_proc *p)
{
	cpu_set_t one;
	int ret;

	if (!tree->pin_self.pinned)
		return;
	if (sched_getaffinity(p->t.pid, sizeof(p->pin.mask), &p->pin.mask)) {
		pr_debug("task %d: cannot read its CPU affinity: %s", p->pid, strerror(errno));
		return;
	}
	CPU_ZERO(&one);
	CPU_SET(tree->pin_cpu, &one);
	p->pin.pinned = true;
	ret = set_threads(p->t.pid, &one);
	if (ret)
		pr_debug("task %d: not all its threads run on CPU %d: %s", p->pid,
			 tree->pin_cpu, strerror(-ret));
}

/* Every thread gets its affinity back, before anything runs for good. */
int rst_pin_end(struct rst_tree *tree)
{
	int ret = 0;

	for (size_t i = 0; i < tree->nr; i++) {
		struct rst_proc *p = &tree->procs[i];
		int err;

		if (!p->pin.pinned)
			continue;
		err = set_threads(p->t.pid, &p->pin.mask);
		if (err) {
			pr_err("task %d: cannot give its threads their CPU affinity back: %s",
			       p->pid, strerror(-err));
			ret = ret ?: err;
		}
		p->pin.pinned = false;
	}
	if (tree->pin_self.pinned)
		sched_setaffinity(0, sizeof(tree->pin_self.mask), &tree->pin_self.mask);
	tree->pin_self.pinned = false;
	return ret;
}
