/*
 * test_page_server_restore DIR [--churn] [--wait-file F [--first N]] [--seed N] [--twice]:
 * a stand-in for `restore --lazy-pages`, so the lazy-pages daemon and the
 * page server can be tested end to end before (and apart from) the real
 * restore.
 *
 * It speaks the restore's side of the lazy-pages socket (spec 3.3): for
 * each process of pstree.img, in order, a child maps the lazy VMAs of
 * mm-PID.img at their addresses, registers them with a new userfaultfd,
 * and sends the pid and the uffd; a process without an mm image is a
 * zombie (-pid).  Then "restore finished".  Each child then reads every
 * page of its lazy VMAs in a shuffled order and checks it: the pattern of
 * test_page_server_layout.h where the pagemap has data, zeros elsewhere.
 *
 * With --churn, task 100 first changes its memory the ways that make the
 * kernel send events while the daemon still delivers (REMOVE: madvise
 * DONTNEED, REMAP: a moving mremap, UNMAP: munmap), then checks: zeros
 * where it discarded, the dumped data at the new place of what it moved.
 *
 * With --wait-file F each child reads 1/64 of its pages (or N), creates
 * F.PID.half, waits for F to exist, then reads the rest expecting SIGBUS
 * for pages that can no longer arrive (the page server was killed in
 * between).  A page with wrong data is always a failure.
 *
 * With --twice the first process's record is sent twice (a bad record the
 * daemon fails on, with the next processes' records queued behind it).
 *
 * Prints one line per task; exits 0 if every task passed.
 */
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "images/image.h"
#include "images/pagemap.h"
#include "images/vma-status.h"
#include "mm.pb-c.h"
#include "pstree.pb-c.h"
#include "test_page_server_layout.h"

#define RESTORE_FINISHED 0x52535446u
#define TIMEOUT_S 60

struct args {
	bool churn, twice;
	const char *dir, *wait_file;
	unsigned int seed;
	long first;		/* pages read before waiting, -1: 1/64 */
};

struct page {
	uint64_t addr;
	uint64_t src;			/* whose dumped data it must hold; 0: zeros */
};

struct task_mem {
	struct page *pages;		/* every page of the lazy VMAs */
	size_t nr_pages;
	struct pagemap_index pi;
};

struct counts {
	size_t data, zero, sigbus, corrupt;
};

static sigjmp_buf bus_jmp;

static void on_sigbus(int sig)
{
	siglongjmp(bus_jmp, 1);
}

static void die(const char *what)
{
	perror(what);
	exit(2);
}

static int read_pids(int dirfd, uint32_t **pids, size_t *nr)
{
	struct cr_img *img;
	PstreeEntry *e;
	int ret = img_open(dirfd, IMG_PSTREE, 0, O_RDONLY, &img);

	if (ret)
		return ret;
	*nr = 0;
	*pids = NULL;
	while ((ret = img_read_entry(img, &pstree_entry__descriptor, (ProtobufCMessage **)&e)) == 1) {
		*pids = realloc(*pids, (*nr + 1) * sizeof(**pids));
		(*pids)[(*nr)++] = e->pid;
		pstree_entry__free_unpacked(e, NULL);
	}
	img_close(img);
	return ret;
}

static bool expect_data(const struct task_mem *m, uint64_t addr)
{
	const struct page_run *r = pagemap_index_find(&m->pi, addr);

	return r && (r->flags & (PE_LAZY | PE_PRESENT)) == (PE_LAZY | PE_PRESENT);
}

/* Map and register the lazy VMAs; returns the uffd. */
static int setup_memory(int dirfd, uint32_t pid, struct task_mem *m)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE |
			    UFFD_FEATURE_EVENT_UNMAP,
	};
	MmEntry *mm;
	int uffd;

	if (img_read_one(dirfd, IMG_MM, pid, &mm_entry__descriptor, (ProtobufCMessage **)&mm))
		exit(2);
	if (pagemap_index_load(dirfd, IMG_PAGEMAP, pid, false, &m->pi))
		exit(2);
	uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		die("userfaultfd");
	if (ioctl(uffd, UFFDIO_API, &api))
		die("UFFDIO_API");

	for (size_t i = 0; i < mm->n_vmas; i++) {
		const VmaEntry *v = mm->vmas[i];
		struct uffdio_register reg = {
			.range = { .start = v->start, .len = v->end - v->start },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};

		if (!vma_is_lazy_capable(v))
			continue;
		if (mmap((void *)v->start, v->end - v->start, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) != (void *)v->start)
			die("mmap a lazy VMA");
		if (ioctl(uffd, UFFDIO_REGISTER, &reg))
			die("UFFDIO_REGISTER");
		for (uint64_t a = v->start; a < v->end; a += PST_PAGE) {
			m->pages = realloc(m->pages, (m->nr_pages + 1) * sizeof(*m->pages));
			m->pages[m->nr_pages++] = (struct page){ a, expect_data(m, a) ? a : 0 };
		}
	}
	mm_entry__free_unpacked(mm, NULL);
	return uffd;
}

