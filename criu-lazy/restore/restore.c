/*
 * criu-lazy restore -D DIR [-d] [--pidfile F] [--shell-job] [--lazy-pages]
 *
 * The driver: the stages of stages.c rebuild the tree; any failure before
 * the tasks run kills all of them: one line on stderr, exit 1, nothing
 * left behind.
 *
 * Without -d we stay the root's parent and exit with its exit code, as
 * criu does; with -d we return as soon as the tree runs.
 *
 * A lazy restore keeps idle CPUs polling rather than sleeping until the
 * tree runs (with -d, until we have returned; cpu-latency.h): the
 * restore's processes, threads and the lazy-pages daemon wake each other
 * across CPUs at every step, and a virtual CPU back from a halt made each
 * such wakeup cost tens to hundreds of microseconds.  Not an eager one,
 * which may copy gigabytes for seconds meanwhile: idle CPUs would spin all
 * that time for a gain it would not show.  --no-idle-poll leaves the idle
 * states alone.
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
#include "common/cpu-latency.h"
#include "common/log.h"
#include "common/mono-time.h"
#include "images/image.h"
#include "restore/restore.h"
#include "restore/tree.h"

#include "stats.pb-c.h"

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

/*
 * A detached restore exits right after the tree runs, and the kernel frees
 * the tree's images and plans then, all at once.  Freeing them ourselves
 * first wrote to every heap page they took, each one write-protected since
 * the root was forked from us: a page fault each (~7 us on the test VM),
 * more the bigger the tree, all of it between the 'restored in' line and
 * our exit.  A sanitizer build still frees them: its leak check at exit
 * must see only what the restore itself lost.
 */
#ifdef __SANITIZE_ADDRESS__
#define FREE_BEFORE_EXIT true
#else
#define FREE_BEFORE_EXIT false
#endif

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
	struct rst_tree tree = { .o = o, .dirfd = -1, .ev_r = -1, .ev_w = -1, .lazy_sock = -1,
				.ipc = { .host_fd = -1, .ns_fd = -1 } };
	int latency_fd = -1;
	pid_t root;
	int ret;

	tree.t_start = mono_us();
	if (o->lazy_pages && !o->no_idle_poll) {
		latency_fd = cpu_latency_hold();
		if (latency_fd < 0)
			pr_debug("idle CPUs keep their sleep states: %s: %s",
				 CPU_LATENCY_DEV, strerror(-latency_fd));
	}
	tree.dirfd = open(o->images_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tree.dirfd < 0) {
		ret = -errno;
		pr_perror("%s", o->images_dir);
		cpu_latency_release(latency_fd);
		return ret;
	}
	ret = rst_stages_run(&tree);
	if (ret) {
		rst_stages_undo(&tree);
		goto out;
	}
	root = tree.procs[0].t.pid;
	pr_info("%zu task(s) restored in %llu us, root %d", tree.nr,
		(unsigned long long)(mono_us() - tree.t_start), root);
	write_stats(tree.dirfd, tree.fork_us, mono_us() - tree.t_start, tree.pages_filled);
	close(tree.dirfd);
	/* detached, the request lasts until we have returned (our exit ends
	 * it); otherwise we are about to wait for as long as the task runs */
	if (o->restore_detached && !FREE_BEFORE_EXIT)
		return 0;	/* its descriptors and mappings go with us too */
	rst_tree_free(&tree);
	if (!o->restore_detached) {
		cpu_latency_release(latency_fd);
		wait_task(root);
	}
	return 0;
out:
	cpu_latency_release(latency_fd);
	rst_tree_free(&tree);
	close(tree.dirfd);
	return ret;
}
