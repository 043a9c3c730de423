/*
 * The restore side of the lazy-pages protocol for one dumped process, with
 * chosen lazy pages already there at the handover (lazy-pages.md, "a lazy
 * page that is present before anything was delivered").  The daemon must
 * name each of them, count it in pages_lost and exit 1, and give every
 * other page its image's contents.  Driven by test/test_lazy_present.py.
 *
 *   lazy_present -D DIR -p PID --list
 *       prints the lazy-capable VMAs with lazy pages ("vma START END") and
 *       their PE_LAZY runs ("lazy START NPAGES"), and the shared anonymous
 *       VMAs whose object has dumped pages ("shm START END") and where
 *       those pages are ("lazy START NPAGES"), hex addresses
 *   lazy_present -D DIR -p PID [--write ADDR[:NPAGES]]... [--thp ADDR]
 *                [--late-write ADDR] [--cred-pid PID]
 *       plays the restore: connects to DIR/lazy-pages.socket, creates a
 *       task with the dumped pid (clone3 + set_tid) that maps those VMAs
 *       at their addresses (the shared ones as new, empty objects, as the
 *       restore makes lazy shared memory), fills their non-lazy pages from
 *       the images, writes 0x5a over each --write range (THP off for the
 *       task until then, as in the restore; --thp: THP on again,
 *       MADV_HUGEPAGE on the 2 MiB at ADDR and one byte written there, so
 *       the kernel may put a huge page of zeros around it), registers the
 *       VMAs with a new userfaultfd (MISSING) and stops.  This process
 *       takes the uffd (pidfd_getfd), sends the pid and the uffd and
 *       "restore finished" with the restore's own encoder
 *       (common/lazy-socket.c), and lets the task go on.  The task prints
 *       "present ADDR" for each page of its VMAs that was there at the
 *       handover (its own read of /proc/self/pagemap, not the daemon's
 *       code), then reads every page: one that was there must hold what
 *       it held, one that was not must hold the image's data (zeros where
 *       the image has none).
 *       --late-write: see write_late().
 *       The uffd's message has credentials naming the task, as the
 *       restore's; --cred-pid PID: naming PID instead (the daemon must
 *       refuse the task when PID is another process); --cred-pid self:
 *       naming this process, the sender, which is what the daemon gets
 *       from a restore that attaches none (it looks for the task itself).
 *
 * Exit: 0 every page right; 1 a page wrong (each named, "wrong ADDR: ...");
 * 2 a setup failure (one line).  The address space of this helper may
 * hold one of the dumped VMAs' addresses (ASLR): that is a setup failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/lazy-socket.h"
#include "common/log.h"
#include "images/image.h"
#include "images/pagemap.h"
#include "images/vma-status.h"
#include "mm.pb-c.h"
#include "restore/tree.h"	/* rst_clone_with_pid() */

#define PG		4096ULL
#define HUGE		(2ULL << 20)
#define MARK		0x5a
#define MAX_WRITES	16
#define UFFD_EVENTS	(UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | \
			 UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP)

struct range {
	uint64_t start, end;
};

/* A VMA the task maps and registers, and where its data is in the images. */
struct view {
	uint64_t start, end;
	bool shared;			/* MAP_SHARED|MAP_ANONYMOUS: an object of its own */
	uint64_t pgoff;			/* shared: the object's offset at start */
	uint64_t shmid;
	struct pagemap_index *pi;	/* the process's pagemap, or the object's */
	void *pages;			/* its pages file, mapped */
};

struct plan {
	struct pagemap_index pi;
	void *pages;			/* the pages file, mapped */
	struct view vma[256];		/* lazy-capable VMAs with lazy pages, shared memory */
	size_t nr_vma;
	struct range write[MAX_WRITES];
	size_t nr_write;
	uint64_t thp;			/* 0: none */
	uint64_t late;			/* 0: none; else a shared page written after the handover */
};

