/*
 * The pid in our namespace of a process the restore names by its pid in
 * the images.  CRIU's protocol sends the latter; for a tree restored into
 * a pid namespace of its own (lazy-migrate on one host) that is its pid
 * there (1 for the root), another process's pid here.  The daemon itself
 * needs no more than the uffd, but it reads the process's /proc (the
 * check at the handover, shared memory, the guardian), so it must be the
 * right one.
 *
 * The kernel says it: the uffd's message comes with credentials (the
 * connection has SO_PASSCRED), whose pid it translated into our
 * namespace.  Our restore names the task there; CRIU's sends each uffd
 * from the task itself, whose own pid the kernel fills in.  A pid other
 * than the restore's (SO_PEERCRED) is the process, once its innermost
 * NSpid is the image's pid.
 *
 * Other credentials say nothing: the restore's own pid or 0 (a sender we
 * cannot see) is a restore that could not send any (no CAP_SYS_ADMIN),
 * another pid a sender other than the task.  Then the process is looked
 * for: a descendant of the restore while it is
 * handed over: if the image's pid here leads up to the restore, it is
 * that; otherwise the descendant whose NSpid (innermost last) ends with
 * it.  But the restore does not wait for us: on a busy machine it may
 * have sent its last uffd and exited (its tree reparented) before we read
 * the first.  Then the one process anywhere whose NSpid ends with the
 * pid, started after us, with its mm image's heap start and a VMA
 * registered with a userfaultfd; two restores of the same images at once
 * can make that ambiguous (a warning), which the credentials never are.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/proc-stat.h"
#include "common/proc-status.h"
#include "common/proc-task.h"
#include "images/image.h"
#include "lazy/lazy-daemon.h"
#include "mm.pb-c.h"

#define MAX_DEPTH 4096		/* of the walk up: a cycle cannot be, but bound it */

/* "PPid:" (want_ppid) or the last pid of "NSpid:" of /proc/pid/status; -1 if none. */
static pid_t status_pid(pid_t pid, bool want_ppid)
{
	char buf[4096];

	if (proc_task_read(pid, 0, "status", buf, sizeof(buf)) < 0)
		return -1;
	return proc_status_last(buf, want_ppid ? "PPid" : "NSpid");
}

static bool descends_from(pid_t pid, pid_t ancestor)
{
	for (int depth = 0; pid > 1 && depth < MAX_DEPTH; depth++) {
		if (pid == ancestor)
			return true;
		pid = status_pid(pid, true);
	}
	return pid == ancestor;
}

/* The descendant of root whose innermost pid is ns_pid, or -1. */
static pid_t find_below(pid_t root, pid_t ns_pid)
{
	pid_t *pids, found = -1;
	size_t nr;

	if (proc_descendants(root, &pids, &nr))
		return -1;
	/* breadth first: the nearest to root if more than one has it */
	for (size_t k = 1; k < nr && found < 0; k++)
		if (status_pid(pids[k], false) == ns_pid)
			found = pids[k];
	free(pids);
	return found;
}

/* Field n (> 3) of /proc/pid/stat as a number; 0 if unreadable. */
static unsigned long long stat_field(pid_t pid, int n)
{
	struct proc_stat st;

	return proc_stat_read(pid, &st) >= n ? st.f[n] : 0;
}

/* Has pid a VMA registered with a userfaultfd ("um" in its VmFlags)? */
static bool has_uffd_vma(pid_t pid)
{
	char path[64], *line = NULL;
	size_t len = 0;
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (!found && getline(&line, &len, f) > 0)
		found = !strncmp(line, "VmFlags:", 8) && strstr(line, " um");
	free(line);
	fclose(f);
	return found;
}

/*
 * With the restore gone: the one process whose innermost pid is ns_pid,
 * started no earlier than since (the daemon's field 22), with a
 * userfaultfd VMA and the heap's start of its mm image (field 47, set by
 * the restore; another restore's pid 1 may be about); -1 if none or more
 * (how many in *nr).
 */
static pid_t find_anywhere(int dirfd, unsigned long long since, pid_t ns_pid, int *nr)
{
	unsigned long long start_brk = 0;
	pid_t found = -1;
	struct dirent *de;
	MmEntry *mm;
	DIR *dir;

	if (!img_read_one(dirfd, IMG_MM, ns_pid, &mm_entry__descriptor,
			  (ProtobufCMessage **)&mm)) {
		start_brk = mm->mm_start_brk;
		mm_entry__free_unpacked(mm, NULL);
	}
	dir = opendir("/proc");
	if (!dir)
		return -1;
	while ((de = readdir(dir))) {
		pid_t p = atoi(de->d_name);

		if (p <= 0 || status_pid(p, false) != ns_pid || stat_field(p, 22) < since ||
		    (start_brk && stat_field(p, 47) != start_brk) || !has_uffd_vma(p))
			continue;
		found = p;
		(*nr)++;
	}
	closedir(dir);
	return *nr == 1 ? found : -1;
}

