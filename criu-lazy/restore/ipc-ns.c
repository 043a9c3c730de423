/*
 * A tree dumped with an IPC namespace of its own (its root's ipc_ns_id is
 * not inventory.root_ids', ids-PID.img) comes back in a new one, with its
 * SysV objects under their ids, as CRIU restores them:
 *
 *   load     ipcns-shm-<ns>.img (every segment), and each task's SysV
 *            attachments checked against it; a SysV VMA in a tree without
 *            its own namespace is refused (CRIU: "Can't find sysv shmem")
 *   create   the restore process unshares CLONE_NEWIPC (the tasks, forked
 *            from it, are born inside), writes the sysctls of ipcns-var,
 *            makes each segment: shm_next_id = its id, shmget(key, size,
 *            mode | IPC_CREAT | IPC_EXCL), owner and mode with IPC_SET,
 *            SHM_LOCK if it was locked, contents from pagemap-shmem-<id>.img
 *            (or, in older images, the bytes after its entry); then the
 *            message queues and semaphore sets (ipc-msg-sem.c), and last the
 *            *_next_id sysctls as they were (each creation consumed them;
 *            CRIU writes them first and loses them) and shm_rmid_forced
 *            (set, our detach after filling would destroy each segment; a
 *            segment no task attaches then goes when the restore exits, as
 *            with its creator gone)
 *   leave    once the tasks exist, the restore process goes back to its own
 *   removed  once every task has attached its segments (premap.c), the ones
 *            removed at the dump (IPC_RMID while attached: SHM_DEST) are
 *            removed again; they go with their last detach, as before
 *
 * Not restored (nor by CRIU): the creator (cuid, cgid: ours), the times
 * and pids of shmid_ds, semaphore undo values.  Contents are written here
 * eagerly in every mode (Documentation/lazy-pages.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/ipc-sysctl.h"
#include "common/log.h"
#include "images/image.h"
#include "images/pagemap.h"
#include "images/vma-status.h"
#include "restore/restore.h"
#include "restore/shmem.h"

#include "ipc-shm.pb-c.h"

#ifndef SHM_DEST
#define SHM_DEST	01000
#define SHM_LOCKED	02000
#endif

static int collect_shm(struct cr_img *img, ProtobufCMessage *msg, void *arg)
{
	struct rst_ipc *ipc = arg;
	IpcShmEntry *e = (IpcShmEntry *)msg, **grown, *copy;
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = malloc(len ? len : 1);
	int fd;

	/* entries are freed after this returns: keep our own copy */
	if (!buf)
		return -ENOMEM;
	protobuf_c_message_pack(msg, buf);
	copy = ipc_shm_entry__unpack(NULL, len, buf);
	free(buf);
	grown = copy ? realloc(ipc->shm, (ipc->nr_shm + 1) * sizeof(*grown)) : NULL;
	if (!grown) {
		if (copy)
			ipc_shm_entry__free_unpacked(copy, NULL);
		return -ENOMEM;
	}
	ipc->shm = grown;
	grown[ipc->nr_shm++] = copy;
	if (e->has_hugetlb_flag && e->hugetlb_flag) {
		pr_err("%s: SysV segment %u is hugetlb memory: not supported", img_name(img),
		       e->desc->id);
		return -EOPNOTSUPP;
	}
	if (e->has_in_pagemaps && e->in_pagemaps)
		return 0;
	/* older images: the contents follow the entry, skip them for now */
	fd = img_raw_fd(img);
	if (fd < 0 || lseek(fd, (e->size + 3) & ~3ULL, SEEK_CUR) < 0) {
		pr_err("%s: can't skip the contents of SysV segment %u", img_name(img),
		       e->desc->id);
		return -EIO;
	}
	return 0;
}

static const IpcShmEntry *find_shm(const struct rst_ipc *ipc, uint64_t id)
{
	for (size_t i = 0; i < ipc->nr_shm; i++)
		if (ipc->shm[i]->desc->id == id)
			return ipc->shm[i];
	return NULL;
}

