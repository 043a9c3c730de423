/*
 * Unit tests of attrs/creds-ours.c: this process's credentials read as the
 * tasks inherit them, and the comparison that lets a thread dumped with the
 * same keep them: equal is equal, a difference in any id, group, capability
 * set (below the kernel's last capability only), securebits or
 * no_new_privs is not, an ambient set the image does not have is not
 * compared, and credentials not known are never taken for the task's.
 * Prints "ok - NAME" or "FAIL - NAME" per case (unit.h).
 */
#include <string.h>
#include <unistd.h>

#include "attrs/task-attr.h"
#include "pie/restorer-args.h"
#include "restore/restore.h"
#include "unit.h"

static struct rst_creds_ours ours;

/* @c as the image would give our own credentials, and its groups. */
static void as_ours(struct rst_creds *c, uint32_t *groups)
{
	memset(c, 0, sizeof(*c));
	c->uid = ours.uid[0];
	c->euid = ours.uid[1];
	c->suid = ours.uid[2];
	c->fsuid = ours.uid[3];
	c->gid = ours.gid[0];
	c->egid = ours.gid[1];
	c->sgid = ours.gid[2];
	c->fsgid = ours.gid[3];
	memcpy(c->cap_inh, ours.cap_inh, sizeof(c->cap_inh));
	memcpy(c->cap_prm, ours.cap_prm, sizeof(c->cap_prm));
	memcpy(c->cap_eff, ours.cap_eff, sizeof(c->cap_eff));
	memcpy(c->cap_bnd, ours.cap_bnd, sizeof(c->cap_bnd));
	memcpy(c->cap_amb, ours.cap_amb, sizeof(c->cap_amb));
	c->has_amb = 1;
	c->secbits = ours.secbits;
	c->no_new_privs = ours.no_new_privs;
	c->cap_last_cap = 40;
	c->nr_groups = ours.nr_groups;
	memcpy(groups, ours.groups, ours.nr_groups * sizeof(*groups));
}

static int read_ours(void)
{
	attr_creds_ours(&ours);
	CHECK(ours.known, "our credentials could not be read");
	CHECK(ours.uid[0] == getuid() && ours.uid[1] == geteuid(), "uid %u/%u", ours.uid[0],
	      ours.uid[1]);
	CHECK(ours.gid[0] == getgid() && ours.gid[1] == getegid(), "gid %u/%u", ours.gid[0],
	      ours.gid[1]);
	return 0;
}

static int same_is_ours(void)
{
	uint32_t groups[RST_OURS_GROUPS_MAX + 1];
	struct rst_creds c;

	as_ours(&c, groups);
	CHECK(attr_creds_are_ours(&ours, &c, groups), "our own credentials");
	c.has_amb = 0;
	c.cap_amb[0] = ~ours.cap_amb[0];
	CHECK(attr_creds_are_ours(&ours, &c, groups), "no ambient set in the image");
	as_ours(&c, groups);
	c.cap_eff[1] ^= 1u << 15;	/* capability 47, beyond the last one (40) */
	CHECK(attr_creds_are_ours(&ours, &c, groups), "a bit beyond the last capability");
	return 0;
}

static int any_difference_is_not(void)
{
	uint32_t groups[RST_OURS_GROUPS_MAX + 1];
	struct rst_creds c;

#define DIFFERS(what, change)                                                    \
	do {                                                                    \
		as_ours(&c, groups);                                            \
		change;                                                         \
		CHECK(!attr_creds_are_ours(&ours, &c, groups), "%s", what);     \
	} while (0)
	DIFFERS("uid", c.uid++);
	DIFFERS("saved uid", c.suid++);
	DIFFERS("fs gid", c.fsgid++);
	DIFFERS("effective caps", c.cap_eff[0] ^= 1);
	DIFFERS("bounding set", c.cap_bnd[1] ^= 1);
	DIFFERS("inheritable caps", c.cap_inh[0] ^= 4);
	DIFFERS("ambient caps", c.cap_amb[0] ^= 2);
	DIFFERS("securebits", c.secbits ^= 1);
	DIFFERS("no_new_privs", c.no_new_privs = !c.no_new_privs);
	DIFFERS("one group more", groups[c.nr_groups] = 4242; c.nr_groups++);
	if (ours.nr_groups)
		DIFFERS("another group", groups[0]++);
#undef DIFFERS
	return 0;
}

static int unknown_is_never_ours(void)
{
	struct rst_creds_ours none = { .known = false };
	uint32_t groups[RST_OURS_GROUPS_MAX + 1];
	struct rst_creds c;

	as_ours(&c, groups);
	CHECK(!attr_creds_are_ours(&none, &c, groups), "credentials not read");
	CHECK(!attr_creds_are_ours(NULL, &c, groups), "no credentials at all");
	return 0;
}

int main(void)
{
	static const struct unit_case cases[] = {
		{ "read_ours", read_ours },
		{ "same_is_ours", same_is_ours },
		{ "any_difference_is_not", any_difference_is_not },
		{ "unknown_is_never_ours", unknown_is_never_ours },
	};

	return unit_run(cases, sizeof(cases) / sizeof(cases[0]));
}
