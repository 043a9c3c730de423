/*
 * Unit tests of common/proc-stat.c, proc-status.c and proc-task.c: a stat
 * text whose name holds ')' and spaces, negative and missing fields, a
 * field that is not a number; a status line's last number; this process's
 * threads walked (a non-zero return stops the walk, a gone pid is -ENOENT
 * with no call), and the processes below it, parents first; one thread's
 * own children; a child's start time against proc_stat_now_ticks(); this
 * process's fds listed in order (its own walk's not among them by pid 0,
 * there by its pid), none of a process with no fd open, a walk stopped,
 * a gone pid's.  Prints "ok - NAME" or "FAIL - NAME" per case (unit.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/proc-fd.h"
#include "common/proc-stat.h"
#include "common/proc-status.h"
#include "common/proc-task.h"
#include "unit.h"

#define GUARD_S 20	/* alarm(): no wait of these cases outlives it */

/* A stat text of fields 4..@last after "4711 (@name) S", field n = n * 10,
 * field 19 (nice) -5. */
static void make_stat(char *buf, size_t size, const char *name, int last)
{
	int len = snprintf(buf, size, "4711 (%s) S", name);

	for (int n = 4; n <= last; n++)
		len += snprintf(buf + len, size - len, " %d", n == 19 ? -5 : n * 10);
	snprintf(buf + len, size - len, "\n");
}

static int test_stat_parse(void)
{
	struct proc_stat st;
	char buf[1024];

	make_stat(buf, sizeof(buf), "a) (b) S 1 2", 52);
	CHECK(proc_stat_parse(buf, &st) == 52, "");
	CHECK(st.state == 'S' && !strcmp(st.comm, "a) (b) S 1 2"), "comm '%s'", st.comm);
	CHECK(st.f[4] == 40 && st.f[22] == 220 && st.f[52] == 520, "");
	CHECK((long long)st.f[19] == -5, "");

	make_stat(buf, sizeof(buf), "a name longer than the thirty-one bytes comm holds", 30);
	CHECK(proc_stat_parse(buf, &st) == 30 && st.f[30] == 300 && !st.f[31], "");
	CHECK(strlen(st.comm) == sizeof(st.comm) - 1, "");

	CHECK(proc_stat_parse("4711 (x) S 1 2 x 4", &st) == 5 && st.f[5] == 2, "");
	CHECK(proc_stat_parse("4711 (x) R", &st) == 3 && st.state == 'R', "");
	CHECK(proc_stat_parse("4711 (x)", &st) == -EINVAL, "");
	CHECK(proc_stat_parse("4711 (x) ", &st) == -EINVAL, "");
	CHECK(proc_stat_parse("4711 x) S 1", &st) == -EINVAL, "");
	CHECK(proc_stat_parse("", &st) == -EINVAL, "");
	return 0;
}

static int test_stat_read(void)
{
	struct proc_stat st;

	CHECK(proc_stat_read(getpid(), &st) >= 51, "");
	CHECK(st.state == 'R' && (pid_t)st.f[4] == getppid(), "state %c", st.state);
	CHECK(proc_stat_state(getpid()) == 'R', "");
	return 0;
}

static int test_status_last(void)
{
	const char *text = "Name:\tx\nNSpidx:\t9\nNSpid:\t42\t7 1 \nPPid:\t3\nEmpty:\t\nTail:\t5";

	CHECK(proc_status_last(text, "NSpid") == 1, "");
	CHECK(proc_status_last(text, "PPid") == 3, "");
	CHECK(proc_status_last(text, "Tail") == 5, "");
	CHECK(proc_status_last(text, "Empty") == -1, "");
	CHECK(proc_status_last(text, "Pid") == -1, "");
	CHECK(!strncmp(proc_status_field(text, "PPid"), "3\n", 2), "");
	return 0;
}

/* A pid that is no process's: a child's, reaped. */
static pid_t gone_pid(void)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	waitpid(pid, NULL, 0);
	return pid;
}

static int stop_fd[2] = { -1, -1 };	/* the threads and children wait on its end */

static void *sleeper(void *arg)
{
	char c;

	(void)arg;
	if (read(stop_fd[0], &c, 1) < 0)
		perror("read");
	return NULL;
}