/* Each SysV VMA of each process: a segment of the images, big enough. */
static int check_attachments(struct rst_tree *tree)
{
	for (size_t i = 0; i < tree->nr; i++) {
		const struct rst_images *ri = &tree->procs[i].ri;

		if (tree->procs[i].kind != RST_PROC_ALIVE)
			continue;
		for (size_t k = 0; k < ri->mm->n_vmas; k++) {
			const VmaEntry *v = ri->mm->vmas[k];
			const IpcShmEntry *s;

			if (!(v->status & VMA_AREA_SYSVIPC))
				continue;
			if (!tree->ipc.new_ns) {
				pr_err("mm-%d.img: VMA 0x%llx-0x%llx is SysV shared memory (segment "
				       "%llu) but the tree had no IPC namespace of its own: its "
				       "segments were not dumped", ri->pid,
				       (unsigned long long)v->start, (unsigned long long)v->end,
				       (unsigned long long)v->shmid);
				return -EINVAL;
			}
			s = find_shm(&tree->ipc, v->shmid);
			if (!s) {
				pr_err("mm-%d.img: VMA 0x%llx-0x%llx is SysV segment %llu, which "
				       "ipcns-shm-%u.img does not have", ri->pid,
				       (unsigned long long)v->start, (unsigned long long)v->end,
				       (unsigned long long)v->shmid, tree->ipc.ns_id);
				return -EINVAL;
			}
			if (v->pgoff + (v->end - v->start) > ((s->size + 4095) & ~4095ULL)) {
				pr_err("mm-%d.img: VMA 0x%llx-0x%llx maps SysV segment %llu past its "
				       "%llu bytes", ri->pid, (unsigned long long)v->start,
				       (unsigned long long)v->end, (unsigned long long)v->shmid,
				       (unsigned long long)s->size);
				return -EINVAL;
			}
		}
	}
	return 0;
}

int rst_ipc_ns_load(struct rst_tree *tree)
{
	const TaskKobjIdsEntry *ours = tree->inv->root_ids, *root = tree->procs[0].ri.ids;
	struct rst_ipc *ipc = &tree->ipc;
	int ret;

	ipc->host_fd = ipc->ns_fd = -1;
	ipc->new_ns = ours && root && ours->has_ipc_ns_id && root->has_ipc_ns_id &&
		      ours->ipc_ns_id != root->ipc_ns_id;
	if (ipc->new_ns) {
		ipc->ns_id = root->ipc_ns_id;
		ret = img_for_each_entry(tree->dirfd, IMG_IPCNS_SHM, ipc->ns_id,
					 &ipc_shm_entry__descriptor, collect_shm, ipc);
		if (ret)
			return ret;
	}
	return check_attachments(tree);
}

static int write_shm_contents(struct rst_tree *tree, struct cr_img *img, const IpcShmEntry *e,
			      void *addr)
{
	struct pagemap_index pi;
	int fd, ret;

	if (!e->has_in_pagemaps || !e->in_pagemaps) {
		uint64_t len = (e->size + 3) & ~3ULL, done = 0;

		fd = img_raw_fd(img);
		while (fd >= 0 && done < len) {
			ssize_t n = read(fd, (char *)addr + done, len - done);

			if (n <= 0) {
				pr_err("%s: SysV segment %u: %llu bytes of contents missing",
				       img_name(img), e->desc->id, (unsigned long long)(len - done));
				return -EIO;
			}
			done += n;
		}
		return fd < 0 ? fd : 0;
	}
	memset(&pi, 0, sizeof(pi));
	pi.pages_fd = -1;
	ret = pagemap_index_load(tree->dirfd, IMG_PAGEMAP_SHMEM, e->desc->id, true, &pi);
	for (size_t r = 0; !ret && r < pi.nr_runs; r++)
		if (pi.runs[r].vaddr + pi.runs[r].nr_pages * RST_PAGE_SIZE >
		    ((e->size + 4095) & ~4095ULL)) {
			pr_err("pagemap-shmem-%u.img: pages at offset 0x%llx lie past the %llu "
			       "bytes of SysV segment %u", e->desc->id,
			       (unsigned long long)pi.runs[r].vaddr, (unsigned long long)e->size,
			       e->desc->id);
			ret = -EINVAL;
		}
	if (!ret)
		ret = rst_shmem_fill(&pi, e->desc->id, addr);
	pagemap_index_free(&pi);
	return ret;
}

static int make_segment(struct rst_tree *tree, struct cr_img *img, const IpcShmEntry *e)
{
	const IpcDescEntry *d = e->desc;
	struct shmid_ds ds;
	void *addr;
	int id, ret;

	ret = rst_ipc_set_next_id("shm", d->id);
	if (ret)
		return ret;
	id = shmget(d->key, e->size, (d->mode & 0777) | IPC_CREAT | IPC_EXCL);
	if (id < 0) {
		pr_perror("SysV segment %u (key %#x, %llu bytes): shmget", d->id, d->key,
			  (unsigned long long)e->size);
		return -errno;
	}
	if ((uint32_t)id != d->id) {
		pr_err("SysV segment %u came back as %d (shm_next_id not honoured)", d->id, id);
		shmctl(id, IPC_RMID, NULL);
		return -EEXIST;
	}
	memset(&ds, 0, sizeof(ds));
	ds.shm_perm.uid = d->uid;
	ds.shm_perm.gid = d->gid;
	ds.shm_perm.mode = d->mode & 0777;
	if (shmctl(id, IPC_SET, &ds) || ((d->mode & SHM_LOCKED) && shmctl(id, SHM_LOCK, NULL))) {
		pr_perror("SysV segment %u: can't set its owner %u:%u, mode %#o%s", d->id, d->uid,
			  d->gid, d->mode & 0777, d->mode & SHM_LOCKED ? " and lock it" : "");
		return -errno;
	}
	addr = shmat(id, NULL, 0);
	if (addr == (void *)-1) {
		pr_perror("SysV segment %u: can't attach it to fill it", d->id);
		return -errno;
	}
	ret = write_shm_contents(tree, img, e, addr);
	shmdt(addr);
	pr_debug("SysV segment %u: key %#x mode %#o %llu bytes", d->id, d->key, d->mode,
		 (unsigned long long)e->size);
	return ret;
}

