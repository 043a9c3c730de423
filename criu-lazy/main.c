/*
 * criu-lazy: checkpoint/restore with lazy (post-copy) memory restore.
 * main() only parses the command line and hands over to one command.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "options.h"

struct command {
	const char *name;
	int (*run)(struct opts *o);
	bool needs_images_dir;
};

static const struct command commands[] = {
	{ "dump",	 cr_dump,	 true },
	{ "restore",	 cr_restore,	 true },
	{ "lazy-pages",	 cr_lazy_pages,	 true },
	{ "page-server", cr_page_server, true },
	{ "check",	 cr_check,	 false },
	{ "show",	 cr_show,	 false },
};

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

int main(int argc, char **argv)
{
	const struct command *cmd;
	char log_path[PATH_MAX];
	struct opts o;
	int ret;

	if (opts_parse(argc, argv, &o))
		return 1;

	cmd = find_command(o.command);
	if (!cmd) {
		fprintf(stderr, "criu-lazy: unknown command '%s'\n", o.command);
		opts_usage();
		return 1;
	}
	if (cmd->needs_images_dir && !o.images_dir) {
		fprintf(stderr, "%s: the images directory is not set (use -D DIR)\n", o.command);
		return 1;
	}
	if (!o.work_dir)
		o.work_dir = o.images_dir;

	/* As in CRIU, a relative log file name is relative to the work dir. */
	if (o.log_file && o.log_file[0] != '/' && o.work_dir) {
		snprintf(log_path, sizeof(log_path), "%s/%s", o.work_dir, o.log_file);
		o.log_file = log_path;
	}
	if (log_init(cmd->name, o.verbosity, o.log_file))
		return 1;

	ret = cmd->run(&o);
	log_fini();
	return ret ? 1 : 0;
}