struct seen {
	pid_t tid[8];
	int nr, stop_at;	/* stop_at > 0: return that tid when it comes */
};

static int count_tid(pid_t tid, void *arg)
{
	struct seen *s = arg;

	if (s->nr < 8)
		s->tid[s->nr] = tid;
	s->nr++;
	return s->nr == s->stop_at ? tid : 0;
}

static int test_each_thread(void)
{
	struct seen all = { 0 }, two = { .stop_at = 2 }, none = { 0 };
	pthread_t th[2];
	int ret;

	CHECK(!pipe(stop_fd), "");
	for (int i = 0; i < 2; i++)
		CHECK(!pthread_create(&th[i], NULL, sleeper, NULL), "");
	ret = proc_each_thread(getpid(), count_tid, &all);
	CHECK(!ret && all.nr == 3, "ret %d nr %d", ret, all.nr);
	CHECK(all.tid[0] == getpid() || all.tid[1] == getpid() || all.tid[2] == getpid(), "");
	ret = proc_each_thread(getpid(), count_tid, &two);
	CHECK(ret == two.tid[1] && two.nr == 2, "ret %d", ret);
	CHECK(proc_each_thread(gone_pid(), count_tid, &none) == -ENOENT && !none.nr, "");
	close(stop_fd[1]);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	close(stop_fd[0]);
	return 0;
}

/* A child that forks a grandchild; both wait until stop_fd is closed. */
static pid_t spawn_two(void)
{
	pid_t kid = fork();
	char c;

	if (kid)
		return kid;
	close(stop_fd[1]);
	if (fork() == 0) {
		if (read(stop_fd[0], &c, 1) < 0)
			_exit(1);
		_exit(0);
	}
	if (read(stop_fd[0], &c, 1) < 0)
		_exit(1);
	wait(NULL);
	_exit(0);
}

static int test_descendants(void)
{
	pid_t kid, *pids = NULL;
	unsigned long long before;
	struct proc_stat st;
	size_t nr = 0;
	int ret = 0;

	CHECK(!pipe(stop_fd), "");
	before = proc_stat_now_ticks();
	kid = spawn_two();
	/* the grandchild may take a moment to be there */
	for (int i = 0; i < 1000 && (!ret && nr < 3); i++) {
		free(pids);
		ret = proc_descendants(getpid(), &pids, &nr);
		if (nr < 3)
			usleep(1000);
	}
	close(stop_fd[1]);
	close(stop_fd[0]);
	CHECK(!ret && nr == 3 && pids[0] == getpid() && pids[1] == kid, "ret %d nr %zu", ret, nr);
	free(pids);
	CHECK(!proc_children(getpid(), &pids, &nr) && nr == 1 && pids[0] == kid, "nr %zu", nr);
	free(pids);
	/* the main thread forked it: its own list has it */
	CHECK(!proc_thread_children(getpid(), getpid(), &pids, &nr) && nr == 1 && pids[0] == kid,
	      "nr %zu", nr);
	free(pids);
	/* started after the ticks read before the fork, and not after now */
	CHECK(proc_stat_read(kid, &st) >= 22 && st.f[22] >= before &&
	      st.f[22] <= proc_stat_now_ticks(), "start %llu, before %llu", st.f[22], before);
	waitpid(kid, NULL, 0);
	CHECK(proc_thread_children(gone_pid(), gone_pid(), &pids, &nr) == -ENOENT && !pids && !nr,
	      "");
	CHECK(proc_children(gone_pid(), &pids, &nr) == -ENOENT && !pids && !nr, "");
	CHECK(!proc_descendants(gone_pid(), &pids, &nr) && nr == 1, "");
	free(pids);
	return 0;
}

static int test_task_read(void)
{
	char buf[16];

	CHECK(proc_task_read(getpid(), getpid(), "comm", buf, sizeof(buf)) > 0, "");
	CHECK(!strcmp(buf, "test_proc\n"), "'%s'", buf);
	CHECK(proc_task_read(getpid(), 0, "status", buf, sizeof(buf)) == 15, "");
	CHECK(proc_task_read(gone_pid(), 0, "status", buf, sizeof(buf)) == -ENOENT, "");
	return 0;
}

