/*
 * TLS sessions over the page-server sockets (see tls.h).
 *
 * The socket is ours, not GnuTLS's: we give it transport callbacks that
 * never block and never raise SIGPIPE, and that read ahead up to 64 KiB
 * per recv() (a 4 MiB reply is some 256 records: one syscall for several
 * of them, not two for each).  What was read ahead and not yet decrypted
 * counts as pending, like the decrypted data GnuTLS holds.
 *
 * Writing: GnuTLS encrypts a record at a time (at most 16 KiB of data).
 * Small pieces (the 32-byte headers of the protocol) are gathered into one
 * record with the data after them, large ones go out directly.  A record
 * that the socket did not take whole stays inside GnuTLS (GNUTLS_E_AGAIN):
 * the next call flushes it first and reports its bytes as sent then.  The
 * callers never move their cursor past unsent bytes, so the data they
 * present again starts with that record's, as GnuTLS requires.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LOG_PREFIX "tls: "
#include "common/log.h"
#include "common/mono-time.h"
#include "common/tls.h"
#include "common/tls-lib.h"

#define RECORD_MAX	16384		/* TLS plaintext per record */
#define READ_AHEAD	(64 << 10)
#define TLS_HANDSHAKE_TYPE 0x16		/* first byte of a TLS client's first record */
/*
 * TLS 1.2: in TLS 1.3 the client's handshake is over before the server has
 * judged the client's certificate, so a refused daemon would learn it only
 * from its first GET, in the middle of a restore.  In TLS 1.2 the server's
 * Finished comes after its verdict: the daemon knows at start-up.
 */
#define PRIORITY	"NORMAL:-VERS-ALL:+VERS-TLS1.2"

struct tls_creds {
	gnutls_certificate_credentials_t x509;
	bool no_cn_verify;
};

struct tls_conn {
	gnutls_session_t s;
	int fd;
	bool server;
	bool established;
	bool send_pending;		/* a record went out in part: flush it first */
	int io_err;			/* errno of the socket's last failure */
	int first_byte;			/* of what the peer sent, -1 before anything */
	char *verify_name;		/* GnuTLS keeps the pointer */
	size_t rpos, rlen;
	char rbuf[READ_AHEAD];
	char stage[RECORD_MAX];
};

/* A file the user named (or our default), readable now: else one line. */
static int check_file(const char *path, const char *what, const char *flag, bool given)
{
	if (!access(path, R_OK))
		return 0;
	pr_err("%s %s%s%s%s: %m", what, path, given ? "" : " (the default: ", given ? "" : flag,
	       given ? "" : " FILE names another)");
	return -errno ?: -EACCES;
}

int tls_creds_load(const struct tls_opts *o, struct tls_creds **out)
{
	const char *cacert = o->cacert ?: TLS_DEFAULT_CACERT;
	const char *cacrl = o->cacrl ?: TLS_DEFAULT_CACRL;
	const char *cert = o->cert ?: TLS_DEFAULT_CERT;
	const char *key = o->key ?: TLS_DEFAULT_KEY;
	struct tls_creds *cr;
	int ret;

	/* GnuTLS itself first: the files are its to read */
	ret = tls_lib_load() ?:
	      check_file(cacert, "CA certificate", "--tls-cacert", o->cacert) ?:
	      (o->cacrl ? check_file(cacrl, "certificate revocation list", "--tls-cacrl", true) : 0) ?:
	      check_file(cert, "certificate", "--tls-cert", o->cert) ?:
	      check_file(key, "private key", "--tls-key", o->key);
	if (ret)
		return ret;
	cr = calloc(1, sizeof(*cr));
	if (!cr)
		return -ENOMEM;
	cr->no_cn_verify = o->no_cn_verify;
	ret = tls_lib->certificate_allocate_credentials(&cr->x509);
	if (ret < 0) {
		pr_err("cannot allocate credentials: %s", tls_lib->strerror(ret));
		free(cr);
		return -ENOMEM;
	}
	/* only this CA: no system trust store, unlike CRIU without --tls-cacert */
	ret = tls_lib->certificate_set_x509_trust_file(cr->x509, cacert, GNUTLS_X509_FMT_PEM);
	if (ret <= 0) {
		pr_err("CA certificate %s: %s", cacert,
		       ret ? tls_lib->strerror(ret) : "no PEM certificate in it");
		goto err;
	}
	/* the default CRL only if it is there, as CRIU */
	if (o->cacrl || !access(cacrl, R_OK)) {
		ret = tls_lib->certificate_set_x509_crl_file(cr->x509, cacrl, GNUTLS_X509_FMT_PEM);
		if (ret <= 0) {
			pr_err("certificate revocation list %s: %s", cacrl,
			       ret ? tls_lib->strerror(ret) : "no PEM CRL in it");
			goto err;
		}
	}
	ret = tls_lib->certificate_set_x509_key_file(cr->x509, cert, key, GNUTLS_X509_FMT_PEM);
	if (ret < 0) {
		pr_err("certificate %s with private key %s: %s", cert, key, tls_lib->strerror(ret));
		goto err;
	}
	*out = cr;
	return 0;
err:
	tls_lib->certificate_free_credentials(cr->x509);
	free(cr);
	return -EINVAL;
}

