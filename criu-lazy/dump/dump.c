/*
 * cr_dump: checkpoint a process tree into the images directory.
 *
 *   seize + freeze the tree (seize-tree.c, every thread: threads.c) -> checks of each task and of
 *   the tree -> collect each task (ptrace, /proc, syscalls run in the task
 *   with a scratch page) -> unmap the scratch page -> write every image ->
 *   kill the tree, or leave it running (-R) or stopped (-s).
 *
 * With --lazy-pages the lazy pages are not written: once the images are,
 * the dump serves them from the frozen task until the destination has
 * taken them (lazy-migrate.c), and only then lets the task go.
 *
 * Nothing is written until everything is collected and every refusal
 * (sockets, ...) has had its chance, so a refused tree is left
 * exactly as it was.  On any failure the images created so far are
 * removed and every task is let go unharmed, with its registers.  The one
 * step that changes the tree (reading the data of connections not yet
 * accepted) comes last but writing files.img and sk-queues.img, into
 * space taken before it (write_images).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "attrs/task-attr.h"
#include "common/array.h"
#include "common/log.h"
#include "common/mono-time.h"
#include "common/ptrace-inject.h"
#include "dump/dump.h"
#include "files/pty.h"
#include "net/netns.h"

static int remember_name(struct dump_ctx *ctx, const char *name)
{
	if (ARRAY_GROW(ctx->written, ctx->cap_written, ctx->nr_written + 1, 32))
		return -ENOMEM;
	snprintf(ctx->written[ctx->nr_written++], IMG_NAME_MAX, "%s", name);
	return 0;
}

static int remember_image(struct dump_ctx *ctx, enum img_type type, unsigned long id)
{
	char name[IMG_NAME_MAX];
	int ret = img_format_name(type, id, name, sizeof(name));

	return ret < 0 ? ret : remember_name(ctx, name);
}

int dump_img_open(struct dump_ctx *ctx, enum img_type type, unsigned long id, struct cr_img **out)
{
	int ret = remember_image(ctx, type, id);

	return ret ? ret : img_open(ctx->dirfd, type, id, O_WRONLY, out);
}

int dump_raw_open(struct dump_ctx *ctx, const char *name)
{
	int ret = remember_name(ctx, name), fd;

	if (ret)
		return ret;
	fd = openat(ctx->dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		pr_perror("can't create %s", name);
		return -errno;
	}
	return fd;
}

int dump_img_write_one(struct dump_ctx *ctx, enum img_type type, unsigned long id,
		       const ProtobufCMessage *msg)
{
	int ret = remember_image(ctx, type, id);

	return ret ? ret : img_write_one(ctx->dirfd, type, id, msg);
}

int dump_pagemap_open(struct dump_ctx *ctx, enum img_type type, unsigned long id,
		      struct pagemap_writer **out)
{
	uint32_t pages_id = ctx->next_pages_id++;
	char name[IMG_NAME_MAX];
	int ret;

	pages_file_name(pages_id, name, sizeof(name));
	ret = remember_image(ctx, type, id);
	if (!ret)
		ret = remember_name(ctx, name);
	return ret ? ret : pagemap_writer_open(ctx->dirfd, type, id, pages_id, out);
}

/* A UUID, as CRIU's run id: inventory.img and the nftables lock's table. */
static void dump_make_run_id(struct dump_ctx *ctx)
{
	FILE *f = fopen("/proc/sys/kernel/random/uuid", "re");

	if (!f)
		return;
	if (fgets(ctx->run_id, sizeof(ctx->run_id), f))
		ctx->run_id[strcspn(ctx->run_id, "\n")] = '\0';
	else
		ctx->run_id[0] = '\0';
	fclose(f);
}

static void remove_images(struct dump_ctx *ctx)
{
	for (size_t i = 0; i < ctx->nr_written; i++)
		if (unlinkat(ctx->dirfd, ctx->written[i], 0) && errno != ENOENT && errno != EISDIR)
			pr_warn("can't remove %s: %m", ctx->written[i]);
}

