/*
 * CRIU's command line for the subset criu-lazy implements.  Unknown
 * options and missing arguments are errors, never ignored.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "options.h"

enum long_only_opt {
	OPT_SHELL_JOB = 1000,
	OPT_PIDFILE,
	OPT_LAZY_PAGES,
	OPT_PAGE_SERVER,
	OPT_ADDRESS,
	OPT_PORT,
	OPT_STATUS_FD,
	OPT_NO_BACKGROUND,
	OPT_NO_WORKING_SET,
	OPT_FEATURE,
	OPT_EXT_UNIX_SK,
	OPT_FILE_LOCKS,
	OPT_GHOST_LIMIT,
	OPT_LINK_REMAP,
	OPT_TCP_ESTABLISHED,
	OPT_SKIP_IN_FLIGHT,
	OPT_NETWORK_LOCK,
	OPT_EXTERNAL,
	OPT_TLS,
	OPT_TLS_CACERT,
	OPT_TLS_CACRL,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_TLS_NO_CN_VERIFY,
	OPT_PS_RECONNECT,
	OPT_NO_IDLE_POLL,
};

static const struct option long_opts[] = {
	{ "tree",		required_argument, NULL, 't' },
	{ "images-dir",		required_argument, NULL, 'D' },
	{ "work-dir",		required_argument, NULL, 'W' },
	{ "log-file",		required_argument, NULL, 'o' },
	{ "leave-running",	no_argument,	   NULL, 'R' },
	{ "leave-stopped",	no_argument,	   NULL, 's' },
	{ "restore-detached",	no_argument,	   NULL, 'd' },
	{ "daemon",		no_argument,	   NULL, 'd' },
	{ "shell-job",		no_argument,	   NULL, 'j' },
	{ "pidfile",		required_argument, NULL, OPT_PIDFILE },
	{ "lazy-pages",		no_argument,	   NULL, OPT_LAZY_PAGES },
	{ "page-server",	no_argument,	   NULL, OPT_PAGE_SERVER },
	{ "address",		required_argument, NULL, OPT_ADDRESS },
	{ "port",		required_argument, NULL, OPT_PORT },
	{ "status-fd",		required_argument, NULL, OPT_STATUS_FD },
	{ "no-background-fetch", no_argument,	   NULL, OPT_NO_BACKGROUND },
	{ "no-working-set",	no_argument,	   NULL, OPT_NO_WORKING_SET },
	{ "feature",		required_argument, NULL, OPT_FEATURE },
	{ "ext-unix-sk",	no_argument,	   NULL, OPT_EXT_UNIX_SK },
	{ "file-locks",		no_argument,	   NULL, OPT_FILE_LOCKS },
	{ "ghost-limit",	required_argument, NULL, OPT_GHOST_LIMIT },
	{ "link-remap",		no_argument,	   NULL, OPT_LINK_REMAP },
	{ "tcp-established",	no_argument,	   NULL, OPT_TCP_ESTABLISHED },
	{ "skip-in-flight",	no_argument,	   NULL, OPT_SKIP_IN_FLIGHT },
	{ "network-lock",	required_argument, NULL, OPT_NETWORK_LOCK },
	{ "external",		required_argument, NULL, OPT_EXTERNAL },
	{ "tls",		no_argument,	   NULL, OPT_TLS },
	{ "tls-cacert",		required_argument, NULL, OPT_TLS_CACERT },
	{ "tls-cacrl",		required_argument, NULL, OPT_TLS_CACRL },
	{ "tls-cert",		required_argument, NULL, OPT_TLS_CERT },
	{ "tls-key",		required_argument, NULL, OPT_TLS_KEY },
	{ "tls-no-cn-verify",	no_argument,	   NULL, OPT_TLS_NO_CN_VERIFY },
	{ "page-server-reconnect", required_argument, NULL, OPT_PS_RECONNECT },
	{ "no-idle-poll",	no_argument,	   NULL, OPT_NO_IDLE_POLL },
	{ "version",		no_argument,	   NULL, 'V' },
	{ "help",		no_argument,	   NULL, 'h' },
	{ }
};

void opts_usage(void)
{
	fputs("Usage:\n"
	      "  criu-lazy dump -t PID -D DIR [-R|--leave-running] [-s|--leave-stopped] [--shell-job]\n"
	      "                 [--ext-unix-sk] [--file-locks] [--ghost-limit SIZE[K|M|G]] [--link-remap]\n"
	      "                 [--tcp-established] [--skip-in-flight]\n"
	      "                 [--network-lock iptables|nftables|skip] [--external veth[IN]]\n"
	      "                 [--lazy-pages [--address A] --port P [--status-fd FD] [TLS]]\n"
	      "                 [-o LOG] [-v0..4]\n"
	      "  criu-lazy restore -D DIR [-d|--restore-detached] [--pidfile F] [--shell-job]\n"
	      "                 [--ext-unix-sk] [--file-locks] [--tcp-established] [--link-remap]\n"
	      "                 [--external veth[IN]:OUT] [--lazy-pages] [--no-idle-poll]\n"
	      "                 [-o LOG] [-v0..4]\n"
	      "  criu-lazy lazy-pages -D DIR [--page-server --address A --port P [TLS]\n"
	      "                 [--page-server-reconnect SECONDS]]\n"
	      "                 [--no-background-fetch] [--no-working-set] [--status-fd FD]\n"
	      "                 [-d|--daemon] [-o LOG] [-v0..4]\n"
	      "  criu-lazy page-server -D DIR [--address A] --port P --lazy-pages [TLS]\n"
	      "                 [--status-fd FD] [-d|--daemon] [-o LOG] [-v0..4]\n"
	      "  criu-lazy check [--feature uffd|uffd-noncoop|lazy_pages]\n"
	      "  criu-lazy -V|--version\n"
	      "  criu-lazy -h|--help\n"
	      "  criu-lazy show FILE|DIR\n"
	      "TLS: --tls [--tls-cacert FILE] [--tls-cacrl FILE] [--tls-cert FILE]\n"
	      "     [--tls-key FILE] [--tls-no-cn-verify]\n"
	      "See criu-lazy(8).\n", stderr);
}

static int parse_number(const char *what, const char *arg, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno || *arg == '\0' || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "criu-lazy: invalid %s '%s'\n", what, arg);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* A size in bytes, with CRIU's suffixes K, M and G (powers of 1024). */
static int parse_size(const char *what, const char *arg, uint64_t *out)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (*end == 'K' || *end == 'k')
		shift = 10;
	else if (*end == 'M' || *end == 'm')
		shift = 20;
	else if (*end == 'G' || *end == 'g')
		shift = 30;
	if (shift)
		end++;
	if (errno || arg[0] < '0' || arg[0] > '9' || *end != '\0' || v > (~0ULL >> shift)) {
		fprintf(stderr, "criu-lazy: invalid %s '%s' (a number of bytes, K, M or G)\n",
			what, arg);
		return -EINVAL;
	}
	*out = (uint64_t)v << shift;
	return 0;
}

