/*
 * Credentials, in the only order that cannot fail half-way while we are
 * still root: keep capabilities across the uid change (SECURE_NO_SETUID_
 * FIXUP), set groups and ids, then securebits, trim the bounding set,
 * set the capability sets, and raise the ambient ones last (they must be
 * permitted and inheritable already).
 */
#include <stdint.h>

#include "restorer.h"
#include "syscalls.h"

#define PR_CAPBSET_DROP		24
#define PR_SET_SECUREBITS	28
#define PR_SET_NO_NEW_PRIVS	38
#define PR_CAP_AMBIENT		47
#define PR_CAP_AMBIENT_RAISE	2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#define SECURE_NO_SETUID_FIXUP	2
#define LINUX_CAPABILITY_VERSION_3 0x20080522

struct cap_header {
	uint32_t version;
	int32_t pid;
};

struct cap_data {
	uint32_t effective, permitted, inheritable;
};

static int cap_bit(const uint32_t *set, unsigned int cap)
{
	return (set[cap / 32] >> (cap % 32)) & 1;
}

int rst_restore_creds(struct rst_thread_args *th)
{
	struct rst_creds *c = &th->creds;
	struct cap_header hdr = { LINUX_CAPABILITY_VERSION_3, 0 };
	struct cap_data data[2];
	long ret;

	if (!c->restore)
		return 0;

	ret = sys_prctl(PR_SET_SECUREBITS, 1 << SECURE_NO_SETUID_FIXUP, 0, 0, 0);
	if (ret)
		return rst_thread_fail(th, RST_STEP_CREDS, ret, 1);
	ret = sys_setgroups(c->nr_groups, (const uint32_t *)(uintptr_t)c->groups);
	if (ret)
		return rst_thread_fail(th, RST_STEP_CREDS, ret, 2);
	ret = sys_setresuid(c->uid, c->euid, c->suid);
	if (ret)
		return rst_thread_fail(th, RST_STEP_CREDS, ret, 3);
	sys_setfsuid(c->fsuid);
	if ((uint32_t)sys_setfsuid(-1) != c->fsuid)
		return rst_thread_fail(th, RST_STEP_CREDS, -1, 4);
	ret = sys_setresgid(c->gid, c->egid, c->sgid);
	if (ret)
		return rst_thread_fail(th, RST_STEP_CREDS, ret, 5);
	sys_setfsgid(c->fsgid);
	if ((uint32_t)sys_setfsgid(-1) != c->fsgid)
		return rst_thread_fail(th, RST_STEP_CREDS, -1, 6);

	ret = sys_prctl(PR_SET_SECUREBITS, c->secbits, 0, 0, 0);
	if (ret)
		return rst_thread_fail(th, RST_STEP_CREDS, ret, 7);

	for (unsigned int cap = 0; cap <= c->cap_last_cap && cap < 64; cap++) {
		if (cap_bit(c->cap_bnd, cap))
			continue;
		ret = sys_prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
		if (ret)
			return rst_thread_fail(th, RST_STEP_CREDS, ret, 8);
	}

	for (int i = 0; i < 2; i++) {
		data[i].effective = c->cap_eff[i];
		data[i].permitted = c->cap_prm[i];
		data[i].inheritable = c->cap_inh[i];
	}
	ret = sys_capset(&hdr, data);
	if (ret)
		return rst_thread_fail(th, RST_STEP_CREDS, ret, 9);

	if (c->has_amb) {
		ret = sys_prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
		if (ret)
			return rst_thread_fail(th, RST_STEP_CREDS, ret, 10);
		for (unsigned int cap = 0; cap <= c->cap_last_cap && cap < 64; cap++) {
			if (!cap_bit(c->cap_amb, cap))
				continue;
			ret = sys_prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
			if (ret)
				return rst_thread_fail(th, RST_STEP_CREDS, ret, 11);
		}
	}

	if (c->no_new_privs) {
		ret = sys_prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
		if (ret)
			return rst_thread_fail(th, RST_STEP_CREDS, ret, 12);
	}
	return 0;
}
