/*
 * Who makes each file held by more than one process of the tree, and who
 * gets it (fd-share.c tells the whole story): in the restore process,
 * before any task exists.  Besides the descriptors of each process, a
 * file in flight (SCM_RIGHTS in a socket's queue) counts as held by the
 * process that refills that queue (the one that makes the socket: the
 * owner of the socket's group), so the file passed again is the one the
 * other processes hold (one open file description, one offset).  A
 * process thus waits only for files of processes before it in pstree
 * order: no cycle, as long as the refiller is the group's final owner
 * (gather_flight()'s rounds).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "restore/restore.h"
#include "restore/files.h"
#include "restore/tree.h"

/* What one process holds of a group: the entries rst_share_plan() sorts. */
struct share_ref {
	const void *ns;			/* the kind, for share_key() groups; NULL: by id */
	uint64_t key;
	uint32_t id;
	int proc;
	const struct rst_fd *fd;
	bool flight;			/* a file in flight, not a descriptor */
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
	sf->early_fd = -1;
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

/* Files in flight: refs of the processes that pass them again. */
struct flight {
	struct rst_tree *tree;
	int proc;			/* the process making the current file */
	struct share_ref *refs;		/* their fd: an index into fds until done */
	size_t nr;
	struct rst_fd *fds;
	size_t nr_fds;
};

static int add_flight(void *arg, uint32_t id)
{
	struct flight *fl = arg;
	const struct rst_images *ri = &fl->tree->procs[fl->proc].ri;
	const FileEntry *fe = rst_file_find(ri, id);
	const struct fd_kind_ops *ops = fe ? fd_kind_for_restore(ri, fe) : NULL;
	struct share_ref *r;
	void *grown;

	if (!ops) {	/* never: the checks saw every file in flight */
		pr_err("file %u in flight: not in files.img", id);
		return -EINVAL;
	}
	grown = realloc(fl->fds, (fl->nr_fds + 1) * sizeof(*fl->fds));
	if (!grown)
		return -ENOMEM;
	fl->fds = grown;
	fl->fds[fl->nr_fds] = (struct rst_fd){ .fd = -1, .cloexec = true, .fe = fe, .ops = ops };
	grown = realloc(fl->refs, (fl->nr + 1) * sizeof(*fl->refs));
	if (!grown)
		return -ENOMEM;
	fl->refs = grown;
	r = &fl->refs[fl->nr++];
	r->ns = ops->share_key ? (const void *)ops : NULL;
	r->key = ops->share_key ? ops->share_key(ri, fe) : fe->id;
	r->id = id;
	r->proc = fl->proc;
	r->fd = (const struct rst_fd *)(uintptr_t)fl->nr_fds++;
	return 0;
}

/* One round: the files in flight of each group's original files, counted
 * as held by the group's owner among @all (the original refs and the
 * previous round's files in flight). */
static int flight_round(struct rst_tree *tree, const struct share_ref *all, size_t nr,
			struct flight *fl)
{
	size_t start = 0;
	int ret = 0;

	for (size_t i = 1; i <= nr && !ret; i++) {
		if (i < nr && same_group(&all[i], &all[start]))
			continue;
		fl->proc = all[start].proc;
		for (size_t j = start; j < i; j++)
			if (all[j].proc < fl->proc)
				fl->proc = all[j].proc;
		for (size_t j = start; j < i && !ret; j++) {
			const struct rst_fd *f = all[j].fd;

			if (!all[j].flight && f->ops->in_flight)
				ret = f->ops->in_flight(&tree->procs[fl->proc].ri, f->fe, add_flight, fl);
		}
		start = i;
	}
	for (size_t k = 0; k < fl->nr; k++) {
		fl->refs[k].fd = &fl->fds[(uintptr_t)fl->refs[k].fd];
		fl->refs[k].flight = true;
	}
	return ret;
}

static bool same_flight(const struct flight *a, const struct flight *b)
{
	if (a->nr != b->nr)
		return false;
	for (size_t k = 0; k < a->nr; k++)
		if (a->refs[k].id != b->refs[k].id || a->refs[k].proc != b->refs[k].proc)
			return false;
	return true;
}

/*
 * For each group, its files' files in flight, held by the group's owner
 * (the first process that holds a file of it: the one that makes them and
 * refills their queues).  A file in flight may make a process with a lower
 * index a holder of its group (a socket of a pair in flight in the root's
 * queue): that process is then the owner and refills the pair's queues, so
 * the rounds go on until the owners no longer change (they only go down).
 * The new refs go to *refs, sorted again; their fds stay in *fds.
 */
static int gather_flight(struct rst_tree *tree, struct share_ref **refs, size_t *nr,
			 struct rst_fd **fds)
{
	struct flight prev = { .tree = tree }, fl = { .tree = tree };
	struct share_ref *all = NULL;
	int ret = 0;

