/*
 * Small /proc/PID files of a task being dumped.  A file that cannot be
 * opened because the task has gone is reported by dump_task_error() as the
 * task's exit.
 */
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "dump/dump.h"

int dump_proc_read(struct dump_task *t, const char *name, char *buf, size_t size)
{
	char path[64];
	size_t len = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", t->pid, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dump_task_error(t, -errno, "can't open %s: %m", path);
	while (len + 1 < size) {
		ssize_t n = read(fd, buf + len, size - 1 - len);

		if (n < 0) {
			int err = -errno;

			close(fd);
			return dump_task_error(t, err, "can't read %s: %s", path, strerror(-err));
		}
		if (n == 0)
			break;
		len += n;
	}
	close(fd);
	buf[len] = '\0';
	return (int)len;
}

int dump_proc_stat(struct dump_task *t, struct proc_stat *st)
{
	char buf[2048];
	int ret;

	ret = dump_proc_read(t, "stat", buf, sizeof(buf));
	if (ret < 0)
		return ret;
	ret = proc_stat_parse(buf, st);
	if (ret < 0) {
		pr_err("can't parse /proc/%d/stat", t->pid);
		return ret;
	}
	/* 52 fields since Linux 3.5; exit_code, the last, may be missing */
	if (ret < 51) {
		pr_err("can't parse /proc/%d/stat: field %d is missing or not a number", t->pid,
		       ret + 1);
		return -EINVAL;
	}
	return 0;
}

/* A /proc/PID file holding one number; -ENOENT (not logged) for an
 * @optional file this kernel lacks. */
int dump_proc_ulong(struct dump_task *t, const char *name, int base, unsigned long *val,
		    bool optional)
{
	char buf[64], path[64];
	int ret;

	if (optional) {
		snprintf(path, sizeof(path), "/proc/%d/%s", t->pid, name);
		if (access(path, F_OK)) {
			if (dump_task_exited(t))
				return dump_task_error(t, -ESRCH, "task %d is gone", t->pid);
			return -ENOENT;
		}
	}
	ret = dump_proc_read(t, name, buf, sizeof(buf));
	if (ret < 0)
		return ret;
	*val = strtoul(buf, NULL, base);
	return 0;
}
