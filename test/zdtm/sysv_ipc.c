/*
 * SysV IPC of a tree in an IPC namespace of its own (it unshares one first,
 * as a container would have):
 *   A  key 0x5a170001, 3 pages + 100 bytes, mode 0640, owner 1000:1001;
 *      attached twice, the second attachment split in three by an
 *      mprotect of its middle page
 *   B  IPC_PRIVATE, 2 pages, written, not attached
 *   C  key 0x5a170003, 1 page, attached read-only (SHM_RDONLY)
 *   D  key 0x5a170004, 1 page, locked (SHM_LOCK), attached
 *   F  IPC_PRIVATE, 64 MiB, only pages 0 and 10000 written, not attached
 *      (the dump writes those two: test_sysv_ipc.py)
 *   A is attached a third time with its middle page unmapped (a hole
 *   CRIU refuses: two VMAs of one attach), detached after the checks
 *   E  IPC_PRIVATE, 1 page, attached and removed (IPC_RMID: SHM_DEST; a
 *      removed segment's key is gone, so its maps name would change with one)
 *   Q  a message queue (key 0x5a170010, qbytes 4096) with 3 messages,
 *      and an empty IPC_PRIVATE one
 *   S  a semaphore set (key 0x5a170020) of 4 values
 *   the namespace's kernel.shmmni and kernel.msgmax changed
 *   --child: a child inherits the attachments and has one of A of its own;
 *            after the restore it checks it and writes A's page 2, which
 *            the parent must see
 *   --net:   a network namespace of its own too (a container's pair)
 *   --nested: the child unshares an IPC namespace of its own (the dump
 *            refuses the tree)
 * After SIGTERM: ids, keys, modes, owners, sizes, attach counts, contents,
 * messages, values, sysctls as they were; writes shared between the
 * attachments; shmdt() of an attachment works.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include "lib/waiter.h"
#include "lib/zdtmtst.h"

#define A_SIZE		(3 * PAGE_SIZE + 100)
#define SEED		0x5a17ULL
#define SEED_CHILD	0xc41dULL
#define NR_SHM		6
#define F_SIZE		(64UL << 20)

static int with_child, nested, with_net;

struct seg {
	const char *name;
	key_t key;
	size_t size;
	int mode;
	int id;
	struct shmid_ds ds;	/* as it was before the checkpoint */
};

static struct seg segs[NR_SHM] = {
	{ .name = "A", .key = 0x5a170001, .size = A_SIZE, .mode = 0640 },
	{ .name = "B", .key = IPC_PRIVATE, .size = 2 * PAGE_SIZE, .mode = 0600 },
	{ .name = "C", .key = 0x5a170003, .size = PAGE_SIZE, .mode = 0604 },
	{ .name = "D", .key = 0x5a170004, .size = PAGE_SIZE, .mode = 0600 },
	{ .name = "E", .key = IPC_PRIVATE, .size = PAGE_SIZE, .mode = 0660 },
	{ .name = "F", .key = IPC_PRIVATE, .size = F_SIZE, .mode = 0600 },
};

static const struct { long type; size_t len; } msgs[] = { { 1, 10 }, { 7, 300 }, { 2, 1 } };
static const unsigned short sem_vals[4] = { 0, 1, 5, 32767 };
static int q_id, q_empty, sem_id;
static pid_t nested_pid;
static uint8_t *a1, *a2, *a3, *a4, *c, *d, *e;

static void *attach(struct seg *s, int flags)
{
	void *p = shmat(s->id, NULL, flags);

	if (p == (void *)-1)
		fail("shmat %s: %m", s->name);
	return p;
}

static void write_sysctl(const char *name, const char *val)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/sys/kernel/%s", name);
	write_file(path, val, strlen(val));
}

static void expect_sysctl(const char *name, const char *val)
{
	char path[64], buf[64];
	size_t n;

	snprintf(path, sizeof(path), "/proc/sys/kernel/%s", name);
	n = read_file(path, buf, sizeof(buf) - 1);
	buf[n] = '\0';
	if (strtol(buf, NULL, 10) != strtol(val, NULL, 10))
		fail("kernel.%s is %s, not %s", name, buf, val);
}

