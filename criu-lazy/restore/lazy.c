/*
 * The restore's side of the lazy-pages socket (spec 3.1-3.3).  The main
 * restore process connects once, before any task exists, so a missing
 * daemon fails the restore before it has done anything.  The tasks inherit
 * the connection and send their pid and userfaultfd themselves, from the
 * restorer blob; when every task is restored and caught, this process
 * sends the "restore finished" word and closes its copy.
 */
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "restore/restore.h"

#define LAZY_SOCKET_NAME	"lazy-pages.socket"
#define RESTORE_FINISHED	0x52535446u
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

int rst_lazy_connect(const struct opts *o, struct rst_task *t)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int ret, fd;

	ret = probe_features(&t->lazy_features);
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
	t->lazy_sock = fd;
	return 0;
}

int rst_lazy_finished(struct rst_task *t)
{
	uint32_t word = RESTORE_FINISHED;
	ssize_t n = send(t->lazy_sock, &word, sizeof(word), MSG_NOSIGNAL);

	if (n != sizeof(word)) {
		pr_perror("the lazy-pages daemon went away before the restore finished");
		return -EPIPE;
	}
	rst_lazy_close(t);
	return 0;
}

void rst_lazy_close(struct rst_task *t)
{
	if (t->lazy_sock >= 0)
		close(t->lazy_sock);
	t->lazy_sock = -1;
}
