/*
 * A port the restore must get back (a TCP listener's, a UDP socket's):
 * bound below the kernel's ephemeral range, never to port 0.
 *
 * The dump's kill frees the port until the restore binds it again, and
 * neither CRIU nor we hold it in between.  In the ephemeral range
 * (ip_local_port_range, 32768-60999 by default) any connect() or unbound
 * sendto() on the host may take it as its source port meanwhile (and a
 * TCP TIME_WAIT keep it 60 s more): the restore then fails with "bind
 * 127.0.0.1:43719: Address already in use" (a busy host's CI did).  Ports
 * below it are only ever taken by an explicit bind.
 *
 *   bind_low_port()  binds @fd, a socket of @family (AF_INET, AF_INET6),
 *                    to @addr (text, "127.0.0.1", "::1", "0.0.0.0") on the
 *                    first free port of 20000-31999, from one that depends
 *                    on the pid (copies running at once spread out); it
 *                    fail()s naming @fd
 */
#ifndef ZDTM_INETPORT_H
#define ZDTM_INETPORT_H

#define LOW_PORT_FIRST	20000
#define LOW_PORT_NR	12000

void bind_low_port(int fd, int family, const char *addr);

#endif
