/*
 * inotify groups: fd 30 (IN_NONBLOCK) watches a directory (wd 1), a file
 * with IN_ONESHOT (wd 3: wd 2 was added and removed, so the numbers have a
 * gap), and with IN_EXCL_UNLINK a file through a name since removed while
 * another link keeps it (wd 4); fd 31 (blocking, FD_CLOEXEC) watches another
 * directory.  After SIGTERM: the same watches (fdinfo lines), no
 * event queued, and each watch still reports what happens to its inode
 * with its own wd.
 *
 * --deleted: fd 32 also watches a file deleted since, which fd 33 keeps
 * open (a ghost file): after SIGTERM the watch is on fd 33's file and
 * reports its changes.
 * --deleted-outside: fd 32 watches ify.gone, which the program deletes
 * and someone outside keeps open (a dump must refuse the watch).
 * --queued: an event stays queued on fd 30, which a dump drops as CRIU
 * does; the program expects the queue empty, so it passes only after a
 * checkpoint (test_kobj.py).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define IFD 30
#define IFD2 31
#define IFD3 32

static char watches_before[2][4096];

static int add(int fd, const char *path, uint32_t mask, int want)
{
	int wd = inotify_add_watch(fd, path, mask);

	if (wd != want)
		fail("inotify_add_watch(%s): %d, expected %d (%m)", path, wd, want);
	return wd;
}

/* The "inotify wd:" lines of fd's fdinfo, in order. */
static void watches(int fd, char *out, size_t size)
{
	char path[64], buf[8192];
	size_t used = 0;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	read_file(path, buf, sizeof(buf));
	out[0] = '\0';
	for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
		if (!strncmp(l, "inotify wd:", 11))
			used += snprintf(out + used, size - used, "%s\n", l);
}

static int queued(int fd)
{
	int n = -1;

	if (ioctl(fd, FIONREAD, &n))
		fail("FIONREAD on %d: %m", fd);
	return n;
}

static void drain(int fd)
{
	char buf[4096];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	if (errno != EAGAIN)
		fail("draining fd %d: %m", fd);
}

/* The next event of fd: wd, mask and name as expected. */
static void expect_event(int fd, int wd, uint32_t mask, const char *name)
{
	static char buf[4096] __attribute__((aligned(8)));
	static size_t len, off;
	struct inotify_event *ev;

	if (off >= len) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n <= 0)
			fail("fd %d: no event (wd %d mask %#x expected): %m", fd, wd, mask);
		len = n;
		off = 0;
	}
	ev = (struct inotify_event *)(buf + off);
	off += sizeof(*ev) + ev->len;
	if (ev->wd != wd || (ev->mask & ~IN_ISDIR) != mask ||
	    strcmp(ev->len ? ev->name : "", name))
		fail("fd %d: event wd %d mask %#x name '%s', expected wd %d mask %#x name '%s'", fd,
		     ev->wd, ev->mask, ev->len ? ev->name : "", wd, mask, name);
}

