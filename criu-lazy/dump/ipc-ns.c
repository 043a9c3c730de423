/*
 * The IPC namespace of a tree that has one of its own (the root's ipc ns is
 * not ours), as CRIU dumps it: ipcns-var-<ns>.img (its sysctls) and
 * ipcns-shm-<ns>.img (every SysV shared memory segment, attached or not:
 * key, owner, creator, mode, size; contents in pagemap-shmem-<id>.img,
 * in_pagemaps as CRIU 4 writes it), named by the root's ipc_ns_id.
 * Message queues and semaphore sets are ipc-msg-sem.c's.
 *
 * A task's attachment of a segment is a VMA (dump/mm.c: VMA_AREA_SYSVIPC,
 * shmid = the segment's id, which the kernel gives the segment's inode).
 * A tree in our own (the host's) IPC namespace holding one is refused: its
 * segments are the host's, not the tree's (CRIU dumps the VMA and then
 * fails at restore, "Can't find sysv shmem"), and so is a tree whose tasks
 * are not all in the root's IPC namespace.
 *
 * The objects are read from inside the namespace: this thread enters it
 * (setns) for the time of the dump and comes back.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <unistd.h>

#include "common/ipc-sysctl.h"
#include "common/log.h"
#include "dump/dump.h"
#include "images/vma-status.h"

#include "ipc-shm.pb-c.h"

#ifndef SHM_HUGETLB
#define SHM_HUGETLB	04000
#endif

bool dump_ipc_ns_own(const struct dump_ctx *ctx)
{
	return ctx->root->ids.has_ipc_ns_id && ctx->root_ids.has_ipc_ns_id &&
	       ctx->root->ids.ipc_ns_id != ctx->root_ids.ipc_ns_id;
}

/* Every task in the root's IPC namespace; SysV attachments only in one of
 * the tree's own. */
int dump_ipc_ns_check(struct dump_ctx *ctx)
{
	bool own = dump_ipc_ns_own(ctx);

	for (size_t i = 0; i < ctx->nr_tasks; i++) {
		const struct dump_task *t = ctx->tasks[i];

		if (t->zombie)
			continue;
		if (t->ids.ipc_ns_id != ctx->root->ids.ipc_ns_id) {
			pr_err("task %d is not in the IPC namespace of the tree's root %d: IPC "
			       "namespaces inside the tree are not supported", t->pid,
			       ctx->root->pid);
			return -EOPNOTSUPP;
		}
		for (size_t k = 0; !own && k < t->mm.nr_vmas; k++) {
			const VmaEntry *v = &t->mm.vmas[k];

			if (!(v->status & VMA_AREA_SYSVIPC))
				continue;
			pr_err("mapping %llx-%llx of task %d is SysV shared memory (segment %llu) "
			       "of the host's IPC namespace: only a tree in an IPC namespace of its "
			       "own is dumped with its SysV objects (unshare -i, as with CRIU)",
			       (unsigned long long)v->start, (unsigned long long)v->end, t->pid,
			       (unsigned long long)v->shmid);
			return -EOPNOTSUPP;
		}
	}
	return 0;
}

void dump_ipc_desc(IpcDescEntry *d, int id, const struct ipc_perm *p)
{
	d->id = id;
	d->key = p->__key;
	d->uid = p->uid;
	d->gid = p->gid;
	d->cuid = p->cuid;
	d->cgid = p->cgid;
	d->mode = p->mode;
}

static int dump_segment_pages(struct dump_ctx *ctx, int id, uint64_t size)
{
	char path[96];
	void *addr;
	int fd, ret;

	addr = shmat(id, NULL, SHM_RDONLY);
	if (addr == (void *)-1) {
		pr_perror("can't attach SysV shared memory segment %d to read it", id);
		return -errno;
	}
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)addr,
		 (unsigned long)addr + (unsigned long)((size + 4095) & ~4095ULL));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		pr_perror("can't open %s (SysV segment %d)", path, id);
	} else {
		ret = dump_shmem_write_fd(ctx, fd, id, size);
		close(fd);
	}
	shmdt(addr);
	return ret;
}

int dump_ipc_stat_failed(const char *call, int idx)
{
	if (errno == EINVAL)
		return -ENOENT;
	pr_perror("%s of slot %d", call, idx);
	return -errno;
}

