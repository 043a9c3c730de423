/* Ports below the ephemeral range for what a restore binds again (inetport.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "inetport.h"
#include "zdtmtst.h"

void bind_low_port(int fd, int family, const char *addr)
{
	struct sockaddr_storage ss = { .ss_family = family };
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	socklen_t len = family == AF_INET ? sizeof(*in) : sizeof(*in6);
	unsigned int first = (unsigned int)getpid() % LOW_PORT_NR;

	if (inet_pton(family, addr, family == AF_INET ? (void *)&in->sin_addr :
			  (void *)&in6->sin6_addr) != 1)
		fail("fd %d: %s is no address of family %d", fd, addr, family);
	for (unsigned int i = 0; i < LOW_PORT_NR; i++) {
		uint16_t port = htons(LOW_PORT_FIRST + (first + i) % LOW_PORT_NR);

		if (family == AF_INET)
			in->sin_port = port;
		else
			in6->sin6_port = port;
		if (!bind(fd, (struct sockaddr *)&ss, len))
			return;
		if (errno != EADDRINUSE)
			fail("fd %d: bind to %s port %u: %m", fd, addr, ntohs(port));
	}
	fail("fd %d: every port of %s from %d to %d is taken", fd, addr, LOW_PORT_FIRST,
	     LOW_PORT_FIRST + LOW_PORT_NR - 1);
}
