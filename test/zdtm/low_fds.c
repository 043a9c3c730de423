/*
 * Every low fd number taken, so the task's own fds get the numbers the
 * restore's log and helper fds had: fds 3 and 4 a pipe (write, read end,
 * O_NONBLOCK), 5..31 regular files, each holding "fd N\n" with its offset
 * at the end.  After SIGTERM: the pipe is empty and every file holds
 * exactly its line, its offset unchanged (no log line of the restore went
 * into a descriptor of the task).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define PIPE_R 4
#define PIPE_W 3
#define FIRST_FILE 5
#define LAST_FILE 31

static int line_of(int fd, char *buf, size_t size)
{
	return snprintf(buf, size, "fd %d\n", fd);
}

int main(int argc, char **argv)
{
	char name[32], want[32], got[4096];
	int p[2];

	test_init(argc, argv, NULL);
	/* make room, then take the numbers in order */
	for (int fd = PIPE_W; fd <= LAST_FILE; fd++)
		close(fd);
	if (pipe2(p, O_NONBLOCK))
		fail("pipe2: %m");
	/* pipe2 gave 3 and 4: the write end goes first */
	fd_place(p[1], 5, 0);
	fd_place(p[0], PIPE_R, 0);
	fd_place(5, PIPE_W, 0);
	for (int fd = FIRST_FILE; fd <= LAST_FILE; fd++) {
		int len = line_of(fd, want, sizeof(want));

		snprintf(name, sizeof(name), "low_fd.%d", fd);
		fd_place(open(name, O_RDWR | O_CREAT | O_TRUNC, 0644), fd, 0);
		if (write(fd, want, len) != len)
			fail("write fd %d: %m", fd);
	}

	test_daemon();
	test_waitsig();

	ssize_t n = read(PIPE_R, got, sizeof(got) - 1);

	if (n > 0) {
		got[n] = '\0';
		fail("the pipe at fd %d received %zd bytes: \"%.200s\"", PIPE_R, n, got);
	}
	if (n < 0 && errno != EAGAIN)
		fail("read fd %d: %m", PIPE_R);
	for (int fd = FIRST_FILE; fd <= LAST_FILE; fd++) {
		int len = line_of(fd, want, sizeof(want));
		off_t pos = lseek(fd, 0, SEEK_CUR);

		n = pread(fd, got, sizeof(got) - 1, 0);
		if (n < 0)
			fail("pread fd %d: %m", fd);
		got[n] = '\0';
		if (n != len || memcmp(got, want, len))
			fail("fd %d holds \"%.200s\" (%zd bytes), expected \"fd %d\\n\"", fd, got,
			     n, fd);
		if (pos != len)
			fail("fd %d: offset %lld, expected %d", fd, (long long)pos, len);
	}
	pass();
	return 0;
}