static bool has_fd(const int *fds, size_t nr, int fd)
{
	for (size_t i = 0; i < nr; i++)
		if (fds[i] == fd)
			return true;
	return false;
}

static int test_fd_list(void)
{
	int p[2], hole, high, *fds, *byp;
	size_t nr, nrp;

	/* above whatever the test was started with */
	CHECK(!proc_fd_list(0, &fds, &nr) && nr, "");
	high = fds[nr - 1] + 3;
	free(fds);
	CHECK(!pipe(p) && dup2(p[0], high) == high && dup2(p[1], high - 2) == high - 2, "");
	hole = open("/dev/null", O_RDONLY);	/* the lowest free number, the walk's */
	close(hole);
	CHECK(!proc_fd_list(0, &fds, &nr), "");
	for (size_t i = 1; i < nr; i++)
		CHECK(fds[i - 1] < fds[i], "fds[%zu] %d, fds[%zu] %d", i - 1, fds[i - 1], i, fds[i]);
	CHECK(has_fd(fds, nr, p[0]) && has_fd(fds, nr, p[1]), "");
	CHECK(has_fd(fds, nr, high - 2) && fds[nr - 1] == high, "last %d", fds[nr - 1]);
	CHECK(!has_fd(fds, nr, hole), "the walk's own fd %d", hole);
	/* through /proc/PID, the walk's own fd is one of ours */
	CHECK(!proc_fd_list(getpid(), &byp, &nrp), "");
	CHECK(nrp == nr + 1 && has_fd(byp, nrp, hole), "nr %zu by pid %zu", nr, nrp);
	free(byp);
	free(fds);
	CHECK(proc_fd_list(gone_pid(), &fds, &nr) == -ENOENT && !fds && !nr, "");
	close(high);
	close(high - 2);
	close(p[0]);
	close(p[1]);
	return 0;
}

/* a process with no fd open: none listed, and no array (qsort() of NULL was UB) */
static int test_fd_list_none(void)
{
	int *fds = NULL, ret;
	size_t nr = 0;
	pid_t kid = fork();

	if (!kid) {
		closefrom(0);
		pause();
		_exit(0);
	}
	CHECK(kid > 0, "");
	/* until it has closed them (GUARD_S bounds the wait) */
	while (!(ret = proc_fd_list(kid, &fds, &nr)) && nr) {
		free(fds);
		usleep(1000);
	}
	kill(kid, SIGKILL);
	waitpid(kid, NULL, 0);
	CHECK(!ret && !nr && !fds, "ret %d nr %zu", ret, nr);
	return 0;
}

struct fd_seen {
	int last, nr, stop_at;	/* stop_at >= 0: return 1 at that fd */
};

static int note_fd(int fd, void *arg)
{
	struct fd_seen *s = arg;

	if (s->nr && fd <= s->last)
		return -EINVAL;	/* not ascending */
	s->last = fd;
	s->nr++;
	return fd == s->stop_at;
}

static int test_each_fd(void)
{
	struct fd_seen all = { .stop_at = -1 }, some = { .stop_at = 0 }, none = { .stop_at = -1 };
	int fd = open("/dev/null", O_RDONLY), ret;

	CHECK(fd >= 0, "");
	some.stop_at = fd;
	ret = proc_each_fd(0, note_fd, &all);
	CHECK(!ret && all.nr > 0 && all.last >= fd, "ret %d nr %d last %d", ret, all.nr, all.last);
	ret = proc_each_fd(0, note_fd, &some);
	CHECK(ret == 1 && some.last == fd && some.nr <= all.nr, "ret %d last %d", ret, some.last);
	CHECK(proc_each_fd(gone_pid(), note_fd, &none) == -ENOENT && !none.nr, "");
	close(fd);
	return 0;
}

int main(void)
{
	static const struct unit_case cases[] = {
		{ "stat_parse", test_stat_parse },
		{ "stat_read", test_stat_read },
		{ "status_last", test_status_last },
		{ "each_thread", test_each_thread },
		{ "descendants", test_descendants },
		{ "task_read", test_task_read },
		{ "fd_list", test_fd_list },
		{ "fd_list_none", test_fd_list_none },
		{ "each_fd", test_each_fd },
	};

	alarm(GUARD_S);
	return unit_run(cases, sizeof(cases) / sizeof(cases[0]));
}
