/*
 * The address space: mm fields (/proc/PID/stat, brk(0) in the task, auxv,
 * the exe link) and one vma_entry per line of /proc/PID/maps, with the
 * flags and advice only /proc/PID/smaps shows (VmFlags), and CRIU's status
 * bits.  VMAs whose contents we can't restore yet are refused here.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/kernel-abi.h"
#include "common/log.h"
#include "dump/dump.h"
#include "images/auxv.h"
#include "images/vma-status.h"

#ifndef MAP_HUGETLB
#define MAP_HUGETLB 0x40000
#endif

struct vm_flags {
	uint32_t map;		/* MAP_* bits */
	uint64_t madv;		/* bit n = MADV n */
	bool io;		/* VM_IO / VM_PFNMAP: device memory */
	bool shstk;		/* shadow stack */
	bool uffd_missing;	/* "um": registered with a userfaultfd */
	bool may_write;		/* "mw": a shared file mapping's file is writable */
	bool lock_onfault;	/* "lf": mlock2(MLOCK_ONFAULT) */
};

static const struct {
	char name[3];
	uint32_t map;
	int madv;
} vm_flag_table[] = {
	{ "gd", MAP_GROWSDOWN, -1 },
	{ "lo", MAP_LOCKED, -1 },
	{ "nr", MAP_NORESERVE, -1 },
	{ "ht", MAP_HUGETLB, -1 },
	{ "dp", MAP_DROPPABLE, -1 },
	{ "rr", 0, MADV_RANDOM },
	{ "sr", 0, MADV_SEQUENTIAL },
	{ "dc", 0, MADV_DONTFORK },
	{ "mg", 0, MADV_MERGEABLE },
	{ "hg", 0, MADV_HUGEPAGE },
	{ "nh", 0, MADV_NOHUGEPAGE },
	{ "dd", 0, MADV_DONTDUMP },
	{ "wf", 0, MADV_WIPEONFORK },
};

static void parse_vm_flags(const char *p, struct vm_flags *f)
{
	while (*p && *p != '\n') {
		while (*p == ' ')
			p++;
		if (!p[0] || !p[1] || p[0] == '\n')
			break;
		for (size_t i = 0; i < sizeof(vm_flag_table) / sizeof(vm_flag_table[0]); i++) {
			if (p[0] != vm_flag_table[i].name[0] || p[1] != vm_flag_table[i].name[1])
				continue;
			f->map |= vm_flag_table[i].map;
			if (vm_flag_table[i].madv >= 0)
				f->madv |= 1ull << vm_flag_table[i].madv;
		}
		if ((p[0] == 'i' && p[1] == 'o') || (p[0] == 'p' && p[1] == 'f'))
			f->io = true;
		if (p[0] == 's' && p[1] == 's')
			f->shstk = true;
		if (p[0] == 'u' && p[1] == 'm')
			f->uffd_missing = true;
		if (p[0] == 'm' && p[1] == 'w')
			f->may_write = true;
		if (p[0] == 'l' && p[1] == 'f')
			f->lock_onfault = true;
		p += 2;
	}
}

/* VmFlags of every VMA in t->maps (matched by start address). */
static int read_smaps_flags(struct dump_task *t, struct vm_flags *flags)
{
	char path[64], *line = NULL;
	size_t len = 0, i = 0;
	ssize_t n;
	FILE *f;
	long cur = -1;

	snprintf(path, sizeof(path), "/proc/%d/smaps", t->pid);
	f = fopen(path, "re");
	if (!f)
		return dump_task_error(t, -errno, "can't open %s: %m", path);
	while ((n = getline(&line, &len, f)) > 0) {
		unsigned long long start, end;
		char c;

		if (!strncmp(line, "VmFlags:", 8)) {
			if (cur >= 0)
				parse_vm_flags(line + 8, &flags[cur]);
			continue;
		}
		if (sscanf(line, "%llx-%llx %c", &start, &end, &c) != 3 || !strchr(line, '-'))
			continue;
		cur = -1;
		while (i < t->nr_maps && t->maps[i].start < start)
			i++;
		if (i < t->nr_maps && t->maps[i].start == start)
			cur = i;
	}
	free(line);
	fclose(f);
	return 0;
}

