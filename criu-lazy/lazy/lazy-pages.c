/*
 * criu-lazy lazy-pages: the daemon that delivers the memory of lazily
 * restored tasks.
 *
 * It reads the tree from the images, listens on DIR/lazy-pages.socket,
 * takes one userfaultfd per process from the restore, and then runs one
 * epoll loop: faults and events of every uffd, the restore's connection,
 * the page source, and signals.  Faults are always served first; between
 * them, once the restore has finished, the rest of the memory is delivered
 * in the background in growing chunks.  When no task has anything left it
 * prints its statistics and exits 0.  Anything in flight with no request
 * behind it fails the daemon instead of leaving a thread waiting for ever
 * (lazy-watchdog.c).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/evloop.h"
#include "common/log.h"
#include "common/mono-time.h"
#include "images/image.h"
#include "inventory.pb-c.h"
#include "lazy/lazy-daemon.h"
#include "lazy/lazy-handshake.h"
#include "lazy/page-source.h"
#include "lazy/prefetch.h"
#include "lazy/uffd.h"
#include "pstree.pb-c.h"

#define LIVENESS_PROBE_MS 100

static int read_tree(int dirfd, struct lazy_tree *tree)
{
	InventoryEntry *inv;
	struct cr_img *img;
	PstreeEntry *e;
	int ret;

	ret = img_read_one(dirfd, IMG_INVENTORY, 0, &inventory_entry__descriptor,
			   (ProtobufCMessage **)&inv);
	if (ret)
		return ret;
	if (inv->img_version != 1 && inv->img_version != 2) {
		pr_err("inventory.img: image version %u is not supported", inv->img_version);
		inventory_entry__free_unpacked(inv, NULL);
		return -EINVAL;
	}
	inventory_entry__free_unpacked(inv, NULL);

	ret = img_open(dirfd, IMG_PSTREE, 0, O_RDONLY, &img);
	if (ret) {
		if (ret == -ENOENT)
			pr_err("pstree.img: No such file or directory");
		return ret;
	}
	memset(tree, 0, sizeof(*tree));
	while ((ret = img_read_entry(img, &pstree_entry__descriptor, (ProtobufCMessage **)&e)) == 1) {
		pid_t *grown = realloc(tree->pids, (tree->nr_pids + 1) * sizeof(pid_t));

		if (!grown) {
			pstree_entry__free_unpacked(e, NULL);
			ret = -ENOMEM;
			break;
		}
		tree->pids = grown;
		tree->pids[tree->nr_pids++] = e->pid;
		pstree_entry__free_unpacked(e, NULL);
	}
	img_close(img);
	if (!ret && !tree->nr_pids) {
		pr_err("pstree.img: no processes");
		ret = -EINVAL;
	}
	return ret < 0 ? ret : 0;
}

/* One daemon per directory: a second one would steal the socket. */
static int lock_work_dir(const char *dir, int *lock_fd)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0) {
		pr_perror("%s", dir);
		return -errno;
	}
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		if (errno == EWOULDBLOCK)
			pr_err("another lazy-pages daemon is already serving %s", dir);
		else
			pr_perror("lock %s", dir);
		close(fd);
		return -EBUSY;
	}
	*lock_fd = fd;
	return 0;
}

/*
 * The socket's path is CRIU's (the restore connects to it), so the
 * directory must keep others from replacing it: refuse one that users
 * other than its owner (or root) may write.
 */
static int check_work_dir(const char *dir)
{
	struct stat st;

	if (stat(dir, &st)) {
		pr_perror("%s", dir);
		return -errno;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		pr_err("%s: writable by group or others (mode %04o): the lazy-pages socket "
		       "needs a directory only its owner may write", dir, st.st_mode & 07777);
		return -EPERM;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		pr_err("%s: owned by uid %u, neither root nor us: the lazy-pages socket "
		       "needs a directory of our own", dir, st.st_uid);
		return -EPERM;
	}
	return 0;
}

static int listen_socket(const char *dir, char *path, size_t path_len, int *out)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	mode_t old_umask;
	int fd, ret;

	snprintf(path, path_len, "%s/%s", dir, LAZY_SOCKET_NAME);
	if (strlen(path) >= sizeof(addr.sun_path)) {
		pr_err("%s: path too long for a unix socket", path);
		return -ENAMETOOLONG;
	}
	strcpy(addr.sun_path, path);

	/* non-blocking: the guardian accepts on it, and we do when it does not (lazy-handshake.c) */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		pr_perror("create the lazy-pages socket");
		return -errno;
	}
	unlink(path);
	/* 0600 from its creation: no window where others may connect */
	old_umask = umask(0177);
	ret = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	umask(old_umask);
	if (ret || chmod(path, 0600) || listen(fd, 10)) {
		ret = -errno;
		pr_perror("listen on %s", path);
		close(fd);
		return ret;
	}
	*out = fd;
	return 0;
}