static void send_uffd(int sock, int32_t pid, int uffd)
{
	char byte = 0, control[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { &byte, 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control, .msg_controllen = sizeof(control),
	};
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);

	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &uffd, sizeof(int));
	if (send(sock, &pid, sizeof(pid), 0) != sizeof(pid) || sendmsg(sock, &msg, 0) != 1)
		die("send the uffd");
}

/* Read one page and check it against the images. */
static void check_page(uint32_t pid, const struct page *pg, struct counts *c)
{
	volatile const uint64_t *w = (const uint64_t *)pg->addr;
	uint64_t addr = pg->addr;
	bool data = pg->src != 0;

	if (sigsetjmp(bus_jmp, 1)) {
		c->sigbus++;
		return;
	}
	for (size_t i = 0; i < PST_PAGE / 8; i++) {
		uint64_t want = data ? pst_word(pid, pg->src + i * 8) : 0;

		if (w[i] != want) {
			if (c->corrupt++ < 5)
				fprintf(stderr, "task %u: page 0x%llx word %zu is 0x%llx, not 0x%llx (src 0x%llx)\n",
					pid, (unsigned long long)addr, i, (unsigned long long)w[i],
					(unsigned long long)want, (unsigned long long)pg->src);
			return;
		}
	}
	if (data)
		c->data++;
	else
		c->zero++;
}

static void shuffle(struct page *v, size_t n, unsigned int seed)
{
	srand(seed);
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)rand() % i;
		struct page tmp = v[i - 1];

		v[i - 1] = v[j];
		v[j] = tmp;
	}
}

static void wait_for_file(const char *path)
{
	for (int i = 0; i < TIMEOUT_S * 10; i++) {
		if (!access(path, F_OK))
			return;
		usleep(100000);
	}
	fprintf(stderr, "no %s within %d s\n", path, TIMEOUT_S);
	exit(2);
}

/* [start, start + nr pages) of the big VMA */
#define BIG(p)		(PST_BIG_VMA + (p) * PST_PAGE)
#define CHURN_DISCARD	BIG(100), 50	/* madvise(DONTNEED): zeros from now on */
#define CHURN_MOVE	BIG(1000), 100	/* mremap'ed to CHURN_MOVED */
#define CHURN_MOVED	(PST_BASE + 0x20000000)
#define CHURN_UNMAP	BIG(2000), 10	/* munmap'ed */

static bool in_range(uint64_t addr, uint64_t start, uint64_t nr)
{
	return addr >= start && addr < start + nr * PST_PAGE;
}

/* Discard, move and unmap parts of the big VMA; fix what to expect. */
static void churn(struct task_mem *m)
{
	size_t kept = 0, moved = 0;
	uint64_t start, nr;

	for (size_t i = 0; i < m->nr_pages; i++) {
		struct page *pg = &m->pages[i];

		if (in_range(pg->addr, CHURN_DISCARD))
			pg->src = 0;
		if (in_range(pg->addr, CHURN_UNMAP))
			continue;
		if (in_range(pg->addr, CHURN_MOVE)) {
			/* taken out here, appended at its new place below */
			moved++;
			continue;
		}
		m->pages[kept++] = *pg;
	}
	m->nr_pages = kept;
	m->pages = realloc(m->pages, (kept + moved) * sizeof(*m->pages));
	start = BIG(1000);
	for (size_t i = 0; i < moved; i++)
		m->pages[m->nr_pages++] = (struct page){ CHURN_MOVED + i * PST_PAGE,
							  start + i * PST_PAGE };

	start = BIG(100);
	nr = 50;
	if (madvise((void *)start, nr * PST_PAGE, MADV_DONTNEED))
		die("madvise");
	start = BIG(1000);
	nr = 100;
	if (mremap((void *)start, nr * PST_PAGE, nr * PST_PAGE, MREMAP_MAYMOVE | MREMAP_FIXED,
		   (void *)CHURN_MOVED) != (void *)CHURN_MOVED)
		die("mremap");
	start = BIG(2000);
	nr = 10;
	if (munmap((void *)start, nr * PST_PAGE))
		die("munmap");
}

