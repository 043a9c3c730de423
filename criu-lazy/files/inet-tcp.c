/*
 * TCP connections of the inet kind, around tcp-stream.c: at dump the
 * tcp-stream images; at restore the checks before any task exists (the
 * flag, the lock's tool, every image read) and the last stage, in which
 * every restored connection leaves repair mode (through our own copy of
 * it, pidfd_getfd) and the network lock of the dump goes.
 *
 * The lock method and the nftables table come from inventory.img
 * (network_lock_method, dump_criu_run_id), as CRIU's restore takes them; a
 * lock the dump left on another host is not here: removing it is then no
 * error.  A failed restore leaves the lock in place, so the same images
 * can be restored again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "files/inet-sk.h"
#include "restore/restore.h"

int inet_tcp_check(const struct opts *o, struct rst_images *ri, struct inet_rst_state *st,
		   const InetSkEntry *ie)
{
	int method = ri->inv->has_network_lock_method ? (int)ri->inv->network_lock_method :
			NETWORK_LOCK_IPTABLES;
	struct tcp_conn_rst *grown;
	char who[64];
	int ret;

	if (!tcp_conn_state_ok(ie->state)) {
		pr_err("files.img: inet socket %u: a TCP connection in state %s (%u) cannot be "
		       "restored", ie->id, tcp_state_name(ie->state), ie->state);
		return -EOPNOTSUPP;
	}
	if (!o->tcp_established) {
		pr_err("files.img: inet socket %u is a TCP connection (%s, port %u -> %u): "
		       "restore it with --tcp-established", ie->id, tcp_state_name(ie->state),
		       ie->src_port, ie->dst_port);
		return -EOPNOTSUPP;
	}
	if (method < NETWORK_LOCK_IPTABLES || method > NETWORK_LOCK_SKIP) {
		pr_err("inventory.img: unknown network_lock_method %d", method);
		return -EINVAL;
	}
	snprintf(who, sizeof(who), "the connections were locked with %s at dump",
		 net_lock_name(method));
	ret = net_lock_check_tool(method, ie->family, who);
	if (ret)
		return ret;
	if (inet_tcp_find(st, ie->id))
		return 0;	/* another fd of the same socket */
	grown = realloc(st->conns, (st->nr_conns + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	st->conns = grown;
	ret = tcp_conn_load(ri->dirfd, ie, &st->conns[st->nr_conns]);
	if (!ret)
		st->nr_conns++;
	return ret;
}

const struct tcp_conn_rst *inet_tcp_find(const struct inet_rst_state *st, uint32_t id)
{
	for (size_t i = 0; st && i < st->nr_conns; i++)
		if (st->conns[i].id == id)
			return &st->conns[i];
	return NULL;
}

void inet_rst_state_free(void *state)
{
	struct inet_rst_state *st = state;

	if (!st)
		return;
	sk_queue_set_free(st->queues);
	for (size_t i = 0; i < st->nr_conns; i++)
		tcp_conn_rst_free(&st->conns[i]);
	free(st->conns);
	free(st);
}

int inet_tcp_dump_write(struct dump_ctx *ctx)
{
	for (size_t i = 0; i < ctx->files.nr; i++) {
		struct dump_file *f = ctx->files.v[i];
		struct inet_dump *id = f->priv;
		int ret;

		if (f->ops != &fd_kind_inet || !id || !id->has_tcp)
			continue;
		ret = tcp_conn_write(ctx, &id->tcp);
		if (ret)
			return ret;
	}
	return 0;
}

/* Is fd @j of @p a TCP connection socket, and not a dup of an earlier fd? */
static bool tcp_conn_first(const struct rst_proc *p, size_t j)
{
	const struct rst_fd *f = &p->ri.fds[j];

	if (f->ops != &fd_kind_inet || !inet_is_tcp_conn(f->fe->isk))
		return false;
	for (size_t k = 0; k < j; k++)
		if (p->ri.fds[k].fe == f->fe)
			return false;
	return true;
}

/* Every connection socket of one process leaves repair mode (the pidfd
 * only if it holds one). */
static int repair_off(struct rst_proc *p)
{
	int pidfd = -1, ret = 0;

	for (size_t i = 0; i < p->ri.nr_fds && !ret; i++) {
		const struct rst_fd *f = &p->ri.fds[i];
		int sk;

		if (!tcp_conn_first(p, i))
			continue;
		if (pidfd < 0 && (pidfd = syscall(SYS_pidfd_open, p->t.pid, 0)) < 0) {
			pr_perror("task %d: pidfd_open", p->pid);
			return -errno;
		}
		sk = syscall(SYS_pidfd_getfd, pidfd, f->fd, 0);
		if (sk < 0) {
			ret = -errno;
			pr_perror("fd %d of task %d: pidfd_getfd", f->fd, p->pid);
			break;
		}
		ret = tcp_conn_repair_off(sk, f->fe->isk, p->pid);
		close(sk);
	}
	if (pidfd >= 0)
		close(pidfd);
	return ret;
}

/* The lock's method and table name, from inventory.img. */
static void lock_of_images(const struct rst_tree *tree, struct net_lock *nl)
{
	const InventoryEntry *inv = tree->inv;
	int method = inv->has_network_lock_method ? (int)inv->network_lock_method :
			NETWORK_LOCK_IPTABLES;
	char run_id[40];

	/* CRIU names the table of images without a run id by the root's pid */
	if (inv->dump_criu_run_id && inv->dump_criu_run_id[0])
		snprintf(run_id, sizeof(run_id), "%s", inv->dump_criu_run_id);
	else
		snprintf(run_id, sizeof(run_id), "%d", tree->procs[0].pid);
	net_lock_init(nl, method, run_id);
}

/* @fn for each connection socket of the tree, once per socket (each end
 * of a connection inside the tree is a socket of its own); the first
 * error.  *count: how many. */
static int each_tcp_conn(const struct rst_tree *tree, struct net_lock *nl, size_t *count,
			 int (*fn)(struct net_lock *nl, const struct net_conn *c))
{
	for (size_t i = 0; i < tree->nr; i++) {
		const struct rst_proc *p = &tree->procs[i];

		if (p->kind != RST_PROC_ALIVE)
			continue;
		for (size_t j = 0; j < p->ri.nr_fds; j++) {
			const InetSkEntry *ie = p->ri.fds[j].fe->isk;
			int ret;

			if (!tcp_conn_first(p, j))
				continue;
			ret = fn(nl, &(struct net_conn){ ie->family, ie->src_addr, ie->dst_addr,
							 ie->src_port, ie->dst_port });
			if (ret)
				return ret;
			(*count)++;
		}
	}
	return 0;
}

static int unlock_quiet(struct net_lock *nl, const struct net_conn *c)
{
	net_unlock_conn(nl, c, true);
	return 0;
}

/*
 * A tree restored into a network namespace of its own (net/netns-restore.c)
 * finds no lock there: the dump's was in the old namespace, gone with the
 * tree.  As CRIU does, the whole new namespace is locked before any socket
 * exists (net-lock.h), and unlocked in inet_tcp_finish.
 */
int inet_tcp_lock_new_netns(struct rst_tree *tree)
{
	struct net_lock nl;
	size_t conns = 0;
	int ret;

	lock_of_images(tree, &nl);
	if (nl.method == NETWORK_LOCK_SKIP)
		return 0;
	nl.whole_ns = true;
	ret = each_tcp_conn(tree, &nl, &conns, net_lock_conn);
	if (ret && conns)
		net_lock_finish(&nl, true);
	return ret;
}

int inet_tcp_finish(struct rst_tree *tree)
{
	struct net_lock nl;
	size_t conns = 0;
	int ret = 0;

	for (size_t i = 0; i < tree->nr && !ret; i++)
		if (tree->procs[i].kind == RST_PROC_ALIVE)
			ret = repair_off(&tree->procs[i]);
	if (ret)
		return ret;

	lock_of_images(tree, &nl);
	nl.whole_ns = tree->new_net_ns;
	each_tcp_conn(tree, &nl, &conns, unlock_quiet);
	if (conns)
		net_lock_finish(&nl, true);
	return 0;
}