static int setup_epoll(struct lazy_daemon *d)
{
	int ret;

	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (d->epfd < 0) {
		pr_perror("epoll_create");
		return -errno;
	}
	ret = evloop_watch(d->epfd, d->signal_fd, EPOLLIN, &d->signal_fd);
	if (!ret)
		ret = evloop_watch(d->epfd, d->conn_fd, EPOLLIN, &d->conn_fd);
	if (!ret && d->src->ops->watch)		/* a remote source's sockets */
		ret = d->src->ops->watch(d->src);
	for (struct lazy_task *t = d->tasks; t && !ret; t = t->next)
		ret = evloop_watch(d->epfd, t->uffd, EPOLLIN, t);
	/* only its hangup: it never writes to us */
	if (!ret && d->guardian.sock >= 0)
		ret = evloop_watch(d->epfd, d->guardian.sock, EPOLLRDHUP, &d->guardian);
	return ret;
}

static bool all_done(struct lazy_daemon *d)
{
	if (!d->restore_finished)
		return false;
	for (struct lazy_task *t = d->tasks; t; t = t->next)
		if (!lazy_task_done(t))
			return false;
	return true;
}

static bool background_wanted(struct lazy_daemon *d)
{
	if (!d->restore_finished || d->o->no_background)
		return false;
	if (lazy_shmem_background_wanted(d))
		return true;
	for (struct lazy_task *t = d->tasks; t; t = t->next)
		if (!t->gone && t->model.nr_pending && !lazy_prefetch_holds(t, mono_ns()) &&
		    d->src->ops->can_prefetch(d->src, t))
			return true;
	return false;
}

/* Tasks that exited without our noticing (no copy failed with ESRCH). */
static void probe_liveness(struct lazy_daemon *d)
{
	for (struct lazy_task *t = d->tasks; t; t = t->next)
		if (!t->gone && !uffd_task_alive(t->uffd, lazy_task_probe_address(t)))
			lazy_task_close(d, t, "exited");
}

static int on_signal(struct lazy_daemon *d)
{
	int sig = evloop_read_signal(d->signal_fd);

	if (!sig)
		return 0;
	pr_err("stopped by signal %d (%s) before every page was delivered", sig, strsignal(sig));
	return -EINTR;
}

static int dispatch(struct lazy_daemon *d, void *tag)
{
	if (tag == &d->conn_fd)
		return lazy_read_restore_word(d);
	if (tag == &d->signal_fd)
		return on_signal(d);
	if (tag == d->src)
		return d->src->ops->on_ready(d->src);
	if (tag == &d->guardian) {
		guardian_lost(&d->guardian);
		return 0;
	}
	if (((struct lazy_task *)tag)->gone)
		return 0;
	return lazy_handle_uffd(d, tag);
}

static bool source_pending(struct lazy_daemon *d)
{
	return d->src->ops->pending && d->src->ops->pending(d->src);
}

static int run_loop(struct lazy_daemon *d)
{
	struct epoll_event evs[32];
	uint64_t last_probe = mono_ns();

	while (!all_done(d)) {
		bool prefetch = lazy_prefetch_wanted(d);
		bool background = background_wanted(d), pending = source_pending(d);
		/* the watchdog's ticks come while anything is in flight */
		int timeout = prefetch || background || pending ? 0 :
			      d->restore_finished || lazy_watchdog_wanted(d) ? LIVENESS_PROBE_MS : -1;
		int n = epoll_wait(d->epfd, evs, 32, timeout);
		int ret = 0;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			pr_perror("epoll_wait");
			return -errno;
		}
		for (int i = 0; i < n && !ret; i++)
			ret = dispatch(d, evs[i].data.ptr);
		if (!ret && source_pending(d))
			ret = d->src->ops->on_ready(d->src);
		for (struct lazy_task *t = d->tasks; t && !ret; t = t->next)
			if (!t->gone && t->nr_deferred)
				ret = lazy_retry_deferred(d, t);
		/* the working set goes on while faults come: one batch after them */
		if (!ret && prefetch) {
			ret = lazy_prefetch_step(d);
		} else if (!ret && !n && background) {
			/* a chunk of shared memory, then one of private */
			ret = lazy_shmem_background_step(d);
			if (ret >= 0)
				ret = lazy_background_step(d);
		}
		if (ret >= 0)
			ret = lazy_watchdog_tick(d);
		if (ret < 0)
			return ret;

		if (d->restore_finished) {
			if (mono_ns() - last_probe > LIVENESS_PROBE_MS * 1000000ULL) {
				probe_liveness(d);
				last_probe = mono_ns();
			}
			for (struct lazy_task *t = d->tasks; t; t = t->next)
				if (!t->gone && lazy_task_done(t))
					lazy_task_close(d, t, "has all its pages");
		}
		lazy_task_reap(d);
	}
	return 0;
}

