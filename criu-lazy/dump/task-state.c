/*
 * The rest of a task's core state: timers, rlimits, scheduling, sigaltstack,
 * robust futex list, rseq, parent-death signal, personality, name, flags,
 * audit loginuid, OOM adjustment, child-subreaper.
 *
 * From outside where the kernel lets us (prlimit, sched_*, get_robust_list,
 * PTRACE_GET_RSEQ_CONFIGURATION, /proc), otherwise by a syscall injected
 * into the task with its output in the scratch page.
 */
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/log.h"
#include "dump/dump.h"

struct rseq_conf {
	uint64_t rseq_abi_pointer;
	uint32_t rseq_abi_size;
	uint32_t signature;
	uint32_t flags;
	uint32_t pad;
};

struct rseq_cs_desc {
	uint32_t version;
	uint32_t flags;
	uint64_t start_ip;
	uint64_t post_commit_offset;
	uint64_t abort_ip;
};

static int dump_itimers(struct dump_task *t, struct task_core *c)
{
	static const char *names[3] = { "real", "virtual", "prof" };

	for (int which = 0; which < 3; which++) {
		struct itimerval it;
		ItimerEntry *e = &c->itimers[which];
		long res;
		int ret;

		ret = dump_remote_call(t, "getitimer", __NR_getitimer, which, t->scratch, 0, 0, &res);
		if (!ret)
			ret = dump_remote_read(t, t->scratch, &it, sizeof(it));
		if (ret)
			return ret;
		e->isec = it.it_interval.tv_sec;
		e->iusec = it.it_interval.tv_usec;
		e->vsec = it.it_value.tv_sec;
		e->vusec = it.it_value.tv_usec;
		if (e->vsec || e->vusec)
			pr_debug("task %d: %s itimer %llu.%06llu, interval %llu.%06llu", t->pid,
				 names[which], (unsigned long long)e->vsec,
				 (unsigned long long)e->vusec, (unsigned long long)e->isec,
				 (unsigned long long)e->iusec);
	}
	c->timers.real = &c->itimers[ITIMER_REAL];
	c->timers.virt = &c->itimers[ITIMER_VIRTUAL];
	c->timers.prof = &c->itimers[ITIMER_PROF];
	c->tc.timers = &c->timers;
	return 0;
}

static int dump_rlimits(struct dump_task *t, struct task_core *c)
{
	for (int r = 0; r < DUMP_NR_RLIMITS; r++) {
		struct rlimit rl;

		if (prlimit(t->pid, r, NULL, &rl))
			return dump_task_error(t, -errno, "can't get rlimit %d of task %d: %m", r,
					       t->pid);
		c->rlim[r].cur = rl.rlim_cur;
		c->rlim[r].max = rl.rlim_max;
		c->rlim_p[r] = &c->rlim[r];
	}
	c->rlimits.n_rlimits = DUMP_NR_RLIMITS;
	c->rlimits.rlimits = c->rlim_p;
	c->tc.rlimits = &c->rlimits;
	return 0;
}

static int dump_sched(struct dump_task *t, struct task_core *c)
{
	struct sched_param sp;
	int policy, nice;

	policy = sched_getscheduler(t->pid);
	if (policy < 0 || sched_getparam(t->pid, &sp))
		return dump_task_error(t, -errno, "can't get the scheduling policy of task %d: %m",
				       t->pid);
	errno = 0;
	nice = getpriority(PRIO_PROCESS, t->pid);
	if (nice == -1 && errno)
		return dump_task_error(t, -errno, "can't get the nice value of task %d: %m", t->pid);

	c->thread.has_sched_policy = true;
	c->thread.sched_policy = policy;
	c->thread.has_sched_prio = true;
	c->thread.sched_prio = sp.sched_priority;
	c->thread.has_sched_nice = true;
	c->thread.sched_nice = nice;
	return 0;
}

static int dump_sigaltstack(struct dump_task *t, struct task_core *c)
{
	stack_t ss;
	long res;
	int ret;

	ret = dump_remote_call(t, "sigaltstack", __NR_sigaltstack, 0, t->scratch, 0, 0, &res);
	if (!ret)
		ret = dump_remote_read(t, t->scratch, &ss, sizeof(ss));
	if (ret)
		return ret;
	c->sas.ss_sp = (uint64_t)ss.ss_sp;
	c->sas.ss_size = ss.ss_size;
	c->sas.ss_flags = ss.ss_flags;
	c->thread.sas = &c->sas;
	return 0;
}

static int dump_robust_list(struct dump_task *t, struct task_core *c)
{
	unsigned long head = 0;
	size_t len = 0;

	if (syscall(SYS_get_robust_list, t->pid, &head, &len))
		return dump_task_error(t, -errno, "can't get the robust futex list of task %d: %m",
				       t->pid);
	c->thread.futex_rla = head;
	c->thread.futex_rla_len = len;
	return 0;
}

/*
 * A thread interrupted inside an rseq critical section would, on its next
 * return to user space, be sent to the section's abort handler: do that on
 * the saved registers so the restored thread does not resume mid-section.
 */
static int rseq_fixup_ip(struct dump_task *t, struct task_core *c, uint64_t rseq_ptr)
{
	struct rseq_cs_desc cs;
	uint64_t cs_ptr;
	int ret;

	ret = dump_remote_read(t, rseq_ptr + 8, &cs_ptr, sizeof(cs_ptr));
	if (ret || !cs_ptr)
		return ret;
	ret = dump_remote_read(t, cs_ptr, &cs, sizeof(cs));
	if (ret)
		return ret;
	if (c->gpregs.ip >= cs.start_ip && c->gpregs.ip - cs.start_ip < cs.post_commit_offset) {
		pr_info("task %d: interrupted in an rseq critical section, resumes at %#llx",
			t->pid, (unsigned long long)cs.abort_ip);
		c->gpregs.ip = cs.abort_ip;
	}
	return 0;
}

