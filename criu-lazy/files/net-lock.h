/*
 * The network lock of TCP connections (--network-lock), as CRIU does it
 * for a tree that shares the host's network namespace (and, below, for a
 * tree with one of its own): between the moment
 * a connection is put in repair mode at dump and the end of its restore,
 * no packet of it may reach the stack (an arriving segment would find no
 * socket and be answered by a reset).
 *
 *   iptables  two rules per connection socket, inserted in the filter
 *             table's INPUT and OUTPUT chains (ip6tables for IPv6), that
 *             drop its TCP packets unless they carry the repair mark;
 *             deleted one by one at restore (or by dump -R).
 *   nftables  one table "inet CRIU-<dump run id>" with input and output
 *             chains and the sets conns4/conns6 of (address, port,
 *             address, port); each connection adds two elements; the
 *             restore (or dump -R) deletes the table.
 *   skip      nothing: the user keeps the connections quiet.
 *
 * A tree in a network namespace of its own (net/) is locked as CRIU does:
 * the whole namespace, from inside, at the first connection to lock.
 * iptables: iptables-restore --noflush (ip6tables-restore too where there
 * is IPv6) adds a chain CRIU to the filter table, jumped to first from
 * INPUT and OUTPUT, that accepts the packets with the mark and drops every
 * other; nftables: the table's input and output chains drop every packet
 * without the mark.  Unlocked at the end (net_lock_finish).
 *
 * The tools are Debian's iptables and nftables packages' commands, looked
 * up in PATH; one missing is one clear error before anything is changed.
 */
#ifndef CRIU_LAZY_FILES_NET_LOCK_H
#define CRIU_LAZY_FILES_NET_LOCK_H

#include <stdbool.h>
#include <stdint.h>

/* The mark of the packets the tool itself sends (a FIN put back into a
 * receive queue): the lock lets them through.  CRIU's SOCCR_MARK. */
#define NET_LOCK_MARK	0xC114

struct net_lock {
	int method;			/* NETWORK_LOCK_* (options.h) */
	char table[64];			/* nftables: "inet CRIU-<run id>" */
	bool table_made;
	bool whole_ns;			/* lock the whole netns we are in */
	bool ns_locked;			/* and it is locked */
};

/* One end of a connection, as inet_sk_entry has it: addresses in network
 * order (1 word for IPv4, 4 for IPv6), ports in host order. */
struct net_conn {
	int family;
	const uint32_t *src, *dst;
	uint32_t sport, dport;
};

/* @run_id names the nftables table.  No tool is run yet. */
void net_lock_init(struct net_lock *nl, int method, const char *run_id);
/* "iptables", "nftables", "skip" */
const char *net_lock_name(int method);
/* The method's tool is in PATH (for @family: iptables or ip6tables), or
 * -ENOENT logged as "<who>: ... not found ...". */
int net_lock_check_tool(int method, int family, const char *who);

/* Lock one connection socket's packets (both directions).  -errno logged. */
int net_lock_conn(struct net_lock *nl, const struct net_conn *c);
/* Undo net_lock_conn (iptables: its two rules).  @quiet: a missing rule is
 * no error (a restore on a host where the dump did not lock).  -errno
 * logged. */
int net_unlock_conn(struct net_lock *nl, const struct net_conn *c, bool quiet);
/* After every connection is unlocked: the nftables table goes, and with
 * whole_ns the namespace's lock.  @quiet as above. */
int net_lock_finish(struct net_lock *nl, bool quiet);

#endif
