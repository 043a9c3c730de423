/*
 * The audit loginuid: set to 3 (ours is unset, so no privilege is needed);
 * after the restore /proc/self/loginuid must read 3 again.  A kernel
 * without audit has no loginuid: the test then checks nothing but passes
 * only if the file is missing both times.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

/* what the check expects, recorded where the self-check can change it */
static volatile unsigned int want = 3;

static long read_loginuid(void)
{
	char buf[32] = "";
	int fd = open("/proc/self/loginuid", O_RDONLY);

	if (fd < 0) {
		if (errno == ENOENT)
			return -1;
		fail("open /proc/self/loginuid: %m");
	}
	if (read(fd, buf, sizeof(buf) - 1) <= 0)
		fail("read /proc/self/loginuid: %m");
	close(fd);
	return (long)strtoul(buf, NULL, 10);
}

int main(int argc, char **argv)
{
	int fd, have;

	test_init(argc, argv, NULL);
	have = access("/proc/self/loginuid", F_OK) == 0;
	if (have) {
		fd = open("/proc/self/loginuid", O_WRONLY);
		if (fd < 0 || write(fd, "3", 1) != 1)
			fail("write /proc/self/loginuid: %m");
		close(fd);
		if (read_loginuid() != want)
			fail("loginuid is %ld right after setting %u", read_loginuid(), want);
		test_msg("expected loginuid at %p", (void *)&want);
	} else {
		test_msg("no audit loginuid on this kernel");
	}

	test_daemon();
	test_waitsig();

	if (!have) {
		if (read_loginuid() != -1)
			fail("a loginuid appeared after the restore");
		pass();
	}
	if (read_loginuid() != want)
		fail("loginuid is %ld after the restore, expected %u", read_loginuid(), want);
	pass();
}
