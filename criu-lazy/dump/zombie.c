/*
 * Zombies of the tree: a child that exited and that its (frozen) parent
 * has not reaped yet.  It can't be seized and has no memory; what it left
 * is its place in the tree (pid, ppid, pgid, sid: it may still be the
 * leader of a group or session others live in) and its exit status, which
 * the parent will read with wait().
 *
 * As CRIU: a pstree entry like any task's, and a core-PID.img with only the
 * task part, task_state TASK_DEAD and exit_code, the status in wait()'s
 * encoding (field 52 of /proc/PID/stat: code << 8, or the signal).
 */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "dump/dump.h"

int dump_zombie(struct dump_ctx *ctx, struct dump_task *t)
{
	char status[16384];
	struct proc_stat st;
	int ret;

	(void)ctx;
	t->zombie = true;
	t->state = TASK_STATE_DEAD;
	ret = dump_proc_stat(t, &st);
	if (ret)
		return ret;
	if (st.state != 'Z') {
		pr_err("task %d: expected a zombie, found state %c", t->pid, st.state);
		return -EIO;
	}
	t->ppid = st.f[4];
	t->pgid = st.f[5];
	t->sid = st.f[6];
	t->exit_code = (int)st.f[52];
	/* in the tree's pid namespace: its pids there */
	ret = dump_proc_read(t, "status", status, sizeof(status));
	if (ret < 0)
		return ret;
	ret = dump_pid_ns(t, status, false);
	if (ret)
		return ret;

	t->core = dump_core_alloc();
	if (!t->core)
		return -ENOMEM;
	/* the task part only: a zombie has no threads or registers any more */
	t->core->core.thread_info = NULL;
	t->core->core.thread_core = NULL;
	t->core->tc.task_state = TASK_STATE_DEAD;
	t->core->tc.exit_code = t->exit_code;
	memcpy(t->core->comm, st.comm, sizeof(t->core->comm));
	pr_info("task %d is a zombie (exit status %#x), ppid %d pgid %d sid %d", t->pid,
		t->exit_code, t->ppid, t->pgid, t->sid);
	return 0;
}