static void __attribute__((noreturn)) die(const char *fmt, ...)
{
	va_list ap;

	fputs("lazy_present: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static bool has_lazy(const struct pagemap_index *pi, uint64_t start, uint64_t end)
{
	for (size_t r = 0; r < pi->nr_runs; r++) {
		const struct page_run *run = &pi->runs[r];

		if ((run->flags & PE_LAZY) && run->vaddr < end &&
		    run->vaddr + run->nr_pages * PG > start)
			return true;
	}
	return false;
}

/* Shared anonymous memory with dumped pages: a view of its object. */
static bool add_shared(int dirfd, const VmaEntry *v, struct view *out)
{
	struct pagemap_index *pi = calloc(1, sizeof(*pi));
	int ret;

	if (!(v->status & VMA_ANON_SHARED) || (v->status & VMA_AREA_SYSVIPC)) {
		free(pi);
		return false;	/* (memfds are not this helper's) */
	}
	if (!pi)
		die("out of memory");
	ret = pagemap_index_load(dirfd, IMG_PAGEMAP_SHMEM, v->shmid, true, pi);
	if (!ret)
		ret = pages_file_map(pi, &out->pages);
	if (ret)
		die("pagemap-shmem-%llu.img or its pages file: %s", (unsigned long long)v->shmid,
		    strerror(-ret));
	if (!pi->nr_runs) {
		pagemap_index_free(pi);
		free(pi);
		return false;
	}
	if (v->pgoff)
		die("0x%llx: a view of shared memory %llu at offset 0x%llx: this helper maps "
		    "whole objects only", (unsigned long long)v->start,
		    (unsigned long long)v->shmid, (unsigned long long)v->pgoff);
	*out = (struct view){ .start = v->start, .end = v->end, .shared = true,
			      .shmid = v->shmid, .pi = pi, .pages = out->pages };
	return true;
}

/* The VMAs the restore would register: lazy-capable with a lazy page, and
 * shared anonymous memory with dumped pages. */
static void load_plan(int dirfd, pid_t pid, struct plan *pl)
{
	MmEntry *mm;
	int ret = img_read_one(dirfd, IMG_MM, pid, &mm_entry__descriptor, (ProtobufCMessage **)&mm);

	if (ret)
		die("mm-%d.img: %s", pid, strerror(-ret));
	ret = pagemap_index_load(dirfd, IMG_PAGEMAP, pid, true, &pl->pi);
	if (!ret)
		ret = pages_file_map(&pl->pi, &pl->pages);
	if (ret)
		die("pagemap-%d.img or its pages file: %s", pid, strerror(-ret));
	for (size_t i = 0; i < mm->n_vmas; i++) {
		const VmaEntry *v = mm->vmas[i];
		struct view *w = &pl->vma[pl->nr_vma];

		if (pl->nr_vma == sizeof(pl->vma) / sizeof(pl->vma[0]))
			die("mm-%d.img: more lazy VMAs than this helper holds", pid);
		if (vma_is_lazy_capable(v) && has_lazy(&pl->pi, v->start, v->end))
			*w = (struct view){ .start = v->start, .end = v->end, .pi = &pl->pi,
					    .pages = pl->pages };
		else if (!add_shared(dirfd, v, w))
			continue;
		for (size_t k = 0; k < pl->nr_vma; k++)
			if (w->shared && pl->vma[k].shared && pl->vma[k].shmid == w->shmid)
				die("shared memory %llu mapped twice: not this helper's",
				    (unsigned long long)w->shmid);
		pl->nr_vma++;
	}
	mm_entry__free_unpacked(mm, NULL);
}

static void list_plan(const struct plan *pl)
{
	for (size_t i = 0; i < pl->nr_vma; i++) {
		const struct view *v = &pl->vma[i];
		/* shared: the object's present pages, at offset = address - start */
		uint64_t base = v->shared ? v->start : 0;

		printf("%s 0x%llx 0x%llx\n", v->shared ? "shm" : "vma",
		       (unsigned long long)v->start, (unsigned long long)v->end);
		for (size_t r = 0; r < v->pi->nr_runs; r++) {
			const struct page_run *run = &v->pi->runs[r];
			uint64_t lo = base + run->vaddr, hi = lo + run->nr_pages * PG;

			if (!(run->flags & (v->shared ? PE_PRESENT : PE_LAZY)) || hi <= v->start ||
			    lo >= v->end)
				continue;
			lo = lo > v->start ? lo : v->start;
			hi = hi < v->end ? hi : v->end;
			printf("lazy 0x%llx %llu\n", (unsigned long long)lo,
			       (unsigned long long)((hi - lo) / PG));
		}
	}
}

/* The image's data of the page at @a of view @v, or NULL where it has none. */
static const uint8_t *image_page(const struct view *v, uint64_t a)
{
	uint64_t key = v->shared ? a - v->start : a;
	const struct page_run *run = pagemap_index_find(v->pi, key);

	if (!run || !(run->flags & PE_PRESENT))
		return NULL;
	return (const uint8_t *)v->pages + run->pages_off + (key - run->vaddr);
}

/* Map the VMAs where they were, and fill what the restore fills eagerly. */
static void build_memory(const struct plan *pl)
{
	for (size_t i = 0; i < pl->nr_vma; i++) {
		const struct view *v = &pl->vma[i];
		void *p = mmap((void *)(uintptr_t)v->start, v->end - v->start,
			       PROT_READ | PROT_WRITE, (v->shared ? MAP_SHARED : MAP_PRIVATE) |
			       MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

		if (p == MAP_FAILED)
			die("cannot map 0x%llx-0x%llx where it was dumped: %s (this helper's own "
			    "layout is there)", (unsigned long long)v->start,
			    (unsigned long long)v->end, strerror(errno));
		for (uint64_t a = v->start; a < v->end && !v->shared; a += PG) {
			const struct page_run *run = pagemap_index_find(v->pi, a);

			if (run && (run->flags & PE_PRESENT) && !(run->flags & PE_LAZY))
				memcpy((void *)(uintptr_t)a, image_page(v, a), PG);
		}
	}
}

static bool in_vmas(const struct plan *pl, uint64_t start, uint64_t end)
{
	for (size_t i = 0; i < pl->nr_vma; i++)
		if (start >= pl->vma[i].start && end <= pl->vma[i].end)
			return true;
	return false;
}

/* What the test asks to be there before the handover. */
static void make_present(const struct plan *pl)
{
	for (size_t i = 0; i < pl->nr_write; i++)
		memset((void *)(uintptr_t)pl->write[i].start, MARK,
		       pl->write[i].end - pl->write[i].start);
	if (pl->thp) {
		if (prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0))
			die("PR_SET_THP_DISABLE 0: %s", strerror(errno));
		if (madvise((void *)(uintptr_t)pl->thp, HUGE, MADV_HUGEPAGE))
			die("madvise(MADV_HUGEPAGE) at 0x%llx: %s", (unsigned long long)pl->thp,
			    strerror(errno));
		*(volatile uint8_t *)(uintptr_t)pl->thp = MARK;
	}
}

static int make_uffd(const struct plan *pl)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0 || ioctl(fd, UFFDIO_API, &api))
		die("userfaultfd: %s", strerror(errno));
	close(fd);	/* the first asked for nothing: the features this kernel has */
	api = (struct uffdio_api){ .api = UFFD_API, .features = api.features & UFFD_EVENTS };
	fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 || ioctl(fd, UFFDIO_API, &api))
		die("userfaultfd with events: %s", strerror(errno));
	for (size_t i = 0; i < pl->nr_vma; i++) {
		struct uffdio_register reg = {
			.range = { pl->vma[i].start, pl->vma[i].end - pl->vma[i].start },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};

		if (ioctl(fd, UFFDIO_REGISTER, &reg))
			die("UFFDIO_REGISTER 0x%llx-0x%llx: %s", (unsigned long long)pl->vma[i].start,
			    (unsigned long long)pl->vma[i].end, strerror(errno));
	}
	return fd;
}

