#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/array.h"
#include "common/proc-fd.h"

static int cmp_fd(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/* @name as an fd number, or -1 ("." and ".."). */
static int fd_of_name(const char *name)
{
	char *end;
	long fd;

	if (*name < '0' || *name > '9')
		return -1;
	fd = strtol(name, &end, 10);
	return *end || fd > INT_MAX ? -1 : (int)fd;
}

int proc_fd_list(pid_t pid, int **fds, size_t *nr)
{
	size_t n = 0, cap = 0;
	int *v = NULL, own = -1, ret = 0;
	struct dirent *de;
	char path[64];
	DIR *d;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	else
		snprintf(path, sizeof(path), "/proc/self/fd");
	*fds = NULL;
	*nr = 0;
	d = opendir(path);
	if (!d)
		return -errno;
	if (!pid)
		own = dirfd(d);	/* ours only while we read it */
	while ((de = readdir(d))) {
		int fd = fd_of_name(de->d_name);

		if (fd < 0 || fd == own)
			continue;
		if (ARRAY_GROW(v, cap, n + 1, 64)) {
			ret = -ENOMEM;
			break;
		}
		v[n++] = fd;
	}
	closedir(d);
	if (ret) {
		free(v);
		return ret;
	}
	/* /proc lists them in order today; nothing promises it */
	if (n)	/* no fd open: v is NULL */
		qsort(v, n, sizeof(*v), cmp_fd);
	*fds = v;
	*nr = n;
	return 0;
}

int proc_each_fd(pid_t pid, proc_fd_fn fn, void *arg)
{
	size_t nr;
	int *fds, ret;

	ret = proc_fd_list(pid, &fds, &nr);
	for (size_t i = 0; !ret && i < nr; i++)
		ret = fn(fds[i], arg);
	free(fds);
	return ret;
}