int dump_ipc_objects(struct dump_ctx *ctx, uint32_t ns_id, const struct dump_ipc_kind *k)
{
	union { struct msginfo msg; struct seminfo sem; struct shm_info shm; } info;
	union { struct msqid_ds msg; struct semid_ds sem; struct shmid_ds shm; } ds;
	struct cr_img *img = NULL;
	int nr, maxidx, ret = 0, seen = 0;

	maxidx = k->info(&info, &nr);
	if (maxidx < 0) {
		pr_perror("%s in the tree's IPC namespace", k->info_call);
		return -errno;
	}
	for (int idx = 0; idx <= maxidx && !ret; idx++) {
		IpcDescEntry d = IPC_DESC_ENTRY__INIT;
		int id = k->stat(idx, &ds, &d);

		if (id == -ENOENT)
			continue;	/* a free slot */
		if (id < 0)
			return img_close_keep(img, id);
		if (!img)
			ret = dump_img_open(ctx, k->img, ns_id, &img);
		if (!ret)
			ret = k->dump(ctx, img, &info, &ds, &d);
		seen++;
	}
	if (!ret && seen != nr) {
		pr_err("the tree's IPC namespace has %d %s, %d found", nr, k->what, seen);
		ret = -EAGAIN;
	}
	return img_close_keep(img, ret);
}

static int shm_info(void *info, int *nr)
{
	int ret = shmctl(0, SHM_INFO, info);

	*nr = ((struct shm_info *)info)->used_ids;
	return ret;
}

static int shm_stat(int idx, void *buf, IpcDescEntry *d)
{
	struct shmid_ds *ds = buf;
	int id = shmctl(idx, SHM_STAT, ds);

	if (id < 0)
		return dump_ipc_stat_failed("shmctl(SHM_STAT)", idx);
	if (ds->shm_perm.mode & SHM_HUGETLB) {
		pr_err("SysV shared memory segment %d is hugetlb memory: not supported", id);
		return -EOPNOTSUPP;
	}
	dump_ipc_desc(d, id, &ds->shm_perm);
	return id;
}

static int shm_dump(struct dump_ctx *ctx, struct cr_img *img, const void *info,
		    const void *buf, IpcDescEntry *d)
{
	const struct shmid_ds *ds = buf;
	IpcShmEntry e = IPC_SHM_ENTRY__INIT;
	int id = d->id;
	uint64_t *done;
	int ret;

	(void)info;
	e.desc = d;
	e.size = ds->shm_segsz;
	e.has_in_pagemaps = e.in_pagemaps = true;
	ret = img_write_entry(img, &e.base);
	if (!ret)
		ret = dump_segment_pages(ctx, id, e.size);
	done = ret ? NULL : realloc(ctx->sysv_shmids, (ctx->nr_sysv_shmids + 1) * sizeof(*done));
	if (!ret && !done)
		ret = -ENOMEM;
	if (!ret) {
		ctx->sysv_shmids = done;
		done[ctx->nr_sysv_shmids++] = id;
	}
	pr_debug("SysV shm %d: key %#x mode %#o size %llu", id, d->key, d->mode,
		 (unsigned long long)e.size);
	return ret;
}

static const struct dump_ipc_kind segments = {
	.what = "SysV shared memory segments",
	.info_call = "shmctl(SHM_INFO)",
	.img = IMG_IPCNS_SHM,
	.info = shm_info,
	.stat = shm_stat,
	.dump = shm_dump,
};

static int dump_var(struct dump_ctx *ctx, uint32_t ns_id)
{
	IpcVarEntry e = IPC_VAR_ENTRY__INIT;
	uint32_t sem[4];
	int ret = ipc_sysctl_read(&e, sem);

	return ret ? ret : dump_img_write_one(ctx, IMG_IPCNS_VAR, ns_id, &e.base);
}

int dump_ipc_ns(struct dump_ctx *ctx)
{
	uint32_t ns_id = ctx->root->ids.ipc_ns_id;
	char path[64];
	int ours, theirs, ret;

	if (!dump_ipc_ns_own(ctx))
		return 0;
	ours = open("/proc/self/ns/ipc", O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/%d/ns/ipc", ctx->root->pid);
	theirs = open(path, O_RDONLY | O_CLOEXEC);
	if (ours < 0 || theirs < 0) {
		ret = -errno;
		pr_perror("can't open the IPC namespaces (ours, %s)", path);
		goto out;
	}
	if (setns(theirs, CLONE_NEWIPC)) {
		ret = -errno;
		pr_perror("can't enter the IPC namespace of task %d", ctx->root->pid);
		goto out;
	}
	ret = dump_var(ctx, ns_id);
	if (!ret)
		ret = dump_ipc_objects(ctx, ns_id, &segments);
	if (!ret)
		ret = dump_ipc_msg_sem(ctx, ns_id);
	if (setns(ours, CLONE_NEWIPC)) {
		pr_perror("can't come back to our own IPC namespace");
		ret = ret ? ret : -errno;
	}
out:
	if (ours >= 0)
		close(ours);
	if (theirs >= 0)
		close(theirs);
	return ret;
}
