/*
 * Which pids go into the images: the ones the tasks see.
 *
 * A task in our pid namespace sees the pids we see.  A tree may also live
 * in a pid namespace of its own, one level below ours (NSpid in
 * /proc/PID/status lists a pid at every level from the root namespace
 * down: one level more than ours): its root must then be that namespace's
 * init (pid 1 there) and every other task of the tree a member of the same
 * namespace (dump_check_tree).  Their images hold the in-namespace pids
 * (pstree pid 1, 2, ..., core-1.img, ...), their sessions and groups as the
 * namespace sees them (NSsid, NSpgid: 0 when they lie outside it), and the
 * root's ids-1.img names a pid namespace other than inventory.root_ids'
 * one, which tells the restore to create a new pid namespace for the tree.
 * Everything done from here (/proc, ptrace, process_vm_readv) keeps using
 * the real pid.
 *
 * This is how CRIU's zdtm tests a lazy migration on one machine: the
 * source tree keeps its pids until every page has moved, while its copy,
 * in a new namespace, has the same pids there.
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
	const char *p = proc_status_field(status, key);
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

int dump_pid_ns(struct dump_task *t, const char *status, bool root)
{
	long pids[NS_LEVELS_MAX], sids[NS_LEVELS_MAX], pgids[NS_LEVELS_MAX];
	int ours = our_ns_levels(), nr, nr_sid, nr_pgid;

	t->vpid = t->pid;
	t->in_pidns = false;
	if (ours <= 0 || ns_field(status, "NSpid", pids, &nr))
		return 0;	/* a kernel without pid namespaces */
	if (nr < ours) {
		pr_err("task %d lives in a pid namespace above ours: it can't be dumped from here",
		       t->pid);
		return -EINVAL;
	}
	if (nr == ours)
		return 0;
	if (!root && nr > ours + 1) {
		pr_err("task %d is pid %ld in a pid namespace nested in the tree's: not supported",
		       t->pid, pids[nr - 1]);
		return -EOPNOTSUPP;
	}
	if (root && (nr > ours + 1 || pids[nr - 1] != 1)) {
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
	t->in_pidns = true;
	t->vpid = pids[nr - 1];
	t->sid = sids[nr - 1];
	t->pgid = pgids[nr - 1];
	if (root) {
		t->ppid = 0;
		pr_info("task %d is the init of its own pid namespace: dumped as pid 1 (session "
			"%d, group %d there)", t->pid, t->sid, t->pgid);
	} else {
		pr_debug("task %d is pid %d in a pid namespace below ours (session %d, group %d "
			 "there)", t->pid, t->vpid, t->sid, t->pgid);
	}
	return 0;
}
