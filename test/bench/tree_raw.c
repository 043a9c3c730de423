/*
 * tree_raw: the raw kernel cost of bringing up a tree of the shape that
 * `scripts/bench tree` restores lazily, no criu-lazy involved: a floor for
 * the restore time, measured on the same machine in the same run.
 *
 * Like the restore, this process creates a root; the root maps its share
 * of --size bytes (private anonymous, nothing touched), forks the other
 * --procs - 1 processes, which map theirs; then each process, at once,
 * creates a userfaultfd (UFFDIO_API with the events the restore asks for),
 * registers its memory (MISSING), starts --threads - 1 more threads, and
 * sends the uffd to this process over a socket (SCM_RIGHTS, as the restore
 * hands them to the daemon).  Timed from before the root's clone to the
 * last uffd received; --reps times, the tree killed and reaped between
 * runs (this process is their subreaper).  What the restore does beyond
 * this (reading images, fds, the blob's moves, registers) is its own cost.
 *
 *   tree_raw [--size 1G] [--procs 4] [--threads 4] [--reps 5]
 *
 * One JSON object on stdout: {"procs", "threads", "size", "reps",
 * "ready_us": [...], "median_us", "best_us"}.
 */
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "bench.h"

#define MAX_PROCS 64
#define MAX_THREADS 64
#define MAX_REPS 101
#define FEATURES (UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | \
		  UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP)

struct cfg {
	uint64_t size;
	int procs, threads, reps;
};

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static void send_uffd(int sk, int uffd)
{
	char control[CMSG_SPACE(sizeof(int))];
	pid_t pid = getpid();
	struct iovec iov = { &pid, sizeof(pid) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control, .msg_controllen = sizeof(control),
	};
	struct cmsghdr *cmsg;

	memset(control, 0, sizeof(control));
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &uffd, sizeof(int));
	if (sendmsg(sk, &msg, 0) != sizeof(pid))
		bench_die("send the uffd: %m");
}

/* One process of the tree, its memory mapped: uffd, threads, handover. */
static _Noreturn void proc_main(const struct cfg *c, char *mem, size_t len, int sk)
{
	struct uffdio_api api = { .api = UFFD_API, .features = FEATURES };
	struct uffdio_register reg = {
		.range = { (uintptr_t)mem, len }, .mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	int uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) || ioctl(uffd, UFFDIO_REGISTER, &reg))
		bench_die("userfaultfd: %m");
	for (int i = 1; i < c->threads; i++) {
		pthread_t t;

		if (pthread_create(&t, NULL, sleeper, NULL))
			bench_die("pthread_create: %m");
	}
	send_uffd(sk, uffd);
	for (;;)
		pause();
}

static char *map_share(const struct cfg *c)
{
	size_t len = c->size / c->procs & ~(BENCH_PAGE - 1);
	char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (mem == MAP_FAILED)
		bench_die("mmap %zu bytes: %m", len);
	return mem;
}

static _Noreturn void root_main(const struct cfg *c, int sk)
{
	size_t len = c->size / c->procs & ~(BENCH_PAGE - 1);
	char *mem = map_share(c);

	for (int i = 1; i < c->procs; i++) {
		pid_t pid = fork();

		if (pid < 0)
			bench_die("fork: %m");
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);	/* no strays on failure */
			munmap(mem, len);	/* each its own, as restored */
			proc_main(c, map_share(c), len, sk);
		}
	}
	proc_main(c, mem, len, sk);
}

/* One tree up, its uffds here: the time that took; then it goes. */
static uint64_t one_run(const struct cfg *c)
{
	pid_t pids[MAX_PROCS];
	int sk[2], got = 0;
	uint64_t t0, dt;
	pid_t root;

	struct timeval tmo = { 10, 0 };	/* a process that died never sends */

	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sk) ||
	    setsockopt(sk[0], SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof(tmo)))
		bench_die("socketpair: %m");
	t0 = bench_now_ns();
	root = fork();
	if (root < 0)
		bench_die("fork: %m");
	if (root == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		close(sk[0]);
		root_main(c, sk[1]);
	}
	close(sk[1]);
	while (got < c->procs) {
		char control[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { &pids[got], sizeof(pids[got]) };
		struct msghdr msg = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = control, .msg_controllen = sizeof(control),
		};
		struct cmsghdr *cmsg;
		int fd;

		if (recvmsg(sk[0], &msg, MSG_CMSG_CLOEXEC) != sizeof(pid_t)) {
			kill(root, SIGKILL);	/* its children die with it (PDEATHSIG) */
			bench_die("no uffd from process %d of %d within 10 s: %m", got + 1, c->procs);
		}
		cmsg = CMSG_FIRSTHDR(&msg);
		if (!cmsg || cmsg->cmsg_type != SCM_RIGHTS)
			bench_die("a message without its uffd");
		memcpy(&fd, CMSG_DATA(cmsg), sizeof(fd));
		close(fd);
		got++;
	}
	dt = bench_now_ns() - t0;
	close(sk[0]);
	for (int i = 0; i < got; i++)
		kill(pids[i], SIGKILL);
	/* every one of them is ours: the root directly, the rest as subreaper */
	for (int left = got; left > 0; left--)
		if (waitpid(-1, NULL, __WALL) < 0)
			bench_die("reap the tree: %m");
	return dt;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void usage(int status)
{
	fprintf(status ? stderr : stdout, "%susage: tree_raw [--size 1G] [--procs 4 (1..%d)] "
		"[--threads 4 (1..%d)] [--reps 5 (1..%d)]\n", status ? "tree_raw: bad arguments; " : "",
		MAX_PROCS, MAX_THREADS, MAX_REPS);
	exit(status ? 2 : 0);
}

int main(int argc, char **argv)
{
	struct cfg c = { .size = 1ULL << 30, .procs = 4, .threads = 4, .reps = 5 };
	const struct bench_opt opts[] = {
		{ "size", BENCH_SIZE, &c.size },
		{ "procs", BENCH_INT, &c.procs },
		{ "threads", BENCH_INT, &c.threads },
		{ "reps", BENCH_INT, &c.reps },
	};
	uint64_t us[MAX_REPS], sorted[MAX_REPS];

	bench_parse_opts(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), usage);
	if (c.procs < 1 || c.procs > MAX_PROCS || c.threads < 1 || c.threads > MAX_THREADS ||
	    c.reps < 1 || c.reps > MAX_REPS || c.size / c.procs < BENCH_PAGE)
		usage(1);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
		bench_die("PR_SET_CHILD_SUBREAPER: %m");
	for (int i = 0; i < c.reps; i++)
		us[i] = sorted[i] = one_run(&c) / 1000;
	qsort(sorted, c.reps, sizeof(sorted[0]), cmp_u64);
	printf("{\"procs\": %d, \"threads\": %d, \"size\": %llu, \"reps\": %d, \"ready_us\": [",
	       c.procs, c.threads, (unsigned long long)c.size, c.reps);
	for (int i = 0; i < c.reps; i++)
		printf("%s%llu", i ? ", " : "", (unsigned long long)us[i]);
	printf("], \"median_us\": %llu, \"best_us\": %llu}\n",
	       (unsigned long long)sorted[c.reps / 2], (unsigned long long)sorted[0]);
	return 0;
}
