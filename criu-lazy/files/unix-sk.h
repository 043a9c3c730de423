/*
 * Unix sockets, shared by the two sides of the kind: unix-sk-dump.c (what
 * a dump collects and how it ties peers together) and unix-sk.c (the
 * restore and the ops table).
 */
#ifndef CRIU_LAZY_FILES_UNIX_SK_H
#define CRIU_LAZY_FILES_UNIX_SK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "files/sk-queue.h"
#include "files/unix-diag.h"

#include "sk-unix.pb-c.h"

#define USK_EXTERN	1	/* unix_sk_entry.uflags: a peer outside the tree */
#define SK_FILL_SNDBUF (1 << 30)	/* room to refill any queue; halved by the kernel */

struct dump_ctx;
struct dump_file;
struct fd_probe;

/* dump_file.priv of a unix socket */
struct unix_dump {
	struct sk_queue q;		/* first: sk_queues_write() finds it there */
	UnixSkEntry ue;
	SkOptsEntry opts;
	FilePermsEntry perms;
	char name[UNIX_DIAG_NAME_MAX + 1];
	char *name_dir;
	pid_t pid;			/* for messages; 0 for an external peer */
	int fd;
	struct dump_task *t;		/* whose fd it is (NULL: an external peer) */
	uint32_t *icons;		/* a listener's connections not yet accepted */
	unsigned int nr_icons;
	struct unix_dump **closed;	/* per icon: the entry of a closed client, or NULL */
	bool drain;			/* its connections will be accepted to read them */
	unsigned int nr_drained;	/* of them, accepted by the dump (unix-backlog.c) */
	uint32_t wqueue;		/* bytes it sent that nobody has read yet */
	bool in_flight;			/* no task's fd: passed with SCM_RIGHTS (sk-scm.c) */
	bool gone;			/* a client closed before its listener accepted it */
};

const char *unix_type_name(unsigned int type);

/* unix-sk-dump.c */
bool unix_match(const struct dump_ctx *ctx, const struct fd_probe *p);
int unix_dump(struct dump_ctx *ctx, const struct fd_probe *p, struct dump_file *f);
int unix_dump_resolve(struct dump_ctx *ctx);
int unix_dump_accept(struct dump_ctx *ctx);
void unix_dump_free(struct dump_file *f);

/* unix-backlog.c: a listener's connections not yet accepted.  plan: every
 * refusal, and which listeners the dump will drain (in resolve); resolve:
 * each client names its listener, in backlog order in files.img; reserve:
 * sk-queues.img opened with the space the drain may fill taken; drain: the
 * data waiting in them, read by accepting them (the dump's last fallible
 * step but writing the files' images); release: the error naming what a
 * failed dump lost when it had accepted connections. */
int unix_backlog_plan(struct dump_ctx *ctx);
int unix_backlog_reserve(struct dump_ctx *ctx, uint64_t *files_extra);
int unix_backlog_drain(struct dump_ctx *ctx);
int unix_backlog_resolve(struct dump_ctx *ctx, struct unix_dump *l);
int unix_backlog_release(struct dump_ctx *ctx, struct dump_file *f, bool resume);

/* unix-sk.c: @ue can be opened alone, as a file in flight (a pair's end,
 * or a socket connected to nothing) */
struct rst_images;
struct rst_child;
bool unix_opens_alone(const struct rst_images *ri, const UnixSkEntry *ue);
/* @ue is a client closed while waiting on the listener @l: no fd holds it,
 * unix_sk_entry.state TCP_CLOSE, peer the listener (unix-backlog.c) */
bool unix_closed_client(const UnixSkEntry *ue, const UnixSkEntry *l);

/* unix-sk.c, for unix-sk-connect.c: how an entry is made (unix-sk.c's
 * head), its queue, a new socket, its send buffer, its shutdown state */
enum unix_how { UNIX_PAIR, UNIX_ACCEPTED, UNIX_LISTENER, UNIX_PLAIN };
enum unix_how unix_classify(const struct rst_images *ri, const UnixSkEntry *ue,
			    const UnixSkEntry **peer);
const struct sk_queue *unix_queue_of(const struct rst_child *c, const UnixSkEntry *ue);
int unix_new_socket(struct rst_child *c, const UnixSkEntry *ue);
int unix_set_sndbuf(struct rst_child *c, int sk, const UnixSkEntry *ue, int v);
int unix_do_shutdown(struct rst_child *c, int sk, const UnixSkEntry *ue);

/* unix-sk-connect.c: FD_STAGE_CONNECT of a socket the task opened as @fd */
struct rst_fd;
int unix_connect(struct rst_child *c, const struct rst_fd *f, int fd);

/* unix-sk-name.c: @sk bound to @ue's name, connected to @to's name; a
 * name for messages ("@abstract", the path or "(unnamed)") */
struct rst_child;
int unix_bind_name(struct rst_child *c, int sk, const UnixSkEntry *ue);
int unix_connect_name(struct rst_child *c, int sk, const UnixSkEntry *to);
const char *unix_name_str(const UnixSkEntry *ue, char *buf, size_t size);

#endif
