/*
 * oom_score_adj: set to 567 (raising needs no privilege); after the
 * restore /proc/self/oom_score_adj must read 567 again.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define WANT 567

static int read_adj(void)
{
	char buf[32] = "";
	int fd = open("/proc/self/oom_score_adj", O_RDONLY);

	if (fd < 0 || read(fd, buf, sizeof(buf) - 1) <= 0)
		fail("read /proc/self/oom_score_adj: %m");
	close(fd);
	return atoi(buf);
}

int main(int argc, char **argv)
{
	char val[16];
	int fd, len;

	test_init(argc, argv, NULL);
	len = snprintf(val, sizeof(val), "%d", WANT);
	fd = open("/proc/self/oom_score_adj", O_WRONLY);
	if (fd < 0 || write(fd, val, len) != len)
		fail("write /proc/self/oom_score_adj: %m");
	close(fd);
	if (read_adj() != WANT)
		fail("oom_score_adj is %d right after setting %d", read_adj(), WANT);

	test_daemon();
	test_waitsig();

	if (read_adj() != WANT)
		fail("oom_score_adj is %d after the restore, expected %d", read_adj(), WANT);
	pass();
}
