/*
 * Recording the working set of a lazy restore and writing it beside the
 * images.  Refinement rule: union in first-seen order -- what earlier
 * restores of the same images recorded keeps its place and its times, the
 * pages this restore touched first are appended in the order it touched
 * them.  A file from other images (or a damaged one) is replaced.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_PREFIX "lazy: working set: "
#include "common/array.h"
#include "common/log.h"
#include "lazy/working-set.h"

#define FNV_OFFSET	0xcbf29ce484222325ULL
#define FNV_PRIME	0x100000001b3ULL

static uint64_t fnv1a(uint64_t h, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * FNV_PRIME;
	return h;
}

void ws_init(struct working_set *ws, bool on, uint64_t start_ns)
{
	memset(ws, 0, sizeof(*ws));
	ws->on = on;
	ws->start_ns = start_ns;
}

static struct ws_proc *proc_get(struct working_set *ws, pid_t pid)
{
	for (size_t i = 0; i < ws->nr_procs; i++)
		if (ws->procs[i].pid == pid)
			return &ws->procs[i];
	if (ARRAY_GROW(ws->procs, ws->cap_procs, ws->nr_procs + 1, 8))
		return NULL;
	memset(&ws->procs[ws->nr_procs], 0, sizeof(ws->procs[0]));
	ws->procs[ws->nr_procs].pid = pid;
	return &ws->procs[ws->nr_procs++];
}

static size_t slot_of(uint64_t key, size_t cap)
{
	return (key * 0x9e3779b97f4a7c15ULL >> 17) & (cap - 1);
}

/* 1: added, 0: already there, -ENOMEM */
static int set_add(struct ws_proc *p, uint64_t img)
{
	uint64_t key = img + 1;
	size_t i;

	if ((p->nr + 1) * 2 > p->set_cap) {
		size_t cap = p->set_cap ? p->set_cap * 2 : 64;
		uint64_t *set = calloc(cap, sizeof(*set));

		if (!set)
			return -ENOMEM;
		for (size_t j = 0; j < p->set_cap; j++) {
			if (!p->set[j])
				continue;
			for (i = slot_of(p->set[j], cap); set[i]; i = (i + 1) & (cap - 1))
				;
			set[i] = p->set[j];
		}
		free(p->set);
		p->set = set;
		p->set_cap = cap;
	}
	for (i = slot_of(key, p->set_cap); p->set[i]; i = (i + 1) & (p->set_cap - 1))
		if (p->set[i] == key)
			return 0;
	p->set[i] = key;
	return 1;
}

static int add(struct working_set *ws, pid_t pid, uint64_t img, uint32_t ms)
{
	struct ws_proc *p = proc_get(ws, pid);
	int ret;

	if (!p)
		return -ENOMEM;
	if (ARRAY_GROW(p->e, p->cap, p->nr + 1, 64))
		return -ENOMEM;
	ret = set_add(p, img);
	if (ret == 1)
		p->e[p->nr++] = (struct ws_entry){ .img = img, .ms = ms };
	return ret;
}

bool ws_touch(struct working_set *ws, pid_t pid, uint64_t img, uint64_t now_ns)
{
	uint64_t ms = (now_ns - ws->start_ns) / 1000000;
	int ret;

	if (!ws->on)
		return false;
	ret = add(ws, pid, img, ms > UINT32_MAX ? UINT32_MAX : ms);
	if (ret < 0) {
		/* a partial record would mislead a prefetch: none at all */
		pr_warn("out of memory: not recorded");
		ws->on = false;
		return false;
	}
	return ret == 1;
}

const struct ws_proc *ws_prior(const struct working_set *ws, pid_t pid)
{
	if (!ws->prior)
		return NULL;
	for (size_t i = 0; i < ws->prior->nr_procs; i++)
		if (ws->prior->procs[i].pid == pid)
			return &ws->prior->procs[i];
	return NULL;
}

bool ws_proc_has(const struct ws_proc *p, uint64_t img)
{
	uint64_t key = img + 1;

	if (!p || !p->set_cap)
		return false;
	for (size_t i = slot_of(key, p->set_cap); p->set[i]; i = (i + 1) & (p->set_cap - 1))
		if (p->set[i] == key)
			return true;
	return false;
}

void ws_free(struct working_set *ws)
{
	for (size_t i = 0; i < ws->nr_procs; i++) {
		free(ws->procs[i].e);
		free(ws->procs[i].set);
	}
	free(ws->procs);
	ws->procs = NULL;
	ws->nr_procs = ws->cap_procs = 0;
	if (ws->prior) {
		ws_free(ws->prior);
		free(ws->prior);
		ws->prior = NULL;
	}
}

