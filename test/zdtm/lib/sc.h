/*
 * Seccomp helpers for the zdtm programs: a filter from a few rules, and
 * checks of what a syscall returns under it.  Header only (static inline),
 * so programs that do not include it are unchanged.
 */
#ifndef ZDTM_SC_H
#define ZDTM_SC_H

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "zdtmtst.h"

struct sc_rule {
	int nr;			/* syscall number; 0 ends the list */
	unsigned int action;	/* SECCOMP_RET_* (| errno) */
};

/* Install a filter: each rule's syscall gets its action, the rest are allowed
 * (and any other architecture).  Returns 0 (with NEW_LISTENER: the
 * listener fd) or -errno; no fail(): threads report through their own
 * variables. */
static inline int sc_install(const struct sc_rule *rules, unsigned int flags)
{
	struct sock_filter f[64];
	struct sock_fprog prog;
	unsigned int n = 0, nr_rules = 0;

	while (rules[nr_rules].nr)
		nr_rules++;
	f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      offsetof(struct seccomp_data, arch));
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      offsetof(struct seccomp_data, nr));
	for (unsigned int i = 0; i < nr_rules; i++) {
		f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, rules[i].nr, 0, 1);
		f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, rules[i].action);
	}
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	prog.len = n;
	prog.filter = f;
	long ret = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);

	return ret < 0 ? -errno : (int)ret;
}

/* uname(NULL): EFAULT when nothing filters it. */
static inline int sc_uname_errno(void)
{
	return syscall(SYS_uname, NULL) == -1 ? errno : 0;
}

/* getpriority(PRIO_PROCESS, 0): succeeds when nothing filters it. */
static inline int sc_getpriority_errno(void)
{
	return syscall(SYS_getpriority, 0, 0) == -1 ? errno : 0;
}

/* "Seccomp:" and "Seccomp_filters:" of the calling thread
 * (/proc/thread-self: right in a pid namespace of its own too). */
static inline void sc_status(int *mode, int *filters)
{
	char buf[8192], *p;

	read_file("/proc/thread-self/status", buf, sizeof(buf));
	p = strstr(buf, "\nSeccomp:");
	*mode = p ? atoi(p + 9) : -1;
	p = strstr(buf, "\nSeccomp_filters:");
	*filters = p ? atoi(p + 17) : -1;
}

/* NULL if the calling thread has @mode and @filters, else why not (in @buf). */
static inline const char *sc_check_status(int mode, int filters, char *buf, size_t size)
{
	int m, f;

	sc_status(&m, &f);
	if (m == mode && f == filters)
		return NULL;
	snprintf(buf, size, "seccomp mode %d with %d filters, expected %d with %d", m, f, mode,
		 filters);
	return buf;
}

#endif
