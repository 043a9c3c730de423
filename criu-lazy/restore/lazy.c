/*
 * The restore's side of the lazy-pages socket (spec 3.1-3.3).  The main
 * restore process connects once, before any task exists, so a missing
 * daemon fails the restore before it has done anything.
 *
 * Each process creates its own userfaultfd in the restorer blob (a uffd
 * serves the memory of the process that created it), registers its lazy
 * VMAs, sends the uffd to this process on a socket of its own and goes on
 * (pie/uffd.c).  This process sends the pid then the uffd to the daemon,
 * as CRIU's protocol has it (the uffd's message with credentials naming
 * the task: the daemon's way to its pid in the daemon's namespace); zombies
 * send -pid alone.  Sending from here, one process after the
 * other on the one connection, is what keeps the records of a tree from
 * interleaving.  Then the "restore finished" word.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/env-number.h"
#include "common/lazy-socket.h"
#include "common/log.h"
#include "restore/restore.h"
#include "restore/tree.h"

/* what the daemon follows: fork, mremap, madvise(DONTNEED), munmap */
#define LAZY_FEATURES_WANTED	(UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | \
				 UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP)
/* where available: which thread faulted, for the daemon's log */
#define LAZY_FEATURES_USEFUL	UFFD_FEATURE_THREAD_ID

/* The features this kernel has, from a probing UFFDIO_API with none asked. */
static int probe_features(uint64_t *features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	int fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0) {
		pr_perror("--lazy-pages needs userfaultfd");
		return -errno;
	}
	if (ioctl(fd, UFFDIO_API, &api)) {
		pr_perror("--lazy-pages: UFFDIO_API");
		close(fd);
		return -errno;
	}
	close(fd);
	*features = api.features & (LAZY_FEATURES_WANTED | LAZY_FEATURES_USEFUL);
	if ((*features & LAZY_FEATURES_WANTED) != LAZY_FEATURES_WANTED)
		pr_warn("the kernel lacks userfaultfd events 0x%llx: a task that forks, "
			"moves or discards lazy memory may see wrong data",
			(unsigned long long)(LAZY_FEATURES_WANTED & ~api.features));
	return 0;
}

uint64_t rst_lazy_kernel_features(void)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	int fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return 0;
	if (ioctl(fd, UFFDIO_API, &api))
		api.features = 0;
	close(fd);
	return api.features;
}

/* Is process @pid running our own binary (not CRIU's lazy-pages)? */
static bool same_binary(pid_t pid)
{
	struct stat ours, theirs;
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	return pid > 0 && !stat("/proc/self/exe", &ours) && !stat(path, &theirs) &&
	       ours.st_dev == theirs.st_dev && ours.st_ino == theirs.st_ino;
}

/*
 * The daemon gets every task's userfaultfd, so it can write their memory:
 * it must run as root or as us (SO_PEERCRED of its listening socket).
 * Only our own daemon fills shared memory (lazy-pages.md): with another
 * (CRIU's), it is restored eagerly (restore/shmem-lazy.c).
 */
static int check_daemon(struct rst_tree *tree, int fd, const char *path)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len)) {
		pr_perror("%s: no credentials of the lazy-pages daemon", path);
		return -errno;
	}
	if (cred.uid == 0 || cred.uid == geteuid()) {
		tree->lazy_daemon_ours = same_binary(cred.pid);
		return 0;
	}
	pr_err("%s: the lazy-pages daemon there (pid %d) runs as uid %u, neither root nor us: "
	       "it would get the tasks' userfaultfds", path, cred.pid, cred.uid);
	return -EPERM;
}

int rst_lazy_connect(struct rst_tree *tree)
{
	const struct opts *o = tree->o;
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int ret, fd;

	ret = probe_features(&tree->lazy_features);
	if (ret)
		return ret;
	if ((size_t)snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/%s", o->work_dir,
			     LAZY_SOCKET_NAME) >= sizeof(addr.sun_path)) {
		pr_err("%s/%s: path too long for a unix socket", o->work_dir, LAZY_SOCKET_NAME);
		return -ENAMETOOLONG;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		pr_perror("socket");
		return -errno;
	}
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		ret = -errno;
		pr_perror("no lazy-pages daemon at %s (start `criu-lazy lazy-pages -D %s` first)",
			  addr.sun_path, o->images_dir);
		close(fd);
		return ret;
	}
	ret = check_daemon(tree, fd, addr.sun_path);
	if (ret) {
		close(fd);
		return ret;
	}
	tree->lazy_sock = fd;
	return 0;
}

