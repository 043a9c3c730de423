/*
 * A segment from the peer of a restored connection to the connection
 * itself, built by hand and sent through a raw socket: the only way to put
 * a received FIN back into a receive queue (or to acknowledge our own FIN
 * as the peer did), since repair mode has no option for it.  CRIU does the
 * same through libnet.  The segment carries the lock's mark, so the
 * network lock lets it through.
 *
 * IPv4 and IPv6 headers are ours (IPPROTO_RAW: the kernel adds none), so
 * the source address is the peer's even when it lives on another host; the
 * TCP checksum covers the pseudo header as RFC 793 / RFC 8200 say.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "files/net-lock.h"
#include "files/tcp-stream.h"

static uint32_t sum16(const void *data, size_t len, uint32_t sum)
{
	const uint8_t *p = data;

	for (; len > 1; p += 2, len -= 2)
		sum += (p[0] << 8) | p[1];
	if (len)
		sum += p[0] << 8;
	return sum;
}

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons(~sum & 0xffff);
}

int tcp_fin_inject(const InetSkEntry *ie, uint32_t seq, uint32_t ack, uint16_t win, bool fin,
		   char *why, size_t why_size)
{
	uint8_t pkt[sizeof(struct ip6_hdr) + sizeof(struct tcphdr)] = { 0 };
	struct sockaddr_storage to = { 0 };
	struct tcphdr *th;
	size_t iplen, total;
	socklen_t tolen;
	uint32_t sum = 0;
	int mark = NET_LOCK_MARK, sk, ret = 0;

	if (ie->family == AF_INET) {
		struct iphdr *ip = (void *)pkt;
		struct sockaddr_in *in = (void *)&to;

		iplen = sizeof(*ip);
		total = iplen + sizeof(*th);
		ip->version = 4;
		ip->ihl = 5;
		ip->tot_len = htons(total);
		ip->ttl = 64;
		ip->protocol = IPPROTO_TCP;
		memcpy(&ip->saddr, ie->dst_addr, 4);	/* from the peer */
		memcpy(&ip->daddr, ie->src_addr, 4);	/* to us */
		sum = sum16(&ip->saddr, 8, 0);
		in->sin_family = AF_INET;
		memcpy(&in->sin_addr, ie->src_addr, 4);
		tolen = sizeof(*in);
	} else {
		struct ip6_hdr *ip6 = (void *)pkt;
		struct sockaddr_in6 *in6 = (void *)&to;

		iplen = sizeof(*ip6);
		total = iplen + sizeof(*th);
		ip6->ip6_flow = htonl(6u << 28);
		ip6->ip6_plen = htons(sizeof(*th));
		ip6->ip6_nxt = IPPROTO_TCP;
		ip6->ip6_hlim = 64;
		memcpy(&ip6->ip6_src, ie->dst_addr, 16);
		memcpy(&ip6->ip6_dst, ie->src_addr, 16);
		sum = sum16(&ip6->ip6_src, 32, 0);
		in6->sin6_family = AF_INET6;
		memcpy(&in6->sin6_addr, ie->src_addr, 16);
		tolen = sizeof(*in6);
	}
	th = (void *)(pkt + iplen);
	th->source = htons(ie->dst_port);
	th->dest = htons(ie->src_port);
	th->seq = htonl(seq);
	th->ack_seq = htonl(ack);
	th->doff = sizeof(*th) / 4;
	th->ack = 1;
	th->fin = fin;
	th->window = htons(win);
	sum += IPPROTO_TCP + sizeof(*th);	/* pseudo header: protocol, length */
	th->check = fold(sum16(th, sizeof(*th), sum));

	sk = socket(ie->family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	if (sk < 0) {
		snprintf(why, why_size, "raw socket: %s", strerror(errno));
		return -errno;
	}
	if (setsockopt(sk, SOL_SOCKET, SO_MARK, &mark, sizeof(mark))) {
		ret = -errno;
		snprintf(why, why_size, "SO_MARK on a raw socket: %s", strerror(errno));
	} else if (sendto(sk, pkt, total, 0, (struct sockaddr *)&to, tolen) != (ssize_t)total) {
		ret = -errno;
		snprintf(why, why_size, "sending a raw segment: %s", strerror(errno));
	}
	close(sk);
	return ret;
}
