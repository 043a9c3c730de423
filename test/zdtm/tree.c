/*
 * A process tree: the root forks children that each hold memory of their
 * own and memory inherited from the root, and, by option, a session of
 * their own, a process group of their own with a member (and, by
 * --late-groups, groups no ancestor leads: a sibling in the leader's
 * group, a parent in the group its own child leads), a zombie (exit
 * code and one killed by a signal), a stopped child, and a session whose
 * leader exited (its member reparented to the root, a subreaper), a child
 * in uninterruptible sleep (a vfork parent whose child neither execs nor
 * exits: ptrace cannot stop it, so a dump must refuse the tree; or a child
 * whose second thread is in such a vfork).
 *
 * After SIGTERM the root checks its own memory, that every zombie is still
 * there and reapable with its status, that the stopped child is stopped,
 * then sends SIGTERM down: every child checks its pid, ppid, pgid, sid and
 * memory and exits 0, or prints why to stderr and exits 1.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define SEED 0x74726565ULL
#define MAX_KIDS 16
#define INHERITED_PAGES 64
#define OWN_PAGES 256

struct kid {
	pid_t pid;
	const char *what;
	int zombie_status;	/* expected wait status of a zombie, or -1 */
	int stopped;
	pid_t vfork_child;	/* of a vfork parent: killed first at the end */
};

static struct kid kids[MAX_KIDS];
static int nr_kids;
static uint8_t *inherited;
static volatile sig_atomic_t got_term;
static int ready_r = -1, ready_w = -1;	/* each child says "set up" (pipes can't be dumped) */

static void on_term(int sig)
{
	(void)sig;
	got_term = 1;
}

static void child_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void child_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: child %d: ", test_name(), getpid());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	_exit(1);
}

static void expect_page(const char *what, const uint8_t *p, uint64_t seed)
{
	size_t bad = pattern_find_bad(p, PAGE_SIZE, seed);

	if (bad != PAGE_SIZE)
		child_fail("%s: byte %zu is %#x, expected %#x", what, bad, p[bad],
			   pattern_byte(seed, bad));
}

/* A child's life: its memory, then wait for SIGTERM and check everything. */
/* Close the ready pipe (and say "ready" first when @say). */
static void ready_done(int say)
{
	if (ready_r >= 0)
		close(ready_r);
	if (say && ready_w >= 0 && write(ready_w, "r", 1) != 1)
		child_fail("write to the ready pipe: %m");
	if (ready_w >= 0)
		close(ready_w);
	ready_r = ready_w = -1;
}

