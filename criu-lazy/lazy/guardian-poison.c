/*
 * The guardian's takeover: the daemon died without saying END.
 *
 * We hold a copy of every uffd it had, so every registration is still in
 * place and every thread that faulted since waits.  We have no model of
 * what was lazy, only the kernel's view: a page missing in a VMA registered
 * in MISSING mode ("um" in /proc/PID/smaps VmFlags) is a page the daemon
 * never delivered, or one that was never dumped (which would have read as
 * zeros).  We cannot tell the two apart, so both are poisoned: SIGBUS where
 * zeros may have been right is loud; zeros where data was is the outcome
 * we must never give.  Present and swapped pages (PAGEMAP_SCAN; a poison
 * marker counts as swapped) are left alone, and a page that turns up in the
 * meantime fails the poison with EEXIST, which is fine: a copy the daemon
 * had in flight either landed whole or not at all.
 *
 * Events: while one is queued (a FORK, REMAP, REMOVE or UNMAP the daemon
 * never read) the ioctls fail with EAGAIN, and the task that caused it is
 * blocked until someone reads it.  So we read every uffd's messages first
 * (faults are simply dropped: the poison or our final close wakes their
 * threads), and again on EAGAIN.  A FORK read here hands us the child's
 * uffd: it joins the table and is poisoned like the rest.  The kernel does
 * not say which pid a FORK's child has, so for such a child (and for one the
 * daemon passed us) we poison, through its uffd, the missing runs of the
 * process it descends from and of every descendant of that process, taken
 * before we poison anything of theirs (drain()): a poison lands only where
 * the child's own mm has a missing page in a registered VMA at that
 * address, whichever process's runs named it.
 *
 * Everything is bounded: at most UFFD_EVENT_WAIT_TRIES retries per uffd, then
 * we close everything (which unregisters whatever is left: the kernel wakes
 * the waiting threads and zero-fills) and exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_PREFIX "guardian: "
#include "common/array.h"
#include "common/log.h"
#include "common/pm-scan.h"
#include "common/proc-stat.h"
#include "common/proc-task.h"
#include "lazy/guardian.h"
#include "lazy/uffd.h"

#define PAGE 4096ULL

struct range {
	uint64_t start, end;
};

struct guardian_runs {
	struct range *r;
	size_t nr, cap;
};

struct tally {
	uint64_t poisoned;
	bool gone;		/* the task exited */
};

static int ranges_add(struct guardian_runs *rs, uint64_t start, uint64_t end)
{
	if (ARRAY_GROW(rs->r, rs->cap, rs->nr + 1, 32))
		return -ENOMEM;
	rs->r[rs->nr++] = (struct range){ start, end };
	return 0;
}

static int cmp_start(const void *a, const void *b)
{
	const struct range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Sorted, and runs that overlap or meet joined: each page is poisoned once. */
static void ranges_merge(struct guardian_runs *rs)
{
	size_t n = 0;

	if (!rs->nr)
		return;
	qsort(rs->r, rs->nr, sizeof(rs->r[0]), cmp_start);
	for (size_t i = 1; i < rs->nr; i++) {
		if (rs->r[i].start <= rs->r[n].end) {
			if (rs->r[i].end > rs->r[n].end)
				rs->r[n].end = rs->r[i].end;
		} else {
			rs->r[++n] = rs->r[i];
		}
	}
	rs->nr = n + 1;
}

struct vma_reg {
	uint64_t start, end;
	uint64_t pgoff;		/* bytes */
	bool shared;
};

struct vma_regs {
	struct vma_reg *v;
	size_t nr, cap;
};

static int regs_add(struct vma_regs *rs, const struct vma_reg *v)
{
	if (ARRAY_GROW(rs->v, rs->cap, rs->nr + 1, 32))
		return -ENOMEM;
	rs->v[rs->nr++] = *v;
	return 0;
}

/* A zombie (or dying) process: no memory left to poison. */
static bool is_dead(pid_t pid)
{
	char st = proc_stat_state(pid);

	return !st || st == 'Z' || st == 'X';
}

/* The VMAs of pid registered in MISSING mode; -ESRCH if pid is gone. */
static int read_registered(pid_t pid, struct vma_regs *out)
{
	char path[64], *line = NULL;
	struct vma_reg cur = { 0 };
	size_t len = 0;
	int ret = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? -ESRCH : -errno;
	while (!ret && getline(&line, &len, f) > 0) {
		uint64_t s, e, off;
		char perms[5];

		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64, &s, &e, perms, &off) == 4) {
			cur = (struct vma_reg){ s, e, off, perms[3] == 's' };
		} else if (!strncmp(line, "VmFlags:", 8) && strstr(line, " um")) {
			ret = regs_add(out, &cur);
		}
	}
	free(line);
	fclose(f);
	if (!ret && !out->nr && is_dead(pid))
		return -ESRCH;
	return ret;
}