static void make_objects(void)
{
	struct msqid_ds mq;
	struct { long type; char text[300]; } m;

	write_sysctl("shmmni", "1234");
	write_sysctl("msgmax", "4000");
	for (int i = 0; i < NR_SHM; i++) {
		struct seg *s = &segs[i];
		uint8_t *p;

		s->id = shmget(s->key, s->size, IPC_CREAT | IPC_EXCL | s->mode);
		if (s->id < 0)
			fail("shmget %s: %m", s->name);
		p = attach(s, 0);
		if (s->size == F_SIZE) {	/* sparse */
			pattern_fill(p, PAGE_SIZE, SEED + i);
			pattern_fill(p + 10000 * PAGE_SIZE, PAGE_SIZE, SEED + i + 1);
		} else {
			pattern_fill(p, s->size, SEED + i);
		}
		shmdt(p);
	}
	if (shmctl(segs[0].id, IPC_STAT, &segs[0].ds))
		fail("IPC_STAT A: %m");
	segs[0].ds.shm_perm.uid = 1000;
	segs[0].ds.shm_perm.gid = 1001;
	if (shmctl(segs[0].id, IPC_SET, &segs[0].ds))
		fail("IPC_SET A: %m");
	if (shmctl(segs[3].id, SHM_LOCK, NULL))
		fail("SHM_LOCK D: %m");
	a1 = attach(&segs[0], 0);
	a2 = attach(&segs[0], 0);
	if (mprotect(a2 + PAGE_SIZE, PAGE_SIZE, PROT_READ))
		fail("mprotect A's second attachment: %m");
	a4 = attach(&segs[0], 0);
	if (munmap(a4 + PAGE_SIZE, PAGE_SIZE))
		fail("munmap in A's third attachment: %m");
	c = attach(&segs[2], SHM_RDONLY);
	d = attach(&segs[3], 0);
	e = attach(&segs[4], 0);
	if (shmctl(segs[4].id, IPC_RMID, NULL))
		fail("IPC_RMID E: %m");

	q_id = msgget(0x5a170010, IPC_CREAT | IPC_EXCL | 0620);
	q_empty = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
	if (q_id < 0 || q_empty < 0)
		fail("msgget: %m");
	if (msgctl(q_id, IPC_STAT, &mq))
		fail("IPC_STAT of the queue: %m");
	mq.msg_qbytes = 4096;
	if (msgctl(q_id, IPC_SET, &mq))
		fail("IPC_SET of the queue: %m");
	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		m.type = msgs[i].type;
		pattern_fill(m.text, msgs[i].len, SEED + 100 + i);
		if (msgsnd(q_id, &m, msgs[i].len, IPC_NOWAIT))
			fail("msgsnd %zu: %m", i);
	}
	sem_id = semget(0x5a170020, 4, IPC_CREAT | IPC_EXCL | 0600);
	if (sem_id < 0 || semctl(sem_id, 0, SETALL, sem_vals))
		fail("semaphores: %m");
}

static void record(void)
{
	for (int i = 0; i < NR_SHM; i++)
		if (shmctl(segs[i].id, IPC_STAT, &segs[i].ds))
			fail("IPC_STAT %s: %m", segs[i].name);
}

