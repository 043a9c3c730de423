/* Bounded socket I/O of the zdtm programs (sockio.h). */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

#include "sockio.h"
#include "zdtmtst.h"

void sock_wait(int fd, short events, const char *what)
{
	struct pollfd p = { .fd = fd, .events = events };

	if (poll(&p, 1, SOCK_IO_TIMEOUT_MS) <= 0)
		fail("%s: fd %d not ready within %d ms (%m)", what, fd, SOCK_IO_TIMEOUT_MS);
}

void sock_get(int fd, void *buf, size_t len, uint64_t seed, const char *what)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n;

		sock_wait(fd, POLLIN, what);
		n = recv(fd, (char *)buf + done, len - done, MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n <= 0)
			fail("%s: %zu of %zu bytes, then %zd (%m)", what, done, len, n);
		done += n;
	}
	pattern_expect(what, buf, len, seed);
}

void sock_eof(int fd, const char *what)
{
	char c;
	ssize_t n;

	sock_wait(fd, POLLIN, what);
	n = recv(fd, &c, 1, MSG_DONTWAIT);
	if (n != 0)
		fail("%s: expected the end of the stream, got %zd (%m)", what, n);
}