/*
 * A shared VMA: what is missing is what its object lacks, not what the
 * task has not mapped yet (a page the daemon put into the object for
 * another process is mapped by the kernel at the first touch, no fault
 * for us).  Holes of the object (SEEK_HOLE counts swapped shmem pages as
 * data), through the task's /proc/PID/map_files.
 */
static int shared_missing(pid_t pid, const struct vma_reg *v, struct guardian_runs *out)
{
	uint64_t pos = v->pgoff, end = v->pgoff + (v->end - v->start), holes = 0;
	char path[96];
	int fd, ret = 0;

	snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, pid, v->start,
		 v->end);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (pos < end && !ret) {
		off_t hole = lseek(fd, pos, SEEK_HOLE), data;

		if (hole < 0 && errno != ENXIO) {
			ret = -errno;
			break;
		}
		hole = hole < 0 ? (off_t)pos : (off_t)((hole + PAGE - 1) & ~(PAGE - 1));
		if ((uint64_t)hole >= end)
			break;
		data = lseek(fd, hole, SEEK_DATA);
		if (data < 0 && errno != ENXIO) {
			ret = -errno;
			break;
		}
		data = data < 0 || (uint64_t)data > end ? (off_t)end :
		       (off_t)((data + PAGE - 1) & ~(PAGE - 1));
		ret = ranges_add(out, v->start + (hole - v->pgoff), v->start + (data - v->pgoff));
		holes += (data - hole) / PAGE;
		pos = data;
	}
	close(fd);
	if (!ret)
		pr_debug("task %d: shared %" PRIx64 "-%" PRIx64 ": %" PRIu64 " pages missing in its "
			 "object", pid, v->start, v->end, holes);
	return ret;
}

struct missing {
	struct guardian_runs *out;
	uint64_t cur;		/* what lies below is accounted for */
};

/* A run that is there: what lay between it and the one before is missing. */
static int note_gap(uint64_t start, uint64_t end, void *arg)
{
	struct missing *m = arg;
	int ret = start > m->cur ? ranges_add(m->out, m->cur, start) : 0;

	m->cur = end;
	return ret;
}

/*
 * The runs of [start, end) that are neither present nor swapped
 * (common/pm-scan.c).  Where the pagemap cannot be read, the rest of the
 * range is one run (the poison steps over what is there, one ioctl per
 * present page): more than is missing, never less.
 */
static int missing_runs(int pm_fd, uint64_t start, uint64_t end, struct guardian_runs *out)
{
	struct missing m = { out, start };
	int ret;

	if (pm_fd < 0)
		return ranges_add(out, start, end);
	ret = pm_scan_present(pm_fd, start, end, note_gap, &m);
	if (ret == -ENOMEM)
		return ret;
	return end > m.cur ? ranges_add(out, m.cur, end) : 0;
}

/* The missing runs of pid's registered VMAs. */
static int runs_of(pid_t pid, struct guardian_runs *runs)
{
	struct vma_regs reg = { 0 };
	char path[64];
	int pm_fd, ret;

	ret = read_registered(pid, &reg);
	if (ret) {
		free(reg.v);
		return ret;
	}
	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	pm_fd = open(path, O_RDONLY | O_CLOEXEC);
	for (size_t i = 0; i < reg.nr && !ret; i++) {
		const struct vma_reg *v = &reg.v[i];
		size_t before = runs->nr;

		if (v->shared) {
			ret = shared_missing(pid, v, runs);
			if (!ret || ret == -ENOMEM)
				continue;
			/* no way to the object: what the task lacks (more, never less) */
			runs->nr = before;
			ret = 0;
		}
		ret = missing_runs(pm_fd, v->start, v->end, runs);
	}
	if (pm_fd >= 0)
		close(pm_fd);
	free(reg.v);
	return ret;
}

