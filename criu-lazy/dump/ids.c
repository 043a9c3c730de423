/*
 * The small images around the tasks: ids-PID.img (which kernel objects a
 * task shares), pstree.img, inventory.img and stats-dump.
 *
 * Ids are small integers, equal for the same kernel object.  Our own
 * process goes first (inventory.root_ids), so a task in the host's
 * namespaces gets the same namespace ids as root_ids, and, being another
 * process, vm/files/fs/sighand ids of its own.  With a tree, kcmp() will
 * tell which tasks share those.
 */
#include <fcntl.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/array.h"
#include "common/log.h"
#include "common/mono-time.h"
#include "dump/dump.h"

#include "inventory.pb-c.h"
#include "pstree.pb-c.h"
#include "stats.pb-c.h"

static uint32_t ns_id(struct dump_ns_ids *ns, uint64_t ino)
{
	for (size_t i = 0; i < ns->nr; i++)
		if (ns->v[i].ino == ino)
			return ns->v[i].id;
	if (ARRAY_GROW(ns->v, ns->cap, ns->nr + 1, 16))
		return 0;
	ns->v[ns->nr].ino = ino;
	ns->v[ns->nr].id = ++ns->next_id;
	return ns->v[ns->nr++].id;
}

/* Namespace ids of /proc/<who>/ns/<name>; a namespace the kernel lacks is left out. */
static void fill_ns_ids(struct dump_ctx *ctx, const char *who, TaskKobjIdsEntry *ids)
{
	static const char *names[] = { "pid", "net", "ipc", "uts", "mnt", "user", "cgroup", "time" };
	protobuf_c_boolean *has[] = { &ids->has_pid_ns_id, &ids->has_net_ns_id,
				      &ids->has_ipc_ns_id, &ids->has_uts_ns_id,
				      &ids->has_mnt_ns_id, &ids->has_user_ns_id,
				      &ids->has_cgroup_ns_id, &ids->has_time_ns_id };
	uint32_t *val[] = { &ids->pid_ns_id, &ids->net_ns_id, &ids->ipc_ns_id, &ids->uts_ns_id,
			    &ids->mnt_ns_id, &ids->user_ns_id, &ids->cgroup_ns_id,
			    &ids->time_ns_id };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char path[64];
		struct stat st;

		snprintf(path, sizeof(path), "/proc/%s/ns/%s", who, names[i]);
		if (stat(path, &st))
			continue;
		*val[i] = ns_id(&ctx->ns, st.st_ino);
		*has[i] = *val[i] != 0;
	}
}

/*
 * Processes made with clone(CLONE_FS) share one fs_struct: one fs_id, as
 * CRIU writes it, found with kcmp among the processes dumped before.
 */
static void share_fs_id(struct dump_ctx *ctx, struct dump_task *t)
{
	for (size_t i = 0; i < ctx->nr_tasks && ctx->tasks[i] != t; i++) {
		const struct dump_task *u = ctx->tasks[i];

		if (!u->zombie && syscall(SYS_kcmp, t->pid, u->pid, KCMP_FS, 0, 0) == 0) {
			t->ids.fs_id = u->ids.fs_id;
			return;
		}
	}
}

/* Ours: before the dump enters the tree's netns (net/netns-dump.c). */
void dump_root_ids(struct dump_ctx *ctx)
{
	if (ctx->root_ids_done)
		return;
	task_kobj_ids_entry__init(&ctx->root_ids);
	ctx->root_ids.vm_id = ctx->root_ids.files_id = 1;
	ctx->root_ids.fs_id = ctx->root_ids.sighand_id = 1;
	fill_ns_ids(ctx, "self", &ctx->root_ids);
	ctx->root_ids_done = true;
}

int dump_ids(struct dump_ctx *ctx, struct dump_task *t)
{
	char who[16];

	dump_root_ids(ctx);
	task_kobj_ids_entry__init(&t->ids);
	/* one of each per process, until kcmp() finds shared ones */
	t->ids.vm_id = t->ids.files_id = t->ids.fs_id = t->ids.sighand_id = ++ctx->next_kobj_id;
	share_fs_id(ctx, t);
	if (t->shares_files)	/* one fdinfo-<files_id>.img, its parent's (tree-check.c) */
		t->ids.files_id = t->parent->ids.files_id;
	snprintf(who, sizeof(who), "%d", t->pid);
	fill_ns_ids(ctx, who, &t->ids);
	if (t->exited || dump_task_exited(t))
		return dump_task_error(t, -ESRCH, "task %d exited", t->pid);
	pr_debug("task %d: ids vm %u files %u fs %u sighand %u; ns pid %u net %u mnt %u user %u",
		 t->pid, t->ids.vm_id, t->ids.files_id, t->ids.fs_id, t->ids.sighand_id,
		 t->ids.pid_ns_id, t->ids.net_ns_id, t->ids.mnt_ns_id, t->ids.user_ns_id);
	return 0;
}