static void check_segment(const struct seg *s)
{
	struct shmid_ds ds;

	if (shmctl(s->id, IPC_STAT, &ds))
		fail("segment %s (id %d) is gone: %m", s->name, s->id);
	if (ds.shm_perm.__key != s->ds.shm_perm.__key || ds.shm_perm.mode != s->ds.shm_perm.mode ||
	    ds.shm_perm.uid != s->ds.shm_perm.uid || ds.shm_perm.gid != s->ds.shm_perm.gid ||
	    ds.shm_segsz != s->ds.shm_segsz)
		fail("segment %s: key %#x mode %#o owner %u:%u size %zu, was %#x %#o %u:%u %zu",
		     s->name, ds.shm_perm.__key, ds.shm_perm.mode, ds.shm_perm.uid,
		     ds.shm_perm.gid, ds.shm_segsz, s->ds.shm_perm.__key, s->ds.shm_perm.mode,
		     s->ds.shm_perm.uid, s->ds.shm_perm.gid, s->ds.shm_segsz);
	if (ds.shm_nattch != s->ds.shm_nattch)
		fail("segment %s: %lu attachments, was %lu", s->name, (unsigned long)ds.shm_nattch,
		     (unsigned long)s->ds.shm_nattch);
}

static void check_messages(void)
{
	struct { long type; char text[4000]; } m;
	struct msqid_ds mq;

	if (msgctl(q_id, IPC_STAT, &mq) || mq.msg_qbytes != 4096 || mq.msg_qnum != 3 ||
	    mq.msg_perm.__key != 0x5a170010 || (mq.msg_perm.mode & 0777) != 0620)
		fail("the queue: qbytes %lu qnum %lu key %#x mode %#o",
		     (unsigned long)mq.msg_qbytes, (unsigned long)mq.msg_qnum, mq.msg_perm.__key,
		     mq.msg_perm.mode);
	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		ssize_t n = msgrcv(q_id, &m, sizeof(m.text), 0, IPC_NOWAIT);
		char what[32];

		if (n != (ssize_t)msgs[i].len || m.type != msgs[i].type)
			fail("message %zu: %zd bytes of type %ld, not %zu of type %ld (%m)", i, n,
			     m.type, msgs[i].len, msgs[i].type);
		snprintf(what, sizeof(what), "message %zu", i);
		pattern_expect(what, m.text, n, SEED + 100 + i);
	}
	if (msgctl(q_empty, IPC_STAT, &mq) || mq.msg_qnum)
		fail("the empty queue: %m, %lu messages", (unsigned long)mq.msg_qnum);
}

static void check_semaphores(void)
{
	unsigned short v[4];
	struct semid_ds ds;

	if (semctl(sem_id, 0, IPC_STAT, &ds) || ds.sem_nsems != 4 ||
	    ds.sem_perm.__key != 0x5a170020)
		fail("the semaphore set: %m");
	if (semctl(sem_id, 0, GETALL, v))
		fail("GETALL: %m");
	for (int i = 0; i < 4; i++)
		if (v[i] != sem_vals[i])
			fail("semaphore %d is %u, not %u", i, v[i], sem_vals[i]);
}

static void detach_expect(void *at, unsigned long vmas)
{
	struct shmid_ds before, after;

	if (shmctl(segs[0].id, IPC_STAT, &before) || shmdt(at) ||
	    shmctl(segs[0].id, IPC_STAT, &after))
		fail("shmdt of an attachment of A: %m");
	if (before.shm_nattch - after.shm_nattch != vmas)
		fail("shmdt of an attachment of A: %lu attachments gone, not %lu",
		     (unsigned long)(before.shm_nattch - after.shm_nattch), vmas);
}

/* The child, after the restore: its own attachment of A, then page 2. */
static int child_check(void *arg)
{
	(void)arg;
	/* (the parent has written the last bytes anew by now) */
	if (pattern_find_bad(a3, 3 * PAGE_SIZE, SEED) != 3 * PAGE_SIZE)
		return 3;
	pattern_fill(a3 + 2 * PAGE_SIZE, PAGE_SIZE, SEED_CHILD);
	return 0;
}