/* UFFD_DONE, UFFD_RETRY, UFFD_GONE_TASK or -errno (logged by uffd.c). */
static int poison_runs(int uffd, const struct guardian_runs *runs, struct tally *c)
{
	for (size_t i = 0; i < runs->nr; i++) {
		uint64_t addr = runs->r[i].start, end = runs->r[i].end;

		while (addr < end) {
			uint64_t done, existed, first;
			int ret = uffd_fill_counted(uffd, UFFD_FILL_POISON, addr, NULL, end - addr,
						    &done, &existed, &first);

			c->poisoned += done / PAGE - existed;
			addr += done;
			if (ret == UFFD_GONE_RANGE) {
				addr += PAGE;	/* in no VMA of this uffd's mm */
				continue;
			}
			if (ret == UFFD_GONE_TASK)
				c->gone = true;
			if (ret != UFFD_DONE)
				return ret;
		}
	}
	return UFFD_DONE;
}

/*
 * The missing runs of the processes entry e stands for: its own, or for a
 * FORK's child (pid unknown) those of the process its layout descends from
 * and of every descendant of that process, and the runs it was forked with
 * (e->borrowed; an orphan's only those).  UFFD_GONE_TASK: its own process
 * is gone.
 */
static int entry_runs(const struct guardian_entry *e, struct guardian_runs *runs)
{
	pid_t *pids = NULL;
	size_t nr = !e->orphan;
	int ret = 0;

	if (e->forked && !e->orphan)
		ret = proc_descendants(e->host_pid, &pids, &nr);
	for (size_t k = 0; k < nr && !ret; k++) {
		ret = runs_of(pids ? pids[k] : e->host_pid, runs);
		if (ret == -ESRCH && (e->forked || k))
			ret = 0;	/* one of the processes we only borrow runs from */
		else if (ret == -ESRCH)
			ret = UFFD_GONE_TASK;
	}
	free(pids);
	for (size_t k = 0; !ret && e->borrowed && k < e->borrowed->nr; k++)
		ret = ranges_add(runs, e->borrowed->r[k].start, e->borrowed->r[k].end);
	if (!ret)
		ranges_merge(runs);
	return ret;
}

static struct guardian_runs *runs_copy(const struct guardian_runs *from)
{
	struct guardian_runs *to = calloc(1, sizeof(*to));

	for (size_t k = 0; to && k < from->nr; k++)
		if (ranges_add(to, from->r[k].start, from->r[k].end)) {
			free(to->r);
			free(to);
			return NULL;
		}
	return to;
}

/*
 * Read what is queued on entry i: FORKs add their child to the table.
 *
 * A FORK's child has its parent's memory as it was when the fork began, so
 * what is missing there is missing in the child; we cannot read the child's
 * own (the kernel does not say its pid, and it is below the parent only
 * while the parent lives).  So the runs are taken before the read, while a
 * FORK keeps the parent inside fork() and nothing of it has been poisoned
 * since the fork began.  Read first, the parent may end at once (a fork and
 * exit; a parent dying of our poison), or be poisoned by us before the
 * child's turn (a poison marker is not missing): either way the child kept
 * its missing pages unpoisoned, zeros once we close.
 */
static int drain(struct guardian_table *tab, size_t i)
{
	struct guardian_runs before = { 0 };
	struct uffd_msg msgs[64];
	int n, ret;

	if (!uffd_has_msgs(tab->e[i].uffd))
		return 0;
	ret = entry_runs(&tab->e[i], &before);
	if (ret < 0) {
		free(before.r);
		return ret;
	}
	while ((n = uffd_read_msgs(tab->e[i].uffd, msgs, 64)) > 0) {
		for (int k = 0; k < n; k++) {
			struct guardian_entry child = { .pid = tab->e[i].pid,
							.host_pid = tab->e[i].host_pid,
							.forked = true,
							.orphan = tab->e[i].orphan };

			if (msgs[k].event != UFFD_EVENT_FORK)
				continue;
			child.uffd = msgs[k].arg.fork.ufd;
			child.borrowed = runs_copy(&before);
			if (!child.borrowed || guardian_table_add(tab, &child)) {
				close(child.uffd);
				free(before.r);
				return -ENOMEM;
			}
		}
	}
	free(before.r);
	return n;
}

/* One pass over the entry's runs (re-read each time: events move them). */
static int poison_entry(struct guardian_table *tab, size_t i, struct tally *c)
{
	struct guardian_runs runs = { 0 };
	int ret = entry_runs(&tab->e[i], &runs);

	if (ret == UFFD_GONE_TASK)
		c->gone = true;
	if (!ret)
		ret = poison_runs(tab->e[i].uffd, &runs, c);
	free(runs.r);
	return ret;
}

