#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/array.h"
#include "common/proc-task.h"

ssize_t proc_task_read(pid_t pid, pid_t tid, const char *name, char *buf, size_t size)
{
	char path[96];
	size_t len = 0;
	int fd;

	if (tid)
		snprintf(path, sizeof(path), "/proc/%d/task/%d/%s", pid, tid, name);
	else
		snprintf(path, sizeof(path), "/proc/%d/%s", pid, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (len + 1 < size) {
		ssize_t n = read(fd, buf + len, size - 1 - len);

		if (n <= 0)
			break;
		len += n;
	}
	close(fd);
	buf[len] = '\0';
	return len;
}

int proc_each_thread(pid_t pid, proc_pid_fn fn, void *arg)
{
	char path[64];
	struct dirent *de;
	int ret = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while (!ret && (de = readdir(d))) {
		pid_t tid = atoi(de->d_name);

		if (tid > 0)	/* not "." nor ".." */
			ret = fn(tid, arg);
	}
	closedir(d);
	return ret;
}

struct pid_list {
	pid_t *v;
	size_t nr, cap;
};

static int add_pid(pid_t pid, void *arg)
{
	struct pid_list *l = arg;

	if (ARRAY_GROW(l->v, l->cap, l->nr + 1, 16))
		return -ENOMEM;
	l->v[l->nr++] = pid;
	return 0;
}

/* The children of one thread @tid of @arg's process, added to @arg's list. */
struct child_walk {
	pid_t pid;
	struct pid_list *l;
};

/* The children of thread @tid of @pid added to @l; -errno of the open. */
static int add_thread_children(pid_t pid, pid_t tid, struct pid_list *l)
{
	char path[64];
	int ret = 0, kid;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", pid, tid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (!ret && fscanf(f, "%d", &kid) == 1)
		ret = add_pid(kid, l);
	fclose(f);
	return ret;
}

static int add_children_of_thread(pid_t tid, void *arg)
{
	struct child_walk *w = arg;
	int ret = add_thread_children(w->pid, tid, w->l);

	return ret == -ENOMEM ? ret : 0;	/* else a thread that just ended */
}

static int add_children(pid_t pid, struct pid_list *l)
{
	struct child_walk w = { pid, l };

	return proc_each_thread(pid, add_children_of_thread, &w);
}

/* The list handed over, or freed on an error. */
static int give_list(struct pid_list *l, int ret, pid_t **pids, size_t *nr)
{
	if (ret) {
		free(l->v);
		l->v = NULL;
		l->nr = 0;
	}
	*pids = l->v;
	*nr = l->nr;
	return ret;
}

int proc_children(pid_t pid, pid_t **pids, size_t *nr)
{
	struct pid_list l = { 0 };

	return give_list(&l, add_children(pid, &l), pids, nr);
}

int proc_thread_children(pid_t pid, pid_t tid, pid_t **pids, size_t *nr)
{
	struct pid_list l = { 0 };

	return give_list(&l, add_thread_children(pid, tid, &l), pids, nr);
}

int proc_descendants(pid_t root, pid_t **pids, size_t *nr)
{
	struct pid_list l = { 0 };
	int ret = add_pid(root, &l);

	/* the list grows as it is walked: each process's children go to its end */
	for (size_t k = 0; !ret && k < l.nr; k++) {
		ret = add_children(l.v[k], &l);
		if (ret != -ENOMEM)
			ret = 0;	/* ended meanwhile: nothing below it either */
	}
	return give_list(&l, ret, pids, nr);
}