int main(int argc, char **argv)
{
	static const struct test_opt opts[] = {
		{ "child", TEST_OPT_FLAG, &with_child, 0, "a child attaches A too" },
		{ "nested", TEST_OPT_FLAG, &nested, 0, "the child has an IPC namespace of its own" },
		{ "net", TEST_OPT_FLAG, &with_net, 0, "a network namespace of its own too" },
		{ NULL },
	};
	struct waiter child;
	uint8_t *b;

	test_init(argc, argv, opts);
	if (unshare(CLONE_NEWIPC | (with_net ? CLONE_NEWNET : 0)))
		fail("unshare(CLONE_NEWIPC%s): %m", with_net ? " | CLONE_NEWNET" : "");
	make_objects();
	if (with_child) {
		a3 = attach(&segs[0], 0);
		waiter_fork(&child, child_check, NULL);
		shmdt(a3);	/* the child's own now */
	}
	if (nested) {
		int ready[2];
		char c1;

		if (pipe(ready))
			fail("pipe: %m");
		nested_pid = fork();
		if (nested_pid < 0)
			fail("fork: %m");
		if (!nested_pid) {	/* a namespace of its own, then wait to be killed */
			close(ready[0]);
			if (unshare(CLONE_NEWIPC))
				_exit(1);
			close(ready[1]);
			for (;;)
				pause();
		}
		close(ready[1]);
		if (read(ready[0], &c1, 1) != 0)
			fail("the nested child did not get its namespace");
		close(ready[0]);
	}
	record();

	test_daemon();
	test_waitsig();

	for (int i = 0; i < NR_SHM; i++)
		check_segment(&segs[i]);
	if (!(segs[3].ds.shm_perm.mode & SHM_LOCKED) || !(segs[4].ds.shm_perm.mode & SHM_DEST))
		fail("D not locked or E not removed before the checkpoint");
	pattern_expect("A through its first attachment", a1, A_SIZE, SEED);
	pattern_expect("A through its second attachment", a2, A_SIZE, SEED);
	pattern_expect("C", c, PAGE_SIZE, SEED + 2);
	pattern_expect("D", d, PAGE_SIZE, SEED + 3);
	pattern_expect("E", e, PAGE_SIZE, SEED + 4);
	b = attach(&segs[1], SHM_RDONLY);
	pattern_expect("B", b, 2 * PAGE_SIZE, SEED + 1);
	shmdt(b);
	b = attach(&segs[5], SHM_RDONLY);
	pattern_expect("F page 0", b, PAGE_SIZE, SEED + 5);
	pattern_expect("F page 10000", b + 10000 * PAGE_SIZE, PAGE_SIZE, SEED + 6);
	zero_expect("F page 5000", b + 5000 * PAGE_SIZE, PAGE_SIZE);
	shmdt(b);
	pattern_expect("A's third attachment, page 0", a4, PAGE_SIZE, SEED);
	if (memcmp(a4 + 2 * PAGE_SIZE, a1 + 2 * PAGE_SIZE, A_SIZE - 2 * PAGE_SIZE))
		fail("A's third attachment after its hole does not show A's pages 2-3");
	if (!mprotect(c, PAGE_SIZE, PROT_READ | PROT_WRITE) || errno != EACCES)
		fail("C's read-only attachment can be made writable (%m)");
	/* one segment: a write through one attachment shows in the other */
	pattern_fill(a1 + 3 * PAGE_SIZE, 100, SEED_CHILD + 1);
	pattern_expect("A's last bytes written through a1, seen through a2", a2 + 3 * PAGE_SIZE,
		       100, SEED_CHILD + 1);
	check_messages();
	check_semaphores();
	expect_sysctl("shmmni", "1234");
	expect_sysctl("msgmax", "4000");
	expect_sysctl("shm_next_id", "-1");
	if (with_child) {
		waiter_wake(&child, "3: it saw other data in its attachment of A");
		pattern_expect("the child's write to A's page 2: not shared with it",
			       a1 + 2 * PAGE_SIZE, PAGE_SIZE, SEED_CHILD);
	}
	if (nested && (kill(nested_pid, SIGKILL) || waitpid(nested_pid, NULL, 0) != nested_pid))
		fail("the nested child: %m");
	/* shmdt takes every VMA of one attach: both halves of a4 */
	detach_expect(a4, 2);
	detach_expect(a2, 3);	/* and the three of a2's mprotect split */
	detach_expect(a1, 1);
	pass();
}
