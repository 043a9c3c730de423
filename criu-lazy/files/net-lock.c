/*
 * --network-lock: iptables rules or an nftables table that drop the
 * packets of the connections being checkpointed (net-lock.h says what
 * each method does).  The tools run as child processes, never through a
 * shell; their first line on stderr goes into our one error line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "common/mono-time.h"
#include "files/net-lock.h"
#include "net/netns.h"
#include "options.h"

#define TOOL_TIMEOUT_MS	30000

const char *net_lock_name(int method)
{
	switch (method) {
	case NETWORK_LOCK_IPTABLES: return "iptables";
	case NETWORK_LOCK_NFTABLES: return "nftables";
	case NETWORK_LOCK_SKIP: return "skip";
	}
	return "?";
}

void net_lock_init(struct net_lock *nl, int method, const char *run_id)
{
	memset(nl, 0, sizeof(*nl));
	nl->method = method;
	snprintf(nl->table, sizeof(nl->table), "inet CRIU-%s", run_id);
}

static const char *tool_of(int method, int family)
{
	if (method == NETWORK_LOCK_NFTABLES)
		return "nft";
	return family == AF_INET6 ? "ip6tables" : "iptables";
}

int net_lock_check_tool(int method, int family, const char *who)
{
	const char *tool;

	if (method == NETWORK_LOCK_SKIP)
		return 0;
	tool = tool_of(method, family);
	if (net_tool_found(tool))
		return 0;
	pr_err("%s: --network-lock %s needs %s, which is not in PATH (Debian package %s); "
	       "or choose another --network-lock", who, net_lock_name(method), tool,
	       method == NETWORK_LOCK_NFTABLES ? "nftables" : "iptables");
	return -ENOENT;
}

/* Run argv with @input on its stdin; 0 if it exits 0, else -EIO with its
 * first stderr line in @why. */
static int run_tool(char *const argv[], const char *input, char *why, size_t why_size)
{
	int in[2], err[2], status = 0, ret = 0;
	char out[1024];
	size_t got = 0;
	int64_t t0;
	pid_t pid;

	why[0] = '\0';
	if (pipe2(in, O_CLOEXEC))
		return -errno;
	if (pipe2(err, O_CLOEXEC)) {
		ret = -errno;
		goto close_in;
	}
	pid = fork();
	if (pid < 0) {
		ret = -errno;
		goto close_err;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(in[0], 0);
		dup2(null, 1);
		dup2(err[1], 2);
		execvp(argv[0], argv);
		dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(err[1]);
	in[0] = err[1] = -1;
	if (input && write(in[1], input, strlen(input)) < 0)
		pr_debug("writing to %s: %m", argv[0]);
	close(in[1]);
	in[1] = -1;

	t0 = mono_ms();
	for (;;) {
		struct pollfd pfd = { .fd = err[0], .events = POLLIN };
		int64_t left = TOOL_TIMEOUT_MS - (mono_ms() - t0);
		ssize_t n;

		if (left <= 0 || poll(&pfd, 1, (int)left) == 0) {
			kill(pid, SIGKILL);
			snprintf(why, why_size, "%s did not finish within %d s", argv[0],
				 TOOL_TIMEOUT_MS / 1000);
			ret = -ETIMEDOUT;
			break;
		}
		n = read(err[0], out + got, sizeof(out) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += n;
		if (got == sizeof(out) - 1)
			got = 0;	/* only the first line matters: keep reading */
	}
	out[got] = '\0';
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!ret && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		char *nl = strchr(out, '\n');

		if (nl)
			*nl = '\0';
		if (out[0])
			snprintf(why, why_size, "%.*s", (int)why_size - 1, out);
		else if (WIFEXITED(status))
			snprintf(why, why_size, "%s exited with %d", argv[0], WEXITSTATUS(status));
		else
			snprintf(why, why_size, "%s was killed by signal %d", argv[0],
				 WTERMSIG(status));
		ret = -EIO;
	}
	pr_debug("ran %s %s %s ...: %s", argv[0], argv[1] ? argv[1] : "",
		 argv[1] && argv[2] ? argv[2] : "", ret ? why : "ok");
close_err:
	if (err[0] >= 0)
		close(err[0]);
	if (err[1] >= 0)
		close(err[1]);
close_in:
	if (in[0] >= 0)
		close(in[0]);
	if (in[1] >= 0)
		close(in[1]);
	return ret;
}

/* IPv4-mapped IPv6 addresses go through the IPv4 tables, as CRIU does. */
static void conn_addrs(const struct net_conn *c, int *family, char *src, char *dst)
{
	const uint32_t *s = c->src, *d = c->dst;

	*family = c->family;
	if (c->family == AF_INET6 && d[0] == 0 && d[1] == 0 && d[2] == htonl(0xffff)) {
		*family = AF_INET;
		s = &s[3];
		d = &d[3];
	}
	inet_ntop(*family, s, src, INET6_ADDRSTRLEN);
	inet_ntop(*family, d, dst, INET6_ADDRSTRLEN);
}

/* One rule: packets from @from:@fport to @to:@tport in @chain. */
static int iptables_rule(int family, bool add, const char *chain, const char *from,
			 uint32_t fport, const char *to, uint32_t tport, char *why, size_t size)
{
	char sp[8], dp[8], mark[16];
	char *argv[] = { family == AF_INET6 ? "ip6tables" : "iptables", "-w", "10", "-t",
			 "filter", add ? "-I" : "-D", (char *)chain, "--protocol", "tcp", "-m",
			 "mark", "!", "--mark", mark, "--source", (char *)from, "--sport", sp,
			 "--destination", (char *)to, "--dport", dp, "-j", "DROP", NULL };

	snprintf(sp, sizeof(sp), "%u", fport);
	snprintf(dp, sizeof(dp), "%u", tport);
	snprintf(mark, sizeof(mark), "%#x", NET_LOCK_MARK);
	return run_tool(argv, NULL, why, size);
}

static int iptables_switch(const struct net_conn *c, bool lock, bool quiet)
{
	char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN], why[256];
	int family, ret;

	conn_addrs(c, &family, src, dst);
	ret = iptables_rule(family, lock, "INPUT", dst, c->dport, src, c->sport, why,
			    sizeof(why));
	if (!ret) {
		ret = iptables_rule(family, lock, "OUTPUT", src, c->sport, dst, c->dport, why,
				    sizeof(why));
		if (ret && lock)	/* take the first one back */
			iptables_rule(family, false, "INPUT", dst, c->dport, src, c->sport,
				      (char[256]){ 0 }, 256);
	}
	if (ret && !quiet)
		pr_err("--network-lock iptables: cannot %s the connection %s:%u - %s:%u: %s",
		       lock ? "lock" : "unlock", src, c->sport, dst, c->dport, why);
	else if (ret)
		pr_warn("--network-lock iptables: no lock to remove for %s:%u - %s:%u (%s)",
			src, c->sport, dst, c->dport, why);
	return ret && !quiet ? ret : 0;
}

