#include <errno.h>
#include <poll.h>
#include <stdbool.h>
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

/* One ioctl of op over [dst, dst+len): how many bytes it filled, or -errno. */
static int64_t fill_once(int uffd, enum uffd_fill_op op, uint64_t dst, const void *src,
			 uint64_t len)
{
	struct uffdio_range range = { .start = dst, .len = len };
	int64_t progress;

	switch (op) {
	case UFFD_FILL_COPY: {
		struct uffdio_copy c = { .dst = dst, .src = (uint64_t)(uintptr_t)src, .len = len };

		if (!ioctl(uffd, UFFDIO_COPY, &c))
			return len;
		progress = c.copy;
		break;
	}
	case UFFD_FILL_ZERO: {
		struct uffdio_zeropage z = { .range = range };

		if (!ioctl(uffd, UFFDIO_ZEROPAGE, &z))
			return len;
		progress = z.zeropage;
		break;
	}
	default: {
		struct uffdio_poison p = { .range = range };

		if (!ioctl(uffd, UFFDIO_POISON, &p))
			return len;
		progress = p.updated;
		break;
	}
	}
	/* partial progress comes back as EAGAIN with the count filled in */
	return progress > 0 ? progress : -errno;
}

static const char *const fill_names[] = {
	[UFFD_FILL_COPY] = "UFFDIO_COPY",
	[UFFD_FILL_ZERO] = "UFFDIO_ZEROPAGE",
	[UFFD_FILL_POISON] = "UFFDIO_POISON",
};

int uffd_fill(int uffd, enum uffd_fill_op op, uint64_t dst, const void *src, uint64_t len,
	      uint64_t *done)
{
	uint64_t existed, first;

	return uffd_fill_counted(uffd, op, dst, src, len, done, &existed, &first);
}

int uffd_fill_counted(int uffd, enum uffd_fill_op op, uint64_t dst, const void *src,
		      uint64_t len, uint64_t *done, uint64_t *existed, uint64_t *first_existed)
{
	uint64_t cur = 0, try = len;
	bool stepped = false;
	int ret = UFFD_DONE;

	*existed = 0;

	while (cur < len) {
		int64_t n = fill_once(uffd, op, dst + cur,
				      src ? (const char *)src + cur : NULL, try);

		if (n > 0) {
			cur += n;
			try = len - cur;
		} else if (n == -EEXIST) {
			/* the first page is there already: step over it */
			if (!stepped)
				*first_existed = dst + cur;
			++*existed;
			cur += PAGE;
			try = len - cur;
			stepped = true;
		} else if (n == -ENOENT && try > PAGE) {
			/* the part crosses a VMA boundary: try its first half */
			try = try / 2 & ~(PAGE - 1);
		} else {
			ret = classify(-n, fill_names[op], uffd, dst + cur);
			break;
		}
	}
	*done = cur;
	/* the kernel wakes what it filled, not the pages that were there already */
	if (stepped && uffd_wake(uffd, dst, cur) < 0)
		return -EIO;
	return ret;
}

bool uffd_has_msgs(int uffd)
{
	struct pollfd p = { .fd = uffd, .events = POLLIN };

	return poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

int uffd_wake(int uffd, uint64_t start, uint64_t len)
{
	struct uffdio_range r = { .start = start, .len = len };

	if (ioctl(uffd, UFFDIO_WAKE, &r))
		return classify(errno, "UFFDIO_WAKE", uffd, start);
	return UFFD_DONE;
}

int uffd_unregister(int uffd, uint64_t start, uint64_t len)
{
	struct uffdio_range r = { .start = start, .len = len };

	if (ioctl(uffd, UFFDIO_UNREGISTER, &r)) {
		if (errno == ENOMEM)	/* the mm is gone */
			return UFFD_GONE_TASK;
		/*
		 * No VMA left in the range: unmapped since the event (a thread
		 * library gives back a dead thread's stack with MADV_DONTNEED,
		 * then unmaps it), and its UNMAP event follows.
		 */
		if (errno == EINVAL)
			return UFFD_GONE_RANGE;
		return classify(errno, "UFFDIO_UNREGISTER", uffd, start);
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
