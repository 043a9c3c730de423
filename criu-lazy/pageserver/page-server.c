/*
 * criu-lazy page-server --lazy-pages: serve the lazy pages of an image
 * directory over TCP to lazy-pages daemons (ours or CRIU's).
 *
 * Start-up loads the tree, each process's pagemap index and a mapping of
 * its pages file (ps-store-images.c), listens, and says so on --status-fd.
 * Then the server loop (ps-server.c) serves any number of sessions at once.
 * A session that sends a bad request is dropped and the others go on.  The
 * server exits 0 once a session has ended with CLOSE and no other is open,
 * or on SIGTERM.
 *
 * CRIU's other page-server mode, receiving a dump over the network
 * (OPEN2/ADD_F/CLOSE writing images), is not implemented.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/evloop.h"
#include "common/log.h"
#include "common/tls.h"
#include "options.h"
#include "pageserver/ps-server.h"
#include "pageserver/ps-store.h"

static int check_options(struct opts *o)
{
	if (!o->lazy_pages) {
		pr_err("only the lazy page server is implemented (page-server --lazy-pages); "
		       "receiving a dump over the network is not supported");
		return -ENOTSUP;
	}
	if (!o->port) {
		pr_err("the page server needs a port (--port P)");
		return -EINVAL;
	}
	return 0;
}

int cr_page_server(struct opts *o)
{
	struct ps_server s = { .listen_fd = -1, .epfd = -1, .signal_fd = -1 };
	struct ps_store *store = NULL;
	int dirfd, ret;

	ret = check_options(o);
	if (ret)
		return ret;
	dirfd = open(o->images_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		pr_perror("%s", o->images_dir);
		return -errno;
	}
	ret = ps_store_images_load(dirfd, &store);
	if (!ret)
		ret = ps_server_listen(&s, o->address, o->port);
	if (!ret && o->tls.enabled)
		ret = tls_creds_load(&o->tls, &s.tls);
	if (!ret)
		ret = ps_server_setup(&s, store, false);
	if (ret)
		goto out;

	ret = evloop_daemon_ready(o->daemon_mode, o->status_fd);
	if (ret)
		goto out;
	pr_info("serving the lazy pages of %zu task(s) on %s%s", store->nr_tasks, s.name,
		s.tls ? " over TLS" : "");
	ret = ps_server_run(&s);
	if (ret == -EINTR)
		ret = 0;	/* SIGTERM is how a page server is stopped */
	else if (!ret)
		pr_info("every session is closed: exiting");
out:
	ps_server_fini(&s);
	ps_store_free(store);
	close(dirfd);
	return ret;
}
