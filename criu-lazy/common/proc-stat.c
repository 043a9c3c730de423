#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/proc-stat.h"

const char *proc_stat_fields(pid_t pid, pid_t tid, char *buf, size_t size)
{
	char path[64], *rpar;
	ssize_t n;
	int fd;

	if (tid)
		snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
	else
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	n = read(fd, buf, size - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	rpar = strrchr(buf, ')');	/* the last one: the name may hold ')' */
	if (!rpar || rpar[1] != ' ' || !rpar[2]) {
		errno = ESRCH;
		return NULL;
	}
	return rpar + 2;
}

char proc_stat_state(pid_t pid)
{
	char buf[512];
	const char *f = proc_stat_fields(pid, 0, buf, sizeof(buf));

	return f ? f[0] : 0;
}
