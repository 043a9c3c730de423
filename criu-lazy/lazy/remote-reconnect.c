/*
 * Back to a page server that went away (see remote-reconnect.h).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/mono-time.h"
#include "lazy/remote-reconnect.h"
#include "pageserver/ps-io.h"

#define CHECK_TIMEOUT_MS 5000	/* per fingerprint page */

static uint64_t fnv1a64(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static bool all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

static void note(struct rc_fingerprints *f, uint64_t id, bool shmem, uint64_t vaddr,
		 const void *page)
{
	if (f->nr == RC_FINGERPRINTS || all_zero(page, PS_PAGE_SIZE))
		return;
	f->fp[f->nr].id = id;
	f->fp[f->nr].shmem = shmem;
	f->fp[f->nr].vaddr = vaddr;
	f->fp[f->nr].hash = fnv1a64(page, PS_PAGE_SIZE);
	f->nr++;
}

void rc_fingerprint_note(struct rc_fingerprints *f, pid_t pid, uint64_t vaddr,
			 const void *page)
{
	note(f, (uint64_t)pid, false, vaddr, page);
}

void rc_fingerprint_note_shmem(struct rc_fingerprints *f, uint64_t shmid, uint64_t off,
			       const void *page)
{
	note(f, shmid, true, off, page);
}

/*
 * GET each fingerprinted page again on the new connection: 0, -EIO (it is
 * not the same source: logged), or an I/O error (not logged).
 */
static int check_fingerprints(struct rc_conn *c, const struct rc_fingerprints *f)
{
	for (unsigned int i = 0; i < f->nr; i++) {
		bool shm = f->fp[i].shmem;
		struct page_server_iov req = {
			.cmd = shm ? PS_IOV_GET_SHMEM : PS_IOV_GET,
			.nr_pages = 1,
			.vaddr = f->fp[i].vaddr,
			.dst_id = shm ? ps_dst_encode(PS_DST_SHMEM, f->fp[i].id) : f->fp[i].id,
		}, hdr;
		const char *what = shm ? "shared memory" : "task";
		int ret = ps_write_full(&c->sk, &req, sizeof(req), CHECK_TIMEOUT_MS) ?:
			  ps_read_full(&c->sk, &hdr, sizeof(hdr), CHECK_TIMEOUT_MS);

		if (ret)
			return ret;
		if (hdr.cmd != PS_GET_REPLY_CMD || hdr.nr_pages != 1 || hdr.vaddr != req.vaddr ||
		    hdr.dst_id != req.dst_id) {
			pr_err("page server %s came back but does not serve %s %llu 0x%llx any "
			       "more: not the same pages, not resuming", c->peer, what,
			       (unsigned long long)f->fp[i].id, (unsigned long long)f->fp[i].vaddr);
			return -EIO;
		}
		ret = ps_read_full(&c->sk, c->buf, PS_PAGE_SIZE, CHECK_TIMEOUT_MS);
		if (ret)
			return ret;
		if (fnv1a64(c->buf, PS_PAGE_SIZE) != f->fp[i].hash) {
			pr_err("page server %s came back with other data at %s %llu 0x%llx than it "
			       "served before: not the same pages, not resuming", c->peer, what,
			       (unsigned long long)f->fp[i].id, (unsigned long long)f->fp[i].vaddr);
			return -EIO;
		}
	}
	return 0;
}

/* Sleep up to ms, or less when a stop signal is waiting: -EINTR then. */
static int pause_for(int signal_fd, int ms)
{
	struct pollfd p = { .fd = signal_fd, .events = POLLIN };
	int n = poll(&p, signal_fd >= 0 ? 1 : 0, ms);

	if (n > 0)
		return -EINTR;
	return 0;
}

int rc_reconnect(struct rc_conn *c, const char *role, uint64_t end_ns, bool wait_first,
		 int signal_fd, uint64_t left, const struct rc_fingerprints *f, rc_open_fn open,
		 void *arg)
{
	const char *peer = c->peer;
	unsigned int tries = 0;
	int ret = -ETIMEDOUT;
	char why[512] = "";

	/* a server that takes the connection and drops it again is not hammered */
	if (wait_first && pause_for(signal_fd, RC_RETRY_MS))
		goto stopped;
	while ((uint64_t)mono_ns() < end_ns) {
		tries++;
		why[0] = '\0';
		ret = open(arg, c, role, why, sizeof(why));
		if (ret == -ENOMEM)
			return ret;
		if (!ret) {
			ret = check_fingerprints(c, f);
			if (!ret)
				return 0;
			rc_conn_close(c);
			if (ret == -EIO)
				return ret;
			/* gone again before it answered: keep trying */
		}
		if (!why[0])
			snprintf(why, sizeof(why), "%s", strerror(-ret));
		pr_debug("page server %s: reconnect %u (%s connection): %s", peer, tries, role, why);
		if (pause_for(signal_fd, RC_RETRY_MS))
			goto stopped;
	}
	if (!tries)
		pr_err("page server %s: no %s connection that answers within the reconnect time, "
		       "with %llu pages still to deliver (it closed again before any reply)", peer,
		       role, (unsigned long long)left);
	else
		pr_err("page server %s: no %s connection that answers within the reconnect time, "
		       "with %llu pages still to deliver (%u tries, last: %s)", peer, role,
		       (unsigned long long)left, tries, why[0] ? why : strerror(-ret));
	return -ETIMEDOUT;
stopped:
	pr_err("page server %s: stopped by a signal while reconnecting the %s connection, with "
	       "%llu pages still to deliver", peer, role, (unsigned long long)left);
	return -EINTR;
}