static bool has_prefix(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

static int refuse_vma(struct dump_task *t, const struct proc_vma *m, const char *why)
{
	pr_err("mapping %llx-%llx (%s) of task %d is %s: not supported yet",
	       (unsigned long long)m->start, (unsigned long long)m->end,
	       m->path[0] ? m->path : "anonymous", t->pid, why);
	return -EOPNOTSUPP;
}

/* A file mapping: the file's id in files.img, and the mapping's flags. */
static int fill_file_vma(struct dump_ctx *ctx, struct dump_task *t, const struct proc_vma *m,
			 const struct vm_flags *fl, VmaEntry *v)
{
	char link[64], what[128], path[96];
	/* a shared mapping of a file opened for writing may be made writable
	 * with mprotect (VM_MAYWRITE) even when it is read-only now */
	int open_flags = m->shared && ((m->prot & PROT_WRITE) || fl->may_write) ? O_RDWR : O_RDONLY;
	struct stat st;
	uint32_t id;
	int ret;

	snprintf(link, sizeof(link), "map_files/%llx-%llx",
		 (unsigned long long)m->start, (unsigned long long)m->end);
	snprintf(path, sizeof(path), "/proc/%d/%s", t->pid, link);
	if (stat(path, &st))
		return dump_task_error(t, -errno, "can't stat %s: %m", path);

	if (S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 5 &&
	    !m->shared) {
		/* a private mapping of /dev/zero is plain anonymous memory */
		v->status = VMA_AREA_REGULAR | VMA_ANON_PRIVATE;
		v->flags = MAP_PRIVATE | MAP_ANONYMOUS;
		v->pgoff = 0;
		return 0;
	}
	if (!S_ISREG(st.st_mode))
		return refuse_vma(t, m, "a mapping of a device or special file");

	snprintf(what, sizeof(what), "mapping %llx-%llx of task %d",
		 (unsigned long long)m->start, (unsigned long long)m->end, t->pid);
	if (has_prefix(m->path, "/memfd:"))
		ret = dump_memfd_vma(ctx, t, link, what, open_flags, &id);
	else
		ret = dump_file_by_path(ctx, t, link, what, open_flags, &id);
	if (ret)
		return ret;
	v->shmid = id;
	v->has_fdflags = true;
	v->fdflags = open_flags;
	if (m->shared) {
		v->status = VMA_AREA_REGULAR | VMA_FILE_SHARED;
		v->flags = MAP_SHARED;
	} else {
		v->status = VMA_AREA_REGULAR | VMA_FILE_PRIVATE;
		v->flags = MAP_PRIVATE;
	}
	if (has_prefix(m->path, "/memfd:"))
		v->status |= VMA_AREA_MEMFD;
	return 0;
}

static int fill_vma(struct dump_ctx *ctx, struct dump_task *t, const struct proc_vma *m,
		    const struct vm_flags *fl, VmaEntry *v)
{
	const char *p = m->path;
	int ret;

	vma_entry__init(v);
	v->start = m->start;
	v->end = m->end;
	v->pgoff = m->pgoff;
	v->prot = m->prot;
	v->fd = -1;
	v->status = VMA_AREA_REGULAR | VMA_ANON_PRIVATE;
	v->flags = MAP_PRIVATE | MAP_ANONYMOUS;

	if (fl->shstk)
		return refuse_vma(t, m, "a shadow stack");
	if (fl->map & MAP_HUGETLB)
		return refuse_vma(t, m, "hugetlb memory");
	/* vma_entry has no bit for it: restored MAP_LOCKED, every page would
	 * be populated and locked */
	if (fl->lock_onfault)
		return refuse_vma(t, m, "locked on fault (mlock2 MLOCK_ONFAULT)");

	if (!strcmp(p, "[vsyscall]")) {
		v->status = VMA_AREA_VSYSCALL | VMA_ANON_PRIVATE;
	} else if (!strcmp(p, "[vdso]")) {
		v->status |= VMA_AREA_VDSO;
	} else if (!strcmp(p, "[vvar]") || !strcmp(p, "[vvar_vclock]")) {
		v->status |= VMA_AREA_VVAR;
	} else if (!strcmp(p, "[heap]")) {
		v->status |= VMA_AREA_HEAP;
	} else if (m->shared && (has_prefix(p, "/SYSV"))) {
		/* as CRIU: shared anonymous memory whose shmid is the segment's
		 * id (its inode); ipc-ns.c dumps the segment */
		v->status = VMA_AREA_REGULAR | VMA_ANON_SHARED | VMA_AREA_SYSVIPC;
		v->flags = MAP_SHARED | MAP_ANONYMOUS;
		v->shmid = m->ino;
		v->has_fdflags = true;
		v->fdflags = (m->prot & PROT_WRITE) || fl->may_write ? O_RDWR : O_RDONLY;
	} else if (m->shared && (has_prefix(p, "/dev/zero") || has_prefix(p, "[anon_shmem:"))) {
		v->status = VMA_AREA_REGULAR | VMA_ANON_SHARED;
		v->flags = MAP_SHARED | MAP_ANONYMOUS;
		v->shmid = m->ino;
	} else if (!p[0] || !strcmp(p, "[stack]") || has_prefix(p, "[anon:")) {
		if (m->shared)
			return refuse_vma(t, m, "unknown shared anonymous memory");
	} else if (p[0] == '[') {
		return refuse_vma(t, m, "a special kernel mapping");
	} else if (p[0] != '/' || !m->ino) {
		return refuse_vma(t, m, "a mapping of a special file");
	} else if (fl->io) {
		return refuse_vma(t, m, "device memory");
	} else {
		ret = fill_file_vma(ctx, t, m, fl, v);
		if (ret)
			return ret;
	}

	v->flags |= fl->map;
	if (fl->madv) {
		v->has_madv = true;
		v->madv = fl->madv;
	}
	return 0;
}

static int dump_vmas(struct dump_ctx *ctx, struct dump_task *t)
{
	struct task_mm *mm = &t->mm;
	struct vm_flags *flags;
	int ret;

	flags = calloc(t->nr_maps ? t->nr_maps : 1, sizeof(*flags));
	mm->vmas = calloc(t->nr_maps ? t->nr_maps : 1, sizeof(*mm->vmas));
	mm->vmas_p = calloc(t->nr_maps ? t->nr_maps : 1, sizeof(*mm->vmas_p));
	mm->uffd_missing = calloc(t->nr_maps ? t->nr_maps : 1, sizeof(*mm->uffd_missing));
	if (!flags || !mm->vmas || !mm->vmas_p || !mm->uffd_missing) {
		free(flags);
		return -ENOMEM;
	}
	ret = read_smaps_flags(t, flags);
	for (size_t i = 0; !ret && i < t->nr_maps; i++) {
		VmaEntry *v = &mm->vmas[i];

		ret = fill_vma(ctx, t, &t->maps[i], &flags[i], v);
		/* shared memory a lazy restore left to its daemon: read it all
		 * through the task, or the object shows holes (dump/shmem.c) */
		if (!ret && flags[i].uffd_missing && t->maps[i].shared &&
		    (v->status & (VMA_ANON_SHARED | VMA_AREA_MEMFD)))
			ret = dump_shmem_fault_in(t, v);
		mm->vmas_p[i] = v;
		mm->uffd_missing[i] = flags[i].uffd_missing;
		if (!ret)
			pr_debug("task %d: vma %llx-%llx prot %x flags %#x status %#x pgoff %#llx "
				 "shmid %llu madv %#llx %s", t->pid, (unsigned long long)v->start,
				 (unsigned long long)v->end, v->prot, v->flags, v->status,
				 (unsigned long long)v->pgoff, (unsigned long long)v->shmid,
				 (unsigned long long)v->madv, t->maps[i].path);
	}
	free(flags);
	if (ret)
		return ret;
	mm->nr_vmas = t->nr_maps;
	ret = dump_guards(ctx, t);
	if (ret)
		return ret;
	if (mm->nr_guards) {
		/* as CRIU writes them: after every real VMA */
		VmaEntry **all = realloc(mm->vmas_p, (t->nr_maps + mm->nr_guards) * sizeof(*all));

		if (!all)
			return -ENOMEM;
		mm->vmas_p = all;
		for (size_t i = 0; i < mm->nr_guards; i++)
			all[t->nr_maps + i] = &mm->guards[i];
	}
	mm->mm.n_vmas = t->nr_maps + mm->nr_guards;
	mm->mm.vmas = mm->vmas_p;
	return 0;
}

/*
 * The saved auxv, fitted into CRIU's bound (images/auxv.h) so CRIU can
 * restore the images too.
 */
static int dump_auxv(struct dump_task *t)
{
	struct task_mm *mm = &t->mm;
	char buf[DUMP_AUXV_MAX * 8 + 1];
	size_t n, dropped;
	int ret;

	ret = dump_proc_read(t, "auxv", buf, sizeof(buf));
	if (ret < 0)
		return ret;
	memcpy(mm->auxv, buf, ret & ~7);
	n = auxv_fit(mm->auxv, ret / 8, CRIU_AUXV_WORDS_MAX, &dropped);
	if (dropped)
		pr_info("task %d: %zu auxv pairs left out to fit CRIU's %d words", t->pid, dropped,
			CRIU_AUXV_WORDS_MAX);
	mm->mm.n_mm_saved_auxv = n;
	mm->mm.mm_saved_auxv = mm->auxv;
	return 0;
}

int dump_mm(struct dump_ctx *ctx, struct dump_task *t)
{
	MmEntry *e = &t->mm.mm;
	struct proc_stat st;
	char what[64];
	long res;
	int ret, val;

	mm_entry__init(e);
	ret = dump_proc_stat(t, &st);
	if (ret)
		return ret;
	e->mm_start_code = st.f[26];
	e->mm_end_code = st.f[27];
	e->mm_start_stack = st.f[28];
	e->mm_start_data = st.f[45];
	e->mm_end_data = st.f[46];
	e->mm_start_brk = st.f[47];
	e->mm_arg_start = st.f[48];
	e->mm_arg_end = st.f[49];
	e->mm_env_start = st.f[50];
	e->mm_env_end = st.f[51];

	ret = dump_remote_call(t, "brk(0)", __NR_brk, 0, 0, 0, 0, &res);
	if (ret)
		return ret;
	e->mm_brk = res;

	ret = dump_remote_call(t, "prctl(PR_GET_DUMPABLE)", __NR_prctl, PR_GET_DUMPABLE, 0, 0, 0, &res);
	if (ret)
		return ret;
	e->has_dumpable = true;
	e->dumpable = res;
	ret = dump_remote_call(t, "prctl(PR_GET_THP_DISABLE)", __NR_prctl, PR_GET_THP_DISABLE,
			       0, 0, 0, &res);
	if (ret)
		return ret;
	e->has_thp_disabled = true;
	e->thp_disabled = res != 0;

	ret = dump_auxv(t);
	if (ret)
		return ret;

	snprintf(what, sizeof(what), "the executable of task %d", t->pid);
	ret = dump_file_by_path(ctx, t, "exe", what, O_RDONLY, &e->exe_file_id);
	if (ret)
		return ret;

	ret = dump_vmas(ctx, t);
	if (ret)
		return ret;
	val = e->dumpable;
	pr_debug("task %d: code %#llx-%#llx data %#llx-%#llx brk %#llx-%#llx stack %#llx "
		 "args %#llx-%#llx env %#llx-%#llx auxv %zu words exe %u dumpable %d thp_off %d",
		 t->pid, (unsigned long long)e->mm_start_code, (unsigned long long)e->mm_end_code,
		 (unsigned long long)e->mm_start_data, (unsigned long long)e->mm_end_data,
		 (unsigned long long)e->mm_start_brk, (unsigned long long)e->mm_brk,
		 (unsigned long long)e->mm_start_stack, (unsigned long long)e->mm_arg_start,
		 (unsigned long long)e->mm_arg_end, (unsigned long long)e->mm_env_start,
		 (unsigned long long)e->mm_env_end, e->n_mm_saved_auxv, e->exe_file_id, val,
		 e->thp_disabled);
	return 0;
}

int dump_write_mm(struct dump_ctx *ctx, struct dump_task *t)
{
	return dump_img_write_one(ctx, IMG_MM, t->vpid, &t->mm.mm.base);
}

void dump_mm_free(struct task_mm *mm)
{
	free(mm->vmas);
	free(mm->vmas_p);
	free(mm->uffd_missing);
	free(mm->guards);
	mm->vmas = NULL;
	mm->vmas_p = NULL;
	mm->guards = NULL;
}
