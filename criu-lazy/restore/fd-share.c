/*
 * Files shared between the processes of a tree: one open file description
 * held by several processes (inherited across fork), or objects made
 * together (both ends of a pipe, a socketpair) whose parts are held by
 * different processes.  Each must be created once, by one process, and
 * handed to the others, as CRIU does with its "master" fd and per-task
 * transport sockets.
 *
 * Groups.  A file's group is its kind's share_key() (files/fd-kind.h: the
 * pipe inode for a pipe end, the pair for a socketpair end), or the file
 * alone.  The owner of a group is the first process of the tree (pstree
 * order: parents first) that holds any file of it.  A group held by one
 * process only is that process's business, as before.  For the others
 * (rst_share_plan(), in the restore process before any task exists) each
 * file of the group that a process other than the owner holds gets an
 * entry: its id, its owner, those holders.
 *
 * Transport.  Every process that receives files gets a datagram socket of
 * its own, created and autobound here (an abstract name the kernel picks,
 * so no name of ours can clash); every task inherits all of them (it is a
 * fork of us) and keeps its own (child_share_prepare()).  The owner
 * sends each file (an id and the fd, SCM_RIGHTS) to each holder's name from
 * a socket of its own.  Sends never block: a full queue is answered by
 * draining our own queue (what comes is stashed) and trying again, so two
 * tasks sending to each other cannot deadlock.
 *
 * In a task, per fd stage (restore/fds.c): first what the task owns (its
 * own fds, then the files of its groups only others hold), then it sends
 * what others hold, then it takes what others own, waiting for each.  No
 * task waits within a stage for anything but files owned by others, which
 * their owners create without waiting: no cycle.  An owner comes before
 * every process that waits for it in pstree order, the order in which the
 * restore process waits for the tasks: if an owner fails, its own line is
 * the one printed, and the tree killed, before any waiter times out.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "restore/restore.h"

#define SHARE_WAIT_MS	60000	/* for a file from its owner */

/* What one process holds of a group: the entries rst_share_plan() sorts. */
struct share_ref {
	const void *ns;			/* the kind, for share_key() groups; NULL: by id */
	uint64_t key;
	uint32_t id;
	int proc;
	const struct rst_fd *fd;
};

/* On the wire: which file comes with the fd. */
struct share_msg {
	uint32_t id;
	int32_t from;			/* the owner's pid, for messages */
};

static int ref_cmp(const void *a, const void *b)
{
	const struct share_ref *x = a, *y = b;

	if (x->ns != y->ns)
		return (uintptr_t)x->ns < (uintptr_t)y->ns ? -1 : 1;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->proc - y->proc;
}

static bool same_group(const struct share_ref *a, const struct share_ref *b)
{
	return a->ns == b->ns && a->key == b->key;
}

static int gather_refs(struct rst_tree *tree, struct share_ref **refs, size_t *nr)
{
	size_t n = 0, k = 0;

	for (size_t i = 0; i < tree->nr; i++)
		if (tree->procs[i].kind == RST_PROC_ALIVE)
			n += tree->procs[i].ri.nr_fds;
	*refs = calloc(n ? n : 1, sizeof(**refs));
	if (!*refs)
		return -ENOMEM;
	for (size_t i = 0; i < tree->nr; i++) {
		const struct rst_images *ri = &tree->procs[i].ri;

		if (tree->procs[i].kind != RST_PROC_ALIVE)
			continue;
		for (size_t j = 0; j < ri->nr_fds; j++) {
			const struct rst_fd *f = &ri->fds[j];
			struct share_ref *r = &(*refs)[k++];

			r->ns = f->ops->share_key ? (const void *)f->ops : NULL;
			r->key = f->ops->share_key ? f->ops->share_key(ri, f->fe) : f->fe->id;
			r->id = f->fe->id;
			r->proc = i;
			r->fd = f;
		}
	}
	*nr = k;
	qsort(*refs, k, sizeof(**refs), ref_cmp);
	return 0;
}

