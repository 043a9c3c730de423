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
	char buf[2048], *p, *end, *rparen;
	size_t clen;
	int ret, n;

	ret = dump_proc_read(t, "stat", buf, sizeof(buf));
	if (ret < 0)
		return ret;
	memset(st, 0, sizeof(*st));

	p = strchr(buf, '(');
	rparen = strrchr(buf, ')');
	if (!p || !rparen || rparen[1] != ' ' || !rparen[2]) {
		pr_err("can't parse /proc/%d/stat", t->pid);
		return -EINVAL;
	}
	clen = rparen - p - 1;
	if (clen >= sizeof(st->comm))
		clen = sizeof(st->comm) - 1;
	memcpy(st->comm, p + 1, clen);
	st->state = rparen[2];

	p = rparen + 3;
	for (n = 4; n < 53 && *p; n++) {
		while (*p == ' ')
			p++;
		if (!*p || *p == '\n')
			break;
		/* nice, priority and a few others can be negative */
		st->f[n] = (unsigned long long)strtoll(p, &end, 10);
		if (end == p) {
			pr_err("can't parse field %d of /proc/%d/stat", n, t->pid);
			return -EINVAL;
		}
		if (*p != '-')
			st->f[n] = strtoull(p, &end, 10);
		p = end;
	}
	if (n < 52) {
		pr_err("/proc/%d/stat has only %d fields", t->pid, n - 1);
		return -EINVAL;
	}
	return 0;
}

const char *dump_status_field(const char *status, const char *key)
{
	size_t klen = strlen(key);
	const char *p = status;

	while (p && *p) {
		if (!strncmp(p, key, klen) && p[klen] == ':') {
			p += klen + 1;
			while (*p == ' ' || *p == '\t')
				p++;
			return p;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NULL;
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