static int hash_file(int dirfd, const char *name, uint64_t *h)
{
	char buf[65536];
	ssize_t n;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;	/* a process without pages */
	*h = fnv1a(*h, name, strlen(name) + 1);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		*h = fnv1a(*h, buf, n);
	close(fd);
	return n < 0 ? -EIO : 0;
}

/* What the record is valid for: the tree and where each page was at dump time. */
static int images_identity(int dirfd, const pid_t *pids, size_t nr_pids, uint64_t *id)
{
	char name[64];
	int ret;

	*id = FNV_OFFSET;
	ret = hash_file(dirfd, "inventory.img", id);
	ret = ret ?: hash_file(dirfd, "pstree.img", id);
	for (size_t i = 0; i < nr_pids && !ret; i++) {
		snprintf(name, sizeof(name), "pagemap-%d.img", pids[i]);
		ret = hash_file(dirfd, name, id);
	}
	return ret;
}

struct ws_header {
	uint32_t magic, version;
	uint64_t identity;
	uint32_t restores, nr_procs;
};

struct ws_proc_header {
	int32_t pid;
	uint32_t nr_pages;
};

struct ws_file_entry {
	uint64_t img;
	uint32_t ms, pad;
};

static void *read_all(int dirfd, const char *name, size_t *len)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n;

	*len = 0;
	if (fd < 0)
		return NULL;
	for (;;) {
		if (ARRAY_GROW(buf, cap, *len + 1, 65536))
			break;
		n = read(fd, buf + *len, cap - *len);
		if (n <= 0) {
			if (!n) {
				close(fd);
				return buf;
			}
			break;
		}
		*len += n;
	}
	close(fd);
	free(buf);
	*len = 0;
	return NULL;
}

/*
 * Load the earlier record into old.  0 when it is there and matches, 1 when
 * there is none, -EINVAL (with the reason in why) when it must be replaced.
 */
static int load_old(struct working_set *old, int dirfd, uint64_t identity, const char **why)
{
	size_t len, off = sizeof(struct ws_header);
	char *buf = read_all(dirfd, WORKING_SET_NAME, &len);
	struct ws_header h;
	uint64_t sum;
	int ret = -EINVAL;

	if (!buf)
		return errno == ENOENT ? 1 : (*why = "unreadable", -EINVAL);
	*why = "damaged";
	if (len < sizeof(h) + sizeof(sum))
		goto out;
	memcpy(&h, buf, sizeof(h));
	memcpy(&sum, buf + len - sizeof(sum), sizeof(sum));
	if (h.magic != WORKING_SET_MAGIC || fnv1a(FNV_OFFSET, buf, len - sizeof(sum)) != sum)
		goto out;
	if (h.version != WORKING_SET_VERSION) {
		*why = "of another version";
		goto out;
	}
	if (h.identity != identity) {
		*why = "recorded from other images";
		goto out;
	}
	len -= sizeof(sum);
	for (uint32_t i = 0; i < h.nr_procs; i++) {
		struct ws_proc_header ph;

		if (len - off < sizeof(ph))
			goto out;
		memcpy(&ph, buf + off, sizeof(ph));
		off += sizeof(ph);
		if ((len - off) / sizeof(struct ws_file_entry) < ph.nr_pages)
			goto out;
		for (uint32_t j = 0; j < ph.nr_pages; j++, off += sizeof(struct ws_file_entry)) {
			struct ws_file_entry fe;

			memcpy(&fe, buf + off, sizeof(fe));
			if (add(old, ph.pid, fe.img, fe.ms) < 0) {
				*why = "too large for memory";
				goto out;
			}
		}
	}
	if (off == len) {
		old->restores = h.restores;
		ret = 0;
	}
out:
	free(buf);
	return ret;
}

/* The file goes out through a buffer: one write per entry was 25,000 writes. */
struct wbuf {
	int fd;
	size_t n;
	uint64_t sum;		/* of everything put so far */
	char b[64 << 10];
};

static int wbuf_flush(struct wbuf *w)
{
	ssize_t done = w->n ? write(w->fd, w->b, w->n) : 0;

	if (done != (ssize_t)w->n)
		return done < 0 ? -errno : -EIO;
	w->n = 0;
	return 0;
}

static int write_all(struct wbuf *w, const void *buf, size_t len)
{
	int ret = 0;

	w->sum = fnv1a(w->sum, buf, len);
	if (w->n + len > sizeof(w->b))
		ret = wbuf_flush(w);
	if (!ret) {
		memcpy(w->b + w->n, buf, len);
		w->n += len;
	}
	return ret;
}

