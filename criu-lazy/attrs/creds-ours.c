/*
 * Our credentials, which every thread of the tree has until its blob sets
 * its own (pie/creds.c): the tasks are forks of us, and each blob creates
 * its threads before its leader changes anything (clone3 with set_tid
 * needs our privileges).  A thread dumped with exactly ours keeps them, and
 * its blob makes none of the dozen syscalls that set them (some 8 us a
 * thread on the test VM; the bench tree has 16 threads).  Read once, by
 * the restore process, before the first fork; what cannot be read leaves
 * them unknown, and every thread sets its own as before.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "attrs/task-attr.h"
#include "common/proc-status.h"
#include "common/proc-task.h"
#include "restore/restore.h"

static bool parse_groups(const char *status, struct rst_creds_ours *o)
{
	const char *p = proc_status_field(status, "Groups");

	while (p && *p && *p != '\n') {
		char *end;
		unsigned long g = strtoul(p, &end, 10);

		if (end == p)
			break;
		if (o->nr_groups == RST_OURS_GROUPS_MAX)
			return false;	/* too many to compare: unknown */
		o->groups[o->nr_groups++] = (uint32_t)g;
		for (p = end; *p == ' ' || *p == '\t'; p++)
			;
	}
	return p != NULL;
}

void attr_creds_ours(struct rst_creds_ours *o)
{
	char status[16384];
	const char *nnp;
	int secbits;

	memset(o, 0, sizeof(*o));
	if (proc_task_read(getpid(), 0, "status", status, sizeof(status)) <= 0)
		return;
	if (!proc_status_ids(status, "Uid", o->uid) || !proc_status_ids(status, "Gid", o->gid) ||
	    !proc_status_caps(status, "CapInh", o->cap_inh) ||
	    !proc_status_caps(status, "CapPrm", o->cap_prm) ||
	    !proc_status_caps(status, "CapEff", o->cap_eff) ||
	    !proc_status_caps(status, "CapBnd", o->cap_bnd) ||
	    !proc_status_caps(status, "CapAmb", o->cap_amb) || !parse_groups(status, o))
		return;
	nnp = proc_status_field(status, "NoNewPrivs");
	secbits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
	if (!nnp || secbits < 0)
		return;
	o->no_new_privs = atoi(nnp) != 0;
	o->secbits = (uint32_t)secbits;
	o->known = true;
}

static bool caps_equal(const uint32_t a[2], const uint32_t b[2], uint32_t last)
{
	uint64_t mask = last >= 63 ? ~0ull : (1ull << (last + 1)) - 1;
	uint64_t x = ((uint64_t)a[1] << 32 | a[0]) & mask, y = ((uint64_t)b[1] << 32 | b[0]) & mask;

	return x == y;
}

/* Is @c (filled from the image, groups @groups) what the thread has from us? */
bool attr_creds_are_ours(const struct rst_creds_ours *o, const struct rst_creds *c,
			 const uint32_t *groups)
{
	uint32_t last = c->cap_last_cap;

	if (!o || !o->known)
		return false;
	if (c->uid != o->uid[0] || c->euid != o->uid[1] || c->suid != o->uid[2] ||
	    c->fsuid != o->uid[3] || c->gid != o->gid[0] || c->egid != o->gid[1] ||
	    c->sgid != o->gid[2] || c->fsgid != o->gid[3])
		return false;
	if (!caps_equal(c->cap_inh, o->cap_inh, last) || !caps_equal(c->cap_prm, o->cap_prm, last) ||
	    !caps_equal(c->cap_eff, o->cap_eff, last) || !caps_equal(c->cap_bnd, o->cap_bnd, last))
		return false;
	/* no ambient set in the image: the blob would leave ours anyway */
	if (c->has_amb && !caps_equal(c->cap_amb, o->cap_amb, last))
		return false;
	if (c->secbits != o->secbits || c->no_new_privs != o->no_new_privs ||
	    c->nr_groups != o->nr_groups)
		return false;
	return !c->nr_groups || !memcmp(groups, o->groups, c->nr_groups * sizeof(*groups));
}