/* CRIU's names, in inventory_entry.network_lock_method's order */
static int parse_network_lock(const char *arg, int *out)
{
	static const char *const names[] = { "iptables", "nftables", "skip" };

	for (int i = 0; i < 3; i++) {
		if (!strcmp(arg, names[i])) {
			*out = i;
			return 0;
		}
	}
	fprintf(stderr, "criu-lazy: invalid --network-lock '%s' (iptables, nftables or skip)\n",
		arg);
	return -EINVAL;
}

/* --external veth[IN] or veth[IN]:OUT; CRIU's other kinds are not ours. */
static int parse_external(const char *arg, struct opts *o)
{
	struct ext_veth *v = &o->ext_veth[o->nr_ext_veth];
	const char *close, *out;
	size_t in_len;

	if (strncmp(arg, "veth[", 5)) {
		fprintf(stderr, "criu-lazy: --external %s: only veth[IFNAME]:OUTSIDE is "
			"supported\n", arg);
		return -EINVAL;
	}
	close = strchr(arg + 5, ']');
	in_len = close ? (size_t)(close - arg - 5) : 0;
	out = close && close[1] == ':' ? close + 2 : NULL;
	if (!close || !in_len || in_len >= sizeof(v->in) || (close[1] && !out) ||
	    (out && (!*out || strlen(out) >= sizeof(v->out)))) {
		fprintf(stderr, "criu-lazy: invalid --external '%s' (veth[IFNAME] or "
			"veth[IFNAME]:OUTSIDE, names of up to 15 characters)\n", arg);
		return -EINVAL;
	}
	if (out && strchr(out, '@')) {
		fprintf(stderr, "criu-lazy: --external %s: a bridge (@BRIDGE) is not supported\n",
			arg);
		return -EINVAL;
	}
	if (o->nr_ext_veth == MAX_EXT_VETH) {
		fprintf(stderr, "criu-lazy: more than %d --external veth[...]\n", MAX_EXT_VETH);
		return -EINVAL;
	}
	memcpy(v->in, arg + 5, in_len);
	v->in[in_len] = '\0';
	snprintf(v->out, sizeof(v->out), "%s", out ? out : "");
	o->nr_ext_veth++;
	return 0;
}