/* Everything about the task, read while it is frozen. */
static int collect_task(struct dump_ctx *ctx, struct dump_task *t)
{
	char status[16384];
	int ret, ret2;

	/* the layout as the task has it: before our scratch page exists */
	ret = proc_maps_read(t->pid, &t->maps, &t->nr_maps);
	if (ret == -ESRCH)
		return dump_task_error(t, ret, "no mappings for task %d", t->pid);
	if (ret)
		return ret;
	ret = inject_find_syscall_ip(t->pid, &t->syscall_ip);
	if (ret == -ESRCH)
		return dump_task_error(t, ret, "task %d is gone", t->pid);
	if (ret)
		return ret;
	t->core = dump_core_alloc();
	if (!t->core)
		return -ENOMEM;

	/* what must be read before anything runs inside the task */
	ret = dump_regs(t);
	if (!ret)
		ret = attrs_dump(ctx, t, ATTR_DUMP_FROZEN, ATTR_PROCESS | ATTR_THREAD);
	if (!ret)
		ret = dump_threads_collect(ctx, t, ATTR_DUMP_FROZEN);
	if (ret)
		return ret;

	ret = dump_scratch_map(t);
	if (ret)
		return ret;
	ret = dump_core_basics(t);
	if (!ret)
		ret = attrs_dump(ctx, t, ATTR_DUMP_INJECT, ATTR_PROCESS | ATTR_THREAD);
	if (!ret)
		ret = dump_threads_collect(ctx, t, ATTR_DUMP_INJECT);
	if (!ret) {
		ret = dump_proc_read(t, "status", status, sizeof(status));
		if (ret > 0)
			ret = 0;
	}
	if (!ret)
		ret = dump_mm(ctx, t);
	if (!ret && !t->shares_files)	/* else its parent's are its own */
		ret = dump_fds(ctx, t);
	if (!ret)
		ret = dump_fs(ctx, t, status);
	if (!ret)
		ret = dump_ids(ctx, t);
	ret2 = dump_scratch_unmap(t);
	return ret ? ret : ret2;
}

/* A zombie: its core (task part only) and nothing else. */
static int write_task_images(struct dump_ctx *ctx, struct dump_task *t)
{
	int ret;

	ret = dump_write_core(ctx, t);
	if (ret || t->zombie)
		return ret;
	ret = dump_write_thread_cores(ctx, t);
	if (!ret)
		ret = dump_write_ids(ctx, t);
	if (!ret)
		ret = dump_write_mm(ctx, t);
	if (!ret && !t->shares_files)
		ret = dump_write_fdinfo(ctx, t);
	if (!ret)
		ret = dump_write_fs(ctx, t);
	if (!ret)
		ret = dump_pages(ctx, t);
	if (!ret)
		ret = dump_shmem(ctx, t);
	return ret;
}

/*
 * The stages once everything is collected, in this order:
 *   1. resolve the files (what ties them; every refusal left: peers
 *      outside the tree, files in flight, which backlogs will be read)
 *   2. every image but files.img and sk-queues.img: inventory, pstree,
 *      locks, seccomp, the tree's IPC namespace (checked first: ipc-ns.c),
 *      each task's (cores, mm, fdinfo, pages, ...), stats, each kind's own
 *      (pipes, ...)
 *   3. files.img and sk-queues.img opened, the space of what they will
 *      hold taken, the most the accepts can add included (files.c)
 *   4. the point of no return: what only changing the tree reads (a
 *      listener's connections accepted to read their data, unix-backlog.c)
 *      and the files in flight it carries
 *   5. files.img and sk-queues.img written into their space; the images of
 *      the kinds the accepts brought files of, again
 * A failure after 4 cannot give the tree back as it was: its error, held
 * back from stderr, is said with what is lost (unix_backlog_release).
 * With the space taken in 3, what is left to fail there is a refusal of a
 * file in flight that only the accepts show, an I/O error, memory, or the
 * images of such files.
 */
static int write_images(struct dump_ctx *ctx)
{
	int ret;

	ret = dump_ipc_ns_check(ctx);
	if (!ret)
		ret = dump_resolve_files(ctx);
	if (!ret)
		ret = dump_write_inventory(ctx);
	if (!ret)
		ret = dump_write_pstree(ctx);
	if (!ret)
		ret = dump_netns_write(ctx);
	if (!ret)
		ret = dump_file_locks_write(ctx);
	if (!ret)
		ret = dump_seccomp_write(ctx);
	/* before the tasks' shared memory, which must not reuse a segment's id */
	if (!ret)
		ret = dump_ipc_ns(ctx);
	for (size_t i = 0; i < ctx->nr_tasks && !ret; i++)
		ret = write_task_images(ctx, ctx->tasks[i]);
	if (!ret)
		ret = dump_write_stats(ctx);
	if (!ret)
		ret = dump_write_kinds(ctx);
	if (!ret)
		ret = dump_reserve_files(ctx);
	/* from the accepts on, an error is said with what it lost, on
	 * release (unix_backlog_release) */
	if (!ret) {
		log_hold_errors();
		ret = dump_accept_files(ctx);
	}
	if (!ret)
		ret = dump_write_files(ctx);
	return ret;
}

static void task_free(struct dump_task *t)
{
	dump_core_free(t->core);
	dump_threads_free(t);
	dump_mm_free(&t->mm);
	proc_maps_free(t->maps, t->nr_maps);
	free(t->fds);
	free(t->lazy_runs);
}

/* Every task's own checks (the root's first), then the tree's. */
static int check_tasks(struct dump_ctx *ctx)
{
	for (size_t i = 0; i < ctx->nr_tasks; i++) {
		struct dump_task *t = ctx->tasks[i];
		int ret;

		if (t->zombie)
			continue;
		ret = dump_seize_threads(t);
		if (!ret)
			ret = dump_check_task(ctx, t);
		if (!ret)
			ret = dump_check_threads(t);
		if (ret)
			return ret;
	}
	return dump_check_tree(ctx);
}

