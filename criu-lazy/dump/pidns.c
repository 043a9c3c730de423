/*
 * Which pids go into the images: the ones the task sees.
 *
 * A task in our pid namespace sees the pids we see.  A task in a pid
 * namespace of its own is dumped as that namespace's init: it must be pid 1
 * there, and the namespace a direct child of ours (NSpid in
 * /proc/PID/status lists its pid at every level from the root namespace
 * down: one level more than ours).  Its images then hold the in-namespace
 * pids (pstree pid 1, core-1.img, ...), its session and group as the
 * namespace sees them (NSsid, NSpgid: 0 when they lie outside it), and its
 * ids-1.img names a pid namespace other than inventory.root_ids' one, which
 * tells the restore to create a new pid namespace for it.  Everything done
 * from here (/proc, ptrace, process_vm_readv) keeps using the real pid.
 *
 * This is how CRIU's zdtm tests a lazy migration on one machine: the
 * source task keeps its pid until every page has moved, while its copy,
 * init of a new namespace, is pid 1 there too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "dump/dump.h"

#define NS_LEVELS_MAX 33	/* MAX_PID_NS_LEVEL + 1 */

/* The numbers after "Key:" in status text; -ENOENT without that line. */
static int ns_field(const char *status, const char *key, long *v, int *nr)
{
	const char *p = dump_status_field(status, key);
	char *end;

	*nr = 0;
	if (!p)
		return -ENOENT;
	while (*nr < NS_LEVELS_MAX) {
		long n = strtol(p, &end, 10);

		if (end == p)
			break;
		v[(*nr)++] = n;
		p = end;
	}
	return *nr ? 0 : -EINVAL;
}

static int our_ns_levels(void)
{
	char status[16384];
	long v[NS_LEVELS_MAX];
	FILE *f = fopen("/proc/self/status", "re");
	size_t n;
	int nr;

	if (!f)
		return -errno;
	n = fread(status, 1, sizeof(status) - 1, f);
	fclose(f);
	status[n] = '\0';
	if (ns_field(status, "NSpid", v, &nr))
		return 0;	/* no pid namespaces here */
	return nr;
}

int dump_pid_ns(struct dump_task *t, const char *status)
{
	long pids[NS_LEVELS_MAX], sids[NS_LEVELS_MAX], pgids[NS_LEVELS_MAX];
	int ours = our_ns_levels(), nr, nr_sid, nr_pgid;

	t->vpid = t->pid;
	if (ours <= 0 || ns_field(status, "NSpid", pids, &nr))
		return 0;	/* a kernel without pid namespaces */
	if (nr < ours) {
		pr_err("task %d lives in a pid namespace above ours: it can't be dumped from here",
		       t->pid);
		return -EINVAL;
	}
	if (nr == ours)
		return 0;
	if (nr > ours + 1 || pids[nr - 1] != 1) {
		pr_err("task %d is pid %ld in a%s pid namespace of its own: only the init (pid 1) "
		       "of a pid namespace directly below ours can be dumped", t->pid,
		       pids[nr - 1], nr > ours + 1 ? " nested" : "");
		return -EOPNOTSUPP;
	}
	if (ns_field(status, "NSsid", sids, &nr_sid) || nr_sid != nr ||
	    ns_field(status, "NSpgid", pgids, &nr_pgid) || nr_pgid != nr) {
		pr_err("task %d: /proc/%d/status has no NSsid/NSpgid for its %d pid namespace levels",
		       t->pid, t->pid, nr);
		return -EINVAL;
	}
	t->vpid = 1;
	t->ppid = 0;
	t->sid = sids[nr - 1];
	t->pgid = pgids[nr - 1];
	pr_info("task %d is the init of its own pid namespace: dumped as pid 1 (session %d, "
		"group %d there)", t->pid, t->sid, t->pgid);
	return 0;
}