/*
 * Is @pid in our own pid namespace?  Then its innermost pid is its pid
 * here, and its /proc/PID/status need not be read: the kernel formats it
 * whole (memory counters and all), 20 - 70 us of each handover of the
 * bench tree, on a CPU the restore then waited for.  Anything unreadable
 * says no: the status decides then.
 */
static char our_pid_ns[64];

static bool our_pid_ns_read(void)
{
	ssize_t n;

	if (our_pid_ns[0])
		return true;
	n = readlink("/proc/self/ns/pid", our_pid_ns, sizeof(our_pid_ns) - 1);
	if (n <= 0)
		return false;
	our_pid_ns[n] = '\0';
	return true;
}

static bool in_our_pid_ns(pid_t pid)
{
	char path[64], theirs[64];
	ssize_t n;

	if (!our_pid_ns_read())
		return false;
	snprintf(path, sizeof(path), "/proc/%d/ns/pid", pid);
	n = readlink(path, theirs, sizeof(theirs) - 1);
	if (n <= 0)
		return false;
	theirs[n] = '\0';
	return !strcmp(our_pid_ns, theirs);
}

/*
 * cred_pid from the message's credentials: the process if it has the
 * image's pid, else 0.  Any process holding the connection may send a
 * task's uffd (CRIU's restore sends each from the task; a stand-in of
 * our tests from a child of another pid), and the kernel then names the
 * sender: that says nothing of the task, which is looked for.
 */
static pid_t from_credentials(pid_t pid, pid_t cred_pid)
{
	pid_t inner = in_our_pid_ns(cred_pid) ? cred_pid : status_pid(cred_pid, false);

	if (inner == pid) {
		pr_debug("task %d is pid %d here: the restore's credentials say so", pid, cred_pid);
		return cred_pid;
	}
	pr_debug("task %d: the credentials name pid %d here, %s: not the task", pid, cred_pid,
		 inner < 0 ? "which is gone" : "another pid in its namespace");
	return 0;
}

unsigned long long lazy_start_ticks(pid_t pid)
{
	return stat_field(pid, 22);
}

void lazy_host_pid_prepare(struct lazy_daemon *d)
{
	d->start_ticks = lazy_start_ticks(getpid());
	our_pid_ns_read();	/* (a first read cost a handover 30 us more) */
}

pid_t lazy_ns_pid(pid_t here)
{
	return status_pid(here, false);
}

pid_t lazy_host_pid(const struct lazy_daemon *d, pid_t pid, pid_t cred_pid)
{
	return lazy_host_pid_in(d->dirfd, d->restore_pid, d->start_ticks, pid, cred_pid);
}

pid_t lazy_host_pid_in(int dirfd, pid_t restore_pid, unsigned long long since, pid_t pid,
		       pid_t cred_pid)
{
	int nr = 0;
	pid_t here;

	if (cred_pid > 0 && cred_pid != restore_pid) {
		here = from_credentials(pid, cred_pid);
		if (here > 0)
			return here;
	}
	if (restore_pid <= 0 || descends_from(pid, restore_pid)) {
		pr_debug("task %d is pid %d here: no credentials, %s", pid, pid,
			 restore_pid <= 0 ? "the restore is not in our namespace"
					  : "it descends from the restore");
		return pid;
	}
	here = find_below(restore_pid, pid);
	if (here > 0) {
		pr_debug("task %d is pid %d here: no credentials, the restore's descendant with "
			 "that pid in its namespace", pid, here);
		return here;
	}
	here = find_anywhere(dirfd, since, pid, &nr);
	if (here < 0) {
		/* the guardian may then read another process's /proc: it says so */
		pr_warn("task %d: no process below the restore (pid %d) has that pid in its "
			"namespace, %d elsewhere started since us with a userfaultfd: the guardian "
			"looks for it as %d", pid, restore_pid, nr, pid);
		return pid;
	}
	pr_debug("task %d is pid %d here: no credentials, the one process started since us with "
		 "that pid in its namespace, its heap's start and a userfaultfd", pid, here);
	return here;
}
