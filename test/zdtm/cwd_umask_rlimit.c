/*
 * Per-process fs state and limits: the working directory (a fresh
 * directory whose name has a space), umask 027, and lowered rlimits
 * (RLIMIT_NOFILE soft, RLIMIT_CORE soft and hard, RLIMIT_STACK soft,
 * RLIMIT_CPU soft, RLIMIT_MSGQUEUE).  After SIGTERM: the same cwd (path and
 * inode), root, umask, and all 16 rlimits; and they still act: new files
 * get mode 0640, an fd number at the NOFILE limit is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

static const char *const rlimit_names[RLIM_NLIMITS] = {
	"CPU", "FSIZE", "DATA", "STACK", "CORE", "RSS", "NPROC", "NOFILE",
	"MEMLOCK", "AS", "LOCKS", "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO", "RTTIME",
};

static void lower(int res, rlim_t soft, rlim_t hard)
{
	struct rlimit rl;

	if (getrlimit(res, &rl))
		fail("getrlimit(%s): %m", rlimit_names[res]);
	if (hard && (rl.rlim_max == RLIM_INFINITY || hard < rl.rlim_max))
		rl.rlim_max = hard;
	if (soft > rl.rlim_max)
		soft = rl.rlim_max;
	rl.rlim_cur = soft;
	if (setrlimit(res, &rl))
		fail("setrlimit(%s): %m", rlimit_names[res]);
}

int main(int argc, char **argv)
{
	char dir[] = "cwd.XXXXXX", cwd_before[4096], cwd_after[4096];
	char root[4096], umask_before[32], val[32];
	struct rlimit rl_before[RLIM_NLIMITS], rl;
	struct stat st_before, st;
	mode_t old;
	ssize_t n;
	int i, fd;

	test_init(argc, argv, NULL);

	if (!mkdtemp(dir))
		fail("mkdtemp: %m");
	if (chdir(dir) || mkdir("sub dir", 0755) || chdir("sub dir"))
		fail("cannot make and enter %s/sub dir: %m", dir);
	if (!getcwd(cwd_before, sizeof(cwd_before)) || stat(".", &st_before))
		fail("getcwd: %m");
	umask(027);
	if (proc_status_value("Umask", umask_before, sizeof(umask_before)))
		fail("no Umask in /proc/self/status");

	lower(RLIMIT_NOFILE, 777, 0);
	lower(RLIMIT_CORE, 1 << 20, 64 << 20);
	lower(RLIMIT_STACK, 6 << 20, 0);
	lower(RLIMIT_CPU, 100000, 0);
	lower(RLIMIT_MSGQUEUE, 400000, 700000);
	for (i = 0; i < RLIM_NLIMITS; i++)
		if (getrlimit(i, &rl_before[i]))
			fail("getrlimit(%s): %m", rlimit_names[i]);
	test_msg("cwd '%s'", cwd_before);

	test_daemon();
	test_waitsig();

	if (!getcwd(cwd_after, sizeof(cwd_after)))
		fail("getcwd after: %m");
	if (strcmp(cwd_before, cwd_after))
		fail("cwd is '%s', expected '%s'", cwd_after, cwd_before);
	if (stat(".", &st) || st.st_ino != st_before.st_ino || st.st_dev != st_before.st_dev)
		fail("cwd has the same name but is another directory");
	n = readlink("/proc/self/root", root, sizeof(root) - 1);
	if (n != 1 || root[0] != '/')
		fail("root is not / any more");

	if (proc_status_value("Umask", val, sizeof(val)) || strcmp(val, umask_before))
		fail("Umask is %s, expected %s", val, umask_before);
	old = umask(027);
	if (old != 027)
		fail("umask is %#o, expected 027", old);
	fd = open("new-file", O_CREAT | O_WRONLY | O_EXCL, 0666);
	if (fd < 0 || fstat(fd, &st))
		fail("create a file in the cwd: %m");
	close(fd);
	if ((st.st_mode & 0777) != 0640)
		fail("a new file got mode %#o, expected 0640", st.st_mode & 0777);

	for (i = 0; i < RLIM_NLIMITS; i++) {
		if (getrlimit(i, &rl))
			fail("getrlimit(%s): %m", rlimit_names[i]);
		if (rl.rlim_cur != rl_before[i].rlim_cur || rl.rlim_max != rl_before[i].rlim_max)
			fail("RLIMIT_%s is %llu/%llu, expected %llu/%llu", rlimit_names[i],
			     (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
			     (unsigned long long)rl_before[i].rlim_cur,
			     (unsigned long long)rl_before[i].rlim_max);
	}
	if (dup2(0, (int)rl_before[RLIMIT_NOFILE].rlim_cur) != -1 || errno != EBADF)
		fail("fd %llu was allowed above RLIMIT_NOFILE",
		     (unsigned long long)rl_before[RLIMIT_NOFILE].rlim_cur);
	pass();
}