/* FNV-1a of a page, never 0 (0 means "not there" in the held list). */
static uint64_t page_hash(const uint8_t *page)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (uint64_t b = 0; b < PG; b++)
		h = (h ^ page[b]) * 0x100000001b3ULL;
	return h | 1;
}

/* Pages of the VMAs there now (present or swapped), from our own pagemap:
 * their hashes in @held (0 for a page not there). */
static uint64_t *note_present(const struct plan *pl)
{
	uint64_t total = 0, *held, k = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die("/proc/self/pagemap: %s", strerror(errno));
	for (size_t i = 0; i < pl->nr_vma; i++)
		total += (pl->vma[i].end - pl->vma[i].start) / PG;
	held = calloc(total, sizeof(*held));
	if (!held)
		die("out of memory");
	for (size_t i = 0; i < pl->nr_vma; i++) {
		for (uint64_t a = pl->vma[i].start; a < pl->vma[i].end; a += PG, k++) {
			uint64_t e;

			if (pread(fd, &e, sizeof(e), a / PG * sizeof(e)) != sizeof(e))
				die("/proc/self/pagemap at 0x%llx: %s", (unsigned long long)a,
				    strerror(errno));
			if (!(e & (3ULL << 62)))
				continue;
			held[k] = page_hash((const uint8_t *)(uintptr_t)a);
			printf("present 0x%llx\n", (unsigned long long)a);
		}
	}
	close(fd);
	return held;
}

