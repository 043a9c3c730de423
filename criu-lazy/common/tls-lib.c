/*
 * GnuTLS through dlopen (see tls-lib.h).  The library initialises itself
 * in its constructor at dlopen, as it did at start-up when it was linked;
 * it is never closed: sessions and credentials may live until exit, and
 * its destructor runs at exit as before.
 */
#include <dlfcn.h>
#include <errno.h>

#include "common/log.h"
#include "common/tls-lib.h"

/*
 * GnuTLS's headers name no soname; 30 is the ABI of every GnuTLS 3.x
 * since 3.4, whose headers we compile against (pkg-config --cflags gnutls).
 */
#define TLS_LIB_SONAME	"libgnutls.so.30"

static struct tls_lib lib;
const struct tls_lib *tls_lib;

int tls_lib_load(void)
{
	gnutls_free_function *free_var;
	void *h;

	if (tls_lib)
		return 0;
	h = dlopen(TLS_LIB_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		pr_err("--tls needs GnuTLS (" TLS_LIB_SONAME "): %s", dlerror());
		return -ELIBACC;
	}
	dlerror();	/* no older error to report below */
#define TLS_LIB_RESOLVE(name)						\
	lib.name = (__typeof__(lib.name))dlsym(h, "gnutls_" #name);	\
	if (!lib.name)							\
		goto missing;
	TLS_LIB_FUNCS(TLS_LIB_RESOLVE)
#undef TLS_LIB_RESOLVE
	/* gnutls_free is a variable holding a function (gnutls.h), set once in GnuTLS */
	free_var = dlsym(h, "gnutls_free");
	if (!free_var || !*free_var)
		goto missing;
	lib.free = *free_var;
	tls_lib = &lib;
	return 0;
missing:
	/* left loaded: never closed (above), and a second try would fail the same */
	pr_err("--tls needs GnuTLS (" TLS_LIB_SONAME "): %s", dlerror() ?: "gnutls_free is NULL");
	return -ELIBBAD;
}
