/*
 * fanotify groups: fd 30 (FAN_CLASS_NOTIF, FAN_NONBLOCK) marks fan.file
 * (FAN_MODIFY | FAN_CLOSE_WRITE), fan.quiet (FAN_MODIFY, with the same in
 * its ignored mask, FAN_MARK_IGNORED_SURV_MODIFY) and the mount of the
 * test's directory (only an ignored mask, FAN_OPEN, surviving
 * modifications); fd 31
 * (FAN_REPORT_DFID_NAME, FD_CLOEXEC) marks the directory fan.dir for
 * FAN_CREATE and ignores FAN_MODIFY of fan.dir/keep with FAN_MARK_IGNORE.
 * After SIGTERM: the same marks (fdinfo lines), no event queued, and the
 * marks report (or ignore) what happens to their files.
 *
 * --sb: fd 32 holds a filesystem mark (a dump must refuse it).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define FFD 30
#define FFD2 31
#define FFD3 32

static char marks_before[2][4096];

static void mark(int fd, unsigned int flags, uint64_t mask, const char *path)
{
	if (fanotify_mark(fd, FAN_MARK_ADD | flags, mask, AT_FDCWD, path))
		fail("fanotify_mark(%d, %#x, %#llx, %s): %m", fd, flags, (unsigned long long)mask,
		     path);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The mark lines of fd's fdinfo, sorted (the kernel lists newest first). */
static void marks(int fd, char *out, size_t size)
{
	char path[64], buf[8192], *lines[64];
	size_t used = 0, n = 0;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	read_file(path, buf, sizeof(buf));
	for (char *l = strtok(buf, "\n"); l && n < 64; l = strtok(NULL, "\n"))
		if (!strncmp(l, "fanotify ", 9))
			lines[n++] = l;
	qsort(lines, n, sizeof(lines[0]), cmp_str);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++)
		used += snprintf(out + used, size - used, "%s\n", lines[i]);
}

static int queued(int fd)
{
	int n = -1;

	if (ioctl(fd, FIONREAD, &n))
		fail("FIONREAD on %d: %m", fd);
	return n;
}

/* Every event of fd 30 now: all on fan.file, together @want. */
static void expect_file_events(uint64_t want)
{
	char buf[4096] __attribute__((aligned(8))), link[PATH_MAX], path[64];
	uint64_t got = 0;
	ssize_t n;

	while ((n = read(FFD, buf, sizeof(buf))) > 0) {
		struct fanotify_event_metadata *ev = (void *)buf;

		for (; FAN_EVENT_OK(ev, n); ev = FAN_EVENT_NEXT(ev, n)) {
			ssize_t l;

			snprintf(path, sizeof(path), "/proc/self/fd/%d", ev->fd);
			l = ev->fd >= 0 ? readlink(path, link, sizeof(link) - 1) : -1;
			if (ev->fd >= 0)
				close(ev->fd);
			link[l < 0 ? 0 : l] = '\0';
			if (ev->pid != getpid() || l < 9 || strcmp(link + l - 9, "/fan.file"))
				fail("fd 30: event mask %#llx from pid %d on '%s', expected fan.file",
				     (unsigned long long)ev->mask, ev->pid, link);
			got |= ev->mask;
		}
	}
	if (errno != EAGAIN)
		fail("fd 30: read: %m");
	if (got != want)
		fail("fd 30: events %#llx on fan.file, expected %#llx", (unsigned long long)got,
		     (unsigned long long)want);
}