/* Every page, read (faulting in what is missing) and compared. */
static int check_memory(const struct plan *pl, const uint64_t *held)
{
	static const uint8_t zeros[PG];
	uint64_t k = 0, nr = 0, wrong = 0;

	for (size_t i = 0; i < pl->nr_vma; i++) {
		for (uint64_t a = pl->vma[i].start; a < pl->vma[i].end; a += PG, k++, nr++) {
			const uint8_t *got = (const uint8_t *)(uintptr_t)a, *want;

			if (held[k]) {
				if (page_hash(got) == held[k])
					continue;
				printf("wrong 0x%llx: changed after the handover\n",
				       (unsigned long long)a);
				wrong++;
				continue;
			}
			want = image_page(&pl->vma[i], a);
			if (!memcmp(got, want ? want : zeros, PG))
				continue;
			printf("wrong 0x%llx: not the image's %s\n", (unsigned long long)a,
			       want ? "data" : "zeros");
			wrong++;
		}
	}
	printf("checked %llu pages, %llu wrong\n", (unsigned long long)nr,
	       (unsigned long long)wrong);
	return wrong ? 1 : 0;
}

/*
 * --late-write: once the daemon serves faults (it has checked the object
 * at the handover), a page of a shared view is written through a second
 * mapping of the object that no uffd registers: it lands in the page
 * cache with no fault, and the daemon's copy of it meets EEXIST.  Only a
 * first fault on the view's first page comes before (its window must not
 * reach @late).  The page then holds what we wrote: noted in @held.
 */
static void write_late(const struct plan *pl, uint64_t *held)
{
	uint64_t k = 0;
	char path[80];

	for (size_t i = 0; i < pl->nr_vma; i++) {
		const struct view *v = &pl->vma[i];
		uint8_t *other;
		int fd;

		if (pl->late < v->start || pl->late >= v->end) {
			k += (v->end - v->start) / PG;
			continue;
		}
		(void)*(volatile uint8_t *)(uintptr_t)v->start;	/* the daemon is in its loop */
		snprintf(path, sizeof(path), "/proc/self/map_files/%llx-%llx",
			 (unsigned long long)v->start, (unsigned long long)v->end);
		fd = open(path, O_RDWR | O_CLOEXEC);
		other = fd < 0 ? MAP_FAILED : mmap(NULL, v->end - v->start, PROT_READ | PROT_WRITE,
						   MAP_SHARED, fd, 0);
		if (other == MAP_FAILED)
			die("%s: a second mapping of the object: %s", path, strerror(errno));
		memset(other + (pl->late - v->start), MARK, PG);
		held[k + (pl->late - v->start) / PG] = page_hash(other + (pl->late - v->start));
		munmap(other, v->end - v->start);
		close(fd);
		return;
	}
}

/* The task: memory as the restore leaves it, a uffd, a stop, the check. */
static void __attribute__((noreturn)) run_task(const struct plan *pl, int report_fd)
{
	uint64_t *held;
	int uffd;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* as the restore fills (lazy-pages.md, "Pages never left lazy"): no huge
	 * page but the one --thp asks for, whatever the host's THP setting */
	if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0))
		die("PR_SET_THP_DISABLE: %s", strerror(errno));
	build_memory(pl);
	make_present(pl);
	uffd = make_uffd(pl);
	held = note_present(pl);
	if (write(report_fd, &uffd, sizeof(uffd)) != sizeof(uffd))
		die("report the uffd: %s", strerror(errno));
	close(report_fd);
	raise(SIGSTOP);		/* the blob's lazy stop: the restore hands the uffd over */
	close(uffd);		/* the daemon holds the only one now */
	if (pl->late)
		write_late(pl, held);
	exit(check_memory(pl, held));
}

static int connect_daemon(const char *dir)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if ((size_t)snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/%s", dir,
			     LAZY_SOCKET_NAME) >= sizeof(addr.sun_path))
		die("%s: path too long for a unix socket", dir);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)))
		die("%s: %s", addr.sun_path, strerror(errno));
	return fd;
}

/*
 * The restore process's part: take the stopped task's uffd and send it,
 * with credentials naming cred_pid (the task itself, as the restore does).
 */