static int write_file(const struct working_set *ws, int dirfd, uint64_t identity)
{
	static const char tmp[] = WORKING_SET_NAME ".tmp";
	struct ws_header h = { WORKING_SET_MAGIC, WORKING_SET_VERSION, identity,
			       ws->restores, ws->nr_procs };
	struct wbuf *w = malloc(sizeof(*w));
	int fd, ret;

	if (!w) {
		pr_warn("not written: out of memory");
		return -ENOMEM;
	}
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = -errno;
		pr_warn("not written: create %s: %s", tmp, strerror(-ret));
		free(w);
		return ret;
	}
	*w = (struct wbuf){ .fd = fd, .sum = FNV_OFFSET };
	ret = write_all(w, &h, sizeof(h));
	for (size_t i = 0; i < ws->nr_procs && !ret; i++) {
		const struct ws_proc *p = &ws->procs[i];
		struct ws_proc_header ph = { p->pid, p->nr };

		ret = write_all(w, &ph, sizeof(ph));
		for (size_t j = 0; j < p->nr && !ret; j++) {
			struct ws_file_entry fe = { p->e[j].img, p->e[j].ms, 0 };

			ret = write_all(w, &fe, sizeof(fe));
		}
	}
	if (!ret) {
		uint64_t s = w->sum;

		ret = write_all(w, &s, sizeof(s)) ?: wbuf_flush(w);
	}
	free(w);
	if (!ret && fsync(fd))
		ret = -errno;
	if (close(fd) && !ret)
		ret = -EIO;
	if (!ret && renameat(dirfd, tmp, dirfd, WORKING_SET_NAME))
		ret = -errno;
	if (ret) {
		pr_warn("not written: %s: %s", tmp, strerror(-ret));
		unlinkat(dirfd, tmp, 0);
		return ret;
	}
	fsync(dirfd);	/* the rename itself */
	return 0;
}

void ws_open(struct working_set *ws, int dirfd, const pid_t *pids, size_t nr_pids)
{
	struct working_set *old;
	const char *why = NULL;
	int ret;

	if (!ws->on)
		return;
	ret = images_identity(dirfd, pids, nr_pids, &ws->identity);
	if (ret) {
		pr_warn("off: cannot read the images for their identity: %s", strerror(-ret));
		ws->on = false;
		return;
	}
	old = malloc(sizeof(*old));
	if (!old) {
		pr_warn("off: out of memory");
		ws->on = false;
		return;
	}
	ws_init(old, true, ws->start_ns);
	ret = load_old(old, dirfd, ws->identity, &why);
	if (ret) {
		/* the one line about it: not used now, replaced at the end */
		if (ret < 0)
			pr_warn("ignoring %s: %s (no prefetch; replaced when this restore ends)",
				WORKING_SET_NAME, why);
		ws_free(old);
		free(old);
		return;
	}
	ws->prior = old;
}

void ws_write(struct working_set *ws, int dirfd)
{
	/* the other refinement rule, kept for scripts/bench prefetch to measure */
	const char *rule = getenv("CRIU_LAZY_WS_MERGE");
	bool newest = rule && !strcmp(rule, "newest");
	struct working_set merged;
	int ret = 0;

	if (!ws->on)
		return;
	ws_init(&merged, true, ws->start_ns);
	/* union: what was recorded before keeps its place, this restore's new pages after */
	for (size_t i = 0; ws->prior && !newest && i < ws->prior->nr_procs && ret >= 0; i++)
		for (size_t j = 0; j < ws->prior->procs[i].nr && ret >= 0; j++)
			ret = add(&merged, ws->prior->procs[i].pid, ws->prior->procs[i].e[j].img,
				  ws->prior->procs[i].e[j].ms);
	for (size_t i = 0; i < ws->nr_procs && ret >= 0; i++)
		for (size_t j = 0; j < ws->procs[i].nr && ret >= 0; j++)
			ret = add(&merged, ws->procs[i].pid, ws->procs[i].e[j].img,
				  ws->procs[i].e[j].ms);
	if (ret < 0) {
		pr_warn("not written: out of memory");
	} else {
		merged.restores = (ws->prior && !newest ? ws->prior->restores : 0) + 1;
		if (!write_file(&merged, dirfd, ws->identity)) {
			size_t total = 0;

			for (size_t i = 0; i < merged.nr_procs; i++)
				total += merged.procs[i].nr;
			pr_info("%zu page(s) of %zu process(es) written to %s (%u restore(s))",
				total, merged.nr_procs, WORKING_SET_NAME, merged.restores);
		}
	}
	ws_free(&merged);
}
