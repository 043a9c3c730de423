/*
 * pidns_launch REALPIDFILE PROG [ARGS...]
 *
 * Not a test: the launcher of the lazy-migrate mode.  It starts PROG as
 * the init (pid 1) of a new pid namespace, in a session of its own, writes
 * PROG's pid in our namespace to REALPIDFILE (a temporary file renamed into
 * place) and exits at once.  PROG is reparented to our nearest child
 * subreaper (the test), which waits for it as for a child.  PROG writes its
 * own pidfile, with the pid it sees: 1.
 *
 * This is how a migration is tested on one machine: the dumped task keeps
 * its pid until every page has moved, while its copy, the init of another
 * new pid namespace, is pid 1 there too.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int write_pid(const char *path, pid_t pid)
{
	char tmp[4096], buf[32];
	int fd, len;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	len = snprintf(buf, sizeof(buf), "%d\n", pid);
	if (write(fd, buf, len) != len) {
		close(fd);
		return -1;
	}
	if (close(fd) || rename(tmp, path))
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	pid_t pid;

	if (argc < 3) {
		fprintf(stderr, "usage: %s REALPIDFILE PROG [ARGS...]\n", argv[0]);
		return 2;
	}
	/* our next child is the first process, pid 1, of a new namespace */
	if (unshare(CLONE_NEWPID)) {
		fprintf(stderr, "pidns_launch: unshare(CLONE_NEWPID): %s\n", strerror(errno));
		return 1;
	}
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "pidns_launch: fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		if (setsid() < 0) {
			fprintf(stderr, "pidns_launch: setsid: %s\n", strerror(errno));
			_exit(127);
		}
		execv(argv[2], argv + 2);
		fprintf(stderr, "pidns_launch: exec %s: %s\n", argv[2], strerror(errno));
		_exit(127);
	}
	if (write_pid(argv[1], pid)) {
		fprintf(stderr, "pidns_launch: cannot write %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	return 0;
}