static int run_task(const struct args *a, uint32_t pid, struct task_mem *m)
{
	struct sigaction sa = { .sa_handler = on_sigbus, .sa_flags = SA_NODEFER };
	struct counts c = { 0 };
	size_t half;

	sigaction(SIGBUS, &sa, NULL);
	if (a->churn && pid == 100)
		churn(m);
	half = m->nr_pages;
	if (a->wait_file)
		half = a->first < 0 ? m->nr_pages / 64 + 1 : (size_t)a->first;
	if (half > m->nr_pages)
		half = m->nr_pages;
	shuffle(m->pages, m->nr_pages, a->seed + pid);
	for (size_t i = 0; i < half; i++)
		check_page(pid, &m->pages[i], &c);
	if (a->wait_file) {
		char marker[4096];
		int fd;

		snprintf(marker, sizeof(marker), "%s.%u.half", a->wait_file, pid);
		fd = open(marker, O_WRONLY | O_CREAT, 0600);
		if (fd < 0)
			die(marker);
		close(fd);
		wait_for_file(a->wait_file);
		for (size_t i = half; i < m->nr_pages; i++)
			check_page(pid, &m->pages[i], &c);
	}
	printf("task %u: %zu pages with data, %zu zero, %zu SIGBUS, %zu wrong\n", pid, c.data,
	       c.zero, c.sigbus, c.corrupt);
	fflush(stdout);
	if (c.corrupt || (c.sigbus && !a->wait_file) || (half && !a->wait_file && !c.data))
		return 1;
	return 0;
}

static int connect_daemon(const char *dir)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/lazy-pages.socket", dir);
	for (int i = 0; i < TIMEOUT_S * 10; i++) {
		if (!connect(sock, (struct sockaddr *)&addr, sizeof(addr)))
			return sock;
		usleep(100000);
	}
	die(addr.sun_path);
	return -1;
}

static void parse_args(int argc, char **argv, struct args *a)
{
	a->seed = 1;
	a->first = -1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--wait-file") && i + 1 < argc)
			a->wait_file = argv[++i];
		else if (!strcmp(argv[i], "--churn"))
			a->churn = true;
		else if (!strcmp(argv[i], "--twice"))
			a->twice = true;
		else if (!strcmp(argv[i], "--first") && i + 1 < argc)
			a->first = strtol(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			a->seed = strtoul(argv[++i], NULL, 0);
		else if (!a->dir)
			a->dir = argv[i];
		else
			a->dir = NULL;
	}
	if (!a->dir) {
		fprintf(stderr, "usage: %s DIR [--churn] [--wait-file F [--first N]] [--seed N] "
			"[--twice]\n",
			argv[0]);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	struct args a = { 0 };
	pid_t children[16];
	int go[2], nr_children = 0, failed = 0, dirfd, sock;
	uint32_t *pids;
	size_t nr_pids;
	uint32_t word = RESTORE_FINISHED;

	parse_args(argc, argv, &a);
	log_init("test_page_server_restore", LOG_WARN, NULL);
	alarm(2 * TIMEOUT_S + 10);	/* never outlive the test */
	dirfd = open(a.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0 || read_pids(dirfd, &pids, &nr_pids) || nr_pids > 16)
		die(a.dir);
	sock = connect_daemon(a.dir);
	if (pipe(go))
		die("pipe");

	for (size_t i = 0; i < nr_pids; i++) {
		char name[IMG_NAME_MAX], byte;
		int ready[2];
		pid_t child;

		img_format_name(IMG_MM, pids[i], name, sizeof(name));
		if (faccessat(dirfd, name, F_OK, 0)) {
			int32_t zombie = -(int32_t)pids[i];

			if (send(sock, &zombie, sizeof(zombie), 0) != sizeof(zombie))
				die("send a zombie");
			continue;
		}
		if (pipe(ready))
			die("pipe");
		child = fork();
		if (child < 0)
			die("fork");
		if (child == 0) {
			struct task_mem m = { 0 };
			int uffd;

			close(go[1]);
			close(ready[0]);
			uffd = setup_memory(dirfd, pids[i], &m);
			send_uffd(sock, pids[i], uffd);
			if (a.twice && !i)
				send_uffd(sock, pids[i], uffd);
			close(uffd);
			close(sock);
			/* go: EOF once the parent has sent "restore finished" */
			if (write(ready[1], "", 1) != 1 || read(go[0], &byte, 1) != 0)
				die("wait for the restore to finish");
			exit(run_task(&a, pids[i], &m));
		}
		children[nr_children++] = child;
		close(ready[1]);
		if (read(ready[0], &byte, 1) != 1) {
			fprintf(stderr, "task %u did not get set up\n", pids[i]);
			failed = 1;
		}
		close(ready[0]);
	}
	if (send(sock, &word, sizeof(word), 0) != sizeof(word))
		die("send restore finished");
	close(sock);
	/* closing the write end lets every child go */
	close(go[1]);
	for (int i = 0; i < nr_children; i++) {
		int status;

		if (waitpid(children[i], &status, 0) < 0 || !WIFEXITED(status) ||
		    WEXITSTATUS(status))
			failed = 1;
	}
	free(pids);	/* LeakSanitizer in build-asan */
	return failed;
}