int dump_write_ids(struct dump_ctx *ctx, struct dump_task *t)
{
	return dump_img_write_one(ctx, IMG_IDS, t->vpid, &t->ids.base);
}

/* Every task of the tree, parents before children (CRIU's order). */
int dump_write_pstree(struct dump_ctx *ctx)
{
	struct cr_img *img;
	int ret;

	ret = dump_img_open(ctx, IMG_PSTREE, 0, &img);
	if (ret)
		return ret;
	for (size_t i = 0; i < ctx->nr_tasks && !ret; i++) {
		struct dump_task *t = ctx->tasks[i];
		PstreeEntry e = PSTREE_ENTRY__INIT;
		uint32_t one = t->vpid, *threads = &one;
		size_t nr = 1;

		if (!t->zombie && t->nr_threads) {
			threads = calloc(t->nr_threads, sizeof(*threads));
			if (!threads) {
				ret = -ENOMEM;
				break;
			}
			for (size_t k = 0; k < t->nr_threads; k++)
				threads[k] = t->threads[k].vtid;	/* the leader first */
			nr = t->nr_threads;
		}
		e.pid = t->vpid;
		e.ppid = t->parent ? t->parent->vpid : 0;	/* 0: the root */
		e.pgid = t->pgid;
		e.sid = t->sid;
		e.n_threads = nr;
		e.threads = threads;
		ret = img_write_entry(img, &e.base);
		if (threads != &one)
			free(threads);
	}
	if (ret) {
		img_close(img);
		return ret;
	}
	return img_close(img);
}

static int lsm_type(void)
{
	char buf[8] = "";
	FILE *f;

	if (!access("/sys/fs/selinux/enforce", F_OK))
		return LSMTYPE__SELINUX;
	f = fopen("/sys/module/apparmor/parameters/enabled", "re");
	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = '\0';
		fclose(f);
		if (buf[0] == 'Y')
			return LSMTYPE__APPARMOR;
	}
	return LSMTYPE__NO_LSM;
}

int dump_write_inventory(struct dump_ctx *ctx)
{
	InventoryEntry e = INVENTORY_ENTRY__INIT;

	e.img_version = 2;
	e.has_fdinfo_per_id = true;
	e.fdinfo_per_id = true;
	e.has_ns_per_id = true;
	e.ns_per_id = true;
	e.root_ids = &ctx->root_ids;
	e.has_lsmtype = true;
	e.lsmtype = lsm_type();

	if (ctx->run_id[0])
		e.dump_criu_run_id = ctx->run_id;
	e.has_network_lock_method = true;
	e.network_lock_method = ctx->o->network_lock;
	return dump_img_write_one(ctx, IMG_INVENTORY, 0, &e.base);
}

int dump_write_stats(struct dump_ctx *ctx)
{
	struct dump_stats *st = &ctx->st;
	DumpStatsEntry d = DUMP_STATS_ENTRY__INIT;
	StatsEntry e = STATS_ENTRY__INIT;
	uint64_t now = mono_us();

	d.freezing_time = st->t_frozen - st->t_start;
	d.frozen_time = now - st->t_frozen;
	d.memdump_time = st->memdump_us;
	d.memwrite_time = st->memwrite_us;
	d.pages_scanned = st->pages_scanned;
	d.pages_skipped_parent = 0;
	d.pages_written = st->pages_written;
	d.pages_lazy = st->pages_lazy;
	if (st->shpages_scanned) {
		d.has_shpages_scanned = true;
		d.shpages_scanned = st->shpages_scanned;
		d.has_shpages_written = true;
		d.shpages_written = st->shpages_written;
	}
	e.dump = &d;
	return dump_img_write_one(ctx, IMG_STATS_DUMP, 0, &e.base);
}