static int hand_over(int sock, pid_t pid, int report_fd, pid_t cred_pid)
{
	siginfo_t si = { 0 };
	int uffd_no, pidfd, uffd, ret, status;

	if (read(report_fd, &uffd_no, sizeof(uffd_no)) != sizeof(uffd_no) ||
	    waitid(P_PID, pid, &si, WSTOPPED | WEXITED) || si.si_code != CLD_STOPPED) {
		if (waitpid(pid, &status, 0) == pid && WIFEXITED(status))
			exit(WEXITSTATUS(status));	/* it said why */
		die("task %d ended before its handover", pid);
	}
	pidfd = syscall(SYS_pidfd_open, pid, 0);
	uffd = pidfd < 0 ? -1 : syscall(SYS_pidfd_getfd, pidfd, uffd_no, 0);
	if (uffd < 0)
		die("cannot take the userfaultfd of task %d: %s", pid, strerror(errno));
	ret = lazy_sock_send_task(sock, pid, uffd, cred_pid);
	if (ret == 1)
		die("cannot send credentials naming pid %d: not root?", cred_pid);
	if (!ret)
		ret = lazy_sock_send_finished(sock);
	if (ret) {
		kill(pid, SIGKILL);	/* not left stopped */
		waitpid(pid, &status, 0);
		die("cannot hand task %d to the daemon: %s", pid, strerror(-ret));
	}
	close(uffd);
	close(pidfd);
	close(sock);
	kill(pid, SIGCONT);
	if (waitpid(pid, &status, 0) != pid)
		die("wait for task %d: %s", pid, strerror(errno));
	if (WIFSIGNALED(status))
		die("task %d killed by signal %d", pid, WTERMSIG(status));
	return WEXITSTATUS(status);
}

static void parse_write(struct plan *pl, const char *arg)
{
	char *end;
	uint64_t a = strtoull(arg, &end, 0), n = 1;

	if (*end == ':')
		n = strtoull(end + 1, &end, 0);
	if (*end || a % PG || !n || pl->nr_write == MAX_WRITES)
		die("--write %s: want ADDR[:NPAGES], page-aligned, at most %d", arg, MAX_WRITES);
	pl->write[pl->nr_write++] = (struct range){ a, a + n * PG };
}

int main(int argc, char **argv)
{
	static struct plan pl;
	const char *dir = NULL;
	bool list = false;
	pid_t pid = 0, cred_pid = 0, task;
	int dirfd, sock, rep[2];

	setvbuf(stdout, NULL, _IOLBF, 0);
	log_init("lazy_present", LOG_ERROR, NULL);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--list"))
			list = true;
		else if (i + 1 == argc)
			die("%s: missing its value (see the comment at the top of %s)", argv[i],
			    __FILE__);
		else if (!strcmp(argv[i], "-D"))
			dir = argv[++i];
		else if (!strcmp(argv[i], "-p"))
			pid = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--write"))
			parse_write(&pl, argv[++i]);
		else if (!strcmp(argv[i], "--thp"))
			pl.thp = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--late-write"))
			pl.late = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--cred-pid"))
			cred_pid = strcmp(argv[++i], "self") ? atoi(argv[i]) : getpid();
		else
			die("%s: unknown option", argv[i]);
	}
	if (!dir || pid <= 0)
		die("usage: lazy_present -D DIR -p PID [--list | --write ADDR[:N]... --thp ADDR "
		    "--late-write ADDR --cred-pid PID]");
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		die("%s: %s", dir, strerror(errno));
	load_plan(dirfd, pid, &pl);
	if (list) {
		list_plan(&pl);
		return 0;
	}
	for (size_t i = 0; i < pl.nr_write; i++)
		if (!in_vmas(&pl, pl.write[i].start, pl.write[i].end))
			die("--write 0x%llx: not inside one lazy VMA",
			    (unsigned long long)pl.write[i].start);
	if (pl.late) {
		size_t i = 0;

		while (i < pl.nr_vma && (pl.late < pl.vma[i].start || pl.late >= pl.vma[i].end))
			i++;
		if (pl.late % PG || i == pl.nr_vma || !pl.vma[i].shared ||
		    pl.late - pl.vma[i].start < 16 * PG)
			die("--late-write 0x%llx: not a page of shared memory past its first 64 KiB",
			    (unsigned long long)pl.late);
	}
	if (pl.thp && (pl.thp % HUGE || !in_vmas(&pl, pl.thp, pl.thp + HUGE)))
		die("--thp 0x%llx: not a 2 MiB aligned range inside one lazy VMA",
		    (unsigned long long)pl.thp);

	sock = connect_daemon(dir);	/* before any task exists, as the restore does */
	if (pipe2(rep, O_CLOEXEC))
		die("pipe: %s", strerror(errno));
	fflush(stdout);
	task = rst_clone_with_pid(pid, 0);
	if (task < 0)
		die("cannot create task %d (clone3 with set_tid): %s", pid, strerror(errno));
	if (!task) {
		close(rep[0]);
		close(sock);
		run_task(&pl, rep[1]);
	}
	close(rep[1]);
	return hand_over(sock, task, rep[0], cred_pid ? cred_pid : task);
}
