/*
 * Read every image of one process of the dump and check it, before any
 * task exists: a bad image must fail the restore with one line naming the
 * file and what is wrong, and leave nothing behind.  What we do not
 * support yet is refused here too.
 * The tree's own images (inventory, pstree) are tree-load.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define LOG_PREFIX ""
#include "attrs/task-attr.h"
#include "common/array.h"
#include "common/kernel-abi.h"
#include "common/log.h"
#include "images/image.h"
#include "images/vma-status.h"
#include "restore/restore.h"
#include "restore/files.h"
#include "restore/images.h"
#include "restore/images-prefetch.h"
#include "restore/shmem.h"
#include "restore/threads.h"

#define TASK_ALIVE	1
#define TASK_DEAD	2
#define TASK_STOPPED	3

#define VMA_STATUS_SUPPORTED (VMA_AREA_REGULAR | VMA_AREA_STACK | VMA_AREA_VSYSCALL | \
			      VMA_AREA_VDSO | VMA_AREA_HEAP | VMA_FILE_PRIVATE | \
			      VMA_FILE_SHARED | VMA_ANON_SHARED | VMA_ANON_PRIVATE | \
			      VMA_AREA_VVAR | VMA_AREA_MEMFD | VMA_AREA_SYSVIPC)

static int load_one(int dirfd, enum img_type type, unsigned long id,
		    const ProtobufCMessageDescriptor *desc, void *out)
{
	return rst_img_read_one(dirfd, type, id, desc, (ProtobufCMessage **)out);
}

static int check_fpregs(pid_t pid, const UserX86FpregsEntry *fp)
{
	if (fp->n_st_space != 32 || fp->n_xmm_space != 64) {
		pr_err("core-%d.img: FPU state has %zu x87 and %zu SSE words (expected 32 and 64)",
		       pid, fp->n_st_space, fp->n_xmm_space);
		return -EINVAL;
	}
	/*
	 * CRIU writes a CET entry for every thread on a CPU with shadow
	 * stacks, with cet = 0 when the task has none: only an enabled shadow
	 * stack is state we would lose.
	 */
	if (fp->xsave && fp->xsave->cet && (fp->xsave->cet->cet & CET_ARCH_SHSTK_SHSTK)) {
		pr_err("core-%d.img: the task has an enabled CET shadow stack (cet %#llx, ssp %#llx): "
		       "not supported", pid, (unsigned long long)fp->xsave->cet->cet,
		       (unsigned long long)fp->xsave->cet->ssp);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* What every thread's core must hold, the leader's and the others'. */
int rst_check_thread_core(pid_t pid, const CoreEntry *core)
{
	const ThreadCoreEntry *th = core->thread_core;
	const ThreadInfoX86 *ti = core->thread_info;
	int ret;

	if (core->mtype != CORE_ENTRY__MARCH__X86_64) {
		pr_err("core-%d.img: architecture %d is not x86_64", pid, core->mtype);
		return -EINVAL;
	}
	if (!th || !ti || !ti->gpregs || !ti->fpregs) {
		pr_err("core-%d.img: incomplete: thread or register state missing", pid);
		return -EINVAL;
	}
	if (ti->gpregs->has_mode && ti->gpregs->mode != USER_X86_REGS_MODE__NATIVE) {
		pr_err("core-%d.img: 32-bit (compat) tasks are not supported", pid);
		return -EOPNOTSUPP;
	}
	if (ti->n_tls > 3) {
		pr_err("core-%d.img: %zu TLS entries (at most 3)", pid, ti->n_tls);
		return -EINVAL;
	}
	ret = attrs_check(pid, core, ATTR_THREAD);
	if (ret)
		return ret;
	return check_fpregs(pid, ti->fpregs);
}

static int check_core(pid_t pid, const CoreEntry *core)
{
	const TaskCoreEntry *tc = core->tc;
	int ret;

	ret = rst_check_thread_core(pid, core);
	if (ret)
		return ret;
	if (!tc) {
		pr_err("core-%d.img: incomplete: task state missing", pid);
		return -EINVAL;
	}
	if (tc->task_state != TASK_ALIVE && tc->task_state != TASK_STOPPED) {
		pr_err("core-%d.img: task state %u (%s) of a task with registers", pid,
		       tc->task_state, tc->task_state == TASK_DEAD ? "zombie" : "unknown");
		return -EINVAL;
	}
	return attrs_check(pid, core, ATTR_PROCESS);
}

static const char *vma_kind(uint32_t status)
{
	if (status & VMA_AREA_SYSVIPC)
		return "SysV shared memory";
	if (status & VMA_AREA_SOCKET)
		return "a socket ring buffer";
	if (status & VMA_AREA_AIORING)
		return "an AIO ring";
	if (status & VMA_AREA_MEMFD)
		return "a memfd mapping";
	if (status & VMA_AREA_SHSTK)
		return "a shadow stack";
	if (status & VMA_AREA_GUARD)
		return "a guard region";
	if (status & VMA_AREA_UPROBES)
		return "the uprobes area";
	if (status & VMA_EXT_PLUGIN)
		return "a plugin mapping";
	return "an unsupported mapping";
}

/*
 * Guard regions come as CRIU writes them: vma_entry records with status
 * VMA_AREA_GUARD after every real VMA, each inside one of them.  They are
 * kept apart (ri->guards) and mm->n_vmas counts the real VMAs only, so
 * nothing else meets them; rst_images_free() counts them back.
 */
static int split_guards(struct rst_images *ri)
{
	MmEntry *mm = ri->mm;
	size_t n = mm->n_vmas, real = n, k = 0;

	while (real && (mm->vmas[real - 1]->status & VMA_AREA_GUARD))
		real--;
	for (size_t i = real; i < n; i++) {
		const VmaEntry *g = mm->vmas[i];

		while (k < real && mm->vmas[k]->end <= g->start)
			k++;
		if (g->status != VMA_AREA_GUARD || g->start >= g->end ||
		    g->start % RST_PAGE_SIZE || g->end % RST_PAGE_SIZE || k == real ||
		    g->start < mm->vmas[k]->start || g->end > mm->vmas[k]->end ||
		    (i > real && g->start < mm->vmas[i - 1]->end)) {
			pr_err("mm-%d.img: guard region 0x%llx-0x%llx (status 0x%x) is not inside "
			       "one VMA, in order", ri->pid, (unsigned long long)g->start,
			       (unsigned long long)g->end, g->status);
			return -EINVAL;
		}
	}
	ri->guards = (const VmaEntry *const *)&mm->vmas[real];
	ri->nr_guards = n - real;
	mm->n_vmas = real;
	return 0;
}

static int check_mm(pid_t pid, const MmEntry *mm)
{
	uint64_t prev_end = 0;

	if (mm->n_mm_saved_auxv > RST_AUXV_WORDS_MAX || mm->n_mm_saved_auxv % 2) {
		pr_err("mm-%d.img: %zu auxv words (an even number, at most %d)", pid,
		       mm->n_mm_saved_auxv, RST_AUXV_WORDS_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < mm->n_vmas; i++) {
		const VmaEntry *v = mm->vmas[i];

		if (v->start >= v->end || v->start % RST_PAGE_SIZE || v->end % RST_PAGE_SIZE ||
		    v->start < prev_end) {
			pr_err("mm-%d.img: VMA %zu 0x%llx-0x%llx is empty, unaligned or out of order",
			       pid, i, (unsigned long long)v->start, (unsigned long long)v->end);
			return -EINVAL;
		}
		prev_end = v->end;
		if (v->status & VMA_AREA_VSYSCALL)
			continue;
		if (v->end > RST_TASK_SIZE) {
			pr_err("mm-%d.img: VMA %zu 0x%llx-0x%llx is beyond the user address space",
			       pid, i, (unsigned long long)v->start, (unsigned long long)v->end);
			return -EINVAL;
		}
		if (v->status & ~VMA_STATUS_SUPPORTED) {
			pr_err("mm-%d.img: VMA 0x%llx-0x%llx is %s (status 0x%x): not supported",
			       pid, (unsigned long long)v->start, (unsigned long long)v->end,
			       vma_kind(v->status & ~VMA_STATUS_SUPPORTED), v->status);
			return -EOPNOTSUPP;
		}
		if (v->status & (VMA_AREA_VDSO | VMA_AREA_VVAR))
			continue;
		if (!(v->status & VMA_AREA_REGULAR) ||
		    !(v->status & (VMA_ANON_PRIVATE | VMA_ANON_SHARED | VMA_FILE_PRIVATE |
				   VMA_FILE_SHARED))) {
			pr_err("mm-%d.img: VMA 0x%llx-0x%llx has status 0x%x: not a mapping we can restore",
			       pid, (unsigned long long)v->start, (unsigned long long)v->end,
			       v->status);
			return -EINVAL;
		}
		if (v->flags & MAP_HUGETLB) {
			pr_err("mm-%d.img: VMA 0x%llx-0x%llx is hugetlb memory: not supported",
			       pid, (unsigned long long)v->start, (unsigned long long)v->end);
			return -EOPNOTSUPP;
		}
	}
	return 0;
}

int rst_shmem_add(struct rst_images *ri, uint64_t shmid, struct rst_shmem **out)
{
	struct rst_shmem *s;
	int ret;

	if (ARRAY_GROW(ri->shmems, ri->cap_shmems, ri->nr_shmems + 1, 4))
		return -ENOMEM;
	s = &ri->shmems[ri->nr_shmems];
	memset(s, 0, sizeof(*s));
	s->pi.pages_fd = -1;
	s->shmid = shmid;
	ret = pagemap_index_load(ri->dirfd, IMG_PAGEMAP_SHMEM, shmid, true, &s->pi);
	if (ret)
		return ret;
	ri->nr_shmems++;
	*out = s;
	return 0;
}

/* Pages of the shared anonymous VMAs: one pagemap-shmem per object. */
static int load_shmems(struct rst_images *ri)
{
	for (size_t i = 0; i < ri->mm->n_vmas; i++) {
		const VmaEntry *v = ri->mm->vmas[i];
		struct rst_shmem *s = NULL;
		int ret;

		/* SysV segments are the IPC namespace's (ipc-ns.c) */
		if (!(v->status & VMA_ANON_SHARED) || (v->status & VMA_AREA_SYSVIPC))
			continue;
		for (size_t k = 0; k < ri->nr_shmems; k++)
			if (ri->shmems[k].shmid == v->shmid)
				s = &ri->shmems[k];
		if (!s) {
			ret = rst_shmem_add(ri, v->shmid, &s);
			if (ret)
				return ret;
		}
		if (v->pgoff + (v->end - v->start) > s->size)
			s->size = v->pgoff + (v->end - v->start);
	}
	for (size_t k = 0; k < ri->nr_shmems; k++) {
		struct rst_shmem *s = &ri->shmems[k];

		for (size_t r = 0; r < s->pi.nr_runs; r++) {
			const struct page_run *run = &s->pi.runs[r];

			if (run->vaddr + run->nr_pages * RST_PAGE_SIZE > s->size) {
				pr_err("pagemap-shmem-%llu.img: pages at offset 0x%llx lie past the %llu bytes its VMAs map",
				       (unsigned long long)s->shmid,
				       (unsigned long long)run->vaddr,
				       (unsigned long long)s->size);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/*
 * A tree root dumped as the init of its own pid namespace (one that is not
 * the dumping process's, inventory.root_ids) is restored into a new one, as
 * pid 1 there, and the rest of the tree with it (their pids are that
 * namespace's: tree-load.c checks they were all in it); a tree in our
 * namespace keeps its pids in ours.
 */
static int check_pid_ns(struct rst_images *ri)
{
	const TaskKobjIdsEntry *root = ri->inv->root_ids;

	if (!root || !root->has_pid_ns_id || !ri->ids->has_pid_ns_id ||
	    root->pid_ns_id == ri->ids->pid_ns_id || ri->pstree->ppid != 0)
		return 0;
	if (ri->pid != 1) {
		pr_err("ids-%d.img: task %d is in a pid namespace of its own (%u, not %u) but is "
		       "not its init: only a namespace init (pid 1) can be restored into a new one",
		       ri->pid, ri->pid, ri->ids->pid_ns_id, root->pid_ns_id);
		return -EINVAL;
	}
	ri->new_pid_ns = ri->in_new_pid_ns = true;
	return 0;
}

int rst_images_load(int dirfd, const struct opts *o, const InventoryEntry *inv,
		    const PstreeEntry *ps, CoreEntry *core, const struct rst_ghosts *ghosts,
		    struct rst_tree_files *tf, const struct rst_images *parent,
		    struct rst_images *ri)
{
	int ret;

	memset(ri, 0, sizeof(*ri));
	ri->dirfd = dirfd;
	ri->ghosts = ghosts;
	ri->tf = tf;
	ri->pi.pages_fd = -1;
	ri->inv = inv;
	ri->pstree = ps;
	ri->pid = ps->pid;
	ri->core = core;	/* ours from now on, freed with the rest */

	ret = check_core(ri->pid, ri->core);
	if (!ret)
		ret = rst_threads_load(ri);
	if (!ret)
		ret = rst_seccomp_load(ri);
	if (!ret)
		ret = rst_posix_timers_check_threads(ri);
	if (!ret)
		ret = load_one(dirfd, IMG_IDS, ri->pid, &task_kobj_ids_entry__descriptor, &ri->ids);
	if (!ret)
		ret = check_pid_ns(ri);
	/* its parent's descriptor table (CLONE_FILES): restored once, by the
	 * first of its sharers (restore/fdt.c) */
	if (!ret && parent && parent->ids->files_id == ri->ids->files_id)
		ri->fdt_owner = parent->fdt_owner ? parent->fdt_owner : parent;
	if (!ret)
		ret = load_one(dirfd, IMG_MM, ri->pid, &mm_entry__descriptor, &ri->mm);
	if (!ret)
		ret = split_guards(ri);
	if (!ret)
		ret = check_mm(ri->pid, ri->mm);
	if (!ret)
		ret = load_one(dirfd, IMG_FS, ri->pid, &fs_entry__descriptor, &ri->fs);
	if (ret)
		return ret;

	ret = pagemap_index_load(dirfd, IMG_PAGEMAP, ri->pid, true, &ri->pi);
	if (!ret)
		ret = load_shmems(ri);
	if (!ret)
		ret = rst_fds_load(o, ri);
	if (!ret)
		ret = rst_file_locks_load(o, ri);
	if (!ret)
		ret = rst_memfd_objects(ri);
	if (!ret)
		ret = rst_fs_check(ri);
	return ret;
}

void rst_images_free(struct rst_images *ri)
{
#define FREE_MSG(m) do { if (m) protobuf_c_message_free_unpacked((ProtobufCMessage *)(m), NULL); } while (0)
	for (size_t i = 1; i < ri->nr_threads; i++)
		FREE_MSG(ri->cores[i]);
	FREE_MSG(ri->core);
	FREE_MSG(ri->ids);
	if (ri->mm)
		ri->mm->n_vmas += ri->nr_guards;
	FREE_MSG(ri->mm);
	FREE_MSG(ri->fs);
	FREE_MSG(ri->seccomp);
#undef FREE_MSG
	free(ri->cores);
	free(ri->tids);
	free(ri->fds);
	free(ri->locks);	/* the entries are the tree's */
	for (unsigned int k = 0; k < fd_kinds_nr; k++)
		if (ri->kind_state[k] && fd_kinds[k]->rst_free)
			fd_kinds[k]->rst_free(ri->kind_state[k]);
	pagemap_index_free(&ri->pi);
	for (size_t k = 0; k < ri->nr_shmems; k++)
		pagemap_index_free(&ri->shmems[k].pi);
	free(ri->shmems);
	memset(ri, 0, sizeof(*ri));
}