void tls_creds_free(struct tls_creds *cr)
{
	if (!cr)
		return;
	tls_lib->certificate_free_credentials(cr->x509);
	free(cr);
}

/* GnuTLS reads through here: non-blocking, up to READ_AHEAD at a time. */
static ssize_t pull(gnutls_transport_ptr_t p, void *data, size_t size)
{
	struct tls_conn *t = p;
	size_t n;

	if (t->rpos == t->rlen) {
		ssize_t got;

		do
			got = recv(t->fd, t->rbuf, sizeof(t->rbuf), MSG_DONTWAIT);
		while (got < 0 && errno == EINTR);
		if (got < 0) {
			t->io_err = errno;
			tls_lib->transport_set_errno(t->s, errno);
			return -1;
		}
		if (got == 0)
			return 0;
		if (t->first_byte < 0)
			t->first_byte = (unsigned char)t->rbuf[0];
		t->rpos = 0;
		t->rlen = got;
	}
	n = t->rlen - t->rpos < size ? t->rlen - t->rpos : size;
	memcpy(data, t->rbuf + t->rpos, n);
	t->rpos += n;
	return n;
}

static ssize_t push(gnutls_transport_ptr_t p, const giovec_t *iov, int iovcnt)
{
	struct tls_conn *t = p;
	struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = iovcnt };
	ssize_t n;

	do
		n = sendmsg(t->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		t->io_err = errno;
		tls_lib->transport_set_errno(t->s, errno);
	}
	return n;
}

int tls_conn_new(struct tls_creds *cr, int fd, bool server, const char *verify_name,
		 struct tls_conn **out)
{
	struct tls_conn *t = calloc(1, sizeof(*t));
	int ret;

	if (!t)
		return -ENOMEM;
	t->fd = fd;
	t->server = server;
	t->first_byte = -1;
	if (!server && verify_name && !cr->no_cn_verify) {
		t->verify_name = strdup(verify_name);
		if (!t->verify_name)
			goto nomem;
	}
	ret = tls_lib->init(&t->s, (server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NONBLOCK |
			    GNUTLS_NO_SIGNAL);
	if (ret < 0)
		goto nomem;
	if (tls_lib->priority_set_direct(t->s, PRIORITY, NULL) < 0 ||
	    tls_lib->credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, cr->x509) < 0) {
		tls_lib->deinit(t->s);
		goto nomem;
	}
	if (server) {
		/* mutual authentication; the names of our CAs are not advertised (as CRIU) */
		tls_lib->certificate_server_set_request(t->s, GNUTLS_CERT_REQUIRE);
		tls_lib->certificate_send_x509_rdn_sequence(t->s, 1);
	}
	/* the handshake fails unless the peer's chain (and name) verify */
	tls_lib->session_set_verify_cert(t->s, t->verify_name, 0);
	tls_lib->transport_set_ptr(t->s, t);
	tls_lib->transport_set_pull_function(t->s, pull);
	tls_lib->transport_set_vec_push_function(t->s, push);
	*out = t;
	return 0;
nomem:
	free(t->verify_name);
	free(t);
	return -ENOMEM;
}

