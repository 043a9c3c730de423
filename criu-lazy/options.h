/*
 * The command line, parsed once by main.c into struct opts and passed down
 * to the command that runs.  Option names are CRIU's.
 */
#ifndef CRIU_LAZY_OPTIONS_H
#define CRIU_LAZY_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/tls.h"

/* --network-lock, as inventory_entry.network_lock_method numbers them */
enum {
	NETWORK_LOCK_IPTABLES = 0,	/* CRIU's default */
	NETWORK_LOCK_NFTABLES = 1,
	NETWORK_LOCK_SKIP = 2,
};

/* --external veth[IN]:OUT (CRIU's): a veth of the tree's netns named IN
 * whose peer is outside it, OUT at restore (the name the peer gets in the
 * restore's own netns) */
#define MAX_EXT_VETH	8
struct ext_veth {
	char in[16], out[16];		/* IFNAMSIZ; out "" when not given */
};

struct opts {
	const char *command;		/* dump, restore, lazy-pages, ... */

	pid_t pid;			/* -t, --tree */
	const char *images_dir;		/* -D, --images-dir */
	const char *work_dir;		/* -W, --work-dir (default: images_dir) */
	const char *log_file;		/* -o, --log-file (relative to work_dir) */
	int verbosity;			/* -v[N] */

	bool leave_running;		/* -R, --leave-running */
	bool leave_stopped;		/* -s, --leave-stopped */
	bool shell_job;			/* -j, --shell-job */
	bool ext_unix_sk;		/* --ext-unix-sk */
	bool file_locks;		/* --file-locks */
	uint64_t ghost_limit;		/* --ghost-limit: largest deleted file dumped */
	bool link_remap;		/* --link-remap: link files whose name is gone */
	bool tcp_established;		/* --tcp-established */
	bool skip_in_flight;		/* --skip-in-flight */
	int network_lock;		/* --network-lock: NETWORK_LOCK_* */
	struct ext_veth ext_veth[MAX_EXT_VETH];	/* --external veth[...] */
	size_t nr_ext_veth;
	bool restore_detached;		/* -d, --restore-detached */
	const char *pidfile;		/* --pidfile */
	bool no_idle_poll;		/* --no-idle-poll (restore) */

	bool lazy_pages;		/* --lazy-pages */
	bool page_server;		/* --page-server (lazy-pages: pages from a server) */
	const char *address;		/* --address */
	int port;			/* --port */
	int status_fd;			/* --status-fd, -1 if none */
	bool daemon_mode;		/* --daemon */
	bool no_background;		/* --no-background-fetch (lazy-pages) */
	bool no_working_set;		/* --no-working-set (lazy-pages) */
	struct tls_opts tls;		/* --tls and its files (page-server connections) */
	unsigned int ps_reconnect_s;	/* --page-server-reconnect SECONDS (lazy-pages), 0: never */

	const char *show_path;		/* show FILE|DIR */
	const char *feature;		/* check --feature NAME */
};

/* criu-lazy's own version, printed by -V / --version as CRIU prints its own */
#define CRIU_LAZY_VERSION	"0.3"

/* CRIU's default --ghost-limit */
#define DEFAULT_GHOST_LIMIT	(1ULL << 20)

int opts_parse(int argc, char **argv, struct opts *o);
void opts_usage(void);

int cr_dump(struct opts *o);
int cr_restore(struct opts *o);
int cr_lazy_pages(struct opts *o);
int cr_page_server(struct opts *o);
int cr_check(struct opts *o);
int cr_show(struct opts *o);

/* The --external veth[@name] given, or NULL. */
const struct ext_veth *opts_ext_veth(const struct opts *o, const char *name);

#endif
