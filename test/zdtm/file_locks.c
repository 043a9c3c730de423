/*
 * File locks (dumped and restored with --file-locks):
 *   fd 20 fl.posix  POSIX write lock on bytes 0-9, read lock from 100 to the end
 *   fd 21 fl.flock  flock shared lock, fd 22 a dup of it (one lock)
 *   fd 23 fl.flockx flock exclusive lock
 *   fd 24 fl.ofd    OFD write lock on bytes 5-14, read lock on 20-29
 * --read-only: every write or exclusive lock is a read or shared one (a
 * lazy migration on one host: the dumped task holds its locks while its
 * copy takes them back).
 * After SIGTERM: the same locks in fdinfo, and other open file
 * descriptions of the files meet them (F_OFD_GETLK, flock LOCK_NB) where
 * they are and only there.
 *
 * --unflagged is for the refusal tests: just fd 20's write lock.
 * --inherit: a child shares fd 21 (and its lock) from the fork: after
 * SIGTERM still the same open file (kcmp), with the one lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kcmp.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define NFD 5
static const int fds[NFD] = { 20, 21, 22, 23, 24 };
static char locks_before[NFD][1024];
static int rd, wtype;

static void lock(int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };

	if (fcntl(fd, cmd, &fl))
		fail("fd %d: lock %d type %d %lld+%lld: %m", fd, cmd, type, (long long)start,
		     (long long)len);
}

/* fd's "lock:" lines without the lock number and the pid (the pid is as
 * /proc's namespace sees it: another one after a lazy migration); the
 * device and inode as "(its file)" when they are fd's file's (another
 * host's copy of the file has other ones). */
static void locks(int fd, char *out, size_t size)
{
	char path[64], buf[4096], own[64];
	size_t used = 0;
	struct stat st;

	if (fstat(fd, &st))
		fail("fd %d: fstat: %m", fd);
	snprintf(own, sizeof(own), "%02x:%02x:%lu", major(st.st_dev), minor(st.st_dev),
		 (unsigned long)st.st_ino);
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	read_file(path, buf, sizeof(buf));
	out[0] = '\0';
	for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n")) {
		char kind[16], type[16], dev[64], end[32];
		long long start;

		if (strncmp(l, "lock:", 5))
			continue;
		if (sscanf(l, "lock:\t%*d: %15s %*s %15s %*d %63s %lld %31s", kind, type, dev,
			   &start, end) != 5)
			fail("fd %d: cannot parse '%s'", fd, l);
		used += snprintf(out + used, size - used, "%s %s %s %lld %s\n", kind, type,
				 strcmp(dev, own) ? dev : "(its file)", start, end);
	}
}

/* What another open file description of @path meets at [start, start+len). */
static void expect_ofd_probe(const char *path, short probe, off_t start, off_t len, short want)
{
	struct flock fl = { .l_type = probe, .l_whence = SEEK_SET, .l_start = start, .l_len = len };
	int fd = open(path, O_RDWR);

	/* never closed: closing any fd of a file drops our POSIX locks on it */
	if (fd < 0 || fcntl(fd, F_OFD_GETLK, &fl))
		fail("%s: F_OFD_GETLK: %m", path);
	if (fl.l_type != want)
		fail("%s: a %s lock on %lld+%lld meets type %d, expected %d", path,
		     probe == F_WRLCK ? "write" : "read", (long long)start, (long long)len,
		     fl.l_type, want);
}

static void expect_flock(const char *path, int op, int want_errno)
{
	int fd = open(path, O_RDONLY), r;

	if (fd < 0)
		fail("open %s: %m", path);
	r = flock(fd, op | LOCK_NB);
	if (want_errno ? !(r == -1 && errno == want_errno) : r != 0)
		fail("%s: flock(%s) from another open file: %s, expected %s", path,
		     op == LOCK_EX ? "LOCK_EX" : "LOCK_SH", r ? strerror(errno) : "granted",
		     want_errno ? strerror(want_errno) : "granted");
	close(fd);
}

