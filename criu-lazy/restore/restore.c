/*
 * criu-lazy restore -D DIR [-d] [--pidfile F] [--shell-job]
 *
 * The driver: read and check the images, plan the memory, create the task
 * with its dumped pid, let it rebuild itself (child.c, then the restorer
 * blob), put its registers back and let it go.  Any failure before the task
 * runs kills it: one line on stderr, exit 1, nothing left behind.
 *
 * Without -d we stay its parent and exit with its exit code, as criu does;
 * with -d we return as soon as it runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "images/image.h"
#include "restore/restore.h"

#include "stats.pb-c.h"

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000ull + ts.tv_nsec / 1000;
}

/* Without --shell-job the task must have been its own session leader (and
 * group leader, or in its session leader's group). */
static int check_session(const struct opts *o, const struct rst_images *ri)
{
	const PstreeEntry *ps = ri->pstree;

	if (o->shell_job)
		return 0;
	if ((pid_t)ps->sid != ri->pid) {
		pr_err("task %d was in session %u, which is not being restored: restore it with --shell-job",
		       ri->pid, ps->sid);
		return -EOPNOTSUPP;
	}
	if ((pid_t)ps->pgid != ri->pid) {
		pr_err("task %d was in process group %u, which is not being restored: restore it with --shell-job",
		       ri->pid, ps->pgid);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* As criu: a relative pidfile is relative to the work directory. */
static int write_pidfile(const struct opts *o, pid_t pid)
{
	char path[PATH_MAX], buf[16];
	int fd, len;

	if (!o->pidfile)
		return 0;
	if (o->pidfile[0] != '/' && o->work_dir)
		snprintf(path, sizeof(path), "%s/%s", o->work_dir, o->pidfile);
	else
		snprintf(path, sizeof(path), "%s", o->pidfile);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		pr_perror("cannot create the pidfile %s", path);
		return -errno;
	}
	len = snprintf(buf, sizeof(buf), "%d", pid);
	if (write(fd, buf, len) != len) {
		pr_perror("cannot write the pidfile %s", path);
		close(fd);
		return -EIO;
	}
	close(fd);
	return 0;
}

static void write_stats(int dirfd, uint64_t fork_us, uint64_t restore_us, uint64_t pages)
{
	RestoreStatsEntry rs = RESTORE_STATS_ENTRY__INIT;
	StatsEntry se = STATS_ENTRY__INIT;

	rs.forking_time = fork_us;
	rs.restore_time = restore_us;
	rs.has_pages_restored = true;
	rs.pages_restored = pages;
	se.restore = &rs;
	/* the task runs already: a failure here is worth a warning only */
	if (img_write_one(dirfd, IMG_STATS_RESTORE, 0, &se.base))
		pr_warn("stats-restore not written");
}

/* Stay the parent until the task exits; its exit code becomes ours. */
static _Noreturn void wait_task(pid_t pid)
{
	int status, code;

	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			pr_perror("wait for task %d", pid);
			log_fini();
			exit(1);
		}
	}
	if (WIFEXITED(status)) {
		code = WEXITSTATUS(status);
		pr_info("task %d exited with %d", pid, code);
	} else {
		code = 128 + WTERMSIG(status);
		pr_info("task %d was killed by signal %d", pid, WTERMSIG(status));
	}
	log_fini();
	exit(code);
}

int cr_restore(struct opts *o)
{
	uint64_t t_start = now_us();
	struct rst_images ri = { .dirfd = -1 };
	struct rst_plan plan = { 0 };
	struct rst_task t = { .pid = 0, .sync_w = -1, .err_r = -1, .lazy_sock = -1 };
	int dirfd, ret;

	dirfd = open(o->images_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		pr_perror("%s", o->images_dir);
		return -errno;
	}

	ret = rst_images_load(dirfd, o, &ri);
	if (!ret)
		ret = check_session(o, &ri);
	if (!ret)
		ret = rst_plan_build(o, &ri, &plan);
	if (ret)
		goto out;
	pr_info("task %d: %zu VMAs, %llu pages to read, %zu fds", ri.pid, plan.nr_vmas,
		(unsigned long long)plan.pages_to_fill, ri.nr_fds);

	/* once, before any task exists (CRIU's order): no daemon, no restore */
	if (o->lazy_pages) {
		ret = rst_lazy_connect(o, &t);
		if (ret)
			goto out;
	}
	ret = rst_task_create(o, &ri, &plan, &t);
	if (!ret)
		ret = rst_task_wait_blob(&t, &plan);
	if (!ret)
		ret = rst_finalize(o, &ri, &plan, &t);
	if (!ret && o->lazy_pages)
		ret = rst_lazy_finished(&t);
	if (!ret)
		ret = write_pidfile(o, t.pid);
	if (!ret)
		ret = rst_detach(&t);
	rst_lazy_close(&t);
	if (t.err_r >= 0)
		close(t.err_r);
	t.err_r = -1;
	if (ret) {
		rst_task_kill(&t);
		goto out;
	}
	pr_info("task %d restored in %llu us", t.pid,
		(unsigned long long)(now_us() - t_start));
	write_stats(dirfd, t.fork_us, now_us() - t_start, plan.pages_to_fill);

	rst_plan_free(&plan);
	rst_images_free(&ri);
	close(dirfd);
	if (!o->restore_detached)
		wait_task(t.pid);
	return 0;

out:
	rst_lazy_close(&t);
	rst_plan_free(&plan);
	rst_images_free(&ri);
	close(dirfd);
	return ret;
}