static int collect_tasks(struct dump_ctx *ctx)
{
	for (size_t i = 0; i < ctx->nr_tasks; i++) {
		int ret;

		if (ctx->tasks[i]->zombie)
			continue;
		ret = collect_task(ctx, ctx->tasks[i]);
		if (ret)
			return ret;
	}
	return 0;
}

/* As CRIU: the dump holds copies of the tree's files (sockets, memfds,
 * files in flight), so its soft limit of descriptors goes to the hard one. */
static void raise_nofile(void)
{
	struct rlimit r;

	if (!getrlimit(RLIMIT_NOFILE, &r) && r.rlim_cur < r.rlim_max) {
		r.rlim_cur = r.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &r))
			pr_warn("can't raise the limit of open files to %llu: %m",
				(unsigned long long)r.rlim_max);
	}
}

int cr_dump(struct opts *o)
{
	struct dump_ctx ctx = {
		.o = o,
		.dirfd = -1,
		.netns_fd = -1,
		.own_netns_fd = -1,
		.netns_fw = { -1, -1, -1 },
		.next_pages_id = 1,
		.next_kobj_id = 1,	/* 1 is ours: inventory.root_ids */
		.srv = { .listen_fd = -1, .epfd = -1, .signal_fd = -1 },
	};
	enum task_release_mode mode;
	int ret, ret2;

	if (o->pid <= 0) {
		pr_err("no task to dump: use -t PID");
		return -EINVAL;
	}
	if (o->leave_running && o->leave_stopped) {
		pr_err("--leave-running and --leave-stopped exclude each other");
		return -EINVAL;
	}
	raise_nofile();
	ctx.dirfd = open(o->images_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ctx.dirfd < 0) {
		pr_perror("can't open the images directory %s", o->images_dir);
		return -errno;
	}
	/* before the task is touched: a port in use fails here */
	if (o->lazy_pages) {
		ret = dump_lazy_listen(&ctx);
		if (ret)
			goto out;
	}

	dump_make_run_id(&ctx);
	net_lock_init(&ctx.netlock, o->network_lock, ctx.run_id);
	ctx.st.t_start = mono_us();
	dump_find_zero_pfn(&ctx);
	ret = dump_seize_tree(&ctx);
	if (!ret)
		ret = check_tasks(&ctx);
	/* its sockets, links and sysctls are seen from inside its netns */
	if (!ret) {
		dump_root_ids(&ctx);
		ret = dump_netns_enter(&ctx);
	}
	ctx.st.t_frozen = mono_us();
	if (!ret)
		ret = collect_tasks(&ctx);
	if (!ret) {
		ret = write_images(&ctx);
		if (!ret)
			log_release_errors(false);	/* held since the accepts: none */
	}
	if (!ret && o->lazy_pages)
		ret = dump_lazy_serve(&ctx);

	if (ret) {
		remove_images(&ctx);
		mode = ctx.lazy_failed ? dump_lazy_failed_mode(&ctx) : RELEASE_RUN;
	} else if (o->leave_stopped) {
		mode = RELEASE_STOP;
	} else if (o->leave_running) {
		mode = RELEASE_RUN;
	} else {
		mode = RELEASE_KILL;
	}
	/* a TCP connection leaves repair mode (and its lock goes) before its
	 * task runs again; the images stay: they are good */
	ctx.failed = ret != 0;
	ret2 = dump_files_release(&ctx, mode == RELEASE_RUN);
	log_release_errors(false);
	if (mode == RELEASE_RUN && !ret2)
		ret2 = net_lock_finish(&ctx.netlock, false);
	ret = ret ? ret : ret2;
	dump_release_tree(&ctx, mode);
	dump_netns_leave(&ctx);
	if (ctx.lazy_failed)
		dump_lazy_report(&ctx, mode);
	else if (!ret)
		pr_info("dump of the tree of task %d (%zu task(s)) done: %llu pages written, "
			"%llu of them lazy", ctx.root->pid, ctx.nr_tasks,
			(unsigned long long)ctx.st.pages_written,
			(unsigned long long)ctx.st.pages_lazy);

	for (size_t i = 0; i < ctx.nr_tasks; i++)
		task_free(ctx.tasks[i]);
out:
	img_discard(ctx.files_img);	/* left open by a failure: removed already */
	img_discard(ctx.sk_queues_img);
	dump_tree_free(&ctx);
	dump_lazy_fini(&ctx);
	dump_files_free(&ctx.files);
	dump_file_locks_free(&ctx);
	pty_dump_fini(&ctx);
	dump_sock_diag_free(ctx.sk);
	dump_seccomp_free(&ctx);
	free(ctx.ns.v);
	free(ctx.shmids_done);
	free(ctx.sysv_shmids);
	free(ctx.written);
	free(ctx.lost);
	dump_netns_leave(&ctx);
	close(ctx.dirfd);
	return ret;
}
