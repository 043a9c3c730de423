/*
 * The guardian: a small process the lazy-pages daemon forks when it starts,
 * which holds a duplicate of every userfaultfd the daemon owns and never
 * reads them while the daemon lives.  A daemon that dies without a word
 * (SIGKILL, a crash) no longer takes the tasks' registrations with it: the
 * guardian's copies keep them, so the faulting threads stay blocked instead
 * of reading zeros, and the guardian poisons every page still missing in a
 * registered VMA (SIGBUS when touched), logs one line per task and exits.
 * A daemon that ends normally says END and reaps it.
 *
 * Daemon side: guardian_start() before any uffd exists, guardian_take_conn()
 * for the restore's connection, which the guardian accepts (a uffd may
 * still be queued there when the daemon is killed), guardian_next() before
 * it reads a record's pid and guardian_conn_done() once it read every
 * record, guardian_hold() for every uffd it gets (handshake, FORK events),
 * guardian_release() when it closes one, guardian_stop() at its end.  The
 * guardian's own code is in guardian.c (the holding), guardian-handshake.c
 * (the restore's connection and the uffds still queued on it),
 * guardian-keeper.c (the keeper, which shares the daemon's fd table: a
 * FORK's child's uffd the daemon read and did not hand over yet) and
 * guardian-poison.c (the takeover).
 */
#ifndef CRIU_LAZY_LAZY_GUARDIAN_H
#define CRIU_LAZY_LAZY_GUARDIAN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct lazy_guardian {
	pid_t pid;		/* 0: none (not started, or gone) */
	int sock;		/* our end of the socketpair, -1 once closed */
	uint32_t next_id;
	pid_t keeper;		/* shares our fd table (guardian-keeper.c), or 0 */
	int keeper_pidfd;	/* the guardian's pidfd, which the keeper polls, or -1 */
};

enum guardian_op {
	GUARDIAN_HOLD = 1,	/* one uffd (SCM_RIGHTS) to keep */
	GUARDIAN_RELEASE,	/* the daemon closed its copy: close ours */
	GUARDIAN_END,		/* normal end: close everything and exit */
	GUARDIAN_CONN,		/* the restore's connection (SCM_RIGHTS), accepted
				 * from pid.  To the daemon: we accepted it and keep
				 * it (without it, our accept failed with errno id);
				 * from the daemon: it accepted it, we did not (we
				 * did not read): kept, the listening socket closed */
	GUARDIAN_CONN_DONE,	/* every record read: close the connection */
	GUARDIAN_NEXT,		/* the daemon reads pid's record: a uffd's message
				 * left alone on the connection is that process's */
	GUARDIAN_KEEPER,	/* pid shares the daemon's fd table (guardian-keeper.c) */
};

/* One message on the socketpair (SOCK_SEQPACKET: one record each). */
struct guardian_msg {
	uint32_t op;
	uint32_t id;		/* the daemon's handle for the uffd */
	int32_t pid;		/* the process whose memory it registers, or for
				 * a child forked after the restore (pid unknown)
				 * the process its layout descends from (image pid) */
	int32_t host_pid;	/* that process's pid here, for its /proc */
	uint32_t forked;	/* 1: a child forked after the restore */
};

/*
 * Fork the guardian.  Only the daemon returns (0, or -errno logged); the
 * guardian never returns from it.  It keeps none of the daemon's fds but
 * the log's, its end of the socketpair, listen_fd, the lazy-pages socket,
 * until it accepted the restore there, and dirfd, the images (which
 * process here a record it takes means, host-pid.c); not the directory's
 * lock or the page source.  nr_tasks: the processes of the tree, the most records the
 * restore sends.
 */
int guardian_start(struct lazy_guardian *g, int listen_fd, int dirfd, size_t nr_tasks);

/*
 * The restore's connection, which the guardian accepted and keeps a copy
 * of (guardian-handshake.c): called once g->sock is readable.  0 (*conn,
 * *restore_pid: its peer), -EPIPE if the guardian is gone (said: the
 * daemon then accepts itself), or -errno (said).
 */
int guardian_take_conn(struct lazy_guardian *g, int *conn, pid_t *restore_pid);
/* The connection the daemon accepted itself: a copy for the guardian (not fatal, said). */
void guardian_hold_conn(struct lazy_guardian *g, int conn, pid_t restore_pid);