static int nft_run(const char *script, char *why, size_t size)
{
	char *argv[] = { "nft", "-f", "-", NULL };

	return run_tool(argv, script, why, size);
}

/* The table, its chains and sets, all at once (nft -f is one transaction):
 * what carries the mark passes; then the connections' sets drop, or with
 * whole_ns every other packet. */
static int nft_make_table(struct net_lock *nl)
{
	char script[2048], why[256];
	int n, ret;

	n = snprintf(script, sizeof(script),
		     "add table %1$s\n"
		     "add chain %1$s output { type filter hook output priority 0; }\n"
		     "add rule %1$s output meta mark %2$#x accept\n"
		     "add chain %1$s input { type filter hook input priority 0; }\n"
		     "add rule %1$s input meta mark %2$#x accept\n", nl->table, NET_LOCK_MARK);
	if (nl->whole_ns)
		snprintf(script + n, sizeof(script) - n,
			 "add rule %1$s output drop\n"
			 "add rule %1$s input drop\n", nl->table);
	else
		snprintf(script + n, sizeof(script) - n,
			 "add set %1$s conns4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; }\n"
			 "add rule %1$s output ip saddr . tcp sport . ip daddr . tcp dport @conns4 drop\n"
			 "add rule %1$s input ip saddr . tcp sport . ip daddr . tcp dport @conns4 drop\n"
			 "add set %1$s conns6 { type ipv6_addr . inet_service . ipv6_addr . inet_service; }\n"
			 "add rule %1$s output ip6 saddr . tcp sport . ip6 daddr . tcp dport @conns6 drop\n"
			 "add rule %1$s input ip6 saddr . tcp sport . ip6 daddr . tcp dport @conns6 drop\n",
			 nl->table);
	ret = nft_run(script, why, sizeof(why));
	if (ret)
		pr_err("--network-lock nftables: cannot %s with the table %s: %s",
		       nl->whole_ns ? "lock the tree's network namespace" : "lock the connections",
		       nl->table, why);
	else
		nl->table_made = true;
	return ret;
}

