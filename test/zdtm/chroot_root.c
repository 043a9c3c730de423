/*
 * A task chrooted into "croot" (mode 0751), a directory of its test
 * directory, its working directory that root too:
 *   fd 20  "croot/inside" ("12345"), opened before the chroot
 *   fd 21  the real root "/" (a directory fd), kept to get out at the end (a root
 *          task may: fchdir to it and chroot("."))
 *   --deleted: "inside" and "croot" are removed after the chroot: the
 *          task's root and cwd are a deleted directory, fd 20 a deleted
 *          file that was in it
 *   --unix: fd 22, a unix socket bound to "/sock" inside the root (which
 *          a dump refuses)
 * The pidfile is written from outside the root (fd 21), the task then
 * goes back in.  After SIGTERM, still inside: "/" and "." are one
 * directory of mode 0751; deleted, it has no link and no entry, else it
 * is "croot" (its inode) and "/inside" is fd 20's file; fd 20 reads
 * "12345".  Then out through fd 21 to write the outfile.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

static int deleted, with_unix;

/* Out of the task's root, into the real one (fd 21). */
static void get_out(void)
{
	if (fchdir(21) || chroot("."))
		fail("out of the root: %m");
}

/* fail() from inside the root: its outfile is a path of the real one */
static void __attribute__((noreturn, format(printf, 1, 2))) bad(const char *fmt, ...)
{
	char why[512];
	va_list args;

	va_start(args, fmt);
	vsnprintf(why, sizeof(why), fmt, args);
	va_end(args);
	get_out();
	fail("%s", why);
}

int main(int argc, char **argv)
{
	static const struct test_opt opts[] = {
		{ "deleted", TEST_OPT_FLAG, &deleted, 0, "remove the root after the chroot" },
		{ "unix", TEST_OPT_FLAG, &with_unix, 0, "a unix socket bound inside the root" },
		{ NULL },
	};
	struct sockaddr_un sun = { .sun_family = AF_UNIX, .sun_path = "/sock" }, got;
	socklen_t len = sizeof(got);
	struct stat croot, st, dot;
	char buf[16];
	int in;

	test_init(argc, argv, opts);
	fd_place(open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC), 21, 0);
	if (mkdir("croot", 0700) || chmod("croot", 0751) || stat("croot", &croot))
		fail("croot: %m");
	fd_place(open("croot/inside", O_RDWR | O_CREAT | O_TRUNC, 0600), 20, 0);
	if (write(20, "12345", 5) != 5)
		fail("writing croot/inside: %m");
	if (chroot("croot"))
		bad("chroot croot: %m");
	if (deleted && (unlink("croot/inside") || rmdir("croot")))
		bad("removing croot: %m");
	if (chdir("/"))
		bad("chdir into the root: %m");
	if (with_unix) {
		fd_place(socket(AF_UNIX, SOCK_DGRAM, 0), 22, 0);
		if (bind(22, (struct sockaddr *)&sun, sizeof(sun)))
			bad("bind /sock: %m");
	}

	/* ready, said from outside: the pidfile's path is ours */
	in = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (in < 0)
		bad("open the root: %m");
	get_out();
	test_daemon();
	if (fchdir(in) || chroot("."))
		bad("back into the root: %m");
	close(in);

	test_waitsig();

	if (stat("/", &st) || stat(".", &dot))
		bad("stat of the root: %m");
	if (st.st_dev != dot.st_dev || st.st_ino != dot.st_ino)
		bad("the cwd (inode %lu) is not the root (inode %lu)", (unsigned long)dot.st_ino,
		     (unsigned long)st.st_ino);
	if (!S_ISDIR(st.st_mode) || (st.st_mode & 07777) != 0751)
		bad("the root has mode %#o, expected a directory of 0751", st.st_mode);
	if (deleted) {
		DIR *d = opendir("/");
		struct dirent *e;

		if (st.st_nlink != 0)
			bad("the root has %lu links: it is not deleted", (unsigned long)st.st_nlink);
		while (d && (e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				bad("the deleted root holds %s", e->d_name);
		if (d)
			closedir(d);
	} else {
		struct stat inside, f;

		if (st.st_dev != croot.st_dev || st.st_ino != croot.st_ino)
			bad("the root is inode %lu, not croot's %lu", (unsigned long)st.st_ino,
			     (unsigned long)croot.st_ino);
		if (stat("/inside", &inside) || fstat(20, &f) || inside.st_ino != f.st_ino)
			bad("/inside is not fd 20's file: %m");
	}
	if (pread(20, buf, sizeof(buf), 0) != 5 || memcmp(buf, "12345", 5))
		bad("fd 20: contents differ");
	if (with_unix && (getsockname(22, (struct sockaddr *)&got, &len) ||
			  strcmp(got.sun_path, "/sock")))
		bad("fd 22 is not bound to /sock any more");
	get_out();
	pass();
}