static int add_file(struct rst_share *s, const struct share_ref *r, int owner)
{
	struct rst_share_file *grown, *sf;

	grown = realloc(s->files, (s->nr + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	s->files = grown;
	sf = &s->files[s->nr++];
	memset(sf, 0, sizeof(*sf));
	sf->id = r->id;
	sf->owner = owner;
	sf->fd = *r->fd;
	return 0;
}

static int add_holder(struct rst_share_file *sf, int proc)
{
	int *grown;

	if (sf->nr_holders && sf->holders[sf->nr_holders - 1] == proc)
		return 0;	/* another fd of the same process */
	grown = realloc(sf->holders, (sf->nr_holders + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	sf->holders = grown;
	sf->holders[sf->nr_holders++] = proc;
	return 0;
}

/* One group, refs[0..n): owner and holders of each file others hold. */
static int plan_group(struct rst_share *s, const struct share_ref *refs, size_t n)
{
	int owner = refs[0].proc;
	uint32_t last = 0;
	bool have = false;

	for (size_t i = 1; i < n; i++)
		if (refs[i].proc < owner)
			owner = refs[i].proc;
	for (size_t i = 0; i < n; i++) {
		int ret;

		if (refs[i].proc == owner)
			continue;
		if (!have || refs[i].id != last) {
			ret = add_file(s, &refs[i], owner);
			if (ret)
				return ret;
			last = refs[i].id;
			have = true;
		}
		ret = add_holder(&s->files[s->nr - 1], refs[i].proc);
		if (ret)
			return ret;
	}
	return 0;
}

static int file_cmp(const void *a, const void *b)
{
	const struct rst_share_file *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* A datagram socket with a name of the kernel's choosing for process @i. */
static int make_socket(struct rst_tree *tree, int i)
{
	struct rst_share *s = &tree->share;
	struct sockaddr_un *sun = &s->addr[i];
	socklen_t len = sizeof(sa_family_t);
	int sk = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (sk < 0) {
		pr_perror("a socket to pass files to task %d", tree->procs[i].pid);
		return -errno;
	}
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (bind(sk, (struct sockaddr *)sun, len)) {
		pr_perror("binding the socket that passes files to task %d", tree->procs[i].pid);
		close(sk);
		return -errno;
	}
	len = sizeof(*sun);
	if (getsockname(sk, (struct sockaddr *)sun, &len)) {
		pr_perror("the name of the socket that passes files to task %d",
			  tree->procs[i].pid);
		close(sk);
		return -errno;
	}
	s->addr_len[i] = len;
	s->sk[i] = sk;
	return 0;
}

/*
 * Processes that share their cwd (CLONE_FS) take turns to change it
 * (child_cwd_lock()): a flock() on a file of this restore's own, which each
 * opens again (a lock belongs to an open file description).
 */
static int make_fs_lock(struct rst_tree *tree)
{
	for (size_t i = 0; i < tree->nr; i++) {
		const struct rst_proc *p = &tree->procs[i];

		if (p->kind != RST_PROC_ALIVE)
			continue;
		for (size_t j = i + 1; j < tree->nr; j++) {
			if (tree->procs[j].kind != RST_PROC_ALIVE ||
			    tree->procs[j].ri.ids->fs_id != p->ri.ids->fs_id)
				continue;
			tree->share.fs_lock_src = memfd_create("criu-lazy-cwd-lock", MFD_CLOEXEC);
			if (tree->share.fs_lock_src < 0) {
				pr_perror("memfd_create for the processes sharing their cwd");
				return -errno;
			}
			return 0;
		}
	}
	return 0;
}

int rst_share_plan(struct rst_tree *tree)
{
	struct rst_share *s = &tree->share;
	struct share_ref *refs;
	size_t nr, start = 0;
	int ret;

	s->sk = malloc(tree->nr * sizeof(*s->sk));
	s->addr = calloc(tree->nr, sizeof(*s->addr));
	s->addr_len = calloc(tree->nr, sizeof(*s->addr_len));
	s->pids = calloc(tree->nr, sizeof(*s->pids));
	if (!s->sk || !s->addr || !s->addr_len || !s->pids)
		return -ENOMEM;
	s->fs_lock_src = -1;
	for (size_t i = 0; i < tree->nr; i++) {
		s->sk[i] = -1;
		s->pids[i] = tree->procs[i].pid;
	}
	ret = make_fs_lock(tree);
	if (ret)
		return ret;
	ret = gather_refs(tree, &refs, &nr);
	if (ret)
		return ret;
	for (size_t i = 1; i <= nr && !ret; i++) {
		if (i < nr && same_group(&refs[i], &refs[start]))
			continue;
		ret = plan_group(s, refs + start, i - start);
		start = i;
	}
	free(refs);
	if (ret)
		return ret;
	if (s->nr)	/* no shared file: s->files is NULL */
		qsort(s->files, s->nr, sizeof(*s->files), file_cmp);
	for (size_t i = 0; i < s->nr && !ret; i++) {
		const struct rst_share_file *sf = &s->files[i];

		for (size_t h = 0; h < sf->nr_holders && !ret; h++)
			if (s->sk[sf->holders[h]] < 0)
				ret = make_socket(tree, sf->holders[h]);
		pr_debug("file %u (%s): created by task %d, passed to %zu other task(s)", sf->id,
			 sf->fd.ops->name, tree->procs[sf->owner].pid, sf->nr_holders);
	}
	if (!ret && s->nr)
		pr_info("%zu file(s) shared between processes", s->nr);
	return ret;
}

void rst_share_free(struct rst_tree *tree)
{
	struct rst_share *s = &tree->share;

	for (size_t i = 0; s->sk && i < tree->nr; i++)
		if (s->sk[i] >= 0)
			close(s->sk[i]);
	if (s->sk && s->fs_lock_src >= 0)
		close(s->fs_lock_src);
	for (size_t i = 0; i < s->nr; i++)
		free(s->files[i].holders);
	free(s->files);
	free(s->sk);
	free(s->addr);
	free(s->addr_len);
	free(s->pids);
	memset(s, 0, sizeof(*s));
}

/* ------------------------------------------------------------ in the task */

const struct rst_share_file *child_share_find(const struct rst_child *c, uint32_t id)
{
	const struct rst_share *s = c->share;
	size_t lo = 0, hi = s ? s->nr : 0;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (s->files[mid].id == id)
			return &s->files[mid];
		if (s->files[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

bool child_file_mine(const struct rst_child *c, uint32_t id)
{
	const struct rst_share_file *sf = child_share_find(c, id);

	return !sf || sf->owner == c->self;
}

static bool holds(const struct rst_share_file *sf, int proc)
{
	for (size_t h = 0; h < sf->nr_holders; h++)
		if (sf->holders[h] == proc)
			return true;
	return false;
}

/* How many files this task creates for others or takes from them. */
size_t child_share_count(const struct rst_child *c)
{
	size_t n = 0;

	for (size_t i = 0; c->share && i < c->share->nr; i++)
		n += c->share->files[i].owner == c->self || holds(&c->share->files[i], c->self);
	return n;
}

/* Our own receiving socket and a sending one, both among the helpers. */
int child_share_prepare(struct rst_child *c)
{
	if (!child_share_count(c))
		return 0;
	if (c->share->sk[c->self] >= 0) {
		c->share_rx = fcntl(c->share->sk[c->self], F_DUPFD_CLOEXEC, c->helper_base);
		if (c->share_rx < 0)
			return child_err(c, errno, "task %d: cannot keep its file socket: %s",
					 c->ri->pid, strerror(errno));
	}
	c->share_tx = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->share_tx >= 0 && c->share_tx < c->helper_base) {
		int high = fcntl(c->share_tx, F_DUPFD_CLOEXEC, c->helper_base);

		close(c->share_tx);
		c->share_tx = high;
	}
	if (c->share_tx < 0)
		return child_err(c, errno, "task %d: a socket to pass files: %s", c->ri->pid,
				 strerror(errno));
	return 0;
}

/* Take every file queued for us now (stashed until its fd comes). */
static int drain(struct rst_child *c)
{
	for (;;) {
		char cbuf[CMSG_SPACE(sizeof(int))];
		struct share_msg m;
		struct iovec iov = { &m, sizeof(m) };
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
		};
		const struct rst_share_file *sf;
		struct cmsghdr *cm;
		ssize_t n;
		int fd, ret;

		if (c->share_rx < 0)
			return 0;
		n = recvmsg(c->share_rx, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return child_err(c, errno, "task %d: receiving a shared file: %s",
					 c->ri->pid, strerror(errno));
		cm = CMSG_FIRSTHDR(&mh);
		if (n != sizeof(m) || !cm || cm->cmsg_type != SCM_RIGHTS ||
		    cm->cmsg_len != CMSG_LEN(sizeof(int)) || (mh.msg_flags & MSG_CTRUNC))
			return child_err(c, EPROTO, "task %d: a malformed message on its file socket",
					 c->ri->pid);
		memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
		sf = child_share_find(c, m.id);
		if (!sf || !holds(sf, c->self) || child_file_lookup(c, m.id) >= 0) {
			close(fd);
			return child_err(c, EPROTO, "task %d: got file %u from task %d, which it "
					 "does not wait for", c->ri->pid, m.id, m.from);
		}
		ret = child_file_stash(c, m.id, fd);
		if (ret)
			return ret;
	}
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ull + ts.tv_nsec / 1000000;
}

static int send_one(struct rst_child *c, const struct rst_share_file *sf, int fd, int to)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct share_msg m = { .id = sf->id, .from = c->ri->pid };
	struct iovec iov = { &m, sizeof(m) };
	struct msghdr mh = {
		.msg_name = (void *)&c->share->addr[to], .msg_namelen = c->share->addr_len[to],
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	uint64_t deadline = now_ms() + SHARE_WAIT_MS;

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(fd));
	for (;;) {
		int ret;

		if (sendmsg(c->share_tx, &mh, MSG_NOSIGNAL) == sizeof(m))
			return 0;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			break;
		/* its queue is full: it may be waiting to send to us */
		ret = drain(c);
		if (ret)
			return ret;
		if (now_ms() > deadline) {
			errno = ETIMEDOUT;
			break;
		}
		poll(NULL, 0, 1);
	}
	return child_err(c, errno, "task %d: cannot pass %s %u (fd %d) to task %d: %s",
			 c->ri->pid, sf->fd.ops->name, sf->id, sf->fd.fd,
			 c->share->pids[to], strerror(errno));
}

/*
 * The files of stage @stage of our groups that only others hold: made here
 * too (by the kind, with one holder's fd for its messages), kept above the
 * task's fds until they are sent.
 */
int child_share_open_rest(struct rst_child *c, enum fd_stage stage)
{
	for (size_t i = 0; c->share && i < c->share->nr; i++) {
		const struct rst_share_file *sf = &c->share->files[i];
		struct rst_fd f;
		int fd, ret;

		if (sf->owner != c->self || sf->fd.ops->stage != stage ||
		    child_file_lookup(c, sf->id) >= 0)
			continue;
		f = sf->fd;
		f.fe = rst_file_find(c->ri, sf->id);
		if (!f.fe)
			return child_err(c, EINVAL, "task %d: file %u is not in files.img",
					 c->ri->pid, sf->id);
		fd = f.ops->open(c, &f);
		if (fd < 0)
			return fd;
		ret = child_file_stash(c, sf->id, fd);
		if (ret)
			return ret;
	}
	return 0;
}

/* Every file of stage @stage we own to each other process that holds it. */
int child_share_send(struct rst_child *c, enum fd_stage stage)
{
	for (size_t i = 0; c->share && i < c->share->nr; i++) {
		const struct rst_share_file *sf = &c->share->files[i];
		int fd = child_file_lookup(c, sf->id);

		if (sf->owner != c->self || sf->fd.ops->stage != stage)
			continue;
		if (fd < 0)
			return child_err(c, EINVAL, "task %d: %s %u to pass on was not made",
					 c->ri->pid, sf->fd.ops->name, sf->id);
		for (size_t h = 0; h < sf->nr_holders; h++) {
			int ret = send_one(c, sf, fd, sf->holders[h]);

			if (ret)
				return ret;
		}
	}
	return 0;
}

/* The fd of file @id that its owner sends us, once it is here. */
int child_share_wait(struct rst_child *c, const struct rst_fd *f)
{
	const struct rst_share_file *sf = child_share_find(c, f->fe->id);
	uint64_t deadline = now_ms() + SHARE_WAIT_MS;

	for (;;) {
		struct pollfd pfd = { .fd = c->share_rx, .events = POLLIN };
		int fd = child_file_lookup(c, f->fe->id), ret;

		if (fd >= 0)
			return fd;
		if (now_ms() > deadline)
			return child_err(c, ETIMEDOUT, "task %d: %s %u (fd %d) did not come from "
					 "task %d within %d s", c->ri->pid, f->ops->name,
					 f->fe->id, f->fd, sf ? c->share->pids[sf->owner] : 0,
					 SHARE_WAIT_MS / 1000);
		if (poll(&pfd, 1, 100) < 0 && errno != EINTR)
			return child_err(c, errno, "task %d: poll: %s", c->ri->pid,
					 strerror(errno));
		ret = drain(c);
		if (ret)
			return ret;
	}
}