static void expect_create(const char *name)
{
	char buf[4096] __attribute__((aligned(8)));
	struct pollfd pfd = { .fd = FFD2, .events = POLLIN };
	struct fanotify_event_metadata *ev = (void *)buf;
	struct fanotify_event_info_fid *fid;
	struct file_handle *fh;
	ssize_t n;

	if (poll(&pfd, 1, 5000) != 1)
		fail("fd 31: no event for %s within 5 s", name);
	n = read(FFD2, buf, sizeof(buf));
	if (n < (ssize_t)sizeof(*ev) || ev->mask != FAN_CREATE)
		fail("fd 31: read %zd bytes, mask %#llx, expected FAN_CREATE (%m)", n,
		     n > 0 ? (unsigned long long)ev->mask : 0ULL);
	fid = (void *)(ev + 1);
	fh = (void *)fid->handle;
	if (fid->hdr.info_type != FAN_EVENT_INFO_TYPE_DFID_NAME ||
	    strcmp((char *)fh->f_handle + fh->handle_bytes, name))
		fail("fd 31: FAN_CREATE info type %d name '%s', expected '%s'", fid->hdr.info_type,
		     (char *)fh->f_handle + fh->handle_bytes, name);
	if (queued(FFD2))
		fail("fd 31: more than one event");
}

int main(int argc, char **argv)
{
	int sb = 0, fl, fdfl;
	const struct test_opt opts[] = {
		{ "sb", TEST_OPT_FLAG, &sb, 0, "fd 32 holds a filesystem mark" },
		{ NULL, 0, NULL, 0, NULL },
	};

	test_init(argc, argv, opts);
	if (mkdir("fan.dir", 0755))
		fail("mkdir: %m");
	write_file("fan.file", "x", 1);
	write_file("fan.quiet", "x", 1);
	write_file("fan.dir/keep", "x", 1);

	fd_place(fanotify_init(FAN_CLASS_NOTIF | FAN_NONBLOCK, O_RDONLY | O_LARGEFILE), FFD, 0);
	mark(FFD, 0, FAN_MODIFY | FAN_CLOSE_WRITE, "fan.file");
	mark(FFD, 0, FAN_MODIFY, "fan.quiet");
	mark(FFD, FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY, FAN_MODIFY, "fan.quiet");
	/* any write on the mount would clear an ignored mask without SURV_MODIFY */
	mark(FFD, FAN_MARK_MOUNT | FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY, FAN_OPEN,
	     ".");
	fd_place(fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME, O_RDONLY), FFD2, 1);
	mark(FFD2, FAN_MARK_ONLYDIR, FAN_CREATE, "fan.dir");
	mark(FFD2, FAN_MARK_IGNORE, FAN_MODIFY, "fan.dir/keep");
	if (sb) {
		fd_place(fanotify_init(FAN_CLASS_NOTIF | FAN_NONBLOCK, O_RDONLY), FFD3, 0);
		mark(FFD3, FAN_MARK_FILESYSTEM, FAN_OPEN_EXEC, ".");
	}
	marks(FFD, marks_before[0], sizeof(marks_before[0]));
	marks(FFD2, marks_before[1], sizeof(marks_before[1]));
	fl = fcntl(FFD, F_GETFL);
	fdfl = fcntl(FFD2, F_GETFD);

	test_daemon();
	test_waitsig();

	for (int i = 0; i < 2; i++) {
		char now[4096];

		marks(FFD + i, now, sizeof(now));
		if (strcmp(now, marks_before[i]))
			fail("fd %d marks:\n%sexpected:\n%s", FFD + i, now, marks_before[i]);
	}
	if (fcntl(FFD, F_GETFL) != fl || fcntl(FFD2, F_GETFD) != fdfl)
		fail("flags %#o / fd flags %#x, expected %#o / %#x", fcntl(FFD, F_GETFL),
		     fcntl(FFD2, F_GETFD), fl, fdfl);
	if (queued(FFD) || queued(FFD2))
		fail("events queued after the restore: %d and %d bytes", queued(FFD), queued(FFD2));

	write_file("fan.quiet", "yy", 2);
	write_file("fan.dir/keep", "yy", 2);
	write_file("fan.file", "yy", 2);
	expect_file_events(FAN_MODIFY | FAN_CLOSE_WRITE);
	write_file("fan.dir/new", "x", 1);
	expect_create("new");
	pass();
}
