/*
 * The page-server source's side of the watchdog (lazy-watchdog.c): what
 * its connections owe (the GETs out or queued on them), and whether one
 * has replies the daemon stopped reading (rc_conn_watchdog()).
 */
#include "lazy/source-remote-int.h"

int remote_list_owed(struct page_source *src, lazy_owed_fn owed, void *arg)
{
	struct remote_source *rs = to_remote(src);

	return rc_conn_list_owed(&rs->fault, owed, arg) ?: rc_conn_list_owed(&rs->bg, owed, arg);
}

int remote_watchdog(struct page_source *src, uint64_t now)
{
	struct remote_source *rs = to_remote(src);

	return rc_conn_watchdog(src->d, &rs->fault, now) ?: rc_conn_watchdog(src->d, &rs->bg, now);
}