int main(int argc, char **argv)
{
	int unflagged = 0, inherit = 0;
	pid_t pid = 0;
	const struct test_opt opts[] = {
		{ "read-only", TEST_OPT_FLAG, &rd, 0, "read and shared locks only" },
		{ "unflagged", TEST_OPT_FLAG, &unflagged, 0, "only fd 20's lock" },
		{ "inherit", TEST_OPT_FLAG, &inherit, 0, "a child shares fd 21 and its lock" },
		{ NULL, 0, NULL, 0, NULL },
	};
	char buf[200] = { 0 };

	test_init(argc, argv, opts);
	wtype = rd ? F_RDLCK : F_WRLCK;
	write_file("fl.posix", buf, sizeof(buf));
	write_file("fl.flock", buf, 10);
	write_file("fl.flockx", buf, 10);
	write_file("fl.ofd", buf, 40);
	fd_place(open("fl.posix", O_RDWR), 20, 0);
	lock(20, F_SETLK, wtype, 0, 10);
	if (!unflagged) {
		lock(20, F_SETLK, F_RDLCK, 100, 0);
		fd_place(open("fl.flock", O_RDONLY), 21, 0);
		if (flock(21, LOCK_SH) || dup2(21, 22) != 22)
			fail("flock fl.flock: %m");
		fd_place(open("fl.flockx", O_RDONLY), 23, 0);
		if (flock(23, rd ? LOCK_SH : LOCK_EX))
			fail("flock fl.flockx: %m");
		fd_place(open("fl.ofd", O_RDWR), 24, 0);
		lock(24, F_OFD_SETLK, wtype, 5, 10);
		lock(24, F_OFD_SETLK, F_RDLCK, 20, 10);
	}
	for (int i = 0; i < NFD; i++)
		if (fcntl(fds[i], F_GETFD) >= 0)
			locks(fds[i], locks_before[i], sizeof(locks_before[i]));
	if (inherit) {
		test_kill_tree_at_exit();
		pid = fork();
		if (pid < 0)
			fail("fork: %m");
		if (pid == 0)
			for (;;)
				pause();
	}

	test_daemon();
	test_waitsig();

	for (int i = 0; i < NFD; i++) {
		char now[1024] = "";

		if (fcntl(fds[i], F_GETFD) >= 0)
			locks(fds[i], now, sizeof(now));
		if (strcmp(now, locks_before[i]))
			fail("fd %d locks:\n%sexpected:\n%s", fds[i], now, locks_before[i]);
	}
	if (inherit && syscall(SYS_kcmp, getpid(), pid, KCMP_FILE, 21, 21))
		fail("fd 21 of the child is not the open file of ours any more");
	expect_ofd_probe("fl.posix", F_RDLCK, 0, 1, rd ? F_UNLCK : F_WRLCK);
	expect_ofd_probe("fl.posix", F_WRLCK, 9, 1, wtype);
	expect_ofd_probe("fl.posix", F_WRLCK, 50, 10, F_UNLCK);
	if (unflagged)
		pass();
	expect_ofd_probe("fl.posix", F_RDLCK, 150, 1, F_UNLCK);
	expect_ofd_probe("fl.posix", F_WRLCK, 1000, 1, F_RDLCK);
	expect_flock("fl.flock", LOCK_SH, 0);
	expect_flock("fl.flock", LOCK_EX, EWOULDBLOCK);
	expect_flock("fl.flockx", LOCK_SH, rd ? 0 : EWOULDBLOCK);
	expect_ofd_probe("fl.ofd", F_RDLCK, 5, 1, rd ? F_UNLCK : F_WRLCK);
	expect_ofd_probe("fl.ofd", F_WRLCK, 14, 1, wtype);
	expect_ofd_probe("fl.ofd", F_WRLCK, 15, 5, F_UNLCK);
	expect_ofd_probe("fl.ofd", F_WRLCK, 29, 1, F_RDLCK);
	pass();
}