/*
 * Before the daemon takes pid's record off the connection, so that its
 * uffd's message found alone there is known as pid's (the pid read, the
 * uffd not yet handed over); once every record is read, say so (the
 * guardian closes its copy).  Not fatal if they fail (a warning).
 */
void guardian_next(struct lazy_guardian *g, int32_t pid);
void guardian_conn_done(struct lazy_guardian *g);

/* Hand over a copy of uffd; *id gets the handle for guardian_release(). */
int guardian_hold(struct lazy_guardian *g, int uffd, pid_t pid, pid_t host_pid, bool forked,
		  uint32_t *id);
void guardian_release(struct lazy_guardian *g, uint32_t id);

/* The guardian's socket hung up while the daemon runs: warn, reap, go on. */
void guardian_lost(struct lazy_guardian *g);

/* Normal end (also after the daemon poisoned what was left itself). */
void guardian_stop(struct lazy_guardian *g);
/* Our child *pid reaped (SIGKILLed after wait_ms), *pid set to 0. */
void guardian_reap(pid_t *pid, int wait_ms);

/*
 * guardian-keeper.c: the daemon's child that shares its fd table, so that
 * a FORK's child's uffd, read by the daemon and not yet handed over,
 * outlives a SIGKILL of the daemon.  Started after the guardian (not
 * fatal: a warning), ends with it.
 */
void keeper_start(struct lazy_guardian *g);

/* guardian-poison.c: the guardian's takeover once the daemon died */
struct guardian_runs;

struct guardian_entry {
	uint32_t id;
	pid_t pid;		/* as the images name it */
	pid_t host_pid;		/* here */
	bool forked;
	/* forked, its uffd taken from the keeper: its FORK read by the daemon,
	 * not handed over; its parent not known (pid, host_pid 0) */
	bool orphan;
	int uffd;
	/* forked: the missing runs it was forked with, taken from the processes
	 * it descends from before anything of theirs was poisoned (NULL: none
	 * taken yet) */
	struct guardian_runs *borrowed;
};

struct guardian_table {
	struct guardian_entry *e;
	size_t nr, cap;
};

int guardian_table_add(struct guardian_table *tab, const struct guardian_entry *e);
/* One message on the socketpair, either way: 0 or -errno. */
int guardian_send(int sock, const struct guardian_msg *m, int fd);

/* guardian-handshake.c: the restore's sockets the guardian holds */
struct guardian_conn {
	int listen_fd;		/* until we accepted the restore, or -1 */
	bool accepting;		/* listen_fd watched (not after a failed accept) */
	int conn;		/* the restore's connection, or -1 */
	pid_t restore_pid;	/* its peer, 0 if unknown */
	int32_t next_pid;	/* GUARDIAN_NEXT's, or 0 */
	int dirfd;		/* the images */
	size_t nr_tasks;	/* the processes of pstree.img */
	unsigned long long since;	/* the daemon's start (host-pid.c) */
};

/*
 * The uffds still queued on the restore's connection, or on the one
 * waiting on the listening socket, into the table (the daemon died): how
 * many, or -ENOMEM (said).
 */
int guardian_take_queued(struct guardian_table *tab, struct guardian_conn *c);
/*
 * The restore connected (listen_fd readable): accept it as the daemon
 * would, keep it and hand the daemon a copy on sock.
 */
void guardian_accept(struct guardian_conn *c, int sock);
void guardian_conn_close(struct guardian_conn *c);
/* Returns the exit status for the guardian. */
int guardian_take_over(struct guardian_table *tab, pid_t daemon_pid);

/* guardian-keeper.c, the guardian's side */
struct guardian_keeper {
	pid_t pid;		/* 0: none known */
	int pidfd;		/* -1: none */
};

/* GUARDIAN_KEEPER: pid is the keeper (said if it cannot be watched). */
void guardian_keeper_hold(struct guardian_keeper *k, pid_t pid);
/* The daemon died: every uffd of the keeper's table into tab (orphans), the keeper ended. */
void guardian_take_keeper(struct guardian_table *tab, struct guardian_keeper *k);
/* Once every uffd is in: an orphan that is a uffd held otherwise is dropped. */
void guardian_drop_twins(struct guardian_table *tab);

#endif
