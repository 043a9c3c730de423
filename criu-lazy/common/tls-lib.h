/*
 * GnuTLS, loaded the first time --tls needs it (tls_lib_load), not linked:
 * its nine libraries (gnutls, p11-kit, nettle, gmp, ...) would otherwise be
 * mapped, relocated and initialised by every run of the tool, and copied
 * into every task a restore forks, TLS or not.  common/tls.c calls GnuTLS
 * only through this table; nothing else of the tool may name a gnutls_*
 * function (the tool is not linked with it: such a call fails the link).
 */
#ifndef CRIU_LAZY_COMMON_TLS_LIB_H
#define CRIU_LAZY_COMMON_TLS_LIB_H

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

/* every function of GnuTLS that tls.c calls, without its gnutls_ prefix */
#define TLS_LIB_FUNCS(X)						\
	X(alert_get) X(alert_get_name) X(alert_send_appropriate) X(bye)	\
	X(certificate_allocate_credentials)				\
	X(certificate_free_credentials)					\
	X(certificate_get_peers)					\
	X(certificate_send_x509_rdn_sequence)				\
	X(certificate_server_set_request)				\
	X(certificate_set_x509_crl_file)				\
	X(certificate_set_x509_key_file)				\
	X(certificate_set_x509_trust_file)				\
	X(certificate_verification_status_print)			\
	X(credentials_set) X(deinit) X(error_is_fatal) X(handshake)	\
	X(init) X(priority_set_direct) X(record_check_pending)		\
	X(record_get_direction) X(record_recv) X(record_send)		\
	X(session_get_desc) X(session_get_verify_cert_status)		\
	X(session_set_verify_cert) X(strerror) X(transport_set_errno)	\
	X(transport_set_ptr) X(transport_set_pull_function)		\
	X(transport_set_vec_push_function) X(x509_crt_deinit)		\
	X(x509_crt_get_dn2) X(x509_crt_import) X(x509_crt_init)

struct tls_lib {
	/* each typed from its declaration in GnuTLS's headers */
#define TLS_LIB_MEMBER(name) __typeof__(gnutls_##name) *name;
	TLS_LIB_FUNCS(TLS_LIB_MEMBER)
#undef TLS_LIB_MEMBER
	gnutls_free_function free;	/* what frees GnuTLS's allocations */
};

/* The table, NULL until tls_lib_load() succeeded. */
extern const struct tls_lib *tls_lib;

/*
 * Load GnuTLS and resolve every function of the table, once (later calls
 * return 0 at once); on failure one error line says why (-ELIBACC: no
 * usable library, -ELIBBAD: one without a function we call).  Called by
 * tls_creds_load(), the first step of every use of TLS, on the main thread.
 */
int tls_lib_load(void);

#endif
