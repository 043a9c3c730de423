/*
 * TLS for the page-server connections (--tls), with GnuTLS: the page
 * server and `dump --lazy-pages` on the server side, the lazy-pages
 * daemon on the client side.  Both ends authenticate each other with
 * X.509 certificates signed by one CA (--tls-cacert), revoked ones being
 * listed in a CRL (--tls-cacrl); the client also checks that the server's
 * certificate names the address it connected to, unless
 * --tls-no-cn-verify.  Documentation/tls.md has the whole story.
 *
 * The credentials are loaded once at start-up (tls_creds_load), so that a
 * missing or unreadable file, or a missing GnuTLS (loaded only then), is
 * one error line before anything happens.
 * A session (struct tls_conn) sits on a connected non-blocking socket and
 * offers the same I/O as pageserver/ps-io.h's plain helpers: partial reads
 * and writes that never block, 0 when nothing can move now.  Decrypted data
 * can wait inside the session while the socket itself is empty, which
 * epoll does not see: an event loop asks tls_pending() before it sleeps.
 *
 * Nothing here logs but tls_creds_load(); the rest returns a negative
 * errno and, where the caller's one line needs it, says why in a buffer.
 */
#ifndef CRIU_LAZY_COMMON_TLS_H
#define CRIU_LAZY_COMMON_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/* CRIU's defaults, used for the files not given on the command line */
#define TLS_DEFAULT_CACERT	"/etc/pki/CA/cacert.pem"
#define TLS_DEFAULT_CACRL	"/etc/pki/CA/cacrl.pem"
#define TLS_DEFAULT_CERT	"/etc/pki/criu/cert.pem"
#define TLS_DEFAULT_KEY		"/etc/pki/criu/private/key.pem"

#define TLS_WHY_MAX		512	/* room for a handshake failure's reason */

struct tls_opts {
	bool enabled;			/* --tls */
	const char *cacert;		/* --tls-cacert, NULL: the default */
	const char *cacrl;		/* --tls-cacrl, NULL: the default if readable */
	const char *cert;		/* --tls-cert */
	const char *key;		/* --tls-key */
	bool no_cn_verify;		/* --tls-no-cn-verify */
};

struct tls_creds;
struct tls_conn;

/*
 * Load GnuTLS the first time (common/tls-lib.h: every other function here
 * needs credentials), then the CA, the CRL, our certificate and key (each
 * error logged once).
 */
int tls_creds_load(const struct tls_opts *o, struct tls_creds **out);
void tls_creds_free(struct tls_creds *cr);

/*
 * A session on fd (connected, non-blocking; not closed by tls_conn_free).
 * server: require the client's certificate.  verify_name: the name the
 * server's certificate must carry (a client's; NULL: do not check it).
 */
int tls_conn_new(struct tls_creds *cr, int fd, bool server, const char *verify_name,
		 struct tls_conn **out);

/* Say goodbye (close_notify, if it goes out at once) and free the session. */
void tls_conn_free(struct tls_conn *t);

/*
 * One step of the handshake without blocking: 0 done (the peer is
 * authenticated), -EAGAIN to be called again once the socket is ready for
 * what tls_wants_write() says, another negative errno when it failed:
 * why says how, in the user's terms.
 */
int tls_handshake_step(struct tls_conn *t, char *why, size_t why_len);
bool tls_wants_write(const struct tls_conn *t);

/* The whole handshake, waiting at most timeout_ms. */
int tls_handshake(struct tls_conn *t, int timeout_ms, char *why, size_t why_len);

/* "TLS1.3 AES-256-GCM, peer CN=...", for the log once the handshake is done. */
void tls_describe(struct tls_conn *t, char *buf, size_t len);

/*
 * Non-blocking I/O, as ps_recv_some() / ps_sendv_some(): bytes moved (> 0),
 * 0 if nothing can move now, -EPIPE at the peer's end, -ECONNRESET, or
 * another negative errno (-EBADMSG: a record that does not decrypt).
 */
ssize_t tls_recv_some(struct tls_conn *t, void *buf, size_t len);
ssize_t tls_sendv_some(struct tls_conn *t, const struct iovec *iov, int iovcnt);

/* Data already read off the socket waits in the session (epoll cannot tell). */
bool tls_pending(const struct tls_conn *t);

#endif