/*
 * Called before anything runs inside the task: running a syscall there
 * makes the kernel clear rseq_cs on the way back to user space.
 */
int dump_rseq(struct dump_task *t)
{
	struct task_core *c = t->core;
	struct rseq_conf conf;
	long n;

	memset(&conf, 0, sizeof(conf));
	n = ptrace(PTRACE_GET_RSEQ_CONFIGURATION, t->pid, sizeof(conf), &conf);
	if (n < 0) {
		if (errno == EIO || errno == EINVAL) {
			pr_info("the kernel can't tell the rseq state of task %d", t->pid);
			return 0;
		}
		return dump_task_error(t, -errno, "can't get the rseq state of task %d: %m", t->pid);
	}
	if (!conf.rseq_abi_pointer)
		return 0;
	c->rseq.rseq_abi_pointer = conf.rseq_abi_pointer;
	c->rseq.rseq_abi_size = conf.rseq_abi_size;
	c->rseq.signature = conf.signature;
	c->thread.rseq_entry = &c->rseq;
	pr_debug("task %d: rseq at %#llx, %u bytes, signature %#x", t->pid,
		 (unsigned long long)conf.rseq_abi_pointer, conf.rseq_abi_size, conf.signature);
	return rseq_fixup_ip(t, c, conf.rseq_abi_pointer);
}

/* prctl(@op, scratch) that stores an int. */
static int remote_prctl_int(struct dump_task *t, const char *what, int op, int *val)
{
	long res;
	int ret;

	ret = dump_remote_call(t, what, __NR_prctl, op, t->scratch, 0, 0, &res);
	if (!ret)
		ret = dump_remote_read(t, t->scratch, val, sizeof(*val));
	return ret;
}

static int read_proc_ulong(struct dump_task *t, const char *name, int base,
			   unsigned long *val, bool optional)
{
	char buf[64], path[64];
	int ret;

	if (optional) {
		snprintf(path, sizeof(path), "/proc/%d/%s", t->pid, name);
		if (access(path, F_OK))
			return -ENOENT;
	}
	ret = dump_proc_read(t, name, buf, sizeof(buf));
	if (ret < 0)
		return ret;
	*val = strtoul(buf, NULL, base);
	return 0;
}

static int dump_proc_bits(struct dump_task *t, struct task_core *c)
{
	struct proc_stat st;
	unsigned long v;
	char comm[64];
	int ret;

	ret = read_proc_ulong(t, "personality", 16, &v, false);
	if (ret)
		return ret;
	c->tc.personality = v;

	if (!read_proc_ulong(t, "loginuid", 10, &v, true)) {
		c->tc.has_loginuid = true;
		c->tc.loginuid = v;
	} else if (t->exited) {
		return -ESRCH;
	}

	ret = dump_proc_read(t, "oom_score_adj", comm, sizeof(comm));
	if (ret < 0)
		return ret;
	c->tc.has_oom_score_adj = true;
	c->tc.oom_score_adj = atoi(comm);

	ret = dump_proc_read(t, "comm", comm, sizeof(comm));
	if (ret < 0)
		return ret;
	comm[strcspn(comm, "\n")] = '\0';
	comm[sizeof(c->comm) - 1] = '\0';
	memcpy(c->comm, comm, sizeof(c->comm));
	c->tc.comm = c->comm;
	c->thread.comm = c->comm;

	ret = dump_proc_stat(t, &st);
	if (ret)
		return ret;
	c->tc.flags = st.f[9];
	return 0;
}

int dump_task_state(struct dump_task *t)
{
	struct task_core *c = t->core;
	int val, ret;

	c->tc.task_state = t->state;
	c->tc.exit_code = 0;
	if (t->state == TASK_STATE_STOPPED) {
		c->tc.has_stop_signo = true;
		c->tc.stop_signo = t->stop_signo;
	}

	ret = dump_proc_bits(t, c);
	if (!ret)
		ret = dump_itimers(t, c);
	if (!ret)
		ret = dump_rlimits(t, c);
	if (!ret)
		ret = dump_sched(t, c);
	if (!ret)
		ret = dump_sigaltstack(t, c);
	if (!ret)
		ret = dump_robust_list(t, c);
	if (ret)
		return ret;

	ret = remote_prctl_int(t, "prctl(PR_GET_PDEATHSIG)", PR_GET_PDEATHSIG, &val);
	if (ret)
		return ret;
	c->thread.has_pdeath_sig = true;
	c->thread.pdeath_sig = val;

	ret = remote_prctl_int(t, "prctl(PR_GET_CHILD_SUBREAPER)", PR_GET_CHILD_SUBREAPER, &val);
	if (ret)
		return ret;
	c->tc.has_child_subreaper = true;
	c->tc.child_subreaper = val != 0;

	pr_debug("task %d: comm '%s' flags %#x personality %#x nice %d policy %u "
		 "robust list %#llx/%u sigaltstack %#llx/%llu flags %u pdeath %u",
		 t->pid, c->comm, c->tc.flags, c->tc.personality, c->thread.sched_nice,
		 c->thread.sched_policy, (unsigned long long)c->thread.futex_rla,
		 c->thread.futex_rla_len, (unsigned long long)c->sas.ss_sp,
		 (unsigned long long)c->sas.ss_size, c->sas.ss_flags, c->thread.pdeath_sig);
	return 0;
}
