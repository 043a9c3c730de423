#include <errno.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define LOG_PREFIX "uffd: "
#include "common/kernel-abi.h"
#include "common/log.h"
#include "lazy/uffd.h"

#define PAGE 4096ULL

static int classify(int err, const char *what, int uffd, uint64_t addr)
{
	switch (err) {
	case EAGAIN:
		return UFFD_RETRY;
	case ENOENT:
		return UFFD_GONE_RANGE;
	case ESRCH:
	case ENOSPC:
		return UFFD_GONE_TASK;
	default:
		errno = err;
		pr_perror("%s at 0x%llx (uffd %d)", what, (unsigned long long)addr, uffd);
		return -err;
	}
}

int uffd_copy(int uffd, uint64_t dst, const void *src, uint64_t len, uint64_t *copied)
{
	uint64_t done = 0;

	*copied = 0;
	while (done < len) {
		struct uffdio_copy c = {
			.dst = dst + done,
			.src = (uint64_t)(uintptr_t)src + done,
			.len = len - done,
			.mode = 0,
		};

		if (!ioctl(uffd, UFFDIO_COPY, &c)) {
			*copied = len;
			return UFFD_DONE;
		}
		/* the kernel reports partial progress in c.copy */
		if (c.copy > 0) {
			done += c.copy;
			*copied = done;
			continue;
		}
		if (errno == EEXIST) {
			/* that page is there already: step over it */
			done += PAGE;
			*copied = done;
			continue;
		}
		return classify(errno, "UFFDIO_COPY", uffd, dst + done);
	}
	return UFFD_DONE;
}

int uffd_wake(int uffd, uint64_t start, uint64_t len)
{
	struct uffdio_range r = { .start = start, .len = len };

	if (ioctl(uffd, UFFDIO_WAKE, &r))
		return classify(errno, "UFFDIO_WAKE", uffd, start);
	return UFFD_DONE;
}

int uffd_zeropage(int uffd, uint64_t dst, uint64_t len)
{
	struct uffdio_zeropage z = { .range = { .start = dst, .len = len }, .mode = 0 };

	if (!ioctl(uffd, UFFDIO_ZEROPAGE, &z))
		return UFFD_DONE;
	if (errno == EEXIST)	/* the page arrived meanwhile: just wake */
		return uffd_wake(uffd, dst, len);
	return classify(errno, "UFFDIO_ZEROPAGE", uffd, dst);
}

int uffd_unregister(int uffd, uint64_t start, uint64_t len)
{
	struct uffdio_range r = { .start = start, .len = len };

	if (ioctl(uffd, UFFDIO_UNREGISTER, &r)) {
		if (errno == ENOMEM)	/* the mm is gone */
			return UFFD_GONE_TASK;
		return classify(errno, "UFFDIO_UNREGISTER", uffd, start);
	}
	return UFFD_DONE;
}

int uffd_poison(int uffd, uint64_t start, uint64_t len)
{
	struct uffdio_poison p = { .range = { .start = start, .len = len }, .mode = 0 };

	if (ioctl(uffd, UFFDIO_POISON, &p)) {
		if (errno == EEXIST)
			return UFFD_DONE;
		return classify(errno, "UFFDIO_POISON", uffd, start);
	}
	return UFFD_DONE;
}

/*
 * A mfill ioctl checks that the mm is alive before it looks for the VMA:
 * on an address in no registered VMA it fails with ENOENT for a live task
 * and ESRCH for a dead one, and changes nothing either way.
 */
bool uffd_task_alive(int uffd, uint64_t addr)
{
	struct uffdio_zeropage z = { .range = { .start = addr, .len = PAGE }, .mode = 0 };

	if (!ioctl(uffd, UFFDIO_ZEROPAGE, &z))
		return true;
	return errno != ESRCH && errno != ENOSPC;
}

int uffd_read_msgs(int uffd, struct uffd_msg *msgs, int max)
{
	ssize_t n = read(uffd, msgs, max * sizeof(*msgs));

	if (n < 0) {
		if (errno == EAGAIN)
			return 0;
		pr_perror("read events from uffd %d", uffd);
		return -errno;
	}
	if (n % sizeof(*msgs)) {
		pr_err("short read of %zd bytes from uffd %d", n, uffd);
		return -EIO;
	}
	return n / sizeof(*msgs);
}