const struct ext_veth *opts_ext_veth(const struct opts *o, const char *name)
{
	for (size_t i = 0; i < o->nr_ext_veth; i++)
		if (!strcmp(o->ext_veth[i].in, name))
			return &o->ext_veth[i];
	return NULL;
}

/* -v alone adds one level, -vN sets it, -vvv counts the v's (as CRIU). */
static int parse_verbosity(const char *arg, int *level)
{
	long v;

	if (!arg) {
		(*level)++;
		return 0;
	}
	if (arg[0] == 'v') {
		*level += 1 + strspn(arg, "v");
		return arg[strspn(arg, "v")] ? -EINVAL : 0;
	}
	if (parse_number("verbosity", arg, 0, 4, &v))
		return -EINVAL;
	*level = v;
	return 0;
}

/* --tls only where a page-server connection is; its files only with it. */
static int check_tls(const struct opts *o)
{
	const struct tls_opts *t = &o->tls;
	bool tcp = (!strcmp(o->command, "dump") && o->lazy_pages) ||
		   (!strcmp(o->command, "lazy-pages") && o->page_server) ||
		   !strcmp(o->command, "page-server");

	if (!t->enabled && (t->cacert || t->cacrl || t->cert || t->key || t->no_cn_verify)) {
		fprintf(stderr, "criu-lazy: --tls-%s without --tls\n",
			t->cacert ? "cacert" : t->cacrl ? "cacrl" : t->cert ? "cert" :
			t->key ? "key" : "no-cn-verify");
		return -EINVAL;
	}
	if (t->enabled && !tcp) {
		fprintf(stderr, "criu-lazy: --tls secures the page-server connections: of %s, "
			"only dump --lazy-pages, lazy-pages --page-server and page-server have one\n",
			o->command);
		return -EINVAL;
	}
	return 0;
}