int main(int argc, char **argv)
{
	int deleted = 0, queue = 0, outside = 0;
	const struct test_opt opts[] = {
		{ "deleted", TEST_OPT_FLAG, &deleted, 0, "fd 32 watches a deleted file" },
		{ "queued", TEST_OPT_FLAG, &queue, 0, "leave an event queued on fd 30" },
		{ "deleted-outside", TEST_OPT_FLAG, &outside, 0,
		  "fd 32 watches ify.gone, made and held open by the caller, deleted" },
		{ NULL, 0, NULL, 0, NULL },
	};
	int fl, fdfl;

	test_init(argc, argv, opts);
	if (mkdir("ify.dir", 0755))
		fail("mkdir: %m");
	write_file("ify.dir/old", "x", 1);
	write_file("ify.file", "x", 1);
	write_file("ify.link1", "x", 1);
	if (link("ify.link1", "ify.link2"))
		fail("link: %m");

	fd_place(inotify_init1(IN_NONBLOCK), IFD, 0);
	add(IFD, "ify.dir", IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_ONLYDIR, 1);
	inotify_rm_watch(IFD, add(IFD, "ify.file", IN_OPEN, 2));
	add(IFD, "ify.file", IN_MODIFY | IN_ONESHOT, 3);
	add(IFD, "ify.link1", IN_ATTRIB | IN_EXCL_UNLINK, 4);
	if (unlink("ify.link1"))
		fail("unlink: %m");
	drain(IFD);
	fd_place(inotify_init1(0), IFD2, 1);
	if (mkdir("ify.dir2", 0755))
		fail("mkdir: %m");
	write_file("ify.dir2/file", "x", 1);
	add(IFD2, "ify.dir2", IN_DELETE, 1);
	if (deleted) {
		fd_place(inotify_init1(0), IFD3, 0);
		write_file("ify.gone", "x", 1);
		add(IFD3, "ify.gone", IN_MODIFY, 1);
		/* the kernel drops a watch when its inode goes: an fd keeps it */
		fd_place(open("ify.gone", O_RDWR), 33, 0);
		if (unlink("ify.gone"))
			fail("unlink: %m");
	}
	if (outside) {
		fd_place(inotify_init1(0), IFD3, 0);
		add(IFD3, "ify.gone", IN_MODIFY, 1);
		if (unlink("ify.gone"))
			fail("unlink: %m");
	}
	if (queue)
		write_file("ify.dir/queued", "x", 1);
	watches(IFD, watches_before[0], sizeof(watches_before[0]));
	watches(IFD2, watches_before[1], sizeof(watches_before[1]));
	fl = fcntl(IFD, F_GETFL);
	fdfl = fcntl(IFD2, F_GETFD);

	test_daemon();
	test_waitsig();

	for (int i = 0; i < 2; i++) {
		char now[4096];

		watches(IFD + i, now, sizeof(now));
		if (strcmp(now, watches_before[i]))
			fail("fd %d watches:\n%sexpected:\n%s", IFD + i, now, watches_before[i]);
	}
	if (fcntl(IFD, F_GETFL) != fl || fcntl(IFD2, F_GETFD) != fdfl)
		fail("flags %#o / fd flags %#x, expected %#o / %#x", fcntl(IFD, F_GETFL),
		     fcntl(IFD2, F_GETFD), fl, fdfl);
	if (queued(IFD) || queued(IFD2))
		fail("events queued after the restore: %d and %d bytes", queued(IFD), queued(IFD2));

	write_file("ify.dir/new", "x", 1);
	expect_event(IFD, 1, IN_CREATE, "new");
	write_file("ify.file", "yy", 2);
	expect_event(IFD, 3, IN_MODIFY, "");
	expect_event(IFD, 3, IN_IGNORED, "");
	if (chmod("ify.link2", 0600))
		fail("chmod: %m");
	expect_event(IFD, 4, IN_ATTRIB, "");
	if (unlink("ify.dir/new"))
		fail("unlink: %m");
	expect_event(IFD, 1, IN_DELETE, "new");
	if (read(IFD, watches_before[0], 64) != -1 || errno != EAGAIN)
		fail("fd %d: more events than expected (%m)", IFD);
	if (deleted) {
		char line[256];
		struct stat st;
		unsigned long ino = 0;

		watches(IFD3, line, sizeof(line));
		if (sscanf(line, "inotify wd:1 ino:%lx", &ino) != 1 || fstat(33, &st) ||
		    st.st_ino != ino)
			fail("fd 32 does not watch fd 33's file: '%s'", line);
		if (pwrite(33, "z", 1, 0) != 1)
			fail("pwrite: %m");
		expect_event(IFD3, 1, IN_MODIFY, "");
	}
	if (unlink("ify.dir2/file"))
		fail("unlink: %m");
	expect_event(IFD2, 1, IN_DELETE, "file");
	pass();
}
