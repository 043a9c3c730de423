#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/proc-stat.h"
#include "common/proc-task.h"

/* From the state letter on, or NULL if @buf has no name's end. */
static const char *skip_name(const char *buf)
{
	const char *rpar = strrchr(buf, ')');	/* the last one: the name may hold ')' */

	if (!rpar || rpar[1] != ' ' || !rpar[2])
		return NULL;
	return rpar + 2;
}

const char *proc_stat_fields(pid_t pid, pid_t tid, char *buf, size_t size)
{
	ssize_t n = proc_task_read(pid, tid, "stat", buf, size);
	const char *fields;

	if (n < 0) {
		errno = -n;
		return NULL;
	}
	fields = skip_name(buf);
	if (!fields)
		errno = ESRCH;
	return fields;
}

int proc_stat_parse(const char *buf, struct proc_stat *st)
{
	const char *lpar = strchr(buf, '('), *p = skip_name(buf);
	size_t clen;
	char *end;
	int n;

	if (!lpar || !p)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	clen = p - 2 - lpar - 1;
	if (clen >= sizeof(st->comm))
		clen = sizeof(st->comm) - 1;
	memcpy(st->comm, lpar + 1, clen);
	st->state = *p++;
	for (n = 4; n < 53; n++) {
		while (*p == ' ')
			p++;
		/* nice, priority and a few others can be negative */
		st->f[n] = (unsigned long long)strtoll(p, &end, 10);
		if (end == p)
			break;
		if (*p != '-')
			st->f[n] = strtoull(p, &end, 10);
		p = end;
	}
	return n - 1;
}

int proc_stat_read(pid_t pid, struct proc_stat *st)
{
	char buf[1024];

	if (!proc_stat_fields(pid, 0, buf, sizeof(buf)))
		return -errno;
	return proc_stat_parse(buf, st);
}

char proc_stat_state(pid_t pid)
{
	char buf[512];
	const char *f = proc_stat_fields(pid, 0, buf, sizeof(buf));

	return f ? f[0] : 0;
}

unsigned long long proc_stat_now_ticks(void)
{
	long hz = sysconf(_SC_CLK_TCK);
	struct timespec ts;

	if (hz <= 0 || clock_gettime(CLOCK_BOOTTIME, &ts))
		return 0;	/* no bound */
	return (unsigned long long)ts.tv_sec * hz +
	       (unsigned long long)ts.tv_nsec / (1000000000ULL / hz);
}