int opts_parse(int argc, char **argv, struct opts *o)
{
	long v;
	int c;

	memset(o, 0, sizeof(*o));
	o->verbosity = LOG_DEFAULT_LEVEL;
	o->status_fd = -1;
	o->ghost_limit = DEFAULT_GHOST_LIMIT;

	while ((c = getopt_long(argc, argv, "t:D:W:o:Rsdjv::Vh", long_opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (parse_number("pid", optarg, 1, 0x7fffffff, &v))
				return -EINVAL;
			o->pid = v;
			break;
		case 'D': o->images_dir = optarg; break;
		case 'W': o->work_dir = optarg; break;
		case 'o': o->log_file = optarg; break;
		case 'R': o->leave_running = true; break;
		case 's': o->leave_stopped = true; break;
		case 'd': o->restore_detached = o->daemon_mode = true; break;
		case 'j':
		case OPT_SHELL_JOB: o->shell_job = true; break;
		case OPT_PIDFILE: o->pidfile = optarg; break;
		case OPT_EXT_UNIX_SK: o->ext_unix_sk = true; break;
		case OPT_FILE_LOCKS: o->file_locks = true; break;
		case OPT_GHOST_LIMIT:
			if (parse_size("ghost limit", optarg, &o->ghost_limit))
				return -EINVAL;
			break;
		case OPT_LINK_REMAP: o->link_remap = true; break;
		case OPT_TCP_ESTABLISHED: o->tcp_established = true; break;
		case OPT_SKIP_IN_FLIGHT: o->skip_in_flight = true; break;
		case OPT_NETWORK_LOCK:
			if (parse_network_lock(optarg, &o->network_lock))
				return -EINVAL;
			break;
		case OPT_EXTERNAL:
			if (parse_external(optarg, o))
				return -EINVAL;
			break;
		case OPT_LAZY_PAGES: o->lazy_pages = true; break;
		case OPT_PAGE_SERVER: o->page_server = true; break;
		case OPT_ADDRESS: o->address = optarg; break;
		case OPT_PORT:
			if (parse_number("port", optarg, 1, 65535, &v))
				return -EINVAL;
			o->port = v;
			break;
		case OPT_STATUS_FD:
			if (parse_number("status fd", optarg, 0, 0x7fffffff, &v))
				return -EINVAL;
			o->status_fd = v;
			break;
		case OPT_NO_BACKGROUND: o->no_background = true; break;
		case OPT_NO_WORKING_SET: o->no_working_set = true; break;
		case OPT_NO_IDLE_POLL: o->no_idle_poll = true; break;
		case OPT_TLS: o->tls.enabled = true; break;
		case OPT_TLS_CACERT: o->tls.cacert = optarg; break;
		case OPT_TLS_CACRL: o->tls.cacrl = optarg; break;
		case OPT_TLS_CERT: o->tls.cert = optarg; break;
		case OPT_TLS_KEY: o->tls.key = optarg; break;
		case OPT_TLS_NO_CN_VERIFY: o->tls.no_cn_verify = true; break;
		case OPT_PS_RECONNECT:
			if (parse_number("--page-server-reconnect seconds", optarg, 0, 3600, &v))
				return -EINVAL;
			o->ps_reconnect_s = v;
			break;
		case 'v':
			if (parse_verbosity(optarg, &o->verbosity)) {
				fprintf(stderr, "criu-lazy: invalid verbosity '%s'\n", optarg);
				return -EINVAL;
			}
			break;
		case OPT_FEATURE: o->feature = optarg; break;
		case 'V':
			/* the form tools built around CRIU parse */
			printf("Version: %s\n", CRIU_LAZY_VERSION);
			exit(0);
		case 'h':
			opts_usage();
			exit(0);
		default:
			opts_usage();
			return -EINVAL;
		}
	}

	if (optind >= argc) {
		fprintf(stderr, "criu-lazy: no command given\n");
		opts_usage();
		return -EINVAL;
	}
	o->command = argv[optind++];
	if (!strcmp(o->command, "show")) {
		if (optind >= argc) {
			fprintf(stderr, "criu-lazy: show needs a FILE or DIR\n");
			return -EINVAL;
		}
		o->show_path = argv[optind++];
	}
	if (optind < argc) {
		fprintf(stderr, "criu-lazy: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (o->verbosity > LOG_DEBUG)
		o->verbosity = LOG_DEBUG;
	return check_tls(o);
}
