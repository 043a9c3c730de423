/*
 * Credentials: ids, groups, capabilities and no_new_privs from
 * /proc/PID/status, securebits by prctl(PR_GET_SECUREBITS) in the task.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "common/log.h"
#include "dump/dump.h"

static int parse_ids(struct dump_task *t, const char *status, const char *key, uint32_t v[4])
{
	const char *p = dump_status_field(status, key);

	if (!p || sscanf(p, "%u %u %u %u", &v[0], &v[1], &v[2], &v[3]) != 4) {
		pr_err("can't parse %s: in /proc/%d/status", key, t->pid);
		return -EINVAL;
	}
	return 0;
}

/* "CapEff:\t000001ffffffffff" -> two 32-bit words, low first */
static int parse_caps(struct dump_task *t, const char *status, const char *key,
		      uint32_t words[2], size_t *n, uint32_t **field, bool optional)
{
	const char *p = dump_status_field(status, key);
	unsigned long long v;

	if (!p) {
		if (optional)
			return 0;
		pr_err("no %s: in /proc/%d/status", key, t->pid);
		return -EINVAL;
	}
	v = strtoull(p, NULL, 16);
	words[0] = (uint32_t)v;
	words[1] = (uint32_t)(v >> 32);
	*n = 2;
	*field = words;
	return 0;
}

static int parse_groups(struct dump_task *t, const char *status, struct task_core *c)
{
	const char *p = dump_status_field(status, "Groups");
	size_t n = 0, cap = 0;
	uint32_t *v = NULL;

	while (p && *p && *p != '\n') {
		char *end;
		unsigned long g = strtoul(p, &end, 10);

		if (end == p)
			break;
		if (n == cap) {
			uint32_t *grown;

			cap = cap ? cap * 2 : 16;
			grown = realloc(v, cap * sizeof(*v));
			if (!grown) {
				free(v);
				return -ENOMEM;
			}
			v = grown;
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

int dump_creds(struct dump_task *t, const char *status)
{
	struct task_core *c = t->core;
	CredsEntry *cr = &c->creds;
	uint32_t uids[4], gids[4];
	const char *p;
	long res;
	int ret;

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

	p = dump_status_field(status, "NoNewPrivs");
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
