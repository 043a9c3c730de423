/*
 * MADV_DONTNEED or MADV_REMOVE?  Both send the same REMOVE event, and on
 * shared memory they differ: DONTNEED keeps the object's data, REMOVE
 * punches a hole in it.  The daemon must fill a DONTNEED range's pending
 * pages (the task reads the dumped data after it) and must not fill a
 * REMOVE range's (the task reads zeros).  The kernel lets the remover go
 * as soon as the daemon reads the event, and punches the hole only then:
 * filling after the read raced with the hole (the data won whenever the
 * hole came first).
 *
 * The event does not say which; the thread does, while it waits: a thread
 * whose REMOVE event is queued is blocked inside madvise(2) until the
 * event is read, and /proc/PID/task/TID/syscall shows a blocked thread's
 * system call and its arguments (number, start, length, advice).  So
 * before each read of the events of a task that maps shared memory still
 * to come, its threads in madvise(MADV_REMOVE) are noted, and a REMOVE
 * event inside one of their ranges is a hole: its pending pages are
 * dropped, not filled (lazy-shmem.c).
 *
 * Not covered (the old order, fill first): a thread that enters madvise
 * between this look and the read (microseconds), more than
 * LAZY_MAX_REMOVERS at once, and a process forked after the restore (the
 * daemon does not know its pid).  Documentation/lazy-pages.md.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LOG_PREFIX "shmem: "
#include "common/log.h"
#include "lazy/lazy-daemon.h"

/* The madvise(MADV_REMOVE) thread tid is blocked in, or false. */
static bool thread_punches(pid_t pid, const char *tid, uint64_t *start, uint64_t *len)
{
	char path[320], buf[256];
	unsigned long long a0, a1, a2;
	long nr;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/task/%s/syscall", pid, tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	/* "running", or "NR 0xA0 0xA1 0xA2 ..." */
	if (sscanf(buf, "%ld 0x%llx 0x%llx 0x%llx", &nr, &a0, &a1, &a2) != 4 ||
	    nr != SYS_madvise || a2 != MADV_REMOVE)
		return false;
	*start = a0;
	*len = a1;
	return true;
}

void lazy_shmem_note_removers(struct lazy_task *t)
{
	char path[64];
	struct dirent *de;
	DIR *dir;

	t->nr_removers = 0;
	if (t->forked || t->gone || !t->shm.nr || lazy_shmem_task_done(t))
		return;
	snprintf(path, sizeof(path), "/proc/%d/task", t->host_pid);
	dir = opendir(path);
	if (!dir)
		return;		/* exited: its events say so */
	while ((de = readdir(dir)) && t->nr_removers < LAZY_MAX_REMOVERS) {
		uint64_t start, len;

		if (de->d_name[0] == '.' || !thread_punches(t->host_pid, de->d_name, &start, &len))
			continue;
		t->removers[t->nr_removers][0] = start;
		t->removers[t->nr_removers][1] = start + len;
		t->nr_removers++;
		pr_debug("task %d: thread %s punches 0x%" PRIx64 "-0x%" PRIx64 " (MADV_REMOVE)",
			 t->pid, de->d_name, start, start + len);
	}
	closedir(dir);
}

bool lazy_shmem_is_punch(const struct lazy_task *t, uint64_t start, uint64_t end)
{
	for (unsigned int i = 0; i < t->nr_removers; i++)
		if (start >= t->removers[i][0] && end <= (t->removers[i][1] + 4095) / 4096 * 4096)
			return true;
	return false;
}