	for (size_t round = 0; round <= tree->nr && !ret; round++) {
		all = malloc((*nr + prev.nr + 1) * sizeof(*all));
		if (!all) {
			ret = -ENOMEM;
			break;
		}
		memcpy(all, *refs, *nr * sizeof(*all));
		if (prev.nr)
			memcpy(all + *nr, prev.refs, prev.nr * sizeof(*all));
		qsort(all, *nr + prev.nr, sizeof(*all), ref_cmp);
		fl = (struct flight){ .tree = tree };
		ret = flight_round(tree, all, *nr + prev.nr, &fl);
		free(all);
		all = NULL;
		if (!ret && same_flight(&fl, &prev)) {
			free(prev.refs);
			free(prev.fds);
			prev = fl;
			fl = (struct flight){ .tree = tree };
			break;
		}
		free(prev.refs);
		free(prev.fds);
		prev = fl;
		fl = (struct flight){ .tree = tree };
		if (!ret && round == tree->nr) {	/* never: an owner goes down each round */
			pr_err("the files in flight of the tree: their owners do not settle");
			ret = -ELOOP;
		}
	}
	free(fl.refs);
	free(fl.fds);
	if (!ret && prev.nr) {
		struct share_ref *grown = realloc(*refs, (*nr + prev.nr) * sizeof(**refs));

		if (!grown) {
			ret = -ENOMEM;
		} else {
			*refs = grown;
			memcpy(grown + *nr, prev.refs, prev.nr * sizeof(*grown));
			*nr += prev.nr;
			qsort(*refs, *nr, sizeof(**refs), ref_cmp);
			pr_debug("%zu file(s) in flight counted as held by the processes that pass them",
				 prev.nr);
		}
	}
	free(prev.refs);
	*fds = prev.fds;
	return ret;
}

static bool descends(const struct rst_tree *tree, int proc, int from)
{
	for (int i = tree->procs[proc].parent; i >= 0; i = tree->procs[i].parent)
		if (i == from)
			return true;
	return false;
}

/*
 * Which holders take a file by fork: those below its owner, when its kind
 * can be opened before the owner forks (a regular file).  In the bench
 * tree the root's log file went to its three children over the sockets,
 * each child waiting for it (0.2 - 0.6 ms) until the root, which forks
 * them first, had premapped, filled and opened its own fds.  Not in a
 * tree where processes share a descriptor table: its windows of helper
 * fds are laid out apart (fdt.c).  The early fds go above every fd of
 * every process, so no fd of a task lands on one.
 */
static int plan_by_fork(struct rst_tree *tree)
{
	struct rst_share *s = &tree->share;
	int top = 0;

	for (size_t i = 0; i < tree->nr; i++) {
		const struct rst_proc *p = &tree->procs[i];
		int fd;

		if (p->fdt_owner >= 0 || p->fdt_end)
			return 0;
		fd = p->kind == RST_PROC_ALIVE ? rst_fd_top(&p->ri) : -1;
		if (fd > top)
			top = fd;
	}
	/* (and clear of the first process's helpers: a look at /proc/PID/fd) */
	s->early_base = (top < RST_HELPER_BASE_MIN ? RST_HELPER_BASE_MIN : top + 1) + 32;
	for (size_t i = 0; i < s->nr; i++) {
		struct rst_share_file *sf = &s->files[i];

		if (!sf->fd.ops->by_fork)
			continue;
		sf->by_fork = calloc(sf->nr_holders, sizeof(*sf->by_fork));
		if (!sf->by_fork)
			return -ENOMEM;
		for (size_t h = 0; h < sf->nr_holders; h++)
			sf->by_fork[h] = descends(tree, sf->holders[h], sf->owner);
	}
	return 0;
}

int rst_share_plan(struct rst_tree *tree)
{
	struct rst_share *s = &tree->share;
	struct share_ref *refs;
	struct rst_fd *flight_fds = NULL;
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
	ret = gather_flight(tree, &refs, &nr, &flight_fds);
	if (ret) {
		free(refs);
		free(flight_fds);
		return ret;
	}
	for (size_t i = 1; i <= nr && !ret; i++) {
		if (i < nr && same_group(&refs[i], &refs[start]))
			continue;
		ret = plan_group(s, refs + start, i - start);
		start = i;
	}
	free(refs);
	free(flight_fds);
	if (ret)
		return ret;
	if (s->nr)	/* no shared file: s->files is NULL */
		qsort(s->files, s->nr, sizeof(*s->files), file_cmp);
	ret = plan_by_fork(tree);
	for (size_t i = 0; i < s->nr && !ret; i++) {
		const struct rst_share_file *sf = &s->files[i];
		size_t forked = 0;

		for (size_t h = 0; h < sf->nr_holders && !ret; h++) {
			if (rst_share_by_fork(sf, h))
				forked++;
			else if (s->sk[sf->holders[h]] < 0)
				ret = make_socket(tree, sf->holders[h]);
		}
		pr_debug("file %u (%s): created by task %d, passed to %zu other task(s), %zu of "
			 "them by fork", sf->id, sf->fd.ops->name, tree->procs[sf->owner].pid,
			 sf->nr_holders, forked);
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
	for (size_t i = 0; i < s->nr; i++) {
		free(s->files[i].holders);
		free(s->files[i].by_fork);
	}
	free(s->files);
	free(s->sk);
	free(s->addr);
	free(s->addr_len);
	free(s->pids);
	memset(s, 0, sizeof(*s));
}