static void __attribute__((noreturn)) child_run(pid_t ppid, int own_group, pid_t sid_leader)
{
	pid_t me = getpid(), pgid, sid;
	struct sigaction sa = { .sa_handler = on_term };
	uint8_t *own;

	sigaction(SIGTERM, &sa, NULL);
	if (own_group && setpgid(0, 0))
		child_fail("setpgid: %m");
	pgid = getpgrp();
	sid = getsid(0);
	if (sid_leader && sid != sid_leader)
		child_fail("sid %d, expected %d", sid, sid_leader);
	own = mmap(NULL, OWN_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (own == MAP_FAILED)
		child_fail("mmap: %m");
	for (int i = 0; i < OWN_PAGES; i++)
		pattern_fill(own + i * PAGE_SIZE, PAGE_SIZE, SEED + me * 1000 + i);
	/* half of the inherited pages written by us: ours now, not the root's */
	for (int i = 0; i < INHERITED_PAGES; i += 2)
		pattern_fill(inherited + i * PAGE_SIZE, PAGE_SIZE, SEED + me * 7 + i);
	ready_done(1);

	test_wait_flag(&got_term, SIGTERM);

	if (getppid() != ppid)
		child_fail("ppid %d, expected %d", getppid(), ppid);
	if (getpgrp() != pgid)
		child_fail("pgid %d, expected %d", getpgrp(), pgid);
	if (getsid(0) != sid)
		child_fail("sid %d, expected %d", getsid(0), sid);
	for (int i = 0; i < OWN_PAGES; i++)
		expect_page("own page", own + i * PAGE_SIZE, SEED + me * 1000 + i);
	for (int i = 0; i < INHERITED_PAGES; i++)
		expect_page("inherited page", inherited + i * PAGE_SIZE,
			    i % 2 ? SEED + i : SEED + me * 7 + i);
	_exit(0);
}

/* A child in the group its own child leads (it joined after the fork). */
static void __attribute__((noreturn)) parent_in_childs_group(void)
{
	struct sigaction sa = { .sa_handler = on_term };
	pid_t me = getpid(), kid;
	int status;

	sigaction(SIGTERM, &sa, NULL);
	kid = fork();
	if (kid == 0)
		child_run(me, 1, 0);
	if (kid < 0)
		child_fail("fork: %m");
	/* the child does it too: whoever comes first */
	if (setpgid(kid, kid) && errno != EACCES)
		child_fail("setpgid of our child %d: %m", kid);
	if (setpgid(0, kid))
		child_fail("setpgid into our child %d's group: %m", kid);
	ready_done(1);
	test_wait_flag(&got_term, SIGTERM);
	if (getpgrp() != kid)
		child_fail("pgid %d, expected our child's %d", getpgrp(), kid);
	kill(kid, SIGTERM);
	if (waitpid(kid, &status, 0) != kid || status)
		child_fail("our child, the group's leader, ended with status %#x", status);
	_exit(0);
}

static struct kid *add_kid(pid_t pid, const char *what)
{
	if (pid < 0)
		fail("fork for %s: %m", what);
	if (nr_kids == MAX_KIDS)
		fail("too many children");
	kids[nr_kids] = (struct kid){ .pid = pid, .what = what, .zombie_status = -1 };
	return &kids[nr_kids++];
}

/* vfork a grandchild that says it is ready and waits to be killed: the
 * caller sleeps uninterruptibly in vfork() until then.  0, or -1. */
static int vfork_and_wait(void)
{
	int status = 0;
	pid_t gc, r;

	gc = vfork();
	if (gc == 0) {
		/* shares our memory: raw syscalls only, and never return */
		if (write(ready_w, "r", 1) != 1)
			_exit(1);
		for (;;)
			syscall(SYS_pause);
	}
	if (gc < 0)
		return -1;
	/* The root's SIGTERM follows its SIGKILL of gc at once: our handler
	 * (no SA_RESTART) may interrupt this wait, got_term stays set. */
	do
		r = waitpid(gc, &status, __WALL);
	while (r < 0 && errno == EINTR);
	if (r != gc || !WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
		if (r == gc)
			fprintf(stderr, "%s: the vfork child %d ended with status %#x\n",
				test_name(), gc, status);
		return -1;
	}
	return 0;
}

static void *vfork_thread(void *arg)
{
	(void)arg;
	return (void *)(long)vfork_and_wait();
}

/* Thread @tid of process @pid in state D, or 0 if none. */
static pid_t thread_in_d(pid_t pid)
{
	char path[64], buf[512], *p;
	struct dirent *de;
	pid_t found = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		fail("%s: %m", path);
	while (!found && (de = readdir(d))) {
		pid_t tid = atoi(de->d_name);

		if (tid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
		read_file(path, buf, sizeof(buf));
		p = strrchr(buf, ')');
		if (p && p[1] == ' ' && p[2] == 'D')
			found = tid;
	}
	closedir(d);
	return found;
}

/*
 * A child in uninterruptible sleep in vfork() (its main thread, or with
 * @in_thread a second thread of it) until the root kills the vfork child
 * at the end; it goes on as a plain child afterwards.
 */
static void make_vfork_parent(pid_t me, int in_thread)
{
	struct sigaction sa = { .sa_handler = on_term };
	struct kid *k;
	pid_t pid, tid = 0;
	char path[64];
	FILE *f;

	pid = fork();
	if (pid == 0) {
		pthread_t th;
		void *ret = NULL;

		sigaction(SIGTERM, &sa, NULL);
		if (!in_thread) {
			ret = (void *)(long)vfork_and_wait();
		} else if (pthread_create(&th, NULL, vfork_thread, NULL) ||
			   pthread_join(th, &ret)) {
			child_fail("pthread: %m");
		}
		if (ret)
			child_fail("vfork, or the end of the vfork child: %m");
		ready_done(0);
		child_run(me, 0, 0);
	}
	k = add_kid(pid, in_thread ? "parent of a thread in vfork" : "vfork parent");
	for (int i = 0; i < 10000 && !tid; i++) {
		tid = thread_in_d(pid);
		if (!tid)
			usleep(1000);
	}
	if (!tid)
		fail("no thread of %s %d reached state D", k->what, pid);
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", pid, tid);
	f = fopen(path, "re");
	if (!f || fscanf(f, "%d", &k->vfork_child) != 1)
		fail("%s: no vfork child", path);
	fclose(f);
}

/*
 * Wait until our child @pid is a zombie (@st 'Z') or stopped ('T'), at
 * most 10 s.  waitid(WNOWAIT) leaves the state to be waited for again, and
 * works in a pid namespace whose pids /proc does not show.
 */
static void wait_state(pid_t pid, char st, const char *what)
{
	int how = (st == 'Z' ? WEXITED : WSTOPPED) | WNOWAIT | WNOHANG;

	for (int i = 0; i < 10000; i++) {
		siginfo_t si = { 0 };

		if (waitid(P_PID, pid, &si, how))
			fail("%s %d: waitid: %m", what, pid);
		if (si.si_pid == pid)
			return;
		usleep(1000);
	}
	fail("%s %d never reached state %c", what, pid, st);
}

static void make_dead_leader_session(void)
{
	int p[2];
	pid_t leader, member;

	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
		fail("PR_SET_CHILD_SUBREAPER: %m");
	if (pipe(p))
		fail("pipe: %m");
	leader = fork();
	if (leader < 0)
		fail("fork: %m");
	if (leader == 0) {
		pid_t self;

		close(p[0]);
		if (setsid() < 0)
			child_fail("setsid: %m");
		self = getpid();
		member = fork();
		if (member < 0)
			child_fail("fork: %m");
		if (member == 0) {
			/* wait until the leader is gone and we are the root's */
			while (getppid() == self)
				usleep(1000);
			if (write(p[1], "x", 1) != 1)
				child_fail("write: %m");
			close(p[1]);
			child_run(getppid(), 0, self);
		}
		if (write(p[1], &member, sizeof(member)) != sizeof(member))
			child_fail("write: %m");
		ready_done(0);
		_exit(0);
	}
	close(p[1]);
	if (read(p[0], &member, sizeof(member)) != sizeof(member))
		fail("read: %m");
	if (waitpid(leader, NULL, 0) != leader)
		fail("waitpid of the session leader: %m");
	{
		char c;

		if (read(p[0], &c, 1) != 1)
			fail("the orphaned member did not say it was reparented");
	}
	close(p[0]);
	add_kid(member, "member of a dead leader's session");
}

int main(int argc, char **argv)
{
	long children = 2;
	int zombie = 0, stopped = 0, session = 0, group = 0, dead_leader = 0, bad_child = 0;
	int late_groups = 0;
	pid_t group_leader = 0;
	int vfork_parent = 0, vfork_thread_opt = 0;
	const struct test_opt opts[] = {
		{ "children", TEST_OPT_INT, &children, 0, "plain children (each its own memory)" },
		{ "zombie", TEST_OPT_FLAG, &zombie, 0, "two zombies: exit 42, killed by SIGUSR1" },
		{ "stopped", TEST_OPT_FLAG, &stopped, 0, "a child stopped by SIGSTOP" },
		{ "session", TEST_OPT_FLAG, &session, 0, "a child leading a session, with a member" },
		{ "group", TEST_OPT_FLAG, &group, 0, "a child leading a process group, with a member" },
		{ "late-groups", TEST_OPT_FLAG, &late_groups, 0,
		  "with --group: a sibling of the leader in its group, and a child in the group "
		  "its own child leads" },
		{ "dead-leader", TEST_OPT_FLAG, &dead_leader, 0, "a session whose leader exited" },
		{ "bad-child", TEST_OPT_FLAG, &bad_child, 0,
		  "a child holding a userfaultfd at 42 (a dump must refuse the tree)" },
		{ "vfork", TEST_OPT_FLAG, &vfork_parent, 0,
		  "a child in uninterruptible sleep in vfork() (a dump must refuse the tree)" },
		{ "vfork-thread", TEST_OPT_FLAG, &vfork_thread_opt, 0,
		  "the same in a second thread of a child" },
		{ NULL, 0, NULL, 0, NULL },
	};
	pid_t me, pid;
	int status, expect_ready, fds[2];
	char c;

	test_init(argc, argv, opts);
	test_kill_tree_at_exit();
	me = getpid();
	if (pipe2(fds, O_CLOEXEC))
		fail("pipe: %m");
	ready_r = fds[0];
	ready_w = fds[1];
	inherited = mmap(NULL, INHERITED_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (inherited == MAP_FAILED)
		fail("mmap: %m");
	for (int i = 0; i < INHERITED_PAGES; i++)
		pattern_fill(inherited + i * PAGE_SIZE, PAGE_SIZE, SEED + i);

	for (long i = 0; i < children; i++) {
		pid = fork();
		if (pid == 0)
			child_run(me, 0, 0);
		add_kid(pid, "child");
	}
	if (session) {
		pid = fork();
		if (pid == 0) {
			pid_t leader;

			if (setsid() < 0)
				child_fail("setsid: %m");
			leader = getpid();
			pid = fork();
			if (pid == 0)
				child_run(leader, 0, leader);
			/* the member is ours to end: it gets our SIGTERM forwarded */
			{
				struct sigaction sa = { .sa_handler = on_term };

				sigaction(SIGTERM, &sa, NULL);
				ready_done(1);
				test_wait_flag(&got_term, SIGTERM);
				kill(pid, SIGTERM);
				if (waitpid(pid, &status, 0) != pid || status)
					child_fail("session member ended with status %#x", status);
				if (getsid(0) != leader)
					child_fail("the session leader's sid is %d", getsid(0));
				_exit(0);
			}
		}
		add_kid(pid, "session leader");
	}
	if (group) {
		pid = fork();
		if (pid == 0) {
			pid_t leader;

			if (setpgid(0, 0))
				child_fail("setpgid: %m");
			leader = getpid();
			pid = fork();
			if (pid == 0)
				child_run(leader, 0, 0);
			{
				struct sigaction sa = { .sa_handler = on_term };

				sigaction(SIGTERM, &sa, NULL);
				ready_done(1);
				test_wait_flag(&got_term, SIGTERM);
				if (getpgid(pid) != leader)
					child_fail("the member's group is %d, expected %d", getpgid(pid),
						   leader);
				kill(pid, SIGTERM);
				if (waitpid(pid, &status, 0) != pid || status)
					child_fail("group member ended with status %#x", status);
				_exit(0);
			}
		}
		add_kid(pid, "group leader");
		group_leader = pid;
	}
	if (late_groups) {
		if (!group_leader)
			fail("--late-groups needs --group");
		/* the leader does it too: whoever comes first */
		if (setpgid(group_leader, group_leader) && errno != EACCES)
			fail("setpgid of the group leader %d: %m", group_leader);
		pid = fork();
		if (pid == 0) {
			if (setpgid(0, group_leader))
				child_fail("setpgid into the group of %d: %m", group_leader);
			child_run(me, 0, 0);
		}
		add_kid(pid, "member of a sibling's group");
		pid = fork();
		if (pid == 0)
			parent_in_childs_group();
		add_kid(pid, "member of its child's group");
	}
	if (zombie) {
		struct kid *k;

		pid = fork();
		if (pid == 0) {
			ready_done(0);
			_exit(42);
		}
		k = add_kid(pid, "zombie (exit 42)");
		k->zombie_status = 42 << 8;
		pid = fork();
		if (pid == 0) {
			ready_done(0);
			signal(SIGUSR1, SIG_DFL);
			raise(SIGUSR1);
			_exit(3);
		}
		k = add_kid(pid, "zombie (SIGUSR1)");
		k->zombie_status = SIGUSR1;
		for (int i = nr_kids - 2; i < nr_kids; i++)
			wait_state(kids[i].pid, 'Z', kids[i].what);
	}
	if (stopped) {
		struct kid *k;

		pid = fork();
		if (pid == 0) {
			struct sigaction sa = { .sa_handler = on_term };

			sigaction(SIGTERM, &sa, NULL);
			ready_done(0);
			raise(SIGSTOP);
			child_run(me, 0, 0);
		}
		k = add_kid(pid, "stopped child");
		k->stopped = 1;
		wait_state(pid, 'T', k->what);
	}
	if (dead_leader)
		make_dead_leader_session();
	if (bad_child) {
		pid = fork();
		if (pid == 0) {
			int fd = syscall(SYS_userfaultfd, O_CLOEXEC);

			if (fd < 0 || dup2(fd, 42) != 42)
				child_fail("userfaultfd at 42: %m");
			close(fd);
			child_run(me, 0, 0);
		}
		add_kid(pid, "child with a userfaultfd");
	}
	if (vfork_parent)
		make_vfork_parent(me, 0);
	if (vfork_thread_opt)
		make_vfork_parent(me, 1);
	expect_ready = children + session * 2 + group * 2 + late_groups * 3 + dead_leader +
		       bad_child + vfork_parent + vfork_thread_opt;
	close(ready_w);
	for (int i = 0; i < expect_ready; i++)
		if (read(ready_r, &c, 1) != 1)
			fail("only %d of %d children got ready", i, expect_ready);
	close(ready_r);
	test_msg("%d children, inherited region %p", nr_kids, (void *)inherited);

	test_daemon();
	test_waitsig();

	for (int i = 0; i < INHERITED_PAGES; i++)
		if (pattern_find_bad(inherited + i * PAGE_SIZE, PAGE_SIZE, SEED + i) != PAGE_SIZE)
			fail("the root's inherited page %d is wrong", i);
	for (int i = 0; i < nr_kids; i++) {
		struct kid *k = &kids[i];
		pid_t r;

		if (k->zombie_status >= 0) {
			r = waitpid(k->pid, &status, WNOHANG);
			if (r != k->pid)
				fail("%s %d is not a zombie (waitpid: %d, %m)", k->what, k->pid, r);
			if (status != k->zombie_status)
				fail("%s %d: wait status %#x, expected %#x", k->what, k->pid, status,
				     k->zombie_status);
			continue;
		}
		if (k->stopped) {
			wait_state(k->pid, 'T', k->what);
			kill(k->pid, SIGCONT);
		}
		if (k->vfork_child && kill(k->vfork_child, SIGKILL))
			fail("vfork child %d: kill: %m", k->vfork_child);
		if (kill(k->pid, SIGTERM))
			fail("%s %d: kill: %m", k->what, k->pid);
		if (waitpid(k->pid, &status, 0) != k->pid)
			fail("%s %d: waitpid: %m", k->what, k->pid);
		if (status)
			fail("%s %d ended with status %#x", k->what, k->pid, status);
	}
	pass();
}