void tls_conn_free(struct tls_conn *t)
{
	if (!t)
		return;
	if (t->established && !t->send_pending)
		tls_lib->bye(t->s, GNUTLS_SHUT_WR);	/* best effort: never waits */
	tls_lib->deinit(t->s);
	free(t->verify_name);
	free(t);
}

bool tls_wants_write(const struct tls_conn *t)
{
	return tls_lib->record_get_direction(t->s) == 1;
}

/* The reason of a failed handshake, in the user's terms. */
static void handshake_why(struct tls_conn *t, int err, char *why, size_t len)
{
	const char *peer = t->server ? "the client" : "the server";
	gnutls_datum_t txt = { NULL, 0 };

	/* a client refusing our certificate: GnuTLS says it sent none, with its alert */
	if (err == GNUTLS_E_NO_CERTIFICATE_FOUND && tls_lib->alert_get(t->s))
		err = GNUTLS_E_FATAL_ALERT_RECEIVED;

	switch (err) {
	case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
		if (tls_lib->certificate_verification_status_print(
			    tls_lib->session_get_verify_cert_status(t->s), GNUTLS_CRT_X509, &txt, 0))
			txt.data = NULL;
		if (txt.data)	/* GnuTLS ends its sentences with a space */
			for (char *e = (char *)txt.data + strlen((char *)txt.data);
			     e > (char *)txt.data && e[-1] == ' '; e--)
				e[-1] = '\0';
		snprintf(why, len, "%s's certificate is refused: %s", peer,
			 txt.data ? (char *)txt.data : "it does not verify");
		tls_lib->free(txt.data);
		return;
	case GNUTLS_E_FATAL_ALERT_RECEIVED:
		snprintf(why, len, "%s refused the handshake (TLS alert: %s)%s", peer,
			 tls_lib->alert_get_name(tls_lib->alert_get(t->s)),
			 t->server ? "" : ": is our certificate signed by the CA it trusts?");
		return;
	case GNUTLS_E_NO_CERTIFICATE_FOUND:
	case GNUTLS_E_CERTIFICATE_REQUIRED:
		snprintf(why, len, "%s sent no certificate", peer);
		return;
	}
	if (t->server && t->first_byte >= 0 && t->first_byte != TLS_HANDSHAKE_TYPE) {
		snprintf(why, len, "the client does not speak TLS (its first byte is 0x%02x: a "
			 "client without --tls?)", t->first_byte);
		return;
	}
	if (err == GNUTLS_E_PREMATURE_TERMINATION || err == GNUTLS_E_UNEXPECTED_PACKET_LENGTH ||
	    (err == GNUTLS_E_PULL_ERROR && (t->io_err == ECONNRESET || t->io_err == EPIPE))) {
		snprintf(why, len, "%s closed the connection during the TLS handshake%s", peer,
			 t->server ? "" : " (a page server without --tls?)");
		return;
	}
	snprintf(why, len, "TLS handshake failed: %s", tls_lib->strerror(err));
}

int tls_handshake_step(struct tls_conn *t, char *why, size_t why_len)
{
	for (;;) {
		int ret = tls_lib->handshake(t->s);

		if (ret == GNUTLS_E_SUCCESS) {
			t->established = true;
			return 0;
		}
		if (ret == GNUTLS_E_AGAIN)
			return -EAGAIN;
		if (ret == GNUTLS_E_INTERRUPTED || !tls_lib->error_is_fatal(ret))
			continue;	/* a warning alert: the handshake goes on */
		handshake_why(t, ret, why, why_len);
		/* tell the peer why (best effort): its log names it too */
		if (ret != GNUTLS_E_FATAL_ALERT_RECEIVED && ret != GNUTLS_E_PUSH_ERROR &&
		    ret != GNUTLS_E_PULL_ERROR && ret != GNUTLS_E_PREMATURE_TERMINATION &&
		    !(t->server && t->first_byte != TLS_HANDSHAKE_TYPE))
			tls_lib->alert_send_appropriate(t->s, ret);
		return -ECONNREFUSED;
	}
}