static int make_segments(struct rst_tree *tree)
{
	struct cr_img *img;
	size_t n = 0;
	int ret;

	ret = img_open(tree->dirfd, IMG_IPCNS_SHM, tree->ipc.ns_id, O_RDONLY, &img);
	if (ret == -ENOENT)
		return tree->ipc.nr_shm ? -EIO : 0;
	if (ret)
		return ret;
	/* the same walk as collect_shm(), now with the raw contents */
	while (!ret && n < tree->ipc.nr_shm) {
		ProtobufCMessage *m;

		ret = img_read_entry(img, &ipc_shm_entry__descriptor, &m);
		if (ret != 1) {
			ret = ret ? ret : -EIO;
			break;
		}
		ret = make_segment(tree, img, (IpcShmEntry *)m);
		protobuf_c_message_free_unpacked(m, NULL);
		n++;
	}
	img_close(img);
	return ret;
}

int rst_ipc_ns_create(struct rst_tree *tree)
{
	struct rst_ipc *ipc = &tree->ipc;
	IpcVarEntry *var = NULL;
	int ret;

	if (!ipc->new_ns)
		return 0;
	ret = img_read_one(tree->dirfd, IMG_IPCNS_VAR, ipc->ns_id, &ipc_var_entry__descriptor,
			   (ProtobufCMessage **)&var);
	if (ret)
		return ret;
	ipc->host_fd = open("/proc/self/ns/ipc", O_RDONLY | O_CLOEXEC);
	if (ipc->host_fd < 0 || unshare(CLONE_NEWIPC)) {
		pr_perror("can't make a new IPC namespace for the tree");
		ret = -errno;
		goto out;
	}
	ipc->ns_fd = open("/proc/self/ns/ipc", O_RDONLY | O_CLOEXEC);
	if (ipc->ns_fd < 0) {
		pr_perror("can't open the tree's new IPC namespace");
		ret = -errno;
		goto out;
	}
	ret = ipc_sysctl_write(var, false);
	if (!ret)
		ret = make_segments(tree);
	if (!ret)
		ret = rst_ipc_msg_sem(tree);
	if (!ret)
		ret = ipc_sysctl_write(var, true);
out:
	ipc_var_entry__free_unpacked(var, NULL);
	return ret;
}

/* The restore process back in its own namespace (the tasks stay). */
int rst_ipc_ns_leave(struct rst_tree *tree)
{
	if (tree->ipc.host_fd < 0)
		return 0;
	if (setns(tree->ipc.host_fd, CLONE_NEWIPC)) {
		pr_perror("can't go back to our own IPC namespace");
		return -errno;
	}
	return 0;
}

int rst_ipc_ns_removed(struct rst_tree *tree)
{
	struct rst_ipc *ipc = &tree->ipc;
	int ret = 0;

	for (size_t i = 0; i < ipc->nr_shm && !ret; i++) {
		if (!(ipc->shm[i]->desc->mode & SHM_DEST))
			continue;
		if (setns(ipc->ns_fd, CLONE_NEWIPC)) {
			pr_perror("can't enter the tree's IPC namespace");
			return -errno;
		}
		if (shmctl(ipc->shm[i]->desc->id, IPC_RMID, NULL)) {
			ret = -errno;
			pr_perror("SysV segment %u: can't remove it again", ipc->shm[i]->desc->id);
		}
		if (rst_ipc_ns_leave(tree) && !ret)
			ret = -EIO;
	}
	return ret;
}

void rst_ipc_ns_free(struct rst_tree *tree)
{
	struct rst_ipc *ipc = &tree->ipc;

	rst_ipc_ns_leave(tree);
	for (size_t i = 0; i < ipc->nr_shm; i++)
		ipc_shm_entry__free_unpacked(ipc->shm[i], NULL);
	free(ipc->shm);
	ipc->shm = NULL;
	ipc->nr_shm = 0;
	if (ipc->host_fd >= 0)
		close(ipc->host_fd);
	if (ipc->ns_fd >= 0)
		close(ipc->ns_fd);
	ipc->host_fd = ipc->ns_fd = -1;
}
