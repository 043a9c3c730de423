/*
 * Knobs of a process under /proc/PID: oom_score_adj and the audit
 * loginuid.  Read from /proc/PID on dump; written by the new task to
 * /proc/self before it takes the dumped root (where /proc may be absent).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attrs/task-attr.h"
#include "common/log.h"
#include "common/proc-task.h"
#include "dump/dump.h"
#include "restore/restore.h"

#define LOGINUID_UNSET	4294967295u

static int read_self(struct attr_rst *r, const char *file, char *buf, size_t size)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/%s", file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return attr_rst_err(r, errno, "task %d: cannot open %s: %s", r->pid, path,
				    strerror(errno));
	n = read(fd, buf, size - 1);
	if (n < 0) {
		int err = errno;

		close(fd);
		return attr_rst_err(r, err, "task %d: cannot read %s: %s", r->pid, path,
				    strerror(err));
	}
	close(fd);
	buf[n] = '\0';
	return 0;
}

static int write_self(struct attr_rst *r, const char *file, const char *val, const char *why)
{
	char path[64];
	int fd, ret = 0;

	snprintf(path, sizeof(path), "/proc/self/%s", file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, val, strlen(val)) < 0)
		ret = attr_rst_err(r, errno, "task %d: cannot restore %s %s: write %s: %s%s",
				   r->pid, file, val, path, strerror(errno), why);
	if (fd >= 0)
		close(fd);
	return ret;
}

static int dump_oom_score_adj(struct dump_ctx *ctx, struct dump_task *t)
{
	char buf[32];
	int ret;

	ret = dump_proc_read(t, "oom_score_adj", buf, sizeof(buf));
	if (ret < 0)
		return ret;
	t->core->tc.has_oom_score_adj = true;
	t->core->tc.oom_score_adj = atoi(buf);
	return 0;
}

/*
 * Read once by the restore process, before the first fork: each task had
 * two /proc files to open for values that are nearly always ours (some 15
 * us a process on the test VM, the first /proc lookup of a new process
 * the dearest).
 */
void attr_proc_knobs_ours(struct rst_knobs *k)
{
	char buf[32];
	ssize_t n;

	memset(k, 0, sizeof(*k));
	attr_creds_ours(&k->creds);
	attr_sched_ours(k);
	if (proc_task_read(getpid(), 0, "oom_score_adj", buf, sizeof(buf)) > 0) {
		k->oom_score_adj = atoi(buf);
		k->oom_known = true;
	}
	n = proc_task_read(getpid(), 0, "loginuid", buf, sizeof(buf));
	if (n > 0) {
		k->loginuid = strtoul(buf, NULL, 10);
		k->loginuid_known = true;
	} else if (n == -ENOENT) {
		k->loginuid_absent = k->loginuid_known = true;
	}
}

const struct rst_knobs *attr_inherited(const struct attr_rst *r)
{
	return r->child ? r->child->knobs : NULL;
}

static int restore_oom_score_adj(struct attr_rst *r)
{
	const TaskCoreEntry *tc = r->core->tc;
	const struct rst_knobs *k = attr_inherited(r);
	char buf[32];

	if (!tc->has_oom_score_adj || (k && k->oom_known && k->oom_score_adj == tc->oom_score_adj))
		return 0;
	snprintf(buf, sizeof(buf), "%d", tc->oom_score_adj);
	return write_self(r, "oom_score_adj", buf,
			  " (lowering it needs CAP_SYS_RESOURCE)");
}

const struct task_attr attr_oom_score_adj = {
	.name = "oom-score-adj",
	.scope = ATTR_PROCESS,
	.dump_stage = ATTR_DUMP_INJECT,
	.dump = dump_oom_score_adj,
	.restore = { [ATTR_RST_CHILD] = restore_oom_score_adj },
};

/* A kernel without audit has no /proc/PID/loginuid: nothing to dump. */
static int dump_loginuid(struct dump_ctx *ctx, struct dump_task *t)
{
	unsigned long v;
	int ret;

	ret = dump_proc_ulong(t, "loginuid", 10, &v, true);
	if (ret == -ENOENT)
		return 0;
	if (ret)
		return ret;
	t->core->tc.has_loginuid = true;
	t->core->tc.loginuid = v;
	pr_debug("task %d: loginuid %lu", t->pid, v);
	return 0;
}

/*
 * Ours was inherited by the new task; write only a different one.  That
 * needs CAP_AUDIT_CONTROL once ours is set, and is refused outright when
 * the audit loginuid is immutable: then the restore fails, it never goes
 * on with the wrong one.
 */
static int restore_loginuid(struct attr_rst *r)
{
	const TaskCoreEntry *tc = r->core->tc;
	const struct rst_knobs *k = attr_inherited(r);
	char buf[32], want[32];
	int ret;

	if (!tc->has_loginuid)
		return 0;
	snprintf(want, sizeof(want), "%u", tc->loginuid);
	if (k && k->loginuid_known && !k->loginuid_absent && k->loginuid == tc->loginuid)
		return 0;
	if (k && k->loginuid_known ? k->loginuid_absent : access("/proc/self/loginuid", F_OK)) {
		if (tc->loginuid == LOGINUID_UNSET)
			return 0;
		return attr_rst_err(r, EOPNOTSUPP, "task %d: cannot restore loginuid %s: "
				    "this kernel has no audit loginuid", r->pid, want);
	}
	ret = read_self(r, "loginuid", buf, sizeof(buf));
	if (ret)
		return ret;
	if (strtoul(buf, NULL, 10) == tc->loginuid)
		return 0;
	return write_self(r, "loginuid", want, " (needs CAP_AUDIT_CONTROL, and a mutable loginuid)");
}

const struct task_attr attr_loginuid = {
	.name = "loginuid",
	.scope = ATTR_PROCESS,
	.dump_stage = ATTR_DUMP_INJECT,
	.dump = dump_loginuid,
	.restore = { [ATTR_RST_CHILD] = restore_loginuid },
};