static int nft_lock(struct net_lock *nl, const struct net_conn *c)
{
	char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN], script[512], why[256];
	int family, ret;

	if (!nl->table_made) {
		ret = nft_make_table(nl);
		if (ret)
			return ret;
	}
	conn_addrs(c, &family, src, dst);
	snprintf(script, sizeof(script),
		 "add element %1$s conns%2$c { %3$s . %4$u . %5$s . %6$u }\n"
		 "add element %1$s conns%2$c { %5$s . %6$u . %3$s . %4$u }\n",
		 nl->table, family == AF_INET ? '4' : '6', dst, c->dport, src, c->sport);
	ret = nft_run(script, why, sizeof(why));
	if (ret)
		pr_err("--network-lock nftables: cannot lock the connection %s:%u - %s:%u: %s",
		       src, c->sport, dst, c->dport, why);
	return ret;
}

/* CRIU's chain, added or deleted by iptables-restore --noflush */
static const char ns_lock_rules[] =
	"*filter\n"
	":CRIU - [0:0]\n"
	"-I INPUT -j CRIU\n"
	"-I OUTPUT -j CRIU\n"
	"-A CRIU -m mark --mark 0xc114 -j ACCEPT\n"
	"-A CRIU -j DROP\n"
	"COMMIT\n";
static const char ns_unlock_rules[] =
	"*filter\n"
	":CRIU - [0:0]\n"
	"-D INPUT -j CRIU\n"
	"-D OUTPUT -j CRIU\n"
	"-X CRIU\n"
	"COMMIT\n";

static int ns_iptables(bool lock, bool quiet)
{
	char why[256];
	int ret = 0;

	for (int v6 = 0; v6 < 2 && !ret; v6++) {
		char *argv[] = { v6 ? "ip6tables-restore" : "iptables-restore", "-w", "10",
				 "--noflush", NULL };

		if (v6 && access("/proc/sys/net/ipv6", F_OK))
			break;
		ret = run_tool(argv, lock ? ns_lock_rules : ns_unlock_rules, why, sizeof(why));
		if (ret && quiet) {
			pr_warn("--network-lock iptables: no lock of the namespace to remove (%s)",
				why);
			ret = 0;
		} else if (ret) {
			pr_err("--network-lock iptables: cannot %s the tree's network namespace: "
			       "%s: %s", lock ? "lock" : "unlock", argv[0], why);
		}
	}
	return ret;
}

/* The whole namespace, once. */
static int ns_lock(struct net_lock *nl, int family)
{
	int ret;

	if (nl->ns_locked)
		return 0;
	ret = net_lock_check_tool(nl->method, family, "the tree's network namespace to lock");
	if (ret)
		return ret;
	if (nl->method == NETWORK_LOCK_IPTABLES)
		ret = ns_iptables(true, false);
	else if (nl->method == NETWORK_LOCK_NFTABLES)
		ret = nft_make_table(nl);
	nl->ns_locked = !ret;
	return ret;
}

int net_lock_conn(struct net_lock *nl, const struct net_conn *c)
{
	int ret;

	if (nl->whole_ns)
		return nl->method == NETWORK_LOCK_SKIP ? 0 : ns_lock(nl, c->family);
	ret = net_lock_check_tool(nl->method, c->family, "a TCP connection to lock");
	if (ret)
		return ret;
	switch (nl->method) {
	case NETWORK_LOCK_IPTABLES:
		return iptables_switch(c, true, false);
	case NETWORK_LOCK_NFTABLES:
		return nft_lock(nl, c);
	}
	return 0;
}

int net_unlock_conn(struct net_lock *nl, const struct net_conn *c, bool quiet)
{
	if (nl->whole_ns)
		return 0;	/* net_lock_finish */
	if (nl->method == NETWORK_LOCK_IPTABLES)
		return iptables_switch(c, false, quiet);
	return 0;	/* nftables: the whole table goes at the end */
}

int net_lock_finish(struct net_lock *nl, bool quiet)
{
	char script[128], why[256];
	int ret;

	if (nl->whole_ns && nl->method == NETWORK_LOCK_IPTABLES && (nl->ns_locked || quiet)) {
		ret = ns_iptables(false, quiet);
		nl->ns_locked = ret != 0;
		return ret;
	}
	if (nl->method != NETWORK_LOCK_NFTABLES || (!nl->table_made && !quiet))
		return 0;
	snprintf(script, sizeof(script), "delete table %s\n", nl->table);
	ret = nft_run(script, why, sizeof(why));
	if (ret && !quiet) {
		pr_err("--network-lock nftables: cannot delete the table %s: %s", nl->table, why);
		return ret;
	}
	if (ret)
		pr_warn("--network-lock nftables: no table %s to delete (%s)", nl->table, why);
	nl->table_made = false;
	return 0;
}