int cr_lazy_pages(struct opts *o)
{
	struct lazy_daemon d = { .o = o, .dirfd = -1, .epfd = -1, .conn_fd = -1, .signal_fd = -1,
				 .guardian = { .sock = -1 } };
	struct lazy_tree tree = { 0 };
	char sock_path[PATH_MAX];
	int listen_fd = -1, lock_fd = -1, ret;
	unsigned int nr_tasks, nr_poisoned;
	bool handshake_failed;

	if (o->page_server && (!o->address || !o->port)) {
		pr_err("--page-server needs the server's --address and --port");
		return -EINVAL;
	}
	if (o->ps_reconnect_s && !o->page_server) {
		pr_err("--page-server-reconnect needs --page-server (pages from the images never go away)");
		return -EINVAL;
	}
	/* a stop request is honoured from now on, not only once the loop runs */
	ret = evloop_stop_signals(&d.signal_fd);
	if (ret)
		return ret;
	d.dirfd = open(o->images_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d.dirfd < 0) {
		pr_perror("%s", o->images_dir);
		close(d.signal_fd);
		return -errno;
	}
	ret = read_tree(d.dirfd, &tree);
	if (ret)
		goto out;
	ret = lock_work_dir(o->work_dir, &lock_fd);
	if (ret)
		goto out;
	if (o->page_server) {
		ret = page_source_remote_new(&d, o->address, o->port, &d.src);
		if (ret)
			goto out;
	} else {
		d.src = page_source_local_new(&d);
		if (!d.src) {
			ret = -ENOMEM;
			goto out;
		}
	}
	ret = check_work_dir(o->work_dir) ?:
	      listen_socket(o->work_dir, sock_path, sizeof(sock_path), &listen_fd);
	if (ret)
		goto out;

	/* the earlier record, read before the restore may start */
	ws_init(&d.ws, !o->no_working_set, 0);
	ws_open(&d.ws, d.dirfd, tree.pids, tree.nr_pids);
	/* the guardian is our child, so it comes after going to the background */
	ret = evloop_daemon_ready(o->daemon_mode, -1) ?:
	      guardian_start(&d.guardian, listen_fd, d.dirfd, tree.nr_pids);
	if (ret)
		goto out;
	evloop_signal_ready(o->status_fd);
	pr_info("listening on %s for %zu task(s)", sock_path, tree.nr_pids);

	d.stats.start_ns = mono_ns();
	lazy_host_pid_prepare(&d);
	lazy_watchdog_init(&d);
	d.ws.start_ns = d.stats.start_ns;
	/* while the restore reads its own images (one CPU is idle then) */
	lazy_preload_models(&d, tree.pids, tree.nr_pids);
	ret = lazy_accept_tasks(&d, &tree, listen_fd);
	handshake_failed = ret && d.tasks;
	lazy_preload_free(&d);
	close(listen_fd);
	listen_fd = -1;
	unlink(sock_path);
	if (!ret)
		ret = setup_epoll(&d);
	if (!ret)
		ret = run_loop(&d);
	d.stats.end_ns = mono_ns();
	d.stats.end_cpu_ns = lazy_stats_cpu_ns();

	if (ret) {
		d.failed = true;	/* for the events read while poisoning */
		nr_tasks = 0;
		for (struct lazy_task *t = d.tasks; t; t = t->next)
			nr_tasks += !t->gone;
		nr_poisoned = lazy_poison_all(&d);
		/* the error above said why; the tasks it held (lazy-handshake.c) */
		if (handshake_failed)
			pr_err("the handshake failed with %u task(s) handed over: the lazy pages "
			       "of %u poisoned (SIGBUS where they are touched)", nr_tasks,
			       nr_poisoned);
	} else {
		lazy_shmem_finish(&d);
		lazy_stats_report(&d.stats, d.dirfd);
		ws_write(&d.ws, d.dirfd);
		if (d.stats.pages_lost) {
			/* each was logged with its address when it was found */
			pr_err("%llu lazy pages were lost, each named above: the restore is not faithful",
			       (unsigned long long)d.stats.pages_lost);
			ret = -EIO;
		}
	}
out:
	d.failed = ret != 0;	/* the source must not end its session as if all went well */
	if (listen_fd >= 0) {
		close(listen_fd);
		unlink(sock_path);
	}
	lazy_preload_free(&d);
	lazy_task_free_all(&d);		/* releases what the source holds for each */
	guardian_stop(&d.guardian);	/* every uffd of ours is closed: it may go */
	lazy_shmem_free_all(&d);
	if (d.src)
		d.src->ops->finish(d.src);
	lazy_stats_free(&d.stats);
	ws_free(&d.ws);
	free(tree.pids);
	if (d.conn_fd >= 0)
		close(d.conn_fd);
	if (d.signal_fd >= 0)
		close(d.signal_fd);
	if (d.epfd >= 0)
		close(d.epfd);
	if (lock_fd >= 0)
		close(lock_fd);
	close(d.dirfd);
	return ret;
}