/*
 * Test only: with NO_CREDS_ENV=1 the uffds go without credentials, as from
 * a restore that lacks CAP_SYS_ADMIN, so that a test can see the daemon
 * and its guardian find each process themselves (host-pid.c).
 */
#define NO_CREDS_ENV	"CRIU_LAZY_TEST_NO_CREDENTIALS"

/*
 * host_pid: the process's pid here, which the uffd's message names in its
 * credentials (0: none), so that the daemon learns its pid in the
 * daemon's own namespace from the kernel (lazy-pages.md).
 */
static int send_record(struct rst_tree *tree, int32_t pid, int uffd, pid_t host_pid)
{
	int ret;

	if (env_number(NO_CREDS_ENV, 1))
		host_pid = 0;
	ret = lazy_sock_send_task(tree->lazy_sock, pid, uffd, host_pid);

	if (ret == 1)
		pr_debug("task %d: its userfaultfd went without credentials (we lack "
			 "CAP_SYS_ADMIN): the daemon looks for its pid itself", pid);
	if (ret < 0)
		pr_err("cannot hand the userfaultfd of task %d to the lazy-pages daemon: %s",
		       pid < 0 ? -pid : pid, strerror(-ret));
	return ret < 0 ? -EPIPE : 0;
}

/*
 * The uffd the blob sent (pie/uffd.c), if it is there: -EAGAIN if not
 * (the caller then looks at the blob), -EIO for anything but one message
 * of the task's pid with one descriptor.
 */
static int recv_uffd(struct rst_proc *p)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	int32_t pid = 0;
	struct iovec iov = { &pid, sizeof(pid) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
			      .msg_controllen = sizeof(cm.buf) };
	struct cmsghdr *c;
	ssize_t n = recvmsg(p->t.uffd_rx, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	int fd = -1;

	if (n < 0 && errno == EAGAIN)
		return -EAGAIN;
	if (n == 0)
		return -EAGAIN;	/* the blob closed it unsent: its stop says why */
	if (n < 0) {
		pr_perror("task %d: cannot receive its userfaultfd", p->pid);
		return -errno;
	}
	c = CMSG_FIRSTHDR(&msg);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
	    c->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(&fd, CMSG_DATA(c), sizeof(fd));
	if (n != sizeof(pid) || pid != p->pid || fd < 0 || (msg.msg_flags & MSG_CTRUNC)) {
		pr_err("task %d: its restorer sent %zd bytes (pid %d) and %s instead of its "
		       "userfaultfd", p->pid, n, pid, fd < 0 ? "no descriptor" : "a descriptor");
		if (fd >= 0)
			close(fd);
		return -EIO;
	}
	return fd;
}

/*
 * The uffd the blob of @p sent, to the daemon; -EAGAIN if it has not come
 * (the blob stopped, exited or failed first).
 */
int rst_lazy_handover(struct rst_tree *tree, struct rst_proc *p)
{
	int fd = recv_uffd(p), ret;

	if (fd < 0)
		return fd;
	ret = send_record(tree, p->pid, fd, p->t.pid);
	close(fd);
	close(p->t.uffd_rx);
	p->t.uffd_rx = -1;
	return ret;
}

/* A zombie has no memory: -pid and no uffd (helpers are not in pstree.img). */
int rst_lazy_send_zombies(struct rst_tree *tree)
{
	for (size_t i = 0; i < tree->nr; i++) {
		int ret;

		if (tree->procs[i].kind != RST_PROC_ZOMBIE)
			continue;
		ret = send_record(tree, -tree->procs[i].pid, -1, 0);
		if (ret)
			return ret;
	}
	return 0;
}

int rst_lazy_finished(struct rst_tree *tree)
{
	int ret = lazy_sock_send_finished(tree->lazy_sock);

	if (ret) {
		pr_err("the lazy-pages daemon went away before the restore finished: %s",
		       strerror(-ret));
		return -EPIPE;
	}
	rst_lazy_close(tree);
	return 0;
}

void rst_lazy_close(struct rst_tree *tree)
{
	if (tree->lazy_sock >= 0)
		close(tree->lazy_sock);
	tree->lazy_sock = -1;
}
