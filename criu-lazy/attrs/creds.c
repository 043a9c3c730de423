/*
 * Credentials of a thread: ids, groups, capabilities and no_new_privs from
 * /proc/PID/status, securebits by prctl(PR_GET_SECUREBITS) in the task.
 * Restored by the blob (pie/creds.c), in the order that cannot fail half-way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "attrs/task-attr.h"
#include "common/array.h"
#include "common/log.h"
#include "common/proc-status.h"
#include "dump/dump.h"
#include "restore/restore.h"

static int parse_ids(struct dump_task *t, const char *status, const char *key, uint32_t v[4])
{
	if (!proc_status_ids(status, key, v)) {
		pr_err("can't parse %s: in /proc/%d/status", key, t->pid);
		return -EINVAL;
	}
	return 0;
}

/* "CapEff:\t000001ffffffffff" -> two 32-bit words, low first */
static int parse_caps(struct dump_task *t, const char *status, const char *key,
		      uint32_t words[2], size_t *n, uint32_t **field, bool optional)
{
	if (!proc_status_caps(status, key, words)) {
		if (optional)
			return 0;
		pr_err("no %s: in /proc/%d/status", key, t->pid);
		return -EINVAL;
	}
	*n = 2;
	*field = words;
	return 0;
}

static int parse_groups(struct dump_task *t, const char *status, struct task_core *c)
{
	const char *p = proc_status_field(status, "Groups");
	size_t n = 0, cap = 0;
	uint32_t *v = NULL;

	while (p && *p && *p != '\n') {
		char *end;
		unsigned long g = strtoul(p, &end, 10);

		if (end == p)
			break;
		if (ARRAY_GROW(v, cap, n + 1, 16)) {
			free(v);
			return -ENOMEM;
		}
		v[n++] = g;
		p = end;
		while (*p == ' ' || *p == '\t')
			p++;
	}
	c->groups = v;
	c->creds.n_groups = n;
	c->creds.groups = v;
	(void)t;
	return 0;
}

static int dump_creds(struct dump_ctx *ctx, struct dump_task *t)
{
	struct task_core *c = t->core;
	CredsEntry *cr = &c->creds;
	uint32_t uids[4], gids[4];
	char status[16384];
	const char *p;
	long res;
	int ret;

	ret = dump_proc_read(t, "status", status, sizeof(status));
	if (ret < 0)
		return ret;
	ret = parse_ids(t, status, "Uid", uids);
	if (!ret)
		ret = parse_ids(t, status, "Gid", gids);
	if (ret)
		return ret;
	cr->uid = uids[0];
	cr->euid = uids[1];
	cr->suid = uids[2];
	cr->fsuid = uids[3];
	cr->gid = gids[0];
	cr->egid = gids[1];
	cr->sgid = gids[2];
	cr->fsgid = gids[3];

	ret = parse_caps(t, status, "CapInh", c->cap_inh, &cr->n_cap_inh, &cr->cap_inh, false);
	if (!ret)
		ret = parse_caps(t, status, "CapPrm", c->cap_prm, &cr->n_cap_prm, &cr->cap_prm, false);
	if (!ret)
		ret = parse_caps(t, status, "CapEff", c->cap_eff, &cr->n_cap_eff, &cr->cap_eff, false);
	if (!ret)
		ret = parse_caps(t, status, "CapBnd", c->cap_bnd, &cr->n_cap_bnd, &cr->cap_bnd, false);
	if (!ret)
		ret = parse_caps(t, status, "CapAmb", c->cap_amb, &cr->n_cap_amb, &cr->cap_amb, true);
	if (!ret)
		ret = parse_groups(t, status, c);
	if (ret)
		return ret;

	p = proc_status_field(status, "NoNewPrivs");
	if (p) {
		cr->has_no_new_privs = true;
		cr->no_new_privs = atoi(p);
	}

	ret = dump_remote_call(t, "prctl(PR_GET_SECUREBITS)", __NR_prctl, PR_GET_SECUREBITS,
			       0, 0, 0, &res);
	if (ret)
		return ret;
	cr->secbits = res;

	c->thread.creds = cr;
	pr_debug("task %d: uid %u/%u/%u/%u gid %u/%u/%u/%u %zu groups caps eff %#x%08x "
		 "secbits %#x nnp %u", t->pid, cr->uid, cr->euid, cr->suid, cr->fsuid,
		 cr->gid, cr->egid, cr->sgid, cr->fsgid, cr->n_groups, c->cap_eff[1],
		 c->cap_eff[0], cr->secbits, cr->no_new_privs);
	return 0;
}

static void copy_caps(uint32_t dst[2], const uint32_t *src, size_t n, uint32_t last)
{
	dst[0] = n > 0 ? src[0] : 0;
	dst[1] = n > 1 ? src[1] : 0;
	/* bits this kernel does not know would make capset() fail */
	if (last < 63)
		dst[1] &= last >= 32 ? (uint32_t)((1ull << (last - 31)) - 1) : 0;
	if (last < 31)
		dst[0] &= (uint32_t)((1ull << (last + 1)) - 1);
}

static size_t creds_args_size(const struct rst_images *ri, const CoreEntry *core)
{
	const CredsEntry *ce = core->thread_core->creds;

	(void)ri;
	return ce ? ce->n_groups * sizeof(uint32_t) : 0;
}

static int restore_creds(struct attr_rst *r)
{
	const CredsEntry *ce = r->core->thread_core->creds;
	struct rst_creds *c = &r->thread->creds;
	uint32_t last = r->plan->cap_last_cap;
	uint32_t *groups;

	if (!ce)
		return 0;
	c->restore = 1;
	c->uid = ce->uid;
	c->gid = ce->gid;
	c->euid = ce->euid;
	c->egid = ce->egid;
	c->suid = ce->suid;
	c->sgid = ce->sgid;
	c->fsuid = ce->fsuid;
	c->fsgid = ce->fsgid;
	copy_caps(c->cap_inh, ce->cap_inh, ce->n_cap_inh, last);
	copy_caps(c->cap_prm, ce->cap_prm, ce->n_cap_prm, last);
	copy_caps(c->cap_eff, ce->cap_eff, ce->n_cap_eff, last);
	copy_caps(c->cap_bnd, ce->cap_bnd, ce->n_cap_bnd, last);
	copy_caps(c->cap_amb, ce->cap_amb, ce->n_cap_amb, last);
	c->has_amb = ce->n_cap_amb > 0;
	c->secbits = ce->secbits;
	c->cap_last_cap = last;
	c->no_new_privs = ce->has_no_new_privs && ce->no_new_privs;
	c->nr_groups = ce->n_groups;
	/* what it has from us already (creds-ours.c) */
	if (attr_inherited(r) && attr_creds_are_ours(&attr_inherited(r)->creds, c, ce->groups)) {
		c->restore = 0;
		return 0;
	}
	groups = attr_args_alloc(r, ce->n_groups * sizeof(uint32_t));
	if (ce->n_groups)	/* no groups: ce->groups is NULL */
		memcpy(groups, ce->groups, ce->n_groups * sizeof(uint32_t));
	c->groups = (uint64_t)(uintptr_t)groups;
	return 0;
}

const struct task_attr attr_creds = {
	.name = "creds",
	.scope = ATTR_THREAD,
	.dump_stage = ATTR_DUMP_INJECT,
	.dump = dump_creds,
	.args_size = creds_args_size,
	.restore = { [ATTR_RST_BLOB] = restore_creds },
};