int tls_handshake(struct tls_conn *t, int timeout_ms, char *why, size_t why_len)
{
	int64_t deadline = mono_ms() + timeout_ms;

	for (;;) {
		int ret = tls_handshake_step(t, why, why_len);
		struct pollfd p = { .fd = t->fd };
		int64_t left = deadline - mono_ms();

		if (ret != -EAGAIN)
			return ret;
		if (t->rpos < t->rlen)
			continue;
		p.events = tls_wants_write(t) ? POLLOUT : POLLIN;
		if (left <= 0 || (poll(&p, 1, (int)left) == 0)) {
			snprintf(why, why_len, "no TLS handshake within %d s%s", timeout_ms / 1000,
				 t->server ? "" : " (a page server without --tls?)");
			return -ETIMEDOUT;
		}
	}
}

/* "CN=...,O=..." of the peer's certificate, or "?" */
static void peer_dn(struct tls_conn *t, char *buf, size_t len)
{
	unsigned int n = 0;
	const gnutls_datum_t *certs = tls_lib->certificate_get_peers(t->s, &n);
	gnutls_x509_crt_t crt;
	gnutls_datum_t dn = { NULL, 0 };

	snprintf(buf, len, "?");
	if (!certs || !n || tls_lib->x509_crt_init(&crt) < 0)
		return;
	if (tls_lib->x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) >= 0 &&
	    tls_lib->x509_crt_get_dn2(crt, &dn) >= 0) {
		snprintf(buf, len, "%s", (char *)dn.data);
		tls_lib->free(dn.data);
	}
	tls_lib->x509_crt_deinit(crt);
}

void tls_describe(struct tls_conn *t, char *buf, size_t len)
{
	char *desc = tls_lib->session_get_desc(t->s);
	char dn[256];

	peer_dn(t, dn, sizeof(dn));
	snprintf(buf, len, "%s, peer %s%s", desc ? desc : "TLS", dn,
		 t->verify_name || t->server ? "" : " (name not checked: --tls-no-cn-verify)");
	tls_lib->free(desc);
}

ssize_t tls_recv_some(struct tls_conn *t, void *buf, size_t len)
{
	for (;;) {
		ssize_t n = tls_lib->record_recv(t->s, buf, len);

		if (n > 0)
			return n;
		switch (n) {
		case 0:				/* close_notify */
		case GNUTLS_E_PREMATURE_TERMINATION:	/* EOF without it */
			return -EPIPE;
		case GNUTLS_E_AGAIN:
			return 0;
		case GNUTLS_E_INTERRUPTED:
			continue;
		case GNUTLS_E_PULL_ERROR:
			return -(t->io_err ?: EIO);
		case GNUTLS_E_DECRYPTION_FAILED:
			return -EBADMSG;
		}
		if (!tls_lib->error_is_fatal(n))
			continue;	/* a warning alert, a TLS 1.3 key update */
		return -EPROTO;
	}
}

ssize_t tls_sendv_some(struct tls_conn *t, const struct iovec *iov, int iovcnt)
{
	const void *data = NULL;
	size_t len = 0;
	ssize_t n;

	if (!t->send_pending) {
		while (iovcnt && !iov->iov_len) {
			iov++;
			iovcnt--;
		}
		if (!iovcnt)
			return 0;
		if (iov->iov_len >= RECORD_MAX) {
			data = iov->iov_base;
			len = RECORD_MAX;
		} else {
			/* gather small pieces into one record */
			for (; iovcnt && len < RECORD_MAX; iov++, iovcnt--) {
				size_t take = RECORD_MAX - len < iov->iov_len ?
					      RECORD_MAX - len : iov->iov_len;

				memcpy(t->stage + len, iov->iov_base, take);
				len += take;
			}
			data = t->stage;
		}
	}
	for (;;) {
		/* after GNUTLS_E_AGAIN, NULL/0 sends the rest of that record */
		n = t->send_pending ? tls_lib->record_send(t->s, NULL, 0) :
				      tls_lib->record_send(t->s, data, len);
		if (n >= 0) {
			t->send_pending = false;
			return n;
		}
		if (n == GNUTLS_E_AGAIN) {
			t->send_pending = true;
			return 0;
		}
		if (n == GNUTLS_E_INTERRUPTED) {
			t->send_pending = true;
			continue;
		}
		if (n == GNUTLS_E_PUSH_ERROR)
			return -(t->io_err ?: EIO);
		return -EPROTO;
	}
}

bool tls_pending(const struct tls_conn *t)
{
	return t->rpos < t->rlen || tls_lib->record_check_pending(t->s) > 0;
}