static void say(pid_t daemon_pid, const struct guardian_entry *e, const struct tally *c, int ret)
{
	char who[96], here[32] = "";

	if (e->host_pid != e->pid)
		snprintf(here, sizeof(here), " (pid %d here)", e->host_pid);
	if (e->orphan)
		snprintf(who, sizeof(who), "a child forked after the restore, its parent not known");
	else if (e->forked)
		snprintf(who, sizeof(who), "a child of task %d%s forked after the restore", e->pid,
			 here);
	else
		snprintf(who, sizeof(who), "task %d%s", e->pid, here);
	if (c->gone && !c->poisoned) {
		pr_info("%s had exited", who);
		return;
	}
	if (ret != UFFD_DONE && !c->gone) {
		pr_err("the lazy-pages daemon (pid %d) died without ending its work: %s: %" PRIu64
		       " missing pages poisoned, the rest could not be (%s) and will read as zeros",
		       daemon_pid, who, c->poisoned,
		       ret == UFFD_RETRY ? "events kept coming" : strerror(-ret));
		return;
	}
	/* a task touching poisoned pages may die before we are through */
	pr_err("the lazy-pages daemon (pid %d) died without ending its work: %s: %" PRIu64
	       " missing pages poisoned (SIGBUS when touched)%s", daemon_pid, who, c->poisoned,
	       c->gone ? "; it has exited since" : "");
}

/*
 * For an orphan (its parent not known): the missing runs of every process
 * of the table and of all their descendants, each process looked at once.
 */
static int tree_runs(const struct guardian_table *tab, struct guardian_runs *all)
{
	int ret = 0;

	for (size_t i = 0; i < tab->nr && !ret; i++) {
		struct guardian_entry as_fork = tab->e[i];
		bool seen = false;

		for (size_t j = 0; j < i && !seen; j++)
			seen = !tab->e[j].orphan && tab->e[j].host_pid == as_fork.host_pid;
		if (as_fork.orphan || as_fork.host_pid <= 0 || seen)
			continue;
		as_fork.forked = true;		/* it and everything below it */
		as_fork.borrowed = NULL;
		ret = entry_runs(&as_fork, all);
	}
	return ret;
}

int guardian_take_over(struct guardian_table *tab, pid_t daemon_pid)
{
	struct guardian_runs all = { 0 };
	int status = 0, all_ret = 1;

	/*
	 * The runs of each child the daemon passed us, before we poison its
	 * parent (see drain()): a child whose parent ends during the takeover
	 * is no longer below it.  One whose parent had ended before the
	 * daemon died has none but its own, if it is below it still.  An
	 * orphan (guardian-keeper.c) gets those of every process.
	 */
	for (size_t i = 0; i < tab->nr; i++) {
		struct guardian_runs now = { 0 };
		struct guardian_entry *e = &tab->e[i];

		if (!e->forked)
			continue;
		if (e->orphan && all_ret > 0)
			all_ret = tree_runs(tab, &all);
		/* out of memory: it has the runs found at its turn only */
		if (e->orphan ? all_ret < 0 || !(e->borrowed = runs_copy(&all)) :
		    entry_runs(e, &now) < 0 || !(e->borrowed = runs_copy(&now)))
			status = 1;
		free(now.r);
	}
	free(all.r);
	/* then let every blocked event go: forks complete, children join */
	for (size_t i = 0; i < tab->nr; i++)
		if (drain(tab, i) < 0)
			status = 1;

	/* the table grows while we go (FORKs read on the way): they come last */
	for (size_t i = 0; i < tab->nr; i++) {
		struct tally c = { 0 };
		int ret, tries = 0;

		for (;;) {
			ret = poison_entry(tab, i, &c);
			if (ret != UFFD_RETRY || ++tries > UFFD_EVENT_WAIT_TRIES)
				break;
			if (drain(tab, i) < 0)
				break;
			nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
		}
		say(daemon_pid, &tab->e[i], &c, ret);
		if (ret != UFFD_DONE && !c.gone)
			status = 1;
	}
	for (size_t i = 0; i < tab->nr; i++)
		if (tab->e[i].borrowed) {
			free(tab->e[i].borrowed->r);
			free(tab->e[i].borrowed);
		}
	return status;
}
